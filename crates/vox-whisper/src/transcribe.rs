//! Long-audio transcription: 30-second windows advanced by the decoded timestamps, temperature fallback, prompts
//! from previous text, no-speech skipping, segments. A port of faster-whisper's `WhisperModel.transcribe` /
//! `generate_segments` / `generate_with_fallback` / `_split_segments_by_timestamps` (faster_whisper/transcribe.py,
//! 1.2.1) with the same defaults.

use std::io::Write;

use candle_core::{Result as CResult, Tensor};
use rand::SeedableRng;
use serde::Serialize;

use crate::WhisperError;
use crate::decode::{GenerateOptions, Generation, generate_from};
use crate::model::Whisper;
use crate::tokenizer::WhisperTokenizer;
use crate::words::{self, Piece, Word, WordContext};

/// 10 ms per mel frame, 20 ms per timestamp token, 2 frames per encoder position.
pub const TIME_PER_FRAME: f64 = 0.01;
pub const TIME_PRECISION: f64 = 0.02;
pub const INPUT_STRIDE: usize = 2;
pub const WINDOW_FRAMES: usize = 3000;

/// What to do (faster-whisper's `task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Transcribe,
    Translate,
}

/// faster-whisper's `transcribe` options, with its defaults.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// A language code; `None` detects it (multilingual models) or is English (`.en` models).
    pub language: Option<String>,
    pub task: Task,
    pub beam_size: usize,
    pub best_of: usize,
    pub patience: f32,
    pub length_penalty: f32,
    pub repetition_penalty: f32,
    pub no_repeat_ngram_size: usize,
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: Option<f32>,
    pub log_prob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    pub prompt_reset_on_temperature: f32,
    pub initial_prompt: Option<String>,
    pub suppress_blank: bool,
    /// `None` = faster-whisper's `[-1]` (the non-speech symbols).
    pub suppress_tokens: Option<Vec<i64>>,
    pub without_timestamps: bool,
    pub max_initial_timestamp: f32,
    /// Per-word timings from cross-attention ([`crate::words`]); segment bounds then follow the words.
    pub word_timestamps: bool,
    /// With `word_timestamps`: marks glued to the following word.
    pub prepend_punctuations: String,
    /// With `word_timestamps`: marks glued to the preceding word.
    pub append_punctuations: String,
    /// Seed of the sampler used by temperature fallback.
    pub seed: u64,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            suppress_blank: true,
            suppress_tokens: None,
            without_timestamps: false,
            max_initial_timestamp: 1.0,
            word_timestamps: false,
            prepend_punctuations: words::PREPEND_PUNCTUATIONS.into(),
            append_punctuations: words::APPEND_PUNCTUATIONS.into(),
            seed: 0,
        }
    }
}

/// One transcribed segment.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub id: usize,
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Present when word timestamps were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
}

/// The result of a transcription.
#[derive(Debug, Clone, Serialize)]
pub struct Transcription {
    pub language: String,
    pub language_probability: f32,
    pub duration: f64,
    pub segments: Vec<Segment>,
}

impl Transcription {
    /// The segments' text joined, trimmed.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// `len(bytes) / len(zlib.compress(bytes))`, with real zlib so the value equals Python's exactly (the fallback
/// threshold compares it at 2.4).
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("in-memory write");
    let compressed = enc.finish().expect("in-memory write");
    bytes.len() as f32 / compressed.len() as f32
}

/// Runs the model over log-mel features `[n_mels, frames]` (as `vox_audio` computes them with faster-whisper's
/// 160-sample padding).
pub fn transcribe_features(
    model: &Whisper,
    tok: &WhisperTokenizer,
    mel: &[f32],
    frames: usize,
    opts: &TranscribeOptions,
) -> Result<Transcription, WhisperError> {
    transcribe_features_until(model, tok, mel, frames, opts, &|| false)
}

/// [`transcribe_features`], giving up with [`WhisperError::Cancelled`] at the next 30 s window once `stop()`
/// says so (a server's client went away).
pub fn transcribe_features_until(
    model: &Whisper,
    tok: &WhisperTokenizer,
    mel: &[f32],
    frames: usize,
    opts: &TranscribeOptions,
    stop: &dyn Fn() -> bool,
) -> Result<Transcription, WhisperError> {
    let n_mels = model.config.n_mels;
    let content_frames = frames.saturating_sub(1);
    let duration = content_frames as f64 * TIME_PER_FRAME;
    let sp = &tok.specials;
    let suppress_tokens = tok.suppressed_tokens(opts.suppress_tokens.as_deref())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);

    let window = |seek: usize, size: usize| -> CResult<Tensor> {
        // `pad_or_trim`: the window's frames, zero-padded to 3000.
        let mut buf = vec![0f32; n_mels * WINDOW_FRAMES];
        for m in 0..n_mels {
            let src = &mel[m * frames + seek..m * frames + seek + size];
            buf[m * WINDOW_FRAMES..m * WINDOW_FRAMES + size].copy_from_slice(src);
        }
        Tensor::from_vec(buf, (1, n_mels, WINDOW_FRAMES), &model.device)
    };

    // Language: given, English for .en models, or detected on the first window.
    let (mut language, mut language_probability) = ("en".to_string(), 1.0f32);
    let mut first_encoding = None;
    if tok.multilingual {
        match &opts.language {
            Some(l) => language = l.clone(),
            None => {
                // faster-whisper detects on all frames (the padding frame too), decodes on the content frames:
                // the two encodings are the same only when the audio fills the window.
                let enc = model
                    .encoder
                    .forward(&window(0, frames.min(WINDOW_FRAMES))?)?;
                let (l, p) = detect_language(model, tok, &enc)?
                    .into_iter()
                    .next()
                    .unwrap_or(("en".into(), 0.0));
                language = l;
                language_probability = p;
                if frames > WINDOW_FRAMES {
                    first_encoding = Some(enc);
                }
            }
        }
    }
    let mut sot_sequence = vec![sp.sot];
    if tok.multilingual {
        let lt = tok
            .language_token(&language)
            .ok_or_else(|| WhisperError::BadInput(format!("unknown language {language:?}")))?;
        sot_sequence.push(lt);
        sot_sequence.push(if opts.task == Task::Translate {
            sp.translate
        } else {
            sp.transcribe
        });
    }

    let mut all_tokens: Vec<u32> = Vec::new();
    if let Some(p) = &opts.initial_prompt {
        all_tokens.extend(tok.encode(&format!(" {}", p.trim()))?);
    }
    let mut prompt_reset_since = 0;
    let mut segments = Vec::new();
    let mut seek = 0usize;
    let mut last_speech_timestamp = 0.0;
    let max_length = model.config.max_target_positions;
    while seek < content_frames {
        if stop() {
            return Err(WhisperError::Cancelled);
        }
        let time_offset = seek as f64 * TIME_PER_FRAME;
        let segment_size = WINDOW_FRAMES.min(content_frames - seek);
        let segment_duration = segment_size as f64 * TIME_PER_FRAME;
        let enc = match (seek, first_encoding.take()) {
            (0, Some(e)) => e,
            _ => model.encoder.forward(&window(seek, segment_size)?)?,
        };
        // The prompt: previous text, then the task tokens.
        let previous = &all_tokens[prompt_reset_since..];
        let mut prompt = Vec::new();
        if !previous.is_empty() {
            prompt.push(sp.sot_prev);
            let keep = max_length / 2 - 1;
            prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
        }
        prompt.extend_from_slice(&sot_sequence);
        if opts.without_timestamps {
            prompt.push(sp.no_timestamps);
        }

        let (out, avg_logprob, temperature, cr) =
            generate_with_fallback(model, tok, &enc, &prompt, &suppress_tokens, opts, &mut rng)?;
        if let Some(th) = opts.no_speech_threshold {
            let mut skip = out.no_speech_prob > th;
            if opts.log_prob_threshold.is_some_and(|lp| avg_logprob > lp) {
                skip = false;
            }
            if skip {
                seek += segment_size;
                continue;
            }
        }
        let previous_seek = seek;
        let (pieces, new_seek) = split_by_timestamps(
            tok,
            &out.tokens,
            time_offset,
            segment_size,
            segment_duration,
            seek,
        );
        seek = new_seek;
        let mut pieces: Vec<Piece> = pieces
            .into_iter()
            .map(|(start, end, tokens)| Piece {
                seek: previous_seek,
                start,
                end,
                tokens,
                words: Vec::new(),
            })
            .collect();
        if opts.word_timestamps {
            let ctx = WordContext {
                model,
                tokenizer: tok,
                alignment_heads: &model.alignment_heads,
                sot_sequence: &sot_sequence,
                language: &language,
                prepend_punctuations: &opts.prepend_punctuations,
                append_punctuations: &opts.append_punctuations,
            };
            words::add_word_timestamps(
                &ctx,
                &mut pieces,
                &enc,
                segment_size,
                last_speech_timestamp,
            )?;
            // Unless the window ended on a lone timestamp, resume after the last word.
            if !single_timestamp_ending(tok, &out.tokens)
                && let Some(end) = words::last_end(&pieces)
                && end > time_offset
            {
                seek = (end / TIME_PER_FRAME).round() as usize;
            }
            if let Some(end) = words::last_end(&pieces) {
                last_speech_timestamp = end;
            }
        }
        for piece in pieces {
            let text = tok.decode(&piece.tokens);
            if piece.start == piece.end || text.trim().is_empty() {
                continue;
            }
            all_tokens.extend_from_slice(&piece.tokens);
            segments.push(Segment {
                id: segments.len() + 1,
                seek: previous_seek,
                start: piece.start,
                end: piece.end,
                text,
                tokens: piece.tokens,
                temperature,
                avg_logprob,
                compression_ratio: cr,
                no_speech_prob: out.no_speech_prob,
                words: opts.word_timestamps.then_some(piece.words),
            });
        }
        if !opts.condition_on_previous_text || temperature > opts.prompt_reset_on_temperature {
            prompt_reset_since = all_tokens.len();
        }
    }
    Ok(Transcription {
        language,
        language_probability,
        duration,
        segments,
    })
}

/// faster-whisper's `generate_with_fallback`: decode at each temperature until the result is neither too
/// repetitive (compression ratio) nor too unlikely (average log-prob), unless it is silence.
fn generate_with_fallback(
    model: &Whisper,
    tok: &WhisperTokenizer,
    enc: &Tensor,
    prompt: &[u32],
    suppress_tokens: &[u32],
    opts: &TranscribeOptions,
    rng: &mut rand::rngs::StdRng,
) -> Result<(Generation, f32, f32, f32), WhisperError> {
    let mut all = Vec::new();
    let mut below_cr = Vec::new();
    let max_initial_timestamp_index =
        (opts.max_initial_timestamp as f64 / TIME_PRECISION).round() as usize;
    let mut last_t = 0.0;
    // The cross-attention memory of this window, shared by every temperature's decoding.
    let fresh = model.decoder.start(enc)?;
    for &t in &opts.temperatures {
        last_t = t;
        let g = GenerateOptions {
            beam_size: if t > 0.0 { 1 } else { opts.beam_size },
            patience: opts.patience,
            length_penalty: opts.length_penalty,
            repetition_penalty: opts.repetition_penalty,
            no_repeat_ngram_size: opts.no_repeat_ngram_size,
            max_length: model.config.max_target_positions,
            suppress_blank: opts.suppress_blank,
            suppress_blank_ids: vec![
                tok.encode(" ")?.first().copied().unwrap_or(220),
                tok.specials.eot,
            ],
            suppress_tokens: suppress_tokens.to_vec(),
            max_initial_timestamp_index,
            temperature: t,
            num_hypotheses: if t > 0.0 { opts.best_of } else { 1 },
        };
        let out = generate_from(model, fresh.clone(), prompt, &tok.specials, &g, rng)?;
        let len = out.tokens.len() as f32;
        let avg_logprob = out.score * len.powf(opts.length_penalty) / (len + 1.0);
        let text = tok.decode(&out.tokens);
        let cr = compression_ratio(text.trim());
        let mut needs_fallback = false;
        if let Some(th) = opts.compression_ratio_threshold {
            if cr > th {
                needs_fallback = true;
            } else {
                below_cr.push(all.len());
            }
        }
        if opts.log_prob_threshold.is_some_and(|lp| avg_logprob < lp) {
            needs_fallback = true;
        }
        if opts
            .no_speech_threshold
            .is_some_and(|ns| out.no_speech_prob > ns)
            && opts.log_prob_threshold.is_some_and(|lp| avg_logprob < lp)
        {
            needs_fallback = false; // silence
        }
        all.push((out, avg_logprob, t, cr));
        if !needs_fallback {
            return Ok(all.pop().expect("just pushed"));
        }
    }
    // Every temperature failed: the best average log-prob, preferring results under the compression threshold.
    let pool: Vec<usize> = if below_cr.is_empty() {
        (0..all.len()).collect()
    } else {
        below_cr
    };
    let best = pool
        .into_iter()
        .max_by(|a, b| all[*a].1.total_cmp(&all[*b].1))
        .ok_or_else(|| WhisperError::BadInput("no temperatures given".into()))?;
    let (g, lp, _, cr) = all.swap_remove(best);
    Ok((g, lp, last_t, cr))
}

/// Whether a window's tokens end with one timestamp after text (no speech after it).
fn single_timestamp_ending(tok: &WhisperTokenizer, tokens: &[u32]) -> bool {
    let tb = tok.specials.timestamp_begin;
    tokens.len() >= 2 && tokens[tokens.len() - 2] < tb && tokens[tokens.len() - 1] >= tb
}

/// faster-whisper's `_split_segments_by_timestamps`: segments between consecutive timestamp tokens, and where to
/// seek next. Returns (start, end, tokens) per segment and the new seek.
pub fn split_by_timestamps(
    tok: &WhisperTokenizer,
    tokens: &[u32],
    time_offset: f64,
    segment_size: usize,
    segment_duration: f64,
    mut seek: usize,
) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
    let tb = tok.specials.timestamp_begin;
    let is_ts = |t: u32| t >= tb;
    let single_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let consecutive: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
        .collect();
    let mut out = Vec::new();
    if !consecutive.is_empty() {
        let mut slices = consecutive;
        if single_ending {
            slices.push(tokens.len());
        }
        let mut last = 0;
        for &cur in &slices {
            let sliced = &tokens[last..cur];
            let start = time_offset + (sliced[0] - tb) as f64 * TIME_PRECISION;
            let end = time_offset + (sliced[sliced.len() - 1] - tb) as f64 * TIME_PRECISION;
            out.push((start, end, sliced.to_vec()));
            last = cur;
        }
        if single_ending {
            seek += segment_size;
        } else {
            seek += (tokens[last - 1] - tb) as usize * INPUT_STRIDE;
        }
    } else {
        let mut duration = segment_duration;
        if let Some(&last_ts) = tokens.iter().rfind(|t| is_ts(**t))
            && last_ts != tb
        {
            duration = (last_ts - tb) as f64 * TIME_PRECISION;
        }
        out.push((time_offset, time_offset + duration, tokens.to_vec()));
        seek += segment_size;
    }
    (out, seek)
}

/// Language probabilities from the first decoder step (CTranslate2's `detect_language`), best first.
pub fn detect_language(
    model: &Whisper,
    tok: &WhisperTokenizer,
    enc: &Tensor,
) -> Result<Vec<(String, f32)>, WhisperError> {
    let dec = &model.decoder;
    let mut state = dec.start(enc)?;
    let ids = Tensor::new(&[tok.specials.sot], &model.device)?.unsqueeze(0)?;
    let (h, _) = dec.forward(&ids, &mut state, false)?;
    let logits = dec.logits(&h.squeeze(1)?)?.squeeze(0)?.to_vec1::<f32>()?;
    let langs: Vec<(String, u32)> = crate::LANGUAGES
        .iter()
        .filter_map(|code| tok.language_token(code).map(|id| (code.to_string(), id)))
        .collect();
    let scores: Vec<f32> = langs.iter().map(|(_, id)| logits[*id as usize]).collect();
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = scores.iter().map(|s| (s - m).exp()).sum();
    let mut out: Vec<(String, f32)> = langs
        .into_iter()
        .zip(scores)
        .map(|((c, _), s)| (c, (s - m).exp() / z))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_matches_python_zlib() {
        // Python: len(t) / len(zlib.compress(t)) == 35 / 17 for this text.
        let r = compression_ratio("hello hello hello hello hello hello");
        assert!((r - 35.0 / 17.0).abs() < 1e-6, "{r}");
    }
}

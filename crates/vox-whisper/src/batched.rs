//! Batched transcription: a port of faster-whisper's `BatchedInferencePipeline.transcribe` (transcribe.py,
//! 1.2.1). Silero VAD finds the speech, `collect_chunks` packs the speech spans into chunks of at most 30 s
//! (the silence between spans dropped), each chunk gets its own log-mel window, and `batch_size` windows at a
//! time go through the encoder as one `[b, n_mels, 3000]` tensor and through the decoder together
//! ([`crate::decode_batch`]). Unlike the sequential loop ([`crate::transcribe`]) there is no seek, no
//! previous-text prompt and no temperature fallback: each chunk is decoded once, at the first temperature,
//! without timestamps by default, and its text spans the whole chunk. Segment times are chunk offsets in the
//! concatenated speech, mapped back to the original audio like `vad_filter=True` does.

use candle_core::Tensor;
use rand::SeedableRng;

use crate::WhisperError;
use crate::decode::GenerateOptions;
use crate::decode_batch::generate_batch;
use crate::pipeline::WhisperPipeline;
use crate::transcribe::{
    Segment, TIME_PER_FRAME, TIME_PRECISION, TranscribeOptions, Transcription, WINDOW_FRAMES,
    compression_ratio, detect_language, split_by_timestamps,
};
use crate::vad::{SileroVad, SpeechChunk, VadOptions, restore_timestamps};
use crate::words::{self, Piece, WordContext};

const SAMPLE_RATE: usize = 16000;
/// faster-whisper's feature padding, and its `chunk_length`.
const FEATURE_PADDING: usize = 160;
const CHUNK_SECONDS: f64 = 30.0;

/// Chunks decoded together by default (faster-whisper's `batch_size=8`).
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// A speech chunk of at most 30 s, as `collect_chunks(max_duration=30)` makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub audio: Vec<f32>,
    /// Start in the concatenated speech (seconds).
    pub offset: f64,
    pub duration: f64,
}

/// faster-whisper's `collect_chunks(audio, spans, max_duration)`: consecutive speech spans concatenated until
/// the next would make the chunk longer than `max_duration` seconds.
pub fn collect_chunks(audio: &[f32], spans: &[SpeechChunk], max_duration: f64) -> Vec<Chunk> {
    let max = max_duration * SAMPLE_RATE as f64;
    let span = |s: &SpeechChunk| &audio[s.start.min(audio.len())..s.end.min(audio.len())];
    let mut chunks = Vec::new();
    let (mut current, mut current_len, mut total) = (Vec::new(), 0usize, 0usize);
    for s in spans {
        let len = s.end - s.start;
        if (current_len + len) as f64 > max {
            chunks.push(Chunk {
                audio: std::mem::take(&mut current),
                offset: total as f64 / SAMPLE_RATE as f64,
                duration: current_len as f64 / SAMPLE_RATE as f64,
            });
            total += current_len;
            current_len = 0;
        }
        current.extend_from_slice(span(s));
        current_len += len;
    }
    chunks.push(Chunk {
        audio: current,
        offset: total as f64 / SAMPLE_RATE as f64,
        duration: current_len as f64 / SAMPLE_RATE as f64,
    });
    chunks
}

/// faster-whisper's batched defaults for options that differ from the sequential ones: no timestamps, one
/// temperature (0), no previous-text conditioning.
pub fn batched_options() -> TranscribeOptions {
    TranscribeOptions {
        without_timestamps: true,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        ..TranscribeOptions::default()
    }
}

/// The VAD options `BatchedInferencePipeline` uses when given none: spans of at most 30 s, split at silences of
/// 160 ms.
pub fn batched_vad_options() -> VadOptions {
    VadOptions {
        max_speech_duration_s: CHUNK_SECONDS as f32,
        min_silence_duration_ms: 160,
        ..VadOptions::default()
    }
}

/// A [`WhisperPipeline`] decoding VAD chunks in batches.
pub struct BatchedPipeline<'a> {
    pub pipeline: &'a WhisperPipeline,
    /// Without a VAD, audio up to 30 s is one chunk and longer audio is refused (as faster-whisper does with
    /// `vad_filter=False`).
    pub vad: Option<&'a SileroVad>,
    pub vad_options: VadOptions,
    pub batch_size: usize,
}

impl<'a> BatchedPipeline<'a> {
    pub fn new(pipeline: &'a WhisperPipeline, vad: Option<&'a SileroVad>) -> Self {
        BatchedPipeline {
            pipeline,
            vad,
            vad_options: batched_vad_options(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Transcribes 16 kHz mono samples; `opts` as [`batched_options`] gives them by default (of the
    /// temperatures only the first is used; `condition_on_previous_text`, the fallback thresholds and
    /// `no_speech_threshold` do not apply).
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcription, WhisperError> {
        self.transcribe_until(samples, opts, &|| false)
    }

    /// [`Self::transcribe`], stopping with [`WhisperError::Cancelled`] before the next batch once `stop()` is
    /// true.
    pub fn transcribe_until(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Transcription, WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::BadInput("the audio is empty".into()));
        }
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        let spans = match self.vad {
            Some(vad) => vad.speech_timestamps(samples, &self.vad_options)?,
            None if duration < CHUNK_SECONDS => vec![SpeechChunk {
                start: 0,
                end: samples.len(),
            }],
            None => {
                return Err(WhisperError::BadInput(format!(
                    "batched transcription of {duration:.1} s needs the VAD (audio over 30 s)"
                )));
            }
        };
        let chunks = collect_chunks(samples, &spans, CHUNK_SECONDS);
        let speech: usize = spans.iter().map(|s| s.end - s.start).sum();
        let model = &self.pipeline.model;
        let tok = &self.pipeline.tokenizer;
        let n_mels = model.config.n_mels;
        // Each chunk's features without their last frame, as faster-whisper computes them.
        let features: Vec<(Vec<f32>, usize)> = if speech == 0 {
            Vec::new()
        } else {
            chunks
                .iter()
                .map(|c| {
                    let (mel, frames) =
                        vox_audio::log_mel_spectrogram(&c.audio, n_mels, FEATURE_PADDING);
                    (mel, frames)
                })
                .collect()
        };
        let window = |items: &[(Vec<f32>, usize)]| -> Result<Tensor, WhisperError> {
            // `pad_or_trim` of `features[..., :-1]` for each item.
            let mut buf = vec![0f32; items.len() * n_mels * WINDOW_FRAMES];
            for (b, (mel, frames)) in items.iter().enumerate() {
                let take = frames.saturating_sub(1).min(WINDOW_FRAMES);
                for m in 0..n_mels {
                    let dst = (b * n_mels + m) * WINDOW_FRAMES;
                    buf[dst..dst + take].copy_from_slice(&mel[m * frames..m * frames + take]);
                }
            }
            Ok(Tensor::from_vec(
                buf,
                (items.len(), n_mels, WINDOW_FRAMES),
                &model.device,
            )?)
        };

        let sp = &tok.specials;
        let (language, language_probability) = match (&opts.language, tok.multilingual) {
            (_, false) => ("en".to_string(), 1.0),
            (Some(l), true) => (l.clone(), 1.0),
            (None, true) if features.is_empty() => ("en".to_string(), 0.0),
            (None, true) => {
                // Detected on the first 30 s of the concatenated features.
                let mut all = vec![0f32; n_mels * WINDOW_FRAMES];
                let mut at = 0;
                for (mel, frames) in &features {
                    let take = frames.saturating_sub(1).min(WINDOW_FRAMES - at);
                    for m in 0..n_mels {
                        let dst = m * WINDOW_FRAMES + at;
                        all[dst..dst + take].copy_from_slice(&mel[m * frames..m * frames + take]);
                    }
                    at += take;
                    if at == WINDOW_FRAMES {
                        break;
                    }
                }
                let mel = Tensor::from_vec(all, (1, n_mels, WINDOW_FRAMES), &model.device)?;
                let enc = model.encoder.forward(&mel)?;
                detect_language(model, tok, &enc)?
                    .into_iter()
                    .next()
                    .unwrap_or(("en".into(), 0.0))
            }
        };
        let mut sot_sequence = vec![sp.sot];
        if tok.multilingual {
            let lt = tok
                .language_token(&language)
                .ok_or_else(|| WhisperError::BadInput(format!("unknown language {language:?}")))?;
            sot_sequence.push(lt);
            sot_sequence.push(match opts.task {
                crate::Task::Translate => sp.translate,
                crate::Task::Transcribe => sp.transcribe,
            });
        }
        // `get_prompt`: the initial prompt (encoded as given, no leading space) after <|startofprev|>.
        let mut prompt = Vec::new();
        if let Some(p) = &opts.initial_prompt {
            let previous = tok.encode(p)?;
            if !previous.is_empty() {
                prompt.push(sp.sot_prev);
                let keep = model.config.max_target_positions / 2 - 1;
                prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
            }
        }
        prompt.extend_from_slice(&sot_sequence);
        if opts.without_timestamps {
            prompt.push(sp.no_timestamps);
        }
        let temperature = opts.temperatures.first().copied().unwrap_or(0.0);
        let g = GenerateOptions {
            beam_size: opts.beam_size.max(1),
            patience: opts.patience,
            length_penalty: opts.length_penalty,
            repetition_penalty: opts.repetition_penalty,
            no_repeat_ngram_size: opts.no_repeat_ngram_size,
            max_length: model.config.max_target_positions,
            suppress_blank: opts.suppress_blank,
            suppress_blank_ids: vec![tok.encode(" ")?.first().copied().unwrap_or(220), sp.eot],
            suppress_tokens: tok.suppressed_tokens(opts.suppress_tokens.as_deref())?,
            // Not passed by the batched pipeline: CTranslate2's default (1 s).
            max_initial_timestamp_index: (1.0 / TIME_PRECISION).round() as usize,
            temperature,
            num_hypotheses: if temperature > 0.0 { opts.best_of } else { 1 },
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);

        let mut segments: Vec<Segment> = Vec::new();
        let mut last_speech_timestamp = 0.0;
        let batch = self.batch_size.max(1);
        for (first, items) in features.chunks(batch).enumerate() {
            if stop() {
                return Err(WhisperError::Cancelled);
            }
            let first = first * batch;
            let enc = model.encoder.forward(&window(items)?)?;
            let outs = generate_batch(model, &enc, &prompt, sp, &g, &mut rng)?;
            for (i, out) in outs.into_iter().enumerate() {
                let chunk = &chunks[first + i];
                let len = out.tokens.len() as f32;
                let avg_logprob = out.score * len.powf(opts.length_penalty) / (len + 1.0);
                let segment_size = (chunk.duration.ceil() as usize) * 100;
                let seek = (chunk.offset / TIME_PER_FRAME) as usize;
                let (pieces, _) = split_by_timestamps(
                    tok,
                    &out.tokens,
                    chunk.offset,
                    segment_size,
                    chunk.duration,
                    0,
                );
                let mut pieces: Vec<Piece> = pieces
                    .into_iter()
                    .map(|(start, end, tokens)| Piece {
                        seek,
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
                    last_speech_timestamp = words::add_word_timestamps(
                        &ctx,
                        &mut pieces,
                        &enc.narrow(0, i, 1)?,
                        segment_size,
                        last_speech_timestamp,
                    )?;
                }
                for piece in pieces {
                    let text = tok.decode(&piece.tokens);
                    segments.push(Segment {
                        id: segments.len() + 1,
                        seek,
                        start: round3(piece.start),
                        end: round3(piece.end),
                        compression_ratio: compression_ratio(&text),
                        text,
                        tokens: piece.tokens,
                        temperature,
                        avg_logprob,
                        no_speech_prob: out.no_speech_prob,
                        words: opts.word_timestamps.then_some(piece.words),
                    });
                }
            }
        }
        restore_timestamps(&mut segments, &spans);
        Ok(Transcription {
            language,
            language_probability,
            duration,
            segments,
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_pack_spans_up_to_the_limit() {
        let audio: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let spans = [
            SpeechChunk { start: 0, end: 10 },
            SpeechChunk { start: 20, end: 30 },
            SpeechChunk { start: 40, end: 60 },
            SpeechChunk { start: 70, end: 75 },
        ];
        // 25 samples = 25/16000 s: 10 + 10 fit, 20 more would not; 20 + 5 fit.
        let chunks = collect_chunks(&audio, &spans, 25.0 / 16000.0);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].audio.len(), 20);
        assert_eq!(chunks[0].audio[10], 20.0);
        assert_eq!(chunks[0].offset, 0.0);
        assert_eq!(chunks[1].offset, 20.0 / 16000.0);
        assert_eq!(chunks[1].duration, 25.0 / 16000.0);
        assert_eq!(chunks[1].audio[..2], [40.0, 41.0]);
    }
}

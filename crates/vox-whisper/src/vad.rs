//! Voice activity detection with Silero VAD v6, as faster-whisper's `vad_filter=True` runs it
//! (faster_whisper/vad.py, 1.2.1): per-512-sample speech probabilities from `silero_vad_v6.onnx` (the file
//! faster-whisper ships in `faster_whisper/assets/`) on ONNX Runtime ([`vox_onnx`]), speech spans from those
//! probabilities (`get_speech_timestamps`), the speech concatenated for Whisper (`collect_chunks`) and the
//! timestamps mapped back to the original audio (`SpeechTimestampsMap`, `restore_speech_timestamps`).

use std::path::Path;
use std::sync::Mutex;

use vox_onnx::ort::session::Session;
use vox_onnx::ort::value::Tensor;

use crate::WhisperError;
use crate::pipeline::WhisperPipeline;
use crate::transcribe::{Segment, TranscribeOptions, Transcription};

const SAMPLE_RATE: usize = 16000;
/// Samples per VAD window, and the context the model sees before each window.
const WINDOW: usize = 512;
const CONTEXT: usize = 64;
/// Windows per ONNX call (faster-whisper's `encoder_batch_size`); the LSTM state carries across calls.
const BATCH: usize = 10000;

/// faster-whisper's `VadOptions`, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
    /// Windows with a probability at or above this are speech.
    pub threshold: f32,
    /// Below this, speech ends; `None` = `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Shorter speech spans are dropped.
    pub min_speech_duration_ms: u32,
    /// Longer spans are split (at a silence of 98 ms or more when there is one).
    pub max_speech_duration_s: f32,
    /// Silence that ends a span.
    pub min_silence_duration_ms: u32,
    /// Padding added on each side of a span.
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 0,
            max_speech_duration_s: f32::INFINITY,
            min_silence_duration_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

/// A span of speech, in samples of the original audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechChunk {
    pub start: usize,
    pub end: usize,
}

/// The Silero VAD model.
pub struct SileroVad {
    session: Mutex<Session>,
}

fn ort_err(e: impl std::fmt::Display) -> WhisperError {
    WhisperError::Model(format!("VAD: {e}"))
}

impl SileroVad {
    /// Opens `silero_vad_v6.onnx` with one intra-op thread (as faster-whisper does).
    pub fn open(path: &Path) -> Result<Self, WhisperError> {
        let session = vox_onnx::session(path, &vox_onnx::SessionOptions { intra_threads: 1 })
            .map_err(ort_err)?;
        Ok(SileroVad {
            session: Mutex::new(session),
        })
    }

    /// Speech probability of each 512-sample window of `audio`, zero-padded to a whole number of windows plus
    /// up to one more (numpy's `np.pad(audio, (0, 512 - len % 512))`).
    pub fn speech_probs(&self, audio: &[f32]) -> Result<Vec<f32>, WhisperError> {
        let mut padded = audio.to_vec();
        padded.resize(audio.len() + WINDOW - audio.len() % WINDOW, 0.0);
        let n = padded.len() / WINDOW;
        // faster-whisper takes the context as a view of the windows and zeroes the last one's, which also zeroes
        // the last window's final 64 samples; the first window's context is that zeroed block.
        let last = padded.len();
        padded[last - CONTEXT..].iter_mut().for_each(|v| *v = 0.0);
        let mut rows = Vec::with_capacity(n * (WINDOW + CONTEXT));
        for i in 0..n {
            if i == 0 {
                rows.extend(std::iter::repeat_n(0.0, CONTEXT));
            } else {
                rows.extend_from_slice(&padded[i * WINDOW - CONTEXT..i * WINDOW]);
            }
            rows.extend_from_slice(&padded[i * WINDOW..(i + 1) * WINDOW]);
        }
        let mut h = vec![0f32; 128];
        let mut c = vec![0f32; 128];
        let mut probs = Vec::with_capacity(n);
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        for start in (0..n).step_by(BATCH) {
            let m = BATCH.min(n - start);
            let input = Tensor::from_array((
                [m, WINDOW + CONTEXT],
                rows[start * (WINDOW + CONTEXT)..(start + m) * (WINDOW + CONTEXT)].to_vec(),
            ))
            .map_err(ort_err)?;
            let ht = Tensor::from_array(([1usize, 1, 128], h.clone())).map_err(ort_err)?;
            let ct = Tensor::from_array(([1usize, 1, 128], c.clone())).map_err(ort_err)?;
            let out = session
                .run(vox_onnx::ort::inputs!["input" => input, "h" => ht, "c" => ct])
                .map_err(ort_err)?;
            let (_, p) = out[0].try_extract_tensor::<f32>().map_err(ort_err)?;
            probs.extend_from_slice(p);
            h = out[1]
                .try_extract_tensor::<f32>()
                .map_err(ort_err)?
                .1
                .to_vec();
            c = out[2]
                .try_extract_tensor::<f32>()
                .map_err(ort_err)?
                .1
                .to_vec();
        }
        Ok(probs)
    }

    /// faster-whisper's `get_speech_timestamps`.
    pub fn speech_timestamps(
        &self,
        audio: &[f32],
        opts: &VadOptions,
    ) -> Result<Vec<SpeechChunk>, WhisperError> {
        Ok(timestamps_from_probs(
            &self.speech_probs(audio)?,
            audio.len(),
            opts,
        ))
    }
}

/// The span logic of faster-whisper's `get_speech_timestamps` over window probabilities.
pub fn timestamps_from_probs(
    probs: &[f32],
    audio_len: usize,
    opts: &VadOptions,
) -> Vec<SpeechChunk> {
    let sr = SAMPLE_RATE as f64;
    let ws = WINDOW;
    let threshold = opts.threshold as f64;
    let neg_threshold = opts
        .neg_threshold
        .map(|t| t as f64)
        .unwrap_or_else(|| (threshold - 0.15).max(0.01));
    let min_speech_samples = sr * opts.min_speech_duration_ms as f64 / 1000.0;
    let speech_pad_samples = sr * opts.speech_pad_ms as f64 / 1000.0;
    let max_speech_samples =
        sr * opts.max_speech_duration_s as f64 - ws as f64 - 2.0 * speech_pad_samples;
    let min_silence_samples = sr * opts.min_silence_duration_ms as f64 / 1000.0;
    let min_silence_samples_at_max_speech = sr * 98.0 / 1000.0;

    let mut triggered = false;
    let mut speeches: Vec<SpeechChunk> = Vec::new();
    // `current_speech`: its start, once set.
    let mut current: Option<usize> = None;
    let (mut temp_end, mut prev_end, mut next_start) = (0usize, 0usize, 0usize);
    for (i, &p) in probs.iter().enumerate() {
        let p = p as f64;
        let pos = ws * i;
        if p >= threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = pos;
            }
        }
        if p >= threshold && !triggered {
            triggered = true;
            current = Some(pos);
            continue;
        }
        if triggered && (pos as f64 - current.unwrap_or(0) as f64) > max_speech_samples {
            if prev_end != 0 {
                speeches.push(SpeechChunk {
                    start: current.unwrap_or(0),
                    end: prev_end,
                });
                current = None;
                if next_start < prev_end {
                    triggered = false;
                } else {
                    current = Some(next_start);
                }
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
            } else {
                speeches.push(SpeechChunk {
                    start: current.unwrap_or(0),
                    end: pos,
                });
                current = None;
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
                triggered = false;
                continue;
            }
        }
        if p < neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = pos;
            }
            if (pos - temp_end) as f64 > min_silence_samples_at_max_speech {
                prev_end = temp_end;
            }
            if ((pos - temp_end) as f64) < min_silence_samples {
                continue;
            }
            let start = current.unwrap_or(0);
            if (temp_end as f64 - start as f64) > min_speech_samples {
                speeches.push(SpeechChunk {
                    start,
                    end: temp_end,
                });
            }
            current = None;
            prev_end = 0;
            next_start = 0;
            temp_end = 0;
            triggered = false;
            continue;
        }
    }
    if let Some(start) = current
        && (audio_len as f64 - start as f64) > min_speech_samples
    {
        speeches.push(SpeechChunk {
            start,
            end: audio_len,
        });
    }
    pad_speeches(&mut speeches, audio_len, speech_pad_samples);
    speeches
}

/// The padding pass of `get_speech_timestamps`: pad each span, splitting short silences between neighbours.
fn pad_speeches(speeches: &mut [SpeechChunk], audio_len: usize, pad: f64) {
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].start = (speeches[0].start as f64 - pad).max(0.0) as usize;
        }
        if i != n - 1 {
            let silence = speeches[i + 1].start as i64 - speeches[i].end as i64;
            if (silence as f64) < 2.0 * pad {
                let half = silence.div_euclid(2);
                speeches[i].end = (speeches[i].end as i64 + half) as usize;
                speeches[i + 1].start = (speeches[i + 1].start as i64 - half).max(0) as usize;
            } else {
                speeches[i].end = (speeches[i].end as f64 + pad).min(audio_len as f64) as usize;
                speeches[i + 1].start = (speeches[i + 1].start as f64 - pad).max(0.0) as usize;
            }
        } else {
            speeches[i].end = (speeches[i].end as f64 + pad).min(audio_len as f64) as usize;
        }
    }
}

/// `collect_chunks` without a maximum duration (what `transcribe(vad_filter=True)` uses): the speech spans
/// concatenated.
pub fn collect_speech(audio: &[f32], chunks: &[SpeechChunk]) -> Vec<f32> {
    chunks
        .iter()
        .flat_map(|c| {
            audio[c.start.min(audio.len())..c.end.min(audio.len())]
                .iter()
                .copied()
        })
        .collect()
}

/// faster-whisper's `SpeechTimestampsMap`: from times in the concatenated speech back to the original audio.
pub struct SpeechTimestampsMap {
    chunk_end_sample: Vec<usize>,
    total_silence_before: Vec<f64>,
}

impl SpeechTimestampsMap {
    pub fn new(chunks: &[SpeechChunk]) -> Self {
        let (mut previous_end, mut silent) = (0usize, 0usize);
        let mut chunk_end_sample = Vec::new();
        let mut total_silence_before = Vec::new();
        for c in chunks {
            silent += c.start - previous_end;
            previous_end = c.end;
            chunk_end_sample.push(c.end - silent);
            total_silence_before.push(silent as f64 / SAMPLE_RATE as f64);
        }
        SpeechTimestampsMap {
            chunk_end_sample,
            total_silence_before,
        }
    }

    /// The chunk a time of the concatenated speech falls in.
    pub fn chunk_index(&self, time: f64, is_end: bool) -> usize {
        let sample = (time * SAMPLE_RATE as f64) as usize;
        if is_end && let Some(i) = self.chunk_end_sample.iter().position(|s| *s == sample) {
            return i;
        }
        // bisect.bisect (right): the first index whose end is past `sample`.
        let i = self.chunk_end_sample.partition_point(|s| *s <= sample);
        i.min(self.chunk_end_sample.len().saturating_sub(1))
    }

    /// The original time of `time`, rounded to 10 ms as faster-whisper does (`round(x, 2)`).
    pub fn original_time(&self, time: f64, chunk_index: Option<usize>, is_end: bool) -> f64 {
        let i = chunk_index.unwrap_or_else(|| self.chunk_index(time, is_end));
        let t = self.total_silence_before.get(i).copied().unwrap_or(0.0) + time;
        (t * 100.0).round() / 100.0
    }
}

/// faster-whisper's `restore_speech_timestamps`: segment (and word) times back on the original audio.
pub fn restore_timestamps(segments: &mut [Segment], chunks: &[SpeechChunk]) {
    if chunks.is_empty() {
        return;
    }
    let map = SpeechTimestampsMap::new(chunks);
    for s in segments {
        match s.words.as_mut().filter(|w| !w.is_empty()) {
            Some(words) => {
                for w in words.iter_mut() {
                    let i = map.chunk_index((w.start + w.end) / 2.0, false);
                    w.start = map.original_time(w.start, Some(i), false);
                    w.end = map.original_time(w.end, Some(i), false);
                }
                s.start = words[0].start;
                s.end = words[words.len() - 1].end;
            }
            None => {
                s.start = map.original_time(s.start, None, false);
                s.end = map.original_time(s.end, None, true);
            }
        }
    }
}

/// faster-whisper's `transcribe(..., vad_filter=True)`: transcribes only the speech `vad` finds and maps the
/// times back. `duration` stays the original audio's.
pub fn transcribe_with_vad(
    pipeline: &WhisperPipeline,
    vad: &SileroVad,
    samples: &[f32],
    opts: &TranscribeOptions,
    vad_opts: &VadOptions,
) -> Result<Transcription, WhisperError> {
    let chunks = vad.speech_timestamps(samples, vad_opts)?;
    let speech = collect_speech(samples, &chunks);
    let duration = samples.len() as f64 / SAMPLE_RATE as f64;
    tracing::debug!(
        chunks = chunks.len(),
        removed_s = duration - speech.len() as f64 / SAMPLE_RATE as f64,
        "VAD filter"
    );
    if speech.is_empty() {
        return Ok(Transcription {
            language: opts.language.clone().unwrap_or_else(|| "en".into()),
            language_probability: 0.0,
            duration,
            segments: Vec::new(),
        });
    }
    let mut t = pipeline.transcribe(&speech, opts)?;
    restore_timestamps(&mut t.segments, &chunks);
    t.duration = duration;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_padded_and_short_silences_shared() {
        // Speech in windows 10..20 and 30..40 of 512 samples; the 10-window gap is below min_silence.
        let mut probs = vec![0.0f32; 60];
        probs[10..20].iter_mut().for_each(|p| *p = 0.9);
        probs[30..40].iter_mut().for_each(|p| *p = 0.9);
        let opts = VadOptions {
            min_silence_duration_ms: 100,
            speech_pad_ms: 30,
            ..Default::default()
        };
        let ts = timestamps_from_probs(&probs, 60 * 512, &opts);
        // Ends at the first silent window (20 * 512, 40 * 512), 480 samples of padding each side.
        assert_eq!(
            ts,
            vec![
                SpeechChunk {
                    start: 10 * 512 - 480,
                    end: 20 * 512 + 480
                },
                SpeechChunk {
                    start: 30 * 512 - 480,
                    end: 40 * 512 + 480
                },
            ]
        );
        let map = SpeechTimestampsMap::new(&ts);
        // 1.0 s into the concatenated speech is past the first chunk (6080 samples): the second chunk.
        let silence = (ts[1].start - ts[0].end + ts[0].start) as f64 / 16000.0;
        assert_eq!(
            map.original_time(1.0, None, false),
            ((1.0 + silence) * 100.0f64).round() / 100.0
        );
    }
}

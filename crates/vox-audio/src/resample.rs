//! Sample-rate conversion with rubato, plus the decode → mono → 16 kHz path Whisper wants.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::audio::{Audio, Limits};
use crate::error::{AudioError, Result};

/// Whisper's input rate.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Roughly how many input frames rubato processes per call.
const CHUNK: usize = 1024;
/// Target FFT block length in input frames (rubato's own default aims at about 256).
const SUB_CHUNK: usize = 256;
/// The FFT resampler's block is a multiple of `rate / gcd(in, out)`; past this size (odd rate
/// pairs such as 44101 → 16000) the windowed-sinc resampler is the better tool.
const MAX_FFT_BLOCK: u32 = 2048;

/// Resample `audio` (any channel count) to `to_rate` Hz.
///
/// Uses rubato's synchronous FFT resampler (windowed, good anti-aliasing) for common rate pairs
/// and its windowed-sinc resampler otherwise. The whole clip, tail included, is converted: the
/// output has `ceil(frames * to_rate / from_rate)` frames, with the resampler delay removed.
/// Returns a copy unchanged when the rates already match.
pub fn resample(audio: &Audio, to_rate: u32) -> Result<Audio> {
    if audio.channels == 0 {
        return Err(AudioError::InvalidInput(
            "audio has 0 channels; it needs at least 1".into(),
        ));
    }
    let channels = usize::from(audio.channels);
    if !audio.samples.len().is_multiple_of(channels) {
        return Err(AudioError::InvalidInput(format!(
            "{} interleaved samples do not divide into {} channels",
            audio.samples.len(),
            channels
        )));
    }
    let samples = resample_interleaved(&audio.samples, channels, audio.sample_rate, to_rate)?;
    Ok(Audio {
        samples,
        channels: audio.channels,
        sample_rate: to_rate,
    })
}

/// Decode any supported file, mix it down to mono and resample it to 16 kHz: the input Whisper
/// (and [`log_mel_spectrogram`](crate::log_mel_spectrogram)) expects.
pub fn load_for_whisper(bytes: &[u8], hint: Option<&str>, limits: &Limits) -> Result<Vec<f32>> {
    let mono = crate::decode(bytes, hint, limits)?.into_mono();
    resample_interleaved(&mono.samples, 1, mono.sample_rate, WHISPER_SAMPLE_RATE)
}

/// Mono convenience used by the encoders.
pub(crate) fn resample_mono(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    resample_interleaved(samples, 1, from, to)
}

fn resample_interleaved(samples: &[f32], channels: usize, from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(AudioError::InvalidInput(format!(
            "cannot resample from {from} Hz to {to} Hz: sample rates must be positive"
        )));
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let frames = samples.len() / channels;
    if frames == 0 {
        return Ok(Vec::new());
    }
    let fail = |detail: String| AudioError::Resample { from, to, detail };

    let gcd = gcd(from, to);
    let (min_in, min_out) = ((from / gcd) as usize, (to / gcd) as usize);
    let mut resampler: Box<dyn Resampler<f32>> = if min_in.max(min_out) <= MAX_FFT_BLOCK as usize {
        // FFT blocks are `k * min_in` in and `k * min_out` out frames. rubato removes a delay of
        // half an output block, which is exact only when both halves are whole frames, so `k`
        // is made even (otherwise 44.1 kHz -> 16 kHz comes out shifted by half an input frame).
        // Blocks of roughly SUB_CHUNK input frames balance filter quality against latency.
        let mut k = SUB_CHUNK.div_ceil(min_in).max(1);
        k += k % 2;
        let sub_chunks = CHUNK.div_ceil(k * min_in).max(1);
        Box::new(
            Fft::<f32>::new_custom(
                from as usize,
                to as usize,
                k * min_in * sub_chunks,
                sub_chunks,
                channels,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| fail(e.to_string()))?,
        )
    } else {
        // Odd rate pairs (say 44101 -> 16000): rubato's windowed sinc. Its delay compensation
        // is rounded to whole output frames, so the output may lead by under one frame.
        let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2);
        let ratio = f64::from(to) / f64::from(from);
        Box::new(
            Async::<f32>::new_sinc(ratio, 1.0, &params, CHUNK, channels, FixedAsync::Input)
                .map_err(|e| fail(e.to_string()))?,
        )
    };

    let input =
        InterleavedSlice::new(samples, channels, frames).map_err(|e| fail(e.to_string()))?;
    let capacity = resampler.process_all_needed_output_len(frames);
    let mut out = vec![0.0f32; capacity * channels];
    let mut output =
        InterleavedSlice::new_mut(&mut out, channels, capacity).map_err(|e| fail(e.to_string()))?;
    let (_, produced) = resampler
        .process_all_into_buffer(&input, &mut output, frames, None)
        .map_err(|e| fail(e.to_string()))?;
    out.truncate(produced * channels);
    Ok(out)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

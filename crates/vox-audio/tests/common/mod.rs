//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// `secs` of a `freq` Hz sine at `amp`, sampled at `rate`.
pub fn sine(freq: f32, amp: f32, secs: f32, rate: u32) -> Vec<f32> {
    let n = (secs * rate as f32).round() as usize;
    let step = f64::from(freq) / f64::from(rate); // cycles per sample, in f64 so phase stays exact
    (0..n)
        .map(|i| amp * (std::f64::consts::TAU * (i as f64 * step).fract()).sin() as f32)
        .collect()
}

/// A canonical 44-byte WAV header. `data_len` is what the header claims, which the tests
/// sometimes make larger than the data that follows; `u32::MAX` writes a streaming header
/// (RIFF and data sizes unknown, as FFmpeg writes to a pipe).
pub fn wav_header(format_tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block_align = channels * bits.div_ceil(8);
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&36u32.saturating_add(data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format_tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// A complete 16-bit PCM WAV file.
pub fn wav_s16(samples: &[f32], rate: u32) -> Vec<u8> {
    let mut out = wav_header(1, 1, rate, 16, (samples.len() * 2) as u32);
    for &x in samples {
        out.extend_from_slice(&((x * 32767.0) as i16).to_le_bytes());
    }
    out
}

/// Pearson correlation of two equally long signals.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

/// Best correlation of `b` against `a` over lags in `-max_lag..=max_lag` (lossy codecs may
/// shift the signal by a few samples when they cannot signal their delay exactly).
pub fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (f64, isize) {
    let mut best = (f64::NEG_INFINITY, 0);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let (x, y) = if lag >= 0 {
            (&a[lag as usize..], b)
        } else {
            (a, &b[(-lag) as usize..])
        };
        let c = correlation(x, y);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// Small deterministic noise generator (xorshift), so tests need no `rand`.
pub fn noise_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

//! Whisper's log-mel spectrogram, matching faster-whisper 1.2.1's `FeatureExtractor` numerics:
//! 400-point periodic Hann window, hop 160, centred STFT with reflect padding, power spectrum,
//! Slaney-style mel filterbank, `log10(max(x, 1e-10))`, floor at `max - 8`, `(x + 4) / 4`,
//! and the last STFT frame dropped.

use std::sync::{Arc, LazyLock};

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// FFT size (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;
const N_BINS: usize = N_FFT / 2 + 1;
const SAMPLE_RATE: f64 = 16_000.0;

static MEL_80: LazyLock<MelExtractor> = LazyLock::new(|| MelExtractor::new(80));
static MEL_128: LazyLock<MelExtractor> = LazyLock::new(|| MelExtractor::new(128));

/// Log-mel features of 16 kHz mono audio, as faster-whisper computes them.
///
/// `padding` zero samples are appended first (faster-whisper's default is 160; pass
/// `N_SAMPLES = 480_000` for the original Whisper's 30-s padding). Returns the features as
/// `n_mels` rows of `frames` values (row-major) and `frames`, which is
/// `(samples.len() + padding) / 160`. The 80- and 128-mel extractors are built once and reused.
pub fn log_mel_spectrogram(
    samples_16k: &[f32],
    n_mels: usize,
    padding: usize,
) -> (Vec<f32>, usize) {
    match n_mels {
        80 => MEL_80.compute(samples_16k, padding),
        128 => MEL_128.compute(samples_16k, padding),
        _ => MelExtractor::new(n_mels).compute(samples_16k, padding),
    }
}

/// A precomputed window, mel filterbank and FFT plan; build once, share freely (`Sync`).
pub struct MelExtractor {
    n_mels: usize,
    window: Vec<f32>,
    /// Per mel band: the first FFT bin with a non-zero weight, and the weights from there on.
    filters: Vec<(usize, Vec<f32>)>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl MelExtractor {
    /// An extractor for `n_mels` bands (Whisper uses 80, large-v3 uses 128).
    pub fn new(n_mels: usize) -> Self {
        // np.hanning(N_FFT + 1)[:-1], computed in f64 and stored as f32 like faster-whisper.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let filters = mel_filters(n_mels)
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(row.len());
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |i| i + 1);
                (first, row[first..last].iter().map(|&w| w as f32).collect())
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        MelExtractor {
            n_mels,
            window,
            filters,
            fft,
        }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// See [`log_mel_spectrogram`].
    pub fn compute(&self, samples_16k: &[f32], padding: usize) -> (Vec<f32>, usize) {
        let n = samples_16k.len() + padding;
        let frames = n / HOP_LENGTH;
        if frames == 0 || self.n_mels == 0 {
            return (Vec::new(), frames);
        }
        let padded = reflect_pad(samples_16k, n);

        let mut out = vec![0.0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f32; N_BINS];
        for t in 0..frames {
            let frame = &padded[t * HOP_LENGTH..t * HOP_LENGTH + N_FFT];
            for ((dst, &x), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = x * w;
            }
            // Lengths come from the same plan, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = norm_sqr(c);
            }
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let energy: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out[m * frames + t] = energy;
            }
        }

        let mut max = f32::NEG_INFINITY;
        for v in &mut out {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        (out, frames)
    }
}

fn norm_sqr(c: &Complex<f32>) -> f32 {
    c.re * c.re + c.im * c.im
}

/// The signal zero-padded to `n` samples, then reflect-padded by `N_FFT / 2` on each side
/// (numpy's `mode="reflect"`: the edge sample is not repeated; short signals reflect repeatedly).
fn reflect_pad(samples: &[f32], n: usize) -> Vec<f32> {
    let half = (N_FFT / 2) as isize;
    let at = |i: usize| samples.get(i).copied().unwrap_or(0.0);
    let period = 2 * (n as isize - 1);
    (-half..n as isize + half)
        .map(|i| {
            if n == 1 {
                return at(0);
            }
            let k = i.rem_euclid(period);
            at(if k >= n as isize { period - k } else { k } as usize)
        })
        .collect()
}

/// `FeatureExtractor.get_mel_filters(16000, 400, n_mels)`: Slaney mel scale, Slaney-normalised
/// triangles over the rfft bins. Returns `n_mels` rows of `N_BINS` weights, in f64.
fn mel_filters(n_mels: usize) -> Vec<Vec<f64>> {
    let fft_freqs: Vec<f64> = (0..N_BINS)
        .map(|k| k as f64 * SAMPLE_RATE / N_FFT as f64)
        .collect();
    let (min_mel, max_mel) = (0.0, 45.245640471924965);
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| {
            // np.linspace(min_mel, max_mel, n_mels + 2)
            let mel = if i == n_mels + 1 {
                max_mel
            } else {
                min_mel + i as f64 * (max_mel - min_mel) / (n_mels + 1) as f64
            };
            if mel >= min_log_mel {
                min_log_hz * (logstep * (mel - min_log_mel)).exp()
            } else {
                f_sp * mel
            }
        })
        .collect();
    (0..n_mels)
        .map(|m| {
            let enorm = 2.0 / (freqs[m + 2] - freqs[m]);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - freqs[m]) / (freqs[m + 1] - freqs[m]);
                    let upper = (freqs[m + 2] - f) / (freqs[m + 2] - freqs[m + 1]);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}

//! The short-time Fourier transforms HiFT uses (`torch.stft` / `torch.istft` with
//! `center=True`, reflect padding, a periodic Hann window of length `n_fft`, onesided), written
//! as a strided convolution with a windowed DFT basis and its transposed convolution plus the
//! window-square normalisation, so they run on any candle device. n_fft is tiny (16), where a
//! DFT by matrix product costs less than an FFT.

use candle_core::{D, Device, Result, Tensor};

#[derive(Debug, Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    /// (2·bins, 1, n_fft): rows 0..bins are w·cos, rows bins.. are −w·sin.
    analysis: Tensor,
    /// (2·bins, 1, n_fft): the onesided inverse DFT (Hermitian weights 1, 2, …, 2, 1) times w / n_fft.
    synthesis: Tensor,
    window: Vec<f32>,
}

/// `scipy.signal.get_window("hann", n, fftbins=True)` / `torch.hann_window(n)` (periodic).
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize, device: &Device) -> Result<Self> {
        let bins = n_fft / 2 + 1;
        let window = hann_periodic(n_fft);
        let mut analysis = vec![0f32; 2 * bins * n_fft];
        let mut synthesis = vec![0f32; 2 * bins * n_fft];
        for k in 0..bins {
            // The imaginary parts of DC and Nyquist do not contribute (as in a C2R transform).
            let herm = if k == 0 || 2 * k == n_fft { 1.0 } else { 2.0 };
            for n in 0..n_fft {
                let arg = 2.0 * std::f64::consts::PI * ((k * n) % n_fft) as f64 / n_fft as f64;
                let w = window[n] as f64;
                analysis[k * n_fft + n] = (w * arg.cos()) as f32;
                analysis[(bins + k) * n_fft + n] = (-w * arg.sin()) as f32;
                synthesis[k * n_fft + n] = (herm * arg.cos() * w / n_fft as f64) as f32;
                synthesis[(bins + k) * n_fft + n] = (-herm * arg.sin() * w / n_fft as f64) as f32;
            }
        }
        Ok(Self {
            n_fft,
            hop,
            analysis: Tensor::from_vec(analysis, (2 * bins, 1, n_fft), device)?,
            synthesis: Tensor::from_vec(synthesis, (2 * bins, 1, n_fft), device)?,
            window,
        })
    }

    pub fn device(&self) -> &Device {
        self.analysis.device()
    }

    /// x: (B, L) → real ‖ imag: (B, 2·bins, L/hop + 1).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = reflect_pad(x, self.n_fft / 2)?.unsqueeze(1)?;
        let w = self.analysis.to_dtype(x.dtype())?;
        x.conv1d(&w, 0, self.hop, 1, 1)
    }

    /// real ‖ imag (B, 2·bins, F) → (B, hop·(F − 1)).
    pub fn inverse(&self, spec: &Tensor) -> Result<Tensor> {
        let frames = spec.dim(D::Minus1)?;
        let w = self.synthesis.to_dtype(spec.dtype())?;
        let y = spec
            .conv_transpose1d(&w, 0, 0, self.hop, 1, 1)?
            .squeeze(1)?;
        let full = y.dim(D::Minus1)?;
        // Overlap-added window², by which the reference divides (its NOLA envelope).
        let mut env = vec![0f32; full];
        for f in 0..frames {
            for (n, w) in self.window.iter().enumerate() {
                env[f * self.hop + n] += w * w;
            }
        }
        let start = self.n_fft / 2;
        let len = self.hop * (frames - 1);
        let env = Tensor::from_vec(env[start..start + len].to_vec(), (1, len), spec.device())?
            .to_dtype(y.dtype())?;
        y.narrow(D::Minus1, start, len)?.broadcast_div(&env)
    }
}

/// `F.pad(x, (p, p), mode="reflect")` on the last axis of (B, L).
pub fn reflect_pad(x: &Tensor, p: usize) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    if len <= p {
        candle_core::bail!("reflect padding {p} needs more than {p} samples, got {len}")
    }
    let idx: Vec<u32> = (0..p)
        .map(|i| (p - i) as u32)
        .chain((0..len).map(|i| i as u32))
        .chain((0..p).map(|i| (len - 2 - i) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, len + 2 * p, x.device())?;
    x.index_select(&idx, D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 * 0.37).sin() + 0.5 * (i as f32 * 1.91).cos()) * 0.3)
            .collect()
    }

    #[test]
    fn forward_is_the_windowed_dft_of_reflect_padded_frames() {
        let dev = Device::Cpu;
        let x = signal(64);
        let stft = Stft::new(16, 4, &dev).unwrap();
        let spec = stft
            .forward(&Tensor::from_vec(x.clone(), (1, 64), &dev).unwrap())
            .unwrap();
        assert_eq!(spec.dims(), &[1, 18, 17]);
        let spec: Vec<Vec<f32>> = spec.squeeze(0).unwrap().to_vec2().unwrap();
        // Frame 0 is centred on sample 0: samples −8..8 with reflection x[−i] = x[i].
        let w = hann_periodic(16);
        for k in 0..9 {
            let (mut re, mut im) = (0f64, 0f64);
            for n in 0..16 {
                let s = x[(n as i64 - 8).unsigned_abs() as usize] as f64 * w[n] as f64;
                let a = -2.0 * std::f64::consts::PI * (k * n) as f64 / 16.0;
                re += s * a.cos();
                im += s * a.sin();
            }
            assert!((spec[k][0] as f64 - re).abs() < 1e-5, "re bin {k}");
            assert!((spec[9 + k][0] as f64 - im).abs() < 1e-5, "im bin {k}");
        }
    }

    #[test]
    fn inverse_reconstructs_the_signal() {
        let dev = Device::Cpu;
        let x = signal(400);
        let stft = Stft::new(16, 4, &dev).unwrap();
        let xt = Tensor::from_vec(x.clone(), (1, 400), &dev).unwrap();
        let y: Vec<f32> = stft
            .inverse(&stft.forward(&xt).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y.len(), 400);
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max reconstruction error {err}");
    }
}

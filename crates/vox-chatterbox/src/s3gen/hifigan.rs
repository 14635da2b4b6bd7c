//! `HiFTGenerator` (reference `hifigan.py`): HiFTNet = neural source-filter + iSTFTNet. Mel →
//! F0 → harmonic source at 24 kHz; mel → transposed-conv upsampling ×8×5×3 fused with the
//! source's STFT at each stage → magnitude/phase for a 16-point iSTFT with hop 4.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::config::HiftConfig;
use super::f0_predictor::ConvRnnF0Predictor;
use super::nn::{Conv1d, ConvSpec, ConvTranspose1d, leaky_relu};
use super::noise::S3GenNoise;
use super::stft::Stft;

/// Snake activation: x + sin²(αx)/(α + 1e-9), α per channel (linear scale).
#[derive(Debug, Clone)]
struct Snake {
    alpha: Tensor,
    inv_alpha: Tensor,
}

impl Snake {
    fn load(channels: usize, vb: VarBuilder) -> Result<Self> {
        let alpha = vb.get(channels, "alpha")?.reshape((1, channels, 1))?;
        let inv_alpha = (alpha.clone() + 1e-9)?.recip()?;
        Ok(Self { alpha, inv_alpha })
    }
}

impl Module for Snake {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.broadcast_mul(&self.alpha)?.sin()?.sqr()?;
        x + s.broadcast_mul(&self.inv_alpha)?
    }
}

/// HiFi-GAN residual block with Snake activations and weight-normalised convolutions.
#[derive(Debug, Clone)]
struct ResBlock {
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
    activations1: Vec<Snake>,
    activations2: Vec<Snake>,
}

impl ResBlock {
    fn load(channels: usize, kernel: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let mut b = Self {
            convs1: vec![],
            convs2: vec![],
            activations1: vec![],
            activations2: vec![],
        };
        for (j, &d) in dilations.iter().enumerate() {
            let spec = ConvSpec::new(channels, channels, kernel, (kernel * d - d) / 2).dilation(d);
            b.convs1.push(Conv1d::load(spec, vb.pp("convs1").pp(j))?);
            let spec = ConvSpec::new(channels, channels, kernel, (kernel - 1) / 2);
            b.convs2.push(Conv1d::load(spec, vb.pp("convs2").pp(j))?);
            b.activations1
                .push(Snake::load(channels, vb.pp("activations1").pp(j))?);
            b.activations2
                .push(Snake::load(channels, vb.pp("activations2").pp(j))?);
        }
        Ok(b)
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for j in 0..self.convs1.len() {
            let xt = self.convs1[j].forward(&self.activations1[j].forward(&x)?)?;
            let xt = self.convs2[j].forward(&self.activations2[j].forward(&xt)?)?;
            x = (xt + x)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct HiftGenerator {
    cfg: HiftConfig,
    pub f0_predictor: ConvRnnF0Predictor,
    /// `m_source.l_linear`: harmonics → one source channel.
    source_linear: Linear,
    conv_pre: Conv1d,
    ups: Vec<ConvTranspose1d>,
    source_downs: Vec<Conv1d>,
    source_resblocks: Vec<ResBlock>,
    resblocks: Vec<ResBlock>,
    conv_post: Conv1d,
    stft: Stft,
}

impl HiftGenerator {
    pub fn load(cfg: &HiftConfig, vb: VarBuilder) -> Result<Self> {
        let base = cfg.base_channels;
        let bins2 = cfg.n_fft + 2;
        let ups = cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
            .map(|(i, (&u, &k))| {
                ConvTranspose1d::load(
                    base >> i,
                    base >> (i + 1),
                    k,
                    u,
                    (k - u) / 2,
                    vb.pp("ups").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        // Source downsampling factors, last stage first: cumprod([1] + reversed(rates)[:-1]).
        let mut cum = vec![1usize];
        for &r in cfg
            .upsample_rates
            .iter()
            .rev()
            .take(cfg.upsample_rates.len() - 1)
        {
            cum.push(cum.last().unwrap() * r);
        }
        cum.reverse();
        let mut source_downs = vec![];
        let mut source_resblocks = vec![];
        for (i, &u) in cum.iter().enumerate() {
            let ch = base >> (i + 1);
            let spec = if u == 1 {
                ConvSpec::new(bins2, ch, 1, 0)
            } else {
                ConvSpec::new(bins2, ch, 2 * u, u / 2).stride(u)
            };
            source_downs.push(Conv1d::load(spec, vb.pp("source_downs").pp(i))?);
            source_resblocks.push(ResBlock::load(
                ch,
                cfg.source_resblock_kernel_sizes[i],
                &cfg.source_resblock_dilation_sizes[i],
                vb.pp("source_resblocks").pp(i),
            )?);
        }
        let mut resblocks = vec![];
        for i in 0..ups.len() {
            let ch = base >> (i + 1);
            for (k, d) in cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
            {
                let idx = resblocks.len();
                resblocks.push(ResBlock::load(ch, *k, d, vb.pp("resblocks").pp(idx))?);
            }
        }
        let last_ch = base >> ups.len();
        Ok(Self {
            f0_predictor: ConvRnnF0Predictor::load(
                cfg.in_channels,
                cfg.f0_cond_channels,
                vb.pp("f0_predictor"),
            )?,
            source_linear: linear(cfg.nb_harmonics + 1, 1, vb.pp("m_source.l_linear"))?,
            conv_pre: Conv1d::load(
                ConvSpec::new(cfg.in_channels, base, 7, 3),
                vb.pp("conv_pre"),
            )?,
            ups,
            source_downs,
            source_resblocks,
            resblocks,
            conv_post: Conv1d::load(ConvSpec::new(last_ch, bins2, 7, 3), vb.pp("conv_post"))?,
            stft: Stft::new(cfg.n_fft, cfg.hop_len, vb.device())?,
            cfg: cfg.clone(),
        })
    }

    /// `SourceModuleHnNSF`: F0 per mel frame (1, T) → excitation (1, 1, T·480).
    ///
    /// The sine generator runs on the host in f32 like the reference, except that the phase
    /// accumulation is summed in f64 as torch's CPU `cumsum` does for f32 input.
    pub fn source(&self, f0: &Tensor, noise: &mut dyn S3GenNoise) -> Result<Tensor> {
        let cfg = &self.cfg;
        let f0: Vec<f32> = f0
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let up = cfg.samples_per_frame();
        let len = f0.len() * up;
        let harmonics = cfg.nb_harmonics + 1;
        let mut phase = noise.sine_phase(harmonics)?;
        phase[0] = 0.0;
        let gauss = noise.sine_noise(harmonics, len)?;
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let sr = cfg.sampling_rate as f32;
        let noise_voiced = cfg.nsf_sigma;
        let noise_unvoiced = cfg.nsf_alpha / 3.0;
        // (L, harmonics), the layout l_linear consumes.
        let mut sines = vec![0f32; len * harmonics];
        for h in 0..harmonics {
            let mut acc = 0f64;
            for n in 0..len {
                let f = f0[n / up];
                acc += f64::from(f * (h + 1) as f32 / sr);
                let c = acc as f32;
                let theta = two_pi * (c - c.floor());
                let voiced = f > cfg.nsf_voiced_threshold;
                let sine = cfg.nsf_alpha * (theta + phase[h]).sin();
                let amp = if voiced { noise_voiced } else { noise_unvoiced };
                let g = amp * gauss[h * len + n];
                sines[n * harmonics + h] = if voiced { sine + g } else { g };
            }
        }
        let sines = Tensor::from_vec(sines, (1, len, harmonics), self.stft.device())?
            .to_dtype(self.source_linear.weight().dtype())?;
        self.source_linear
            .forward(&sines)?
            .tanh()?
            .transpose(1, 2)?
            .contiguous()
    }

    /// mel (1, 80, T) and excitation s (1, 1, 480T) → waveform (1, 480T), clamped to ±0.99.
    pub fn decode(&self, mel: &Tensor, s: &Tensor) -> Result<Tensor> {
        let cfg = &self.cfg;
        let s_stft = self.stft.forward(&s.squeeze(1)?)?;
        let mut x = self.conv_pre.forward(mel)?;
        let n_up = self.ups.len();
        let n_k = cfg.resblock_kernel_sizes.len();
        for i in 0..n_up {
            x = self.ups[i].forward(&leaky_relu(&x, cfg.lrelu_slope)?)?;
            if i == n_up - 1 {
                // ReflectionPad1d((1, 0)): prepend x[1].
                x = Tensor::cat(&[&x.narrow(D::Minus1, 1, 1)?, &x], D::Minus1)?;
            }
            let si = self.source_resblocks[i].forward(&self.source_downs[i].forward(&s_stft)?)?;
            x = (x + si)?;
            let mut xs = self.resblocks[i * n_k].forward(&x)?;
            for j in 1..n_k {
                xs = (xs + self.resblocks[i * n_k + j].forward(&x)?)?;
            }
            x = (xs / n_k as f64)?;
        }
        // The last activation uses PyTorch's default slope 0.01, not lrelu_slope.
        let x = self.conv_post.forward(&leaky_relu(&x, 0.01)?)?;
        let bins = cfg.n_fft / 2 + 1;
        let magnitude = x.narrow(1, 0, bins)?.exp()?.clamp(f32::MIN, 1e2f32)?;
        let phase = x.narrow(1, bins, bins)?.sin()?;
        let real = (&magnitude * phase.cos()?)?;
        let imag = (&magnitude * phase.sin()?)?;
        let wav = self.stft.inverse(&Tensor::cat(&[real, imag], 1)?)?;
        wav.clamp(-cfg.audio_limit, cfg.audio_limit)
    }

    /// `HiFTGenerator.inference`: mel (1, 80, T) → (waveform (1, 480T), excitation (1, 1, 480T)).
    pub fn inference(&self, mel: &Tensor, noise: &mut dyn S3GenNoise) -> Result<(Tensor, Tensor)> {
        let f0 = self.f0_predictor.forward(mel)?;
        let s = self.source(&f0, noise)?;
        Ok((self.decode(mel, &s)?, s))
    }
}

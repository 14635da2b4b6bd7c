//! S3Gen's hyper-parameters. `Default` is the shipped model (the reference builds it from
//! hard-coded constructor arguments, so `s3gen.safetensors` comes without a config file); tests
//! deserialize shrunken ones from JSON.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct S3GenConfig {
    /// Speech-token vocabulary of the flow's input embedding.
    pub vocab_size: usize,
    /// Width of the token embedding (= encoder input).
    pub input_size: usize,
    /// Mel bins.
    pub output_size: usize,
    /// CAMPPlus x-vector width.
    pub spk_embed_dim: usize,
    pub encoder: EncoderConfig,
    pub decoder: DecoderConfig,
    pub cfm: CfmConfig,
    pub hift: HiftConfig,
}

impl Default for S3GenConfig {
    fn default() -> Self {
        Self {
            vocab_size: 6561,
            input_size: 512,
            output_size: 80,
            spk_embed_dim: 192,
            encoder: EncoderConfig::default(),
            decoder: DecoderConfig::default(),
            cfm: CfmConfig::default(),
            hift: HiftConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EncoderConfig {
    pub output_size: usize,
    pub attention_heads: usize,
    pub linear_units: usize,
    pub num_blocks: usize,
    /// The reference hard-codes 4 `up_encoders`.
    pub num_up_blocks: usize,
    pub pre_lookahead_len: usize,
    pub upsample_stride: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            output_size: 512,
            attention_heads: 8,
            linear_units: 2048,
            num_blocks: 6,
            num_up_blocks: 4,
            pre_lookahead_len: 3,
            upsample_stride: 2,
        }
    }
}

/// The flow-matching estimator (`ConditionalDecoder`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DecoderConfig {
    /// x ‖ mu ‖ spks ‖ cond = 4 × 80.
    pub in_channels: usize,
    pub out_channels: usize,
    /// One entry per U-Net level; Chatterbox uses one level.
    pub channels: Vec<usize>,
    pub attention_head_dim: usize,
    pub n_blocks: usize,
    pub num_mid_blocks: usize,
    pub num_heads: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            in_channels: 320,
            out_channels: 80,
            channels: vec![256],
            attention_head_dim: 64,
            n_blocks: 4,
            num_mid_blocks: 12,
            num_heads: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CfmConfig {
    pub n_timesteps: usize,
    pub inference_cfg_rate: f64,
}

impl Default for CfmConfig {
    fn default() -> Self {
        Self {
            n_timesteps: 10,
            inference_cfg_rate: 0.7,
        }
    }
}

/// `HiFTGenerator` as `S3Token2Wav` builds it, plus its `ConvRNNF0Predictor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HiftConfig {
    pub in_channels: usize,
    pub base_channels: usize,
    pub nb_harmonics: usize,
    pub sampling_rate: usize,
    pub nsf_alpha: f32,
    pub nsf_sigma: f32,
    pub nsf_voiced_threshold: f32,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub n_fft: usize,
    pub hop_len: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub source_resblock_kernel_sizes: Vec<usize>,
    pub source_resblock_dilation_sizes: Vec<Vec<usize>>,
    pub lrelu_slope: f64,
    pub audio_limit: f64,
    /// `ConvRNNF0Predictor.cond_channels`.
    pub f0_cond_channels: usize,
}

impl Default for HiftConfig {
    fn default() -> Self {
        Self {
            in_channels: 80,
            base_channels: 512,
            nb_harmonics: 8,
            sampling_rate: 24000,
            nsf_alpha: 0.1,
            nsf_sigma: 0.003,
            nsf_voiced_threshold: 10.0,
            upsample_rates: vec![8, 5, 3],
            upsample_kernel_sizes: vec![16, 11, 7],
            n_fft: 16,
            hop_len: 4,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            source_resblock_kernel_sizes: vec![7, 7, 11],
            source_resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            lrelu_slope: 0.1,
            audio_limit: 0.99,
            f0_cond_channels: 512,
        }
    }
}

impl HiftConfig {
    /// Output samples per mel frame (8·5·3·4 = 480).
    pub fn samples_per_frame(&self) -> usize {
        self.upsample_rates.iter().product::<usize>() * self.hop_len
    }
}

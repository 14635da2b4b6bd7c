//! T3 hyper-parameters (reference: `models/t3/modules/t3_config.py` and `models/t3/llama_configs.py`).
//!
//! The released checkpoint ships no config file: [`T3Config::english`] is the reference's
//! `T3Config.english_only()` with `Llama_520M`. The same struct deserializes the `config.json` the
//! fixture generator writes for tiny test models.

use serde::{Deserialize, Serialize};

/// `T3Config` plus the backbone and Perceiver sizes the reference hard-codes elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T3Config {
    pub start_text_token: u32,
    pub stop_text_token: u32,
    pub text_tokens_dict_size: usize,
    pub max_text_tokens: usize,
    pub start_speech_token: u32,
    pub stop_speech_token: u32,
    pub speech_tokens_dict_size: usize,
    pub max_speech_tokens: usize,
    pub speech_cond_prompt_len: usize,
    pub speaker_embed_size: usize,
    pub llama: LlamaConfig,
    pub perceiver: PerceiverConfig,
}

/// The subset of `transformers.LlamaConfig` that `LLAMA_520M_CONFIG_DICT` sets and inference uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Size of the unused `embed_tokens` table (inputs are always embeddings).
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Llama3RopeScaling,
}

/// `rope_type: "llama3"` frequency scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// `Perceiver()` defaults (the reference calls it without arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceiverConfig {
    pub query_tokens: usize,
    pub query_size: usize,
    pub embedding_dim: usize,
    pub num_heads: usize,
}

impl T3Config {
    /// The English model (`T3Config.english_only()`, `Llama_520M`, 532.4 M parameters).
    pub fn english() -> Self {
        Self {
            start_text_token: 255,
            stop_text_token: 0,
            text_tokens_dict_size: 704,
            max_text_tokens: 2048,
            start_speech_token: 6561,
            stop_speech_token: 6562,
            speech_tokens_dict_size: 8194,
            max_speech_tokens: 4096,
            speech_cond_prompt_len: 150,
            speaker_embed_size: 256,
            llama: LlamaConfig {
                vocab_size: 8,
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 30,
                num_attention_heads: 16,
                num_key_value_heads: 16,
                head_dim: 64,
                rms_norm_eps: 1e-5,
                rope_theta: 500_000.0,
                rope_scaling: Llama3RopeScaling {
                    factor: 8.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 8192,
                },
            },
            perceiver: PerceiverConfig {
                query_tokens: 32,
                query_size: 1024,
                embedding_dim: 1024,
                num_heads: 4,
            },
        }
    }

    /// Rows of the learned text position table (`max_text_tokens + 2`).
    pub fn text_pos_len(&self) -> usize {
        self.max_text_tokens + 2
    }

    /// Rows of the learned speech position table (`max_speech_tokens + 2 + 2`).
    pub fn speech_pos_len(&self) -> usize {
        self.max_speech_tokens + 4
    }

    /// Positions the conditioning occupies at the head of the prefix: speaker (1), Perceiver
    /// queries, emotion (1). 34 for the English model.
    pub fn cond_len(&self) -> usize {
        self.perceiver.query_tokens + 2
    }
}

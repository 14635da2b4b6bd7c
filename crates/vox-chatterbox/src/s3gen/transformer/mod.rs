//! The flow's token encoder (reference `chatterbox/models/s3gen/transformer`).

pub mod attention;
pub mod embedding;
pub mod encoder_layer;
pub mod upsample_encoder;

pub use upsample_encoder::UpsampleConformerEncoder;

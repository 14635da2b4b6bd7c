//! Pieces of Matcha-TTS the estimator reuses (reference `chatterbox/models/s3gen/matcha`).

pub mod transformer;

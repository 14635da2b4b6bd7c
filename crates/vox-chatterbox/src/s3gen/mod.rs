//! S3Gen: speech tokens → 24 kHz waveform (reference: `chatterbox/models/s3gen`).

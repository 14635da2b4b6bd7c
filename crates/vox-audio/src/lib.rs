//! `vox-audio`: the audio plumbing of vox.
//!
//! What it does:
//! - [`decode`] any common upload (WAV, FLAC, MP3, Ogg Vorbis/Opus, MP4/M4A AAC, WebM Opus) into
//!   interleaved `f32` [`Audio`], enforcing [`Limits`] on size and duration before and while
//!   decoding; [`decode_pcm_s16le`] for headerless PCM.
//! - [`resample`] between any two rates (rubato), and [`load_for_whisper`]: decode → mono →
//!   16 kHz in one call.
//! - [`encode`] mono audio to WAV (16-bit or float), FLAC, MP3, Ogg Opus or raw PCM ([`Format`]).
//! - [`log_mel_spectrogram`] / [`MelExtractor`]: Whisper's log-mel features, numerically matching
//!   faster-whisper's `FeatureExtractor`.
//!
//! What it does not: play or record audio, stream (everything works on whole clips in memory),
//! decode video, multichannel (surround) Opus, ALAC, WMA or AC-3, or encode more than one channel.
//! Loudness normalisation, voice activity detection and chunking for long audio belong to the
//! engines that call this crate.
//!
//! All errors are [`AudioError`]; no input, however malformed, makes these functions panic.

mod audio;
mod decode;
mod encode;
mod error;
mod mel;
mod opus;
mod resample;

pub use audio::{Audio, Limits};
pub use decode::{decode, decode_pcm_s16le};
pub use encode::{Format, encode};
pub use error::{AudioError, Result};
pub use mel::{HOP_LENGTH, MelExtractor, N_FFT, log_mel_spectrogram};
pub use resample::{WHISPER_SAMPLE_RATE, load_for_whisper, resample};

//! The crate's one error type. Every message says what failed and what the caller can do.

/// Result alias used throughout `vox-audio`.
pub type Result<T, E = AudioError> = std::result::Result<T, E>;

/// Everything that can go wrong while decoding, resampling or encoding audio.
///
/// Variants that come from user input (the first group) are meant to be shown to the person
/// who sent the audio; the rest point at a bug or a misconfiguration on the server side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The input has no bytes at all.
    #[error("the audio input is empty (0 bytes); send a non-empty audio file")]
    Empty,

    /// The input is larger than [`Limits::max_bytes`](crate::Limits::max_bytes).
    #[error(
        "the audio input is {bytes} bytes, over the limit of {max_bytes} bytes; \
         send a smaller file (or raise Limits::max_bytes)"
    )]
    TooLarge { bytes: u64, max_bytes: u64 },

    /// The audio lasts longer than [`Limits::max_duration_secs`](crate::Limits::max_duration_secs).
    /// `duration_secs` is the container's stated duration, or how far decoding got before it
    /// was stopped.
    #[error(
        "the audio is at least {duration_secs:.1} s long, over the limit of {max_secs:.1} s; \
         split it into shorter pieces (or raise Limits::max_duration_secs)"
    )]
    TooLong { duration_secs: f64, max_secs: f64 },

    /// The bytes are not in any container format this crate can read.
    #[error(
        "the input is not a recognized audio file (tried WAV, FLAC, MP3, Ogg, MP4/M4A, WebM/MKV): \
         check that the file is audio and not corrupted; raw PCM needs decode_pcm_s16le \
         with an explicit sample rate"
    )]
    UnrecognizedFormat,

    /// The container is fine but holds no audio track.
    #[error("the file contains no audio track; send a file with an audio stream")]
    NoAudioTrack,

    /// The container holds audio in a codec this crate cannot decode.
    #[error(
        "the audio codec {codec} is not supported; convert the file to WAV, FLAC, MP3, \
         Ogg Vorbis/Opus or AAC and send it again"
    )]
    UnsupportedCodec { codec: String },

    /// The header promises more audio than the file holds: the upload was cut short.
    #[error(
        "the audio file is truncated: its header announces {expected_secs:.2} s but the data \
         ends after {decoded_secs:.2} s; upload the complete file"
    )]
    Truncated {
        expected_secs: f64,
        decoded_secs: f64,
    },

    /// The stream is damaged in a way that decoding cannot get past.
    #[error(
        "the audio data is corrupt and cannot be decoded ({detail}); re-encode or re-upload the file"
    )]
    Malformed { detail: String },

    /// A parameter given by the caller is out of range (sample rate 0, odd PCM byte count, ...).
    #[error("invalid audio parameter: {0}")]
    InvalidInput(String),

    /// An output format name that [`Format::from_name`](crate::Format::from_name) does not know.
    #[error(
        "unknown audio format {0:?}; use one of \"wav\", \"wav_f32\", \"flac\", \"mp3\", \"opus\", \"pcm\""
    )]
    UnknownFormat(String),

    /// Resampling failed (an internal error: the inputs were already validated).
    #[error(
        "resampling from {from} Hz to {to} Hz failed: {detail}; this is a bug in vox-audio, please report it"
    )]
    Resample { from: u32, to: u32, detail: String },

    /// An encoder rejected its input or settings.
    #[error("encoding to {format} failed: {detail}; this is a bug in vox-audio, please report it")]
    Encode {
        format: &'static str,
        detail: String,
    },
}

impl AudioError {
    pub(crate) fn encode(format: &'static str, detail: impl std::fmt::Display) -> Self {
        AudioError::Encode {
            format,
            detail: detail.to_string(),
        }
    }
}

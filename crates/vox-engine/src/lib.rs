//! `vox-engine`: the seam between the server and the model families.
//!
//! What it does: defines the two traits every engine implements, [`SpeechSynthesizer`] (text → audio, which
//! may be streamed piece by piece) and [`Transcriber`] (audio → text), with plain request/response types and
//! one error enum; splits long text into engine-sized chunks at sentence boundaries and joins the audio without
//! clicks ([`chunk`]); and runs engines on their own OS threads behind a bounded queue per engine
//! ([`EngineQueue`]): over capacity a request is refused at once ([`RuntimeError::Overloaded`]), a request that
//! waits past its deadline gives up ([`RuntimeError::QueueTimeout`]), and a caller that goes away cancels its
//! queued or running work ([`CancelToken`]).
//!
//! What it does not: HTTP, encoding, model files or downloads. Engines (Whisper, Piper, Chatterbox) live in their
//! own crates and know nothing of the server; the server knows engines only through these traits.
//!
//! Inference never runs on the async runtime: [`Synthesis`] and [`Transcription`] hand each request to the
//! engine's worker threads and await the result (or a stream of audio chunks).

pub mod chunk;
mod queue;
mod service;
pub mod subtitles;
mod types;

pub use queue::{CancelToken, EngineQueue, QueueConfig, QueueStats, Running};
pub use service::{AudioStream, ChunkMode, Synthesis, Transcription, synthesize_long};
pub use types::{
    AudioSink, EngineError, SpeechSynthesizer, SynthesisParams, SynthesisRequest, SynthesizerInfo,
    Task, Transcriber, TranscriberInfo, Transcript, TranscriptSegment, TranscriptWord,
    TranscriptionRequest, VoiceInfo,
};

/// Why the runtime did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine's queue is full: try again after `retry_after` (HTTP 429).
    #[error(
        "the {engine} engine is at capacity ({capacity} requests); retry after {retry_after:?}"
    )]
    Overloaded {
        engine: String,
        capacity: usize,
        retry_after: std::time::Duration,
    },
    /// The request waited in the queue past its deadline without starting (HTTP 503).
    #[error("the request waited {waited:?} in the {engine} engine's queue without starting")]
    QueueTimeout {
        engine: String,
        waited: std::time::Duration,
    },
    /// The engine's threads are gone (shutting down, or an engine panicked).
    #[error("the {engine} engine is not running")]
    Stopped { engine: String },
    /// The engine ran and failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

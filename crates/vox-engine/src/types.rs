//! The two engine traits and the plain values that cross them.
//!
//! Engines are called from the runtime's worker threads, never from async code, so every method here is a
//! plain blocking call. They take `&self`: one loaded model may serve several worker threads; an engine whose
//! library needs `&mut` (an ONNX session, say) keeps it behind its own `Mutex`.

use serde::{Deserialize, Serialize};

/// What can go wrong inside an engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The request cannot be served as asked (unknown voice, bad parameter): the caller's mistake (HTTP 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The engine does not do this (a task, a parameter, a language) (HTTP 400).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The caller went away or the work was cancelled; nothing is returned to anyone.
    #[error("cancelled")]
    Cancelled,
    /// The engine failed (HTTP 500). The message is for logs and the response; it carries no secrets.
    #[error("engine failure: {0}")]
    Failed(String),
}

/// A voice an engine can speak with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceInfo {
    /// The name a request passes as `voice`.
    pub id: String,
    /// BCP 47-ish language tag (`en-US`), when known.
    pub language: Option<String>,
    /// Free text (speaker, quality).
    pub description: Option<String>,
}

/// What a synthesizer is, for routing, listing and chunking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthesizerInfo {
    /// The engine kind (`piper`, `chatterbox`).
    pub kind: String,
    /// Rate of the samples it writes.
    pub sample_rate: u32,
    /// Voices; the first is the default.
    pub voices: Vec<VoiceInfo>,
    /// Longest text one `synthesize` call handles well; the runtime splits longer text at sentence boundaries
    /// into chunks of at most this many characters (a sentence longer than this is split at commas or spaces).
    pub max_chunk_chars: usize,
}

/// Sampling and style parameters. Every field is optional: `None` means the engine's default. An engine that
/// does not know a parameter ignores it (Piper has no `cfg_weight`), except where ignoring would surprise the
/// caller, where it answers [`EngineError::Unsupported`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthesisParams {
    /// Chatterbox: emotion exaggeration (0.25–2; 0.5 neutral).
    pub exaggeration: Option<f32>,
    /// Chatterbox: classifier-free guidance weight (0–1).
    pub cfg_weight: Option<f32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Min-p sampling.
    pub min_p: Option<f32>,
    /// Repetition penalty of the token sampler.
    pub repetition_penalty: Option<f32>,
    /// Piper: noise scale of the VITS prior (0.667 by default).
    pub noise_scale: Option<f32>,
    /// Piper: noise of the duration predictor (0.8 by default).
    pub noise_w: Option<f32>,
}

/// One synthesis call: a chunk of text (the runtime has already split long text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthesisRequest {
    pub text: String,
    /// A [`VoiceInfo::id`]; `None` = the engine's default voice.
    pub voice: Option<String>,
    /// Speaking rate: 1 is normal, 2 twice as fast (Piper divides its length scale by it).
    pub speed: f32,
    /// Seed of the engine's random generator: the same seed and request give the same audio.
    pub seed: Option<u64>,
    pub params: SynthesisParams,
}

impl SynthesisRequest {
    /// A request for `text` with every option at its default.
    pub fn new(text: impl Into<String>) -> Self {
        SynthesisRequest {
            text: text.into(),
            voice: None,
            speed: 1.0,
            seed: None,
            params: SynthesisParams::default(),
        }
    }
}

/// Where an engine writes audio. An engine may write many pieces per call (a streaming engine writes each as
/// soon as it is decoded) or one piece at the end.
pub trait AudioSink {
    /// Appends mono samples at [`SynthesizerInfo::sample_rate`]. An error (the caller went away:
    /// [`EngineError::Cancelled`]) should end the synthesis: return it with `?`.
    fn write(&mut self, samples: &[f32]) -> Result<(), EngineError>;
    /// True when the caller no longer wants the result; long engines check it between steps.
    fn is_cancelled(&self) -> bool;
}

/// Text to speech.
pub trait SpeechSynthesizer: Send + Sync + 'static {
    fn info(&self) -> SynthesizerInfo;
    /// One real inference, so the first request does not pay for lazy initialisation; readiness waits on it.
    fn warm_up(&self) -> Result<(), EngineError>;
    /// Speaks `req.text` (at most `max_chunk_chars`, usually one or a few sentences) into `out`.
    fn synthesize(
        &self,
        req: &SynthesisRequest,
        out: &mut dyn AudioSink,
    ) -> Result<(), EngineError>;
}

/// Transcribe in the spoken language, or translate to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

/// What a transcriber is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriberInfo {
    /// The engine kind (`whisper`).
    pub kind: String,
    /// The rate [`TranscriptionRequest::samples`] must have (16 000 for Whisper).
    pub sample_rate: u32,
    /// Whether it detects and transcribes languages other than English.
    pub multilingual: bool,
    /// Whether it can translate to English.
    pub translates: bool,
}

/// One transcription call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TranscriptionRequest {
    /// Mono samples at [`TranscriberInfo::sample_rate`].
    pub samples: Vec<f32>,
    /// Language code; `None` = detect (or the model's only language).
    pub language: Option<String>,
    pub task: Task,
    /// Text that conditions the first window (names, spelling).
    pub prompt: Option<String>,
    /// A single temperature; `None` = the engine's fallback ladder.
    pub temperature: Option<f32>,
    /// Beam width; `None` = the engine's default.
    pub beam_size: Option<usize>,
    /// Seed of the sampler used by temperature fallback.
    pub seed: Option<u64>,
    /// Also time each word ([`TranscriptSegment::words`]); engines that cannot answer
    /// [`EngineError::Unsupported`].
    pub word_timestamps: bool,
}

/// A word and when it was spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptWord {
    /// The word with its leading space and glued punctuation (`" Hello,"`).
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// A stretch of recognised speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub id: usize,
    pub seek: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Present when [`TranscriptionRequest::word_timestamps`] was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TranscriptWord>>,
}

/// The result of a transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub language_probability: f32,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<TranscriptSegment>,
}

impl Transcript {
    /// The segments' text joined, trimmed.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// Speech to text.
pub trait Transcriber: Send + Sync + 'static {
    fn info(&self) -> TranscriberInfo;
    /// One real inference; readiness waits on it.
    fn warm_up(&self) -> Result<(), EngineError>;
    /// Transcribes `req.samples`. `cancelled` turns true when the caller goes away; long engines check it.
    fn transcribe(
        &self,
        req: &TranscriptionRequest,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Transcript, EngineError>;
}

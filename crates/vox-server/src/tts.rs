//! Text to speech: `POST /tts` (native) and `POST /v1/audio/speech` (OpenAI). Both validate, pick a
//! synthesizer, queue the text on its engine and send the audio whole or streamed, sentence by sentence.

use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;
use vox_audio::Format;
use vox_engine::{ChunkMode, Synthesis, SynthesisParams, SynthesisRequest};

use crate::audio_out::{
    check_rate, encode_piece, encode_whole, parse_format, resample, streamable,
};
use crate::error::ApiError;
use crate::state::{AppState, Engines, LoadedModel};

/// OpenAI's model names: any of them means "the default synthesizer".
const OPENAI_TTS_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's voice names: on an engine without a voice of that name they mean "the default voice".
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
];

/// Engine parameters (all optional; an engine ignores those it does not have).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EngineParams {
    /// Chatterbox: emotion exaggeration (0.25–2).
    pub exaggeration: Option<f32>,
    /// Chatterbox: classifier-free guidance weight (0–1).
    pub cfg_weight: Option<f32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Piper: VITS noise scale.
    pub noise_scale: Option<f32>,
    /// Piper: duration noise.
    pub noise_w: Option<f32>,
}

impl From<EngineParams> for SynthesisParams {
    fn from(p: EngineParams) -> Self {
        SynthesisParams {
            exaggeration: p.exaggeration,
            cfg_weight: p.cfg_weight,
            temperature: p.temperature,
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: p.repetition_penalty,
            noise_scale: p.noise_scale,
            noise_w: p.noise_w,
        }
    }
}

/// `POST /tts`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TtsRequest {
    /// The text, any length: it is spoken in sentence-bounded chunks.
    pub text: String,
    /// A voice of the model (`GET /v1/audio/voices`); default: the model's first.
    pub voice: Option<String>,
    /// A TTS model of the manifest; default: the first.
    pub model: Option<String>,
    /// wav (default), mp3, opus, flac, pcm (s16le), wav_f32.
    pub format: Option<String>,
    /// Output rate in Hz (8000–48000); default: the engine's.
    pub sample_rate: Option<u32>,
    /// 0.25–4; 1 is normal.
    pub speed: Option<f32>,
    /// Same seed, same request → same audio.
    pub seed: Option<u64>,
    /// Send audio as each sentence is ready (chunked transfer) instead of once at the end.
    #[serde(default)]
    pub stream: bool,
    #[serde(flatten)]
    pub params: EngineParams,
}

/// `POST /v1/audio/speech` (OpenAI). Unknown fields (`instructions`, which these engines cannot follow) are
/// ignored, as OpenAI's SDKs expect.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SpeechRequest {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts` (the default model) or a model name of the manifest.
    pub model: String,
    pub input: String,
    /// A voice of the model; OpenAI's names (alloy, …) fall back to the default voice.
    pub voice: String,
    /// mp3 (default), opus, flac, wav, pcm. aac is answered 400.
    pub response_format: Option<String>,
    pub speed: Option<f32>,
    /// `audio` (default: raw audio, streamed as sentences complete) or `sse` (base64 deltas).
    pub stream_format: Option<String>,
    pub sample_rate: Option<u32>,
    pub seed: Option<u64>,
    #[serde(flatten)]
    pub params: EngineParams,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Delivery {
    Whole,
    Chunked,
    Sse,
}

struct SpeechJob {
    req: SynthesisRequest,
    model: Option<String>,
    format: Format,
    sample_rate: Option<u32>,
    delivery: Delivery,
}

#[utoipa::path(post, path = "/tts", request_body = TtsRequest, tag = "speech",
    responses((status = 200, description = "Audio bytes (Content-Type per format)", content_type = "audio/wav"),
              (status = 400, description = "Bad request"), (status = 429, description = "Over capacity"),
              (status = 503, description = "Not ready or queue deadline passed")),
    security(("bearer" = [])))]
pub async fn tts(
    State(state): State<AppState>,
    Json(r): Json<TtsRequest>,
) -> Result<Response, ApiError> {
    let job = SpeechJob {
        req: request(&state, r.text, r.voice, r.speed, r.seed, r.params)?,
        model: r.model,
        format: parse_format(r.format.as_deref().unwrap_or("wav"))?,
        sample_rate: check_rate(r.sample_rate)?,
        delivery: if r.stream {
            Delivery::Chunked
        } else {
            Delivery::Whole
        },
    };
    speak(state, job).await
}

#[utoipa::path(post, path = "/v1/audio/speech", request_body = SpeechRequest, tag = "openai",
    responses((status = 200, description = "Audio bytes, or text/event-stream with stream_format=sse", content_type = "audio/mpeg"),
              (status = 400, description = "Bad request"), (status = 429, description = "Over capacity")),
    security(("bearer" = [])))]
pub async fn speech(
    State(state): State<AppState>,
    Json(r): Json<SpeechRequest>,
) -> Result<Response, ApiError> {
    let format = parse_format(r.response_format.as_deref().unwrap_or("mp3"))?;
    let delivery = match r.stream_format.as_deref().unwrap_or("audio") {
        "sse" => Delivery::Sse,
        "audio" if streamable(format) => Delivery::Chunked,
        "audio" => Delivery::Whole,
        other => {
            return Err(ApiError::bad_request(format!(
                "stream_format {other:?}: use audio or sse"
            )));
        }
    };
    let model = (!OPENAI_TTS_MODELS.contains(&r.model.as_str())).then_some(r.model);
    let job = SpeechJob {
        req: request(&state, r.input, Some(r.voice), r.speed, r.seed, r.params)?,
        model,
        format,
        sample_rate: check_rate(r.sample_rate)?,
        delivery,
    };
    speak(state, job).await
}

fn request(
    state: &AppState,
    text: String,
    voice: Option<String>,
    speed: Option<f32>,
    seed: Option<u64>,
    params: EngineParams,
) -> Result<SynthesisRequest, ApiError> {
    let chars = text.chars().count();
    let max = state.config.limits.max_text_chars;
    if chars > max {
        return Err(ApiError::too_large(format!(
            "the text has {chars} characters, over the limit of {max}"
        )));
    }
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the text is empty"));
    }
    let speed = speed.unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return Err(ApiError::bad_request(format!(
            "speed {speed} is outside 0.25..=4"
        )));
    }
    Ok(SynthesisRequest {
        text,
        voice: voice.filter(|v| !v.is_empty()),
        speed,
        seed,
        params: params.into(),
    })
}

/// Picks the synthesizer (by model name, else the one owning the voice, else the first) and resolves the voice.
fn pick<'a>(
    engines: &'a Engines,
    model: Option<&str>,
    voice: Option<&str>,
) -> Result<(&'a LoadedModel, &'a Synthesis, Option<String>), ApiError> {
    let mut all = engines.synthesizers();
    let (m, s) = match model {
        Some(name) => engines
            .synthesizers()
            .find(|(m, _)| m.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = engines
                    .synthesizers()
                    .map(|(m, _)| m.name.clone())
                    .collect();
                ApiError::bad_request(format!(
                    "no TTS model {name:?}; available: {}",
                    names.join(", ")
                ))
            })?,
        None => voice
            .and_then(|v| {
                engines
                    .synthesizers()
                    .find(|(_, s)| s.info().voices.iter().any(|x| x.id == v))
            })
            .or_else(|| all.next())
            .ok_or_else(|| ApiError::bad_request("no text-to-speech model is loaded"))?,
    };
    let voice = match voice {
        None => None,
        Some(v) if s.info().voices.iter().any(|x| x.id == v) => Some(v.to_string()),
        Some(v) if OPENAI_VOICES.contains(&v) => None,
        Some(v) => {
            let ids: Vec<_> = s.info().voices.iter().map(|x| x.id.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "model {:?} has no voice {v:?}; its voices: {}",
                m.name,
                ids.join(", ")
            )));
        }
    };
    Ok((m, s, voice))
}

async fn speak(state: AppState, mut job: SpeechJob) -> Result<Response, ApiError> {
    let engines = state.engines()?;
    let (model, synth, voice) = pick(engines, job.model.as_deref(), job.req.voice.as_deref())?;
    job.req.voice = voice;
    let name = model.name.clone();
    let mode = if job.delivery == Delivery::Whole {
        ChunkMode::Packed
    } else {
        ChunkMode::PerSentence
    };
    let t0 = Instant::now();
    let mut stream = synth
        .stream(job.req, mode)
        .await
        .inspect_err(|e| count_refusal(&state, &name, e))?;
    let rate = stream.sample_rate;
    let (format, to) = (job.format, job.sample_rate);
    // Wait for the first audio before sending headers, so a bad request still gets its 4xx.
    let first = match stream.next().await {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(e.into()),
        None => Vec::new(),
    };
    let produced = state.metrics.audio_produced.with_label_values(&[&name]);
    if job.delivery == Delivery::Whole {
        let mut all = first;
        all.extend(stream.collect_all().await?);
        let secs = all.len() as f64 / f64::from(rate);
        produced.inc_by(secs);
        if secs > 0.0 {
            state
                .metrics
                .rtf
                .with_label_values(&[&name])
                .observe(t0.elapsed().as_secs_f64() / secs);
        }
        let bytes = tokio::task::spawn_blocking(move || {
            let (s, r) = resample(all, rate, to)?;
            encode_whole(&s, r, format)
        })
        .await
        .map_err(|e| {
            ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })??;
        return Ok(audio_response(format, Body::from(bytes)));
    }
    let pieces = futures::stream::once(async { Ok(first) }).chain(stream);
    let mut index = 0usize;
    let encoded = pieces.map(move |p| -> Result<Bytes, ApiError> {
        let p = p?;
        produced.inc_by(p.len() as f64 / f64::from(rate));
        let (s, r) = resample(p, rate, to)?;
        let b = encode_piece(&s, r, format, index == 0)?;
        index += 1;
        Ok(Bytes::from(b))
    });
    if job.delivery == Delivery::Chunked {
        let body = encoded.map(|r| r.map_err(|e| std::io::Error::other(e.message)));
        return Ok(audio_response(format, Body::from_stream(body)));
    }
    // SSE: base64 deltas of the encoded audio, then a done event.
    let events = encoded
        .map(|r| match r {
            Ok(b) => Event::default().json_data(serde_json::json!({
                "type": "speech.audio.delta",
                "audio": base64::engine::general_purpose::STANDARD.encode(&b),
            })),
            Err(e) => {
                Event::default().json_data(serde_json::json!({"type": "error", "error": e.message}))
            }
        })
        .chain(futures::stream::once(async {
            Event::default().json_data(serde_json::json!({"type": "speech.audio.done"}))
        }));
    Ok(Sse::new(events).into_response())
}

fn audio_response(format: Format, body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}

pub(crate) fn count_refusal(state: &AppState, model: &str, e: &vox_engine::RuntimeError) {
    let reason = match e {
        vox_engine::RuntimeError::Overloaded { .. } => "full",
        vox_engine::RuntimeError::QueueTimeout { .. } => "deadline",
        _ => return,
    };
    state
        .metrics
        .rejected
        .with_label_values(&[model, reason])
        .inc();
}

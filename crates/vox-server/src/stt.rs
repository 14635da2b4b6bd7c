//! Speech to text: `POST /stt` (native JSON) and OpenAI's `POST /v1/audio/transcriptions` and
//! `/v1/audio/translations` (multipart). Uploads are decoded off the async runtime under the size and duration
//! limits, then queued on the transcriber's engine.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use vox_engine::{Task, Transcript, TranscriptionRequest};

use crate::error::ApiError;
use crate::state::AppState;
use crate::transcript::{TranscriptFormat, render};
use crate::tts::count_refusal;

/// OpenAI's model names: any of them means "the default transcriber".
const OPENAI_STT_MODELS: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

/// The multipart form of the transcription routes.
#[allow(dead_code)] // documents the form for OpenAPI; the handler reads the fields one by one
#[derive(ToSchema)]
pub struct TranscriptionForm {
    /// The audio: wav, flac, mp3, ogg (vorbis/opus), m4a (aac), webm (opus).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `whisper-1` (the default model) or a model name of the manifest.
    model: Option<String>,
    /// ISO-639-1 code; default: detected.
    language: Option<String>,
    /// Text that conditions the transcription (names, spelling).
    prompt: Option<String>,
    /// json (default), text, srt, verbose_json, vtt. `/stt` always answers verbose JSON.
    response_format: Option<String>,
    /// 0–1; default: the fallback ladder 0, 0.2, …, 1.
    temperature: Option<f32>,
    /// `segment` and/or `word`.
    #[schema(rename = "timestamp_granularities[]")]
    timestamp_granularities: Option<Vec<String>>,
    /// Server-sent events: one `transcript.text.delta` per segment, then `transcript.text.done`.
    stream: Option<bool>,
}

struct Form {
    file: Option<(Bytes, Option<String>)>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    temperature: Option<f32>,
    words: bool,
    stream: bool,
}

async fn read_form(mut mp: Multipart) -> Result<Form, ApiError> {
    let mut f = Form {
        file: None,
        model: None,
        language: None,
        prompt: None,
        response_format: None,
        temperature: None,
        words: false,
        stream: false,
    };
    let too_big = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        ApiError::new(status, e.body_text())
    };
    while let Some(field) = mp.next_field().await.map_err(too_big)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let fname = field.file_name().map(str::to_string);
            f.file = Some((field.bytes().await.map_err(too_big)?, fname));
            continue;
        }
        let value = field.text().await.map_err(too_big)?;
        match name.as_str() {
            "model" => f.model = Some(value),
            "language" => f.language = Some(value).filter(|v| !v.is_empty()),
            "prompt" => f.prompt = Some(value),
            "response_format" => f.response_format = Some(value),
            "temperature" => {
                f.temperature = Some(value.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!("temperature {value:?} is not a number"))
                })?)
            }
            "timestamp_granularities[]" | "timestamp_granularities" => match value.trim() {
                "word" => f.words = true,
                "segment" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "timestamp_granularities: {other:?} is not segment or word"
                    )));
                }
            },
            "stream" => f.stream = matches!(value.trim(), "true" | "1"),
            // Unknown fields (OpenAI adds some over time) are ignored, as OpenAI's own SDKs expect.
            _ => {}
        }
    }
    Ok(f)
}

#[utoipa::path(post, path = "/stt", tag = "speech",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "{text, language, duration, segments}"),
              (status = 400, description = "Bad audio or request"), (status = 413, description = "Too large or too long"),
              (status = 429, description = "Over capacity")),
    security(("bearer" = [])))]
pub async fn stt(State(state): State<AppState>, mp: Multipart) -> Result<Response, ApiError> {
    let form = read_form(mp).await?;
    let t = transcribe(&state, &form, Task::Transcribe).await?;
    let v = serde_json::json!({
        "text": t.text(),
        "language": t.language,
        "duration": t.duration,
        "segments": t.segments,
    });
    Ok(axum::Json(v).into_response())
}

#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The transcript in response_format"),
              (status = 400, description = "Bad audio or request"), (status = 429, description = "Over capacity")),
    security(("bearer" = [])))]
pub async fn transcriptions(
    State(state): State<AppState>,
    mp: Multipart,
) -> Result<Response, ApiError> {
    openai(state, mp, Task::Transcribe).await
}

#[utoipa::path(post, path = "/v1/audio/translations", tag = "openai",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The English translation in response_format"),
              (status = 400, description = "Bad audio, or the model cannot translate")),
    security(("bearer" = [])))]
pub async fn translations(
    State(state): State<AppState>,
    mp: Multipart,
) -> Result<Response, ApiError> {
    openai(state, mp, Task::Translate).await
}

async fn openai(state: AppState, mp: Multipart, task: Task) -> Result<Response, ApiError> {
    let form = read_form(mp).await?;
    let format = TranscriptFormat::parse(form.response_format.as_deref().unwrap_or("json"))?;
    if form.words && format != TranscriptFormat::VerboseJson {
        return Err(ApiError::bad_request(
            "word timestamps need response_format=verbose_json",
        ));
    }
    let t = transcribe(&state, &form, task).await?;
    if form.stream {
        let mut events: Vec<Result<Event, axum::Error>> = t
            .segments
            .iter()
            .map(|s| {
                Event::default().json_data(
                    serde_json::json!({"type": "transcript.text.delta", "delta": s.text}),
                )
            })
            .collect();
        events.push(
            Event::default()
                .json_data(serde_json::json!({"type": "transcript.text.done", "text": t.text()})),
        );
        return Ok(Sse::new(futures::stream::iter(events)).into_response());
    }
    let mut r = render(&t, format, task).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(r)
}

async fn transcribe(state: &AppState, form: &Form, task: Task) -> Result<Transcript, ApiError> {
    let engines = state.engines()?;
    let (model, engine) = match form.model.as_deref() {
        Some(name) if !name.is_empty() && !OPENAI_STT_MODELS.contains(&name) => engines
            .transcribers()
            .find(|(m, _)| m.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = engines
                    .transcribers()
                    .map(|(m, _)| m.name.clone())
                    .collect();
                ApiError::bad_request(format!(
                    "no STT model {name:?}; available: {}",
                    names.join(", ")
                ))
            })?,
        _ => engines
            .transcribers()
            .next()
            .ok_or_else(|| ApiError::bad_request("no speech-to-text model is loaded"))?,
    };
    let (bytes, fname) = form
        .file
        .clone()
        .ok_or_else(|| ApiError::bad_request("the form has no `file` field"))?;
    let hint = fname
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let limits = vox_audio::Limits {
        max_bytes: state.config.limits.max_body_bytes as u64,
        max_duration_secs: state.config.limits.max_audio_secs,
    };
    let rate = engine.info().sample_rate;
    // Decoding and resampling are CPU work: off the async runtime.
    let samples = tokio::task::spawn_blocking(move || -> Result<Vec<f32>, ApiError> {
        let audio = vox_audio::decode(&bytes, hint.as_deref(), &limits)?.into_mono();
        Ok(vox_audio::resample(&audio, rate)?.samples)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let audio_secs = samples.len() as f64 / f64::from(rate);
    let req = TranscriptionRequest {
        samples,
        language: form.language.clone(),
        task,
        prompt: form.prompt.clone(),
        temperature: form.temperature,
        beam_size: None,
        seed: None,
        word_timestamps: form.words,
    };
    let t0 = Instant::now();
    let t = engine
        .transcribe(req)
        .await
        .inspect_err(|e| count_refusal(state, &model.name, e))?;
    let m = &state.metrics;
    m.audio_consumed
        .with_label_values(&[&model.name])
        .inc_by(audio_secs);
    if audio_secs > 0.0 {
        m.rtf
            .with_label_values(&[&model.name])
            .observe(t0.elapsed().as_secs_f64() / audio_secs);
    }
    Ok(t)
}

//! Rendering a [`Transcript`] as OpenAI's transcription API does: `json`, `text`, `srt`, `verbose_json`, `vtt`.

use vox_engine::{Task, Transcript};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl TranscriptFormat {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Ok(match s.trim() {
            "json" | "" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "verbose_json" => Self::VerboseJson,
            "vtt" => Self::Vtt,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown response_format {other:?}; use json, text, srt, verbose_json or vtt"
                )));
            }
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Srt => "application/x-subrip",
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
        }
    }
}

/// The body of a transcription response.
pub fn render(t: &Transcript, format: TranscriptFormat, task: Task) -> String {
    match format {
        TranscriptFormat::Text => format!("{}\n", t.text()),
        TranscriptFormat::Json => serde_json::json!({ "text": t.text() }).to_string(),
        TranscriptFormat::VerboseJson => {
            let mut v = serde_json::json!({
                "task": task.as_str(),
                "language": t.language,
                "duration": t.duration,
                "text": t.text(),
                "segments": t.segments,
            });
            // OpenAI lists words at the top level too.
            if t.segments.iter().any(|s| s.words.is_some()) {
                let words: Vec<_> = t
                    .segments
                    .iter()
                    .flat_map(|s| s.words.iter().flatten())
                    .collect();
                v["words"] = serde_json::json!(words);
            }
            v.to_string()
        }
        TranscriptFormat::Srt => {
            vox_engine::subtitles::srt(t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())))
        }
        TranscriptFormat::Vtt => {
            vox_engine::subtitles::vtt(t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())))
        }
    }
}

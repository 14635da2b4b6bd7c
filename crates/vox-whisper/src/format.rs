//! Output formats of a transcription, as OpenAI's transcription API names them: `text`, `json`,
//! `verbose_json`, `srt`, `vtt`.

use crate::transcribe::Transcription;

/// How to render a transcription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Text,
    Json,
    VerboseJson,
    Srt,
    Vtt,
}

impl ResponseFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => ResponseFormat::Text,
            "json" => ResponseFormat::Json,
            "verbose_json" => ResponseFormat::VerboseJson,
            "srt" => ResponseFormat::Srt,
            "vtt" => ResponseFormat::Vtt,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Json | ResponseFormat::VerboseJson => "application/json",
            ResponseFormat::Srt => "application/x-subrip",
            ResponseFormat::Vtt => "text/vtt",
            ResponseFormat::Text => "text/plain; charset=utf-8",
        }
    }
}

/// Renders `t` in `format`.
pub fn render(t: &Transcription, format: ResponseFormat, task: &str) -> String {
    match format {
        ResponseFormat::Text => format!("{}\n", t.text()),
        ResponseFormat::Json => serde_json::json!({ "text": t.text() }).to_string(),
        ResponseFormat::VerboseJson => {
            let mut v = serde_json::json!({
                "task": task,
                "language": t.language,
                "duration": t.duration,
                "text": t.text(),
                "segments": t.segments,
            });
            // OpenAI's verbose_json lists the words at the top level too (timestamp_granularities=["word"]).
            if t.segments.iter().any(|s| s.words.is_some()) {
                let words: Vec<serde_json::Value> = t
                    .segments
                    .iter()
                    .flat_map(|s| s.words.iter().flatten())
                    .map(|w| serde_json::json!({ "word": w.word.trim(), "start": w.start, "end": w.end }))
                    .collect();
                v["words"] = serde_json::Value::Array(words);
            }
            v.to_string()
        }
        ResponseFormat::Srt => {
            vox_engine::subtitles::srt(t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())))
        }
        ResponseFormat::Vtt => {
            vox_engine::subtitles::vtt(t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcribe::Segment;

    fn t() -> Transcription {
        let seg = |id, start, end, text: &str| Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.1,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: None,
        };
        Transcription {
            language: "en".into(),
            language_probability: 1.0,
            duration: 3700.5,
            segments: vec![
                seg(1, 0.0, 1.5, " Hello."),
                seg(2, 3661.25, 3662.0, " Bye."),
            ],
        }
    }

    #[test]
    fn subtitles_have_the_right_clock() {
        let srt = render(&t(), ResponseFormat::Srt, "transcribe");
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nBye.\n"), "{srt}");
        let vtt = render(&t(), ResponseFormat::Vtt, "transcribe");
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n"),
            "{vtt}"
        );
        assert_eq!(
            render(&t(), ResponseFormat::Text, "transcribe"),
            "Hello. Bye.\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&render(&t(), ResponseFormat::VerboseJson, "transcribe")).unwrap();
        assert_eq!(v["segments"][1]["start"], 3661.25);
        assert!(v.get("words").is_none() && v["segments"][0].get("words").is_none());
    }

    #[test]
    fn verbose_json_lists_words() {
        let mut t = t();
        t.segments[0].words = Some(vec![crate::Word {
            word: " Hello.".into(),
            start: 0.1,
            end: 0.9,
            probability: 0.5,
        }]);
        t.segments[1].words = Some(vec![]);
        let v: serde_json::Value =
            serde_json::from_str(&render(&t, ResponseFormat::VerboseJson, "transcribe")).unwrap();
        assert_eq!(
            v["words"],
            serde_json::json!([{ "word": "Hello.", "start": 0.1, "end": 0.9 }])
        );
        assert_eq!(v["segments"][0]["words"][0]["probability"], 0.5);
    }
}

//! Text front end (reference: `tts.py: punc_norm` and `models/tokenizers/tokenizer.py:
//! EnTokenizer`): punctuation normalisation, then the HF tokenizer with spaces spelled `[SPACE]`.
//!
//! The Python `tokenizers` package binds the same Rust crate used here, so one `tokenizer.json`
//! gives the same ids on both sides.

use std::path::Path;

use crate::ChatterboxError;

const SPACE: &str = "[SPACE]";

/// `punc_norm`: what the reference does to text before tokenizing it, character for character.
pub fn punc_norm(text: &str) -> String {
    if text.is_empty() {
        return "You need to add some text for me to talk.".to_string();
    }
    // Capitalise the first character when it is lowercase (`str.islower`/`str.upper`: the
    // Unicode Lowercase property and the full, possibly multi-character, uppercase mapping).
    let mut chars = text.chars();
    let first = chars.next().expect("non-empty");
    let text = if first.is_lowercase() {
        first.to_uppercase().chain(chars).collect::<String>()
    } else {
        text.to_string()
    };
    // `" ".join(text.split())`: Python's str.split() separates on its own whitespace set.
    let text = text
        .split(is_python_whitespace)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = text;
    for (from, to) in [
        ("...", ", "),
        ("…", ", "),
        (":", ","),
        (" - ", ", "),
        (";", ", "),
        ("—", "-"),
        ("–", "-"),
        (" ,", ","),
        ("“", "\""),
        ("”", "\""),
        ("‘", "'"),
        ("’", "'"),
    ] {
        text = text.replace(from, to);
    }
    let mut text = text.trim_end_matches(' ').to_string();
    if ![".", "!", "?", "-", ","].iter().any(|e| text.ends_with(e)) {
        text.push('.');
    }
    text
}

/// `str.isspace` for one character: Unicode White_Space plus the ASCII separators U+001C..U+001F
/// that CPython also counts (bidirectional class B/S).
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `EnTokenizer`.
pub struct EnTokenizer {
    inner: tokenizers::Tokenizer,
}

impl EnTokenizer {
    /// Loads `tokenizer.json`; like the reference, it must define `[START]` and `[STOP]`.
    pub fn from_file(path: &Path) -> Result<Self, ChatterboxError> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ChatterboxError::Model(format!("{}: {e}", path.display())))?;
        for special in ["[START]", "[STOP]"] {
            if inner.token_to_id(special).is_none() {
                return Err(ChatterboxError::Model(format!(
                    "{}: no {special} token",
                    path.display()
                )));
            }
        }
        Ok(Self { inner })
    }

    /// `EnTokenizer.encode`: spaces become `[SPACE]`, no special tokens are added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ChatterboxError> {
        let text = text.replace(' ', SPACE);
        let enc = self
            .inner
            .encode(text.as_str(), false)
            .map_err(|e| ChatterboxError::BadInput(format!("tokenizing: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `punc_norm` then `encode`: the text ids `ChatterboxTTS.generate` hands to T3.
    pub fn text_to_tokens(&self, text: &str) -> Result<Vec<u32>, ChatterboxError> {
        self.encode(&punc_norm(text))
    }
}

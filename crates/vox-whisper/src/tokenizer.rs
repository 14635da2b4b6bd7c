//! Whisper's tokenizer: `tokenizer.json` through the `tokenizers` crate, plus the special tokens and the
//! non-speech suppression list exactly as faster-whisper derives them (faster_whisper/tokenizer.py).

use std::collections::BTreeSet;
use std::path::Path;

use crate::WhisperError;

/// The special token ids of one vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specials {
    pub sot: u32,
    pub eot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_timestamps: u32,
    pub no_speech: u32,
    pub transcribe: u32,
    pub translate: u32,
    /// `<|0.00|>`; every id from here to the vocabulary's end is a timestamp (20 ms apart).
    pub timestamp_begin: u32,
}

/// A Whisper tokenizer.
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    pub specials: Specials,
    pub multilingual: bool,
}

impl WhisperTokenizer {
    pub fn from_file(path: &Path, vocab_size: usize) -> Result<Self, WhisperError> {
        let inner = crate::tokenizer_json::load(path).map_err(|e| {
            WhisperError::Model(format!(
                "{}: cannot load the tokenizer: {e}",
                path.display()
            ))
        })?;
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| {
                WhisperError::Model(format!(
                    "{}: the tokenizer has no {t} token",
                    path.display()
                ))
            })
        };
        let no_timestamps = id("<|notimestamps|>")?;
        let specials = Specials {
            sot: id("<|startoftranscript|>")?,
            eot: id("<|endoftext|>")?,
            sot_prev: id("<|startofprev|>")?,
            sot_lm: id("<|startoflm|>")?,
            no_timestamps,
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>")?,
            timestamp_begin: no_timestamps + 1,
        };
        let mut t = WhisperTokenizer {
            inner,
            specials,
            multilingual: false,
        };
        t.set_vocab_size(vocab_size);
        Ok(t)
    }

    /// Sets what depends on the model's vocabulary size: CTranslate2's rule that the multilingual
    /// vocabularies have 51865 (or more, large-v3: 51866) entries.
    pub fn set_vocab_size(&mut self, vocab_size: usize) {
        self.multilingual = vocab_size >= 51865;
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, WhisperError> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| WhisperError::Model(format!("tokenizer: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Text of the tokens below `<|endoftext|>` (timestamps and specials dropped), as faster-whisper's `decode`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|t| *t < self.specials.eot)
            .collect();
        self.inner.decode(&text, true).unwrap_or_default()
    }

    /// The text of any ids, special tokens skipped (Python `tokenizers`' `decode` default).
    pub fn decode_raw(&self, tokens: &[u32]) -> String {
        self.inner.decode(tokens, true).unwrap_or_default()
    }

    /// faster-whisper's `decode_with_timestamps`: text with timestamp tokens written as `<|1.08|>`.
    pub fn decode_with_timestamps(&self, tokens: &[u32]) -> String {
        let tb = self.specials.timestamp_begin;
        let mut out = String::new();
        let mut run: Vec<u32> = Vec::new();
        for &t in tokens {
            if t >= tb {
                out.push_str(&self.decode_raw(&run));
                run.clear();
                out.push_str(&format!("<|{:.2}|>", (t - tb) as f64 * 0.02));
            } else {
                run.push(t);
            }
        }
        out.push_str(&self.decode_raw(&run));
        out
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The language token of a code (`"en"` → `<|en|>`).
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.inner.token_to_id(&format!("<|{code}|>"))
    }

    /// faster-whisper's `non_speech_tokens`: symbols that mark speaker tags or non-speech annotations.
    pub fn non_speech_tokens(&self) -> Result<Vec<u32>, WhisperError> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split(' ')
                .map(String::from),
        );
        let miscellaneous: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
        let mut result = BTreeSet::new();
        result.insert(self.encode(" -")?[0]);
        result.insert(self.encode(" '")?[0]);
        for symbol in symbols.iter().chain(miscellaneous.iter()) {
            let misc = miscellaneous.contains(symbol);
            for tokens in [self.encode(symbol)?, self.encode(&format!(" {symbol}"))?] {
                if tokens.len() == 1 || (misc && !tokens.is_empty()) {
                    result.insert(tokens[0]);
                }
            }
        }
        Ok(result.into_iter().collect())
    }

    /// faster-whisper's `get_suppressed_tokens(tokenizer, [-1])`: non-speech tokens plus the task and start
    /// tokens, sorted and deduplicated. An explicit list replaces the non-speech part.
    pub fn suppressed_tokens(&self, explicit: Option<&[i64]>) -> Result<Vec<u32>, WhisperError> {
        let mut set: BTreeSet<u32> = BTreeSet::new();
        match explicit {
            None => set.extend(self.non_speech_tokens()?),
            Some(list) => {
                if list.contains(&-1) {
                    set.extend(self.non_speech_tokens()?);
                }
                set.extend(list.iter().filter(|t| **t >= 0).map(|t| *t as u32));
            }
        }
        let s = &self.specials;
        set.extend([
            s.transcribe,
            s.translate,
            s.sot,
            s.sot_prev,
            s.sot_lm,
            s.no_speech,
        ]);
        Ok(set.into_iter().collect())
    }
}

//! Text → phonemes → model ids, the way piper does it (piper-phonemize's `phonemize_eSpeak` and
//! `phonemes_to_ids`):
//!
//! - espeak-ng phonemises the text one clause at a time (IPA);
//! - `(lang)` switch flags, which surround words espeak reads in another language, are dropped (their
//!   phonemes stay);
//! - the phonemes are decomposed (NFD), so e.g. "ç" becomes "c" + U+0327, each a symbol of the id map;
//! - each clause gets its punctuation back: `.` `?` `!` end a sentence; `,` `:` `;` are followed by a space;
//! - a sentence becomes ids `^ _ (p _)* $` (BOS, a pad after BOS and after every phoneme, EOS); phonemes the
//!   voice does not know are skipped, as piper does.

use std::collections::{BTreeMap, HashMap};

use unicode_normalization::UnicodeNormalization;

use crate::error::Result;
use crate::espeak::{self, RawClause};

/// How espeak-ng ended a clause; piper puts the mark back into the phonemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    Period,
    Question,
    Exclamation,
    Comma,
    Colon,
    Semicolon,
}

impl Terminator {
    /// The phonemes piper appends for it.
    pub fn phonemes(self) -> &'static str {
        match self {
            Terminator::Period => ".",
            Terminator::Question => "?",
            Terminator::Exclamation => "!",
            Terminator::Comma => ", ",
            Terminator::Colon => ": ",
            Terminator::Semicolon => "; ",
        }
    }

    fn ends_sentence(self) -> bool {
        matches!(
            self,
            Terminator::Period | Terminator::Question | Terminator::Exclamation
        )
    }
}

/// One clause as espeak-ng split the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// espeak-ng's IPA for the clause, exactly as returned (flags included, not normalised).
    pub espeak: String,
    pub terminator: Option<Terminator>,
    /// A sentence ends after this clause (`.` `?` `!`, a blank line, or the end of the text).
    pub ends_sentence: bool,
}

/// The clauses of `text` for the espeak-ng voice `voice`.
pub fn clauses(voice: &str, text: &str) -> Result<Vec<Clause>> {
    Ok(espeak::clauses(voice, text)?
        .into_iter()
        .map(|raw| {
            let (terminator, paragraph) = terminator(&raw);
            Clause {
                ends_sentence: raw.last
                    || paragraph
                    || terminator.is_some_and(Terminator::ends_sentence),
                espeak: raw.phonemes,
                terminator,
            }
        })
        .collect())
}

/// Closing quotes and brackets that may follow a clause's punctuation.
const CLOSERS: &[char] = &[
    '"', '\'', ')', ']', '}', '\u{201d}', '\u{2019}', '\u{00bb}', '\u{203a}',
];

/// Reads the clause's punctuation from the text espeak consumed for it: everything up to the character it read
/// ahead (the last one, unless the text ended). Returns the terminator and whether a blank line followed,
/// which espeak treats as a paragraph (sentence) end.
fn terminator(raw: &RawClause) -> (Option<Terminator>, bool) {
    let mut text = raw.consumed.as_str();
    if !raw.last
        && let Some((i, _)) = text.char_indices().next_back()
    {
        text = &text[..i];
    }
    let trimmed = text.trim_end();
    let paragraph = text[trimmed.len()..].matches('\n').count() >= 2;
    let core = trimmed.trim_end_matches(CLOSERS);
    // espeak-ng reads three or more dots (or "…") as an ellipsis, a clause (not sentence) break.
    let t = if core.ends_with("...") || core.ends_with('\u{2026}') {
        Some(Terminator::Semicolon)
    } else {
        match core.chars().next_back() {
            Some('.') => Some(Terminator::Period),
            Some('?') => Some(Terminator::Question),
            Some('!') => Some(Terminator::Exclamation),
            Some(',') => Some(Terminator::Comma),
            Some(':') => Some(Terminator::Colon),
            Some(';') => Some(Terminator::Semicolon),
            _ => None,
        }
    };
    (t, paragraph)
}

/// Piper's phonemes for `text`, one list per sentence (each phoneme one Unicode code point).
pub fn phonemize(voice: &str, text: &str) -> Result<Vec<Vec<char>>> {
    Ok(sentences(&clauses(voice, text)?))
}

/// Groups clauses into sentences of phonemes, as piper-phonemize does.
pub fn sentences(clauses: &[Clause]) -> Vec<Vec<char>> {
    let mut out = Vec::new();
    let mut current: Vec<char> = Vec::new();
    for c in clauses {
        current.extend(strip_language_flags(&c.espeak).nfd());
        if let Some(t) = c.terminator {
            current.extend(t.phonemes().chars());
        }
        if c.ends_sentence && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Drops espeak's `(en)`-style language switch flags, keeping the phonemes between them.
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut in_flag = false;
    for ch in phonemes.chars() {
        match (in_flag, ch) {
            (false, '(') => in_flag = true,
            (true, ')') => in_flag = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

/// Model ids for one sentence: `^ _ (p _)* $`. Phonemes missing from `map` are skipped and counted in the
/// returned map (piper logs them the same way).
pub fn phoneme_ids(
    phonemes: &[char],
    map: &HashMap<String, Vec<i64>>,
) -> (Vec<i64>, BTreeMap<char, usize>) {
    let get = |s: &str| map.get(s).map(Vec::as_slice).unwrap_or(&[]);
    let (bos, pad, eos) = (get("^"), get("_"), get("$"));
    let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
    let mut missing = BTreeMap::new();
    ids.extend_from_slice(bos);
    ids.extend_from_slice(pad);
    let mut buf = [0u8; 4];
    for &p in phonemes {
        match map.get(&*p.encode_utf8(&mut buf)) {
            Some(v) => {
                ids.extend_from_slice(v);
                ids.extend_from_slice(pad);
            }
            None => *missing.entry(p).or_insert(0) += 1,
        }
    }
    ids.extend_from_slice(eos);
    (ids, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(consumed: &str, last: bool) -> RawClause {
        RawClause {
            phonemes: String::new(),
            consumed: consumed.into(),
            last,
        }
    }

    #[test]
    fn terminators_come_from_the_consumed_text() {
        use Terminator::*;
        let cases = [
            ("Hello world. T", false, Some(Period), false),
            ("his is a test, r", false, Some(Comma), false),
            ("unning on the CPU! I", false, Some(Exclamation), false),
            ("s it? Y", false, Some(Question), false),
            ("es: i", false, Some(Colon), false),
            ("t works; r", false, Some(Semicolon), false),
            ("eally.", true, Some(Period), false),
            ("Quoted.\"", true, Some(Period), false),
            ("said. \"", false, Some(Period), false),
            ("wait... a", false, Some(Semicolon), false),
            ("no end", true, None, false),
            ("para one\n\nP", false, None, true),
        ];
        for (text, last, want, para) in cases {
            assert_eq!(terminator(&raw(text, last)), (want, para), "{text:?}");
        }
    }

    #[test]
    fn clauses_group_into_sentences_with_punctuation() {
        let c = |e: &str, t, s| Clause {
            espeak: e.into(),
            terminator: t,
            ends_sentence: s,
        };
        let got = sentences(&[
            c("həlˈoʊ", Some(Terminator::Comma), false),
            c("wˈɜːld", Some(Terminator::Period), true),
            c("(fr)ʒə(en) ɪz", Some(Terminator::Question), true),
            c("", None, true),
        ]);
        let s: Vec<String> = got.iter().map(|v| v.iter().collect()).collect();
        assert_eq!(s, ["həlˈoʊ, wˈɜːld.", "ʒə ɪz?"]);
    }

    #[test]
    fn ids_follow_bos_pad_eos() {
        let map: HashMap<String, Vec<i64>> = [("^", 1), ("_", 0), ("$", 2), ("a", 14), ("b", 15)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![v]))
            .collect();
        let (ids, missing) = phoneme_ids(&['a', 'x', 'b', 'x'], &map);
        assert_eq!(ids, [1, 0, 14, 0, 15, 0, 2]);
        assert_eq!(missing, BTreeMap::from([('x', 2)]));
    }
}

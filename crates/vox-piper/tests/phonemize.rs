//! Phonemisation against the espeak-ng command line (`espeak-ng -q --ipa -v en-us`, which prints one line per
//! clause): the clauses vox-piper gets from libespeak-ng must be the CLI's lines, and the sentences must be
//! those lines with the text's punctuation put back as piper does.
//!
//! Known divergence, avoided here rather than papered over: for very short questions ("Is it?") the CLI's
//! synthesis path moves a stress mark that `espeak_TextToPhonemes` (what piper calls) does not.

mod common;

use std::process::Command;

use unicode_normalization::UnicodeNormalization;
use vox_piper::phonemize;

const TEXTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Could you tell me how far it is from the train station to the old harbor?",
    "Yesterday afternoon the weather changed suddenly, and a cold wind started blowing from the north.",
    "My grandmother keeps a small garden behind her house, where she grows tomatoes, beans, and fresh herbs every summer.",
    "If you want to learn a new language quickly, try speaking with native speakers every single day, even if you make mistakes.",
    "Hello world. This is a test of the speech server, running on the CPU! Is it here? Yes: it works; really.",
    "Water boils at a lower temperature at high altitude because the air pressure is lower",
    "She said: \"Bring the blue bag.\" Then she left.",
];

fn cli_clauses(text: &str) -> Vec<String> {
    let out = Command::new("espeak-ng")
        .args(["-q", "--ipa", "-v", "en-us", text])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn clauses_equal_the_espeak_cli() {
    if !common::espeak_cli() {
        return;
    }
    for text in TEXTS {
        let got: Vec<String> = phonemize::clauses("en-us", text)
            .unwrap()
            .into_iter()
            .map(|c| c.espeak.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(got, cli_clauses(text), "{text}");
    }
}

/// The expected piper sentences, built from the CLI's clause lines and the clause marks as they appear in
/// the text (every clause of these texts ends with one mark, except possibly the last).
fn expected_sentences(text: &str) -> Vec<String> {
    let marks: Vec<char> = text.chars().filter(|c| ".,!?:;".contains(*c)).collect();
    let lines = cli_clauses(text);
    assert!(marks.len() == lines.len() || marks.len() + 1 == lines.len());
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, line) in lines.iter().enumerate() {
        cur.push_str(line);
        match marks.get(i) {
            Some(m @ ('.' | '!' | '?')) => {
                cur.push(*m);
                out.push(std::mem::take(&mut cur));
            }
            Some(m) => {
                cur.push(*m);
                cur.push(' ');
            }
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(|s| s.nfd().collect()).collect()
}

#[test]
fn sentences_keep_clause_punctuation_like_piper() {
    if !common::espeak_cli() {
        return;
    }
    for text in TEXTS {
        let got: Vec<String> = phonemize::phonemize("en-us", text)
            .unwrap()
            .iter()
            .map(|s| s.iter().collect())
            .collect();
        assert_eq!(got, expected_sentences(text), "{text}");
    }
}

#[test]
fn concurrent_callers_get_their_own_clauses() {
    if !common::espeak_cli() {
        return;
    }
    // espeak-ng keeps the text position and a read-ahead character in globals: without the lock, threads
    // would steal each other's clauses.
    let want: Vec<Vec<Vec<char>>> = TEXTS
        .iter()
        .map(|t| phonemize::phonemize("en-us", t).unwrap())
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    for (t, w) in TEXTS.iter().zip(&want) {
                        assert_eq!(&phonemize::phonemize("en-us", t).unwrap(), w);
                    }
                }
            });
        }
    });
}

#[test]
fn unknown_espeak_voice_is_an_error() {
    if !common::espeak_cli() {
        return;
    }
    let e = phonemize::phonemize("xx-nope", "hello")
        .unwrap_err()
        .to_string();
    assert!(e.contains("xx-nope"), "{e}");
    // The failure leaves espeak usable.
    assert!(!phonemize::phonemize("en-us", "hello").unwrap().is_empty());
}

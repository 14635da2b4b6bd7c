//! Long text: split at sentence boundaries into engine-sized chunks, and join the chunks' audio without clicks.
//!
//! Engines degrade on long inputs (Chatterbox stops at ~40 s, Piper's attention grows quadratically), so text
//! is spoken a chunk at a time. Each chunk's audio fades in and out over a few milliseconds and a short pause
//! separates chunks, so a join never lands on a discontinuity (a click) and sounds like a sentence break.

/// Fade at each chunk edge: 5 ms, too short to hear, long enough to remove a step.
pub const FADE_SECS: f32 = 0.005;
/// Pause inserted between chunks (a sentence break).
pub const GAP_SECS: f32 = 0.12;

/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "fig", "approx",
];

/// Splits `text` into sentences: after `.`, `!`, `?`, `;`, `…` (and their CJK forms) followed by a space, and
/// at blank lines. Whitespace is normalised; empty sentences are dropped.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let words: Vec<&str> = para.split_whitespace().collect();
        let mut cur: Vec<&str> = Vec::new();
        for w in words {
            cur.push(w);
            if ends_sentence(w) {
                out.push(cur.join(" "));
                cur.clear();
            }
        }
        if !cur.is_empty() {
            out.push(cur.join(" "));
        }
    }
    out
}

fn ends_sentence(word: &str) -> bool {
    let trimmed = word.trim_end_matches(['"', '\'', ')', ']', '”', '’', '»']);
    let Some(last) = trimmed.chars().last() else {
        return false;
    };
    match last {
        '!' | '?' | ';' | '…' | '。' | '！' | '？' | '；' => true,
        '.' => {
            let stem = trimmed.trim_end_matches('.').to_lowercase();
            let stem = stem.trim_start_matches(['"', '\'', '(', '[', '“', '‘', '«']);
            // "Dr." and single initials ("J.") do not end a sentence; "1." in a list does not either.
            // "p.m." and "e.g." (dots inside) read as abbreviations too.
            !(ABBREVIATIONS.contains(&stem)
                || stem.contains('.')
                || (stem.chars().count() == 1 && stem.chars().all(char::is_alphabetic))
                || (!stem.is_empty()
                    && stem.chars().all(|c| c.is_ascii_digit())
                    && trimmed.len() <= 3))
        }
        _ => false,
    }
}

/// Splits one over-long sentence into pieces of at most `max` characters: at clause punctuation when it can,
/// else between words, else (a single giant word) between characters.
fn split_long(sentence: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in sentence.split(' ') {
        for piece in split_word(word, max) {
            let extra = if cur.is_empty() { 0 } else { 1 };
            if !cur.is_empty() && cur.chars().count() + extra + piece.chars().count() > max {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(&piece);
            // Prefer to break after a clause once the piece is half full.
            if cur.chars().count() >= max / 2 && cur.ends_with([',', ':', '—', '–']) {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn split_word(word: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() <= max {
        return vec![word.to_string()];
    }
    chars
        .chunks(max.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Packs sentences into chunks of at most `max_chars` characters (whole sentences where possible).
pub fn pack(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for s in sentences(text) {
        let pieces = if s.chars().count() > max {
            split_long(&s, max)
        } else {
            vec![s]
        };
        for p in pieces {
            if !cur.is_empty() && cur.chars().count() + 1 + p.chars().count() > max {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(&p);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One chunk per sentence (over-long sentences split): the lowest latency to first audio when streaming.
pub fn per_sentence(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    sentences(text)
        .into_iter()
        .flat_map(|s| {
            if s.chars().count() > max {
                split_long(&s, max)
            } else {
                vec![s]
            }
        })
        .collect()
}

/// Number of samples of `secs` at `rate`.
pub fn samples_for(secs: f32, rate: u32) -> usize {
    (secs * rate as f32).round() as usize
}

/// Raised-cosine fade-in over the first `n` samples.
pub fn fade_in(samples: &mut [f32], n: usize) {
    let n = n.min(samples.len());
    for (i, s) in samples[..n].iter_mut().enumerate() {
        *s *= ramp(i, n);
    }
}

/// Raised-cosine fade-out over the last `n` samples.
pub fn fade_out(samples: &mut [f32], n: usize) {
    let len = samples.len();
    let n = n.min(len);
    for (i, s) in samples[len - n..].iter_mut().enumerate() {
        *s *= ramp(n - 1 - i, n);
    }
}

fn ramp(i: usize, n: usize) -> f32 {
    let x = (i as f32 + 0.5) / n as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_terminal_punctuation_not_abbreviations() {
        let s = sentences(
            "Dr. Smith arrived at 5 p.m. today!  Was he late?\nNo; he was early. J. R. R. Tolkien wrote it.",
        );
        assert_eq!(
            s,
            vec![
                "Dr. Smith arrived at 5 p.m. today!",
                "Was he late?",
                "No;",
                "he was early.",
                "J. R. R. Tolkien wrote it."
            ]
        );
        assert_eq!(sentences("  \n\n "), Vec::<String>::new());
        assert_eq!(sentences("no final stop"), vec!["no final stop"]);
    }

    #[test]
    fn packing_keeps_every_word_in_order_within_the_limit() {
        let text = "One two three. Four five six seven eight nine ten eleven twelve thirteen, fourteen fifteen sixteen. Seventeen. Supercalifragilisticexpialidocious!";
        for max in [8, 20, 40, 200] {
            let chunks = pack(text, max);
            for c in &chunks {
                assert!(c.chars().count() <= max, "{c:?} > {max}");
            }
            let joined: String = chunks
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if max >= 34 {
                assert_eq!(joined, words, "max {max}");
            } else {
                // The giant word was cut into pieces; the letters are all there.
                assert_eq!(joined.replace(' ', ""), words.replace(' ', ""), "max {max}");
            }
        }
        assert_eq!(pack(text, 200).len(), 1);
        assert_eq!(per_sentence(text, 200).len(), 4);
        assert_eq!(pack("A b. C d.", 5), vec!["A b.", "C d."]);
    }

    #[test]
    fn fades_go_from_silence_to_unity() {
        let mut x = vec![1.0f32; 100];
        fade_in(&mut x, 10);
        fade_out(&mut x, 10);
        assert!(x[0] < 0.05 && x[99] < 0.05);
        assert!(x[5] > 0.4 && x[5] < 0.8);
        assert_eq!(x[50], 1.0);
        assert!(x[..10].windows(2).all(|w| w[1] >= w[0]));
        let mut short = vec![1.0f32; 3];
        fade_out(&mut short, 10);
        assert!(short[2] < short[0]);
    }
}

//! Word timestamps, as faster-whisper computes them (`find_alignment`, `add_word_timestamps`,
//! `merge_punctuations` in faster_whisper/transcribe.py; `split_to_word_tokens` in faster_whisper/tokenizer.py).
//!
//! A window's text tokens are aligned to encoder frames ([`crate::align`]); tokens are grouped into words (at
//! spaces and punctuation, or at every complete character for languages written without spaces); a word starts
//! at the frame where the path reaches its first token and ends where it reaches the next word's. Punctuation is
//! then glued to its neighbour, and faster-whisper's heuristics clamp words that run across pauses. Python's
//! `in` on strings is a substring test (`"" in ".!?"` is true); the ports below keep that.

use candle_core::Tensor;
use serde::Serialize;

use crate::WhisperError;
use crate::align::align;
use crate::model::Whisper;
use crate::tokenizer::WhisperTokenizer;

/// faster-whisper's default `prepend_punctuations`.
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// faster-whisper's default `append_punctuations`.
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Encoder positions per second (100 mel frames per second, convolution stride 2).
const TOKENS_PER_SECOND: f64 = 50.0;
const FRAMES_PER_SECOND: f64 = 100.0;

/// One word of a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    /// The word with its leading space and glued punctuation (`" Hello,"`).
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// Mean probability of the word's tokens.
    pub probability: f64,
}

/// A word as the alignment first gives it, before punctuation merging and rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// One segment of a window while it is being built (faster-whisper's `current_segments` entries).
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The window's seek (mel frames) when it was decoded.
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub tokens: Vec<u32>,
    pub words: Vec<Word>,
}

/// What word alignment needs besides the tokens.
pub struct WordContext<'a> {
    pub model: &'a Whisper,
    pub tokenizer: &'a WhisperTokenizer,
    /// `[layer, head]` cross-attention heads that follow the timing.
    pub alignment_heads: &'a [(usize, usize)],
    /// `<|startoftranscript|>` (+ language and task tokens on multilingual models).
    pub sot_sequence: &'a [u32],
    /// The language code: languages written without spaces split words at character boundaries.
    pub language: &'a str,
    pub prepend_punctuations: &'a str,
    pub append_punctuations: &'a str,
}

fn py_in(needle: &str, haystack: &str) -> bool {
    haystack.contains(needle)
}

/// faster-whisper's `split_to_word_tokens`.
pub fn split_to_word_tokens(
    tok: &WhisperTokenizer,
    tokens: &[u32],
    language: &str,
) -> (Vec<String>, Vec<Vec<u32>>) {
    if ["zh", "ja", "th", "lo", "my", "yue"].contains(&language) {
        return split_tokens_on_unicode(tok, tokens);
    }
    let (subwords, subword_tokens) = split_tokens_on_unicode(tok, tokens);
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (subword, toks) in subwords.into_iter().zip(subword_tokens) {
        let special = toks[0] >= tok.specials.eot;
        let with_space = subword.starts_with(' ');
        let punctuation = py_in(subword.trim(), ASCII_PUNCTUATION);
        if special || with_space || punctuation || words.is_empty() {
            words.push(subword);
            word_tokens.push(toks);
        } else {
            words.last_mut().expect("non-empty").push_str(&subword);
            word_tokens.last_mut().expect("non-empty").extend(toks);
        }
    }
    (words, word_tokens)
}

/// faster-whisper's `split_tokens_on_unicode`: cut wherever the decoded prefix is complete text (no U+FFFD that
/// the full decoding does not also have at that place).
fn split_tokens_on_unicode(tok: &WhisperTokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    const REPLACEMENT: char = '\u{fffd}';
    let full: Vec<char> = tok.decode_with_timestamps(tokens).chars().collect();
    let mut words = Vec::new();
    let mut word_tokens = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut offset = 0usize;
    for &t in tokens {
        current.push(t);
        let decoded = tok.decode_with_timestamps(&current);
        let idx = decoded
            .chars()
            .position(|c| c == REPLACEMENT)
            .map(|i| i + offset);
        if idx.is_none_or(|i| i < full.len() && full[i] == REPLACEMENT) {
            offset += decoded.chars().count();
            words.push(decoded);
            word_tokens.push(std::mem::take(&mut current));
        }
    }
    (words, word_tokens)
}

/// faster-whisper's `merge_punctuations`: opening marks join the next word, closing marks the previous one.
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() >= 2 {
        let mut i = alignment.len() as isize - 2;
        let mut j = alignment.len() - 1;
        while i >= 0 {
            let iu = i as usize;
            let prev = &alignment[iu];
            if prev.word.starts_with(' ') && py_in(prev.word.trim(), prepended) {
                let (word, tokens) = (
                    std::mem::take(&mut alignment[iu].word),
                    std::mem::take(&mut alignment[iu].tokens),
                );
                let f = &mut alignment[j];
                f.word = word + &f.word;
                f.tokens = tokens.into_iter().chain(f.tokens.drain(..)).collect();
            } else {
                j = iu;
            }
            i -= 1;
        }
    }
    let (mut i, mut j) = (0usize, 1usize);
    while j < alignment.len() {
        if !alignment[i].word.ends_with(' ') && py_in(&alignment[j].word, appended) {
            let (word, tokens) = (
                std::mem::take(&mut alignment[j].word),
                std::mem::take(&mut alignment[j].tokens),
            );
            alignment[i].word.push_str(&word);
            alignment[i].tokens.extend(tokens);
        } else {
            i = j;
        }
        j += 1;
    }
}

/// faster-whisper's `find_alignment` for one window: words with times relative to the window start.
pub fn find_alignment(
    ctx: &WordContext,
    enc: &Tensor,
    text_tokens: &[u32],
    num_frames: usize,
) -> Result<Vec<WordTiming>, WhisperError> {
    if text_tokens.is_empty() {
        return Ok(Vec::new());
    }
    let tok = ctx.tokenizer;
    let result = align(
        ctx.model,
        enc,
        &tok.specials,
        ctx.sot_sequence,
        text_tokens,
        num_frames,
        ctx.alignment_heads,
    )?;
    let mut with_eot = text_tokens.to_vec();
    with_eot.push(tok.specials.eot);
    let (words, word_tokens) = split_to_word_tokens(tok, &with_eot, ctx.language);
    if word_tokens.len() <= 1 || result.path.is_empty() {
        return Ok(Vec::new());
    }
    // Token index where each word starts (and, shifted by one, ends).
    let mut boundaries = vec![0usize];
    for t in &word_tokens[..word_tokens.len() - 1] {
        boundaries.push(boundaries.last().expect("non-empty") + t.len());
    }
    // The time at which the path first reaches each text index.
    let jump_times: Vec<f64> = result
        .path
        .iter()
        .enumerate()
        .filter(|(k, p)| *k == 0 || p.0 != result.path[k - 1].0)
        .map(|(_, p)| p.1 as f64 / TOKENS_PER_SECOND)
        .collect();
    let probs = &result.text_token_probs;
    let mut out = Vec::new();
    for (w, pair) in boundaries.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let (Some(&start), Some(&end)) = (jump_times.get(a), jump_times.get(b)) else {
            break;
        };
        let slice = &probs[a.min(probs.len())..b.min(probs.len())];
        let probability = if slice.is_empty() {
            f64::NAN
        } else {
            slice.iter().map(|p| *p as f64).sum::<f64>() / slice.len() as f64
        };
        out.push(WordTiming {
            word: words[w].clone(),
            tokens: word_tokens[w].clone(),
            start,
            end,
            probability,
        });
    }
    Ok(out)
}

/// Python's `round(x, 2)` for the values seen here (no exact ties at 3 decimals in practice).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// numpy's median of a non-empty slice.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// faster-whisper's `add_word_timestamps` for one window's segments (`pieces`, all decoded from `enc` over
/// `num_frames` mel frames): fills each piece's words, moves piece boundaries to the words', and returns the new
/// `last_speech_timestamp`.
pub fn add_word_timestamps(
    ctx: &WordContext,
    pieces: &mut [Piece],
    enc: &Tensor,
    num_frames: usize,
    mut last_speech_timestamp: f64,
) -> Result<f64, WhisperError> {
    if pieces.is_empty() {
        return Ok(last_speech_timestamp);
    }
    let eot = ctx.tokenizer.specials.eot;
    let per_piece: Vec<Vec<u32>> = pieces
        .iter()
        .map(|p| p.tokens.iter().copied().filter(|t| *t < eot).collect())
        .collect();
    let text_tokens: Vec<u32> = per_piece.iter().flatten().copied().collect();
    let mut alignment = find_alignment(ctx, enc, &text_tokens, num_frames)?;

    let durations: Vec<f64> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|d| *d != 0.0)
        .collect();
    let median_duration = if durations.is_empty() {
        0.0
    } else {
        median(durations.clone())
    }
    .min(0.7);
    let max_duration = median_duration * 2.0;
    // Truncate long words at sentence boundaries.
    if !durations.is_empty() {
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if py_in(&alignment[i].word, SENTENCE_END_MARKS) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if py_in(&alignment[i - 1].word, SENTENCE_END_MARKS) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(
        &mut alignment,
        ctx.prepend_punctuations,
        ctx.append_punctuations,
    );

    let time_offset = pieces[0].seek as f64 / FRAMES_PER_SECOND;
    let mut word_index = 0;
    for (piece, piece_tokens) in pieces.iter_mut().zip(&per_piece) {
        let mut saved_tokens = 0;
        let mut words: Vec<Word> = Vec::new();
        while word_index < alignment.len() && saved_tokens < piece_tokens.len() {
            let timing = &alignment[word_index];
            if !timing.word.is_empty() {
                words.push(Word {
                    word: timing.word.clone(),
                    start: round2(time_offset + timing.start),
                    end: round2(time_offset + timing.end),
                    probability: timing.probability,
                });
            }
            saved_tokens += timing.tokens.len();
            word_index += 1;
        }
        if !words.is_empty() {
            clamp_boundary_words(
                &mut words,
                piece,
                last_speech_timestamp,
                median_duration,
                max_duration,
            );
            last_speech_timestamp = piece.end;
        }
        piece.words = words;
    }
    Ok(last_speech_timestamp)
}

/// faster-whisper's segment-boundary fixes: the first words after a pause are at most twice the median word
/// long, and the segment's own timestamps win over a first or last word that runs 0.5 s past them.
fn clamp_boundary_words(
    words: &mut [Word],
    piece: &mut Piece,
    last_speech_timestamp: f64,
    median_duration: f64,
    max_duration: f64,
) {
    if words[0].end - last_speech_timestamp > median_duration * 4.0
        && (words[0].end - words[0].start > max_duration
            || (words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0))
    {
        if words.len() > 1 && words[1].end - words[1].start > max_duration {
            let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max_duration).max(0.0);
    }
    if piece.start < words[0].end && piece.start - 0.5 > words[0].start {
        words[0].start = (words[0].end - median_duration).min(piece.start).max(0.0);
    } else {
        piece.start = words[0].start;
    }
    let last = words.len() - 1;
    if piece.end > words[last].start && piece.end + 0.5 < words[last].end {
        words[last].end = (words[last].start + median_duration).max(piece.end);
    } else {
        piece.end = words[last].end;
    }
}

/// faster-whisper's `get_end`: the end of the last word, else of the last segment.
pub fn last_end(pieces: &[Piece]) -> Option<f64> {
    pieces
        .iter()
        .rev()
        .flat_map(|p| p.words.iter().rev())
        .map(|w| w.end)
        .next()
        .or_else(|| pieces.last().map(|p| p.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, tokens: &[u32]) -> WordTiming {
        WordTiming {
            word: word.into(),
            tokens: tokens.to_vec(),
            start: 0.0,
            end: 0.0,
            probability: 1.0,
        }
    }

    #[test]
    fn punctuation_joins_its_neighbours() {
        let mut a = vec![
            w(" \"", &[1]),
            w(" Hello", &[2]),
            w(",", &[3]),
            w(" world", &[4]),
            w(".\"", &[5]),
        ];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let words: Vec<&str> = a.iter().map(|x| x.word.as_str()).collect();
        // ".\"" is not a substring of the append set, so it stays a word of its own (as in Python).
        assert_eq!(words, vec!["", " \" Hello,", "", " world", ".\""]);
        assert_eq!(a[1].tokens, vec![1, 2, 3]);
    }
}

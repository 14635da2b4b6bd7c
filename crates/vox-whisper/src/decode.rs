//! Token search for one 30-second window: greedy, sampling and beam search with Whisper's logit rules.
//!
//! This follows CTranslate2's `WhisperReplica::generate` (src/models/whisper.cc) and its search strategies
//! (src/decoding.cc), which faster-whisper calls, so that greedy decoding gives the same tokens: the prompt
//! prefix is fed first and the last prompt token starts decoding; at most `min(max_length/2, max_length - start)`
//! tokens are generated; processors run in CTranslate2's order (repetition penalty, no-repeat n-grams, suppressed
//! tokens, blank suppression at the first step, timestamp rules); scores are sums of log-probabilities including
//! `<|endoftext|>`, finalized as `score / len^length_penalty`; the beam keeps `2*beam` candidates per step, moves
//! finished hypotheses out and stops after `round(beam * patience)` of them.

use candle_core::{DType, Result, Tensor};
use rand::Rng;

use crate::model::{DecoderState, Whisper};
use crate::tokenizer::Specials;

/// Options of one generation (faster-whisper passes these to `ctranslate2.models.Whisper.generate`).
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub beam_size: usize,
    pub patience: f32,
    pub length_penalty: f32,
    pub repetition_penalty: f32,
    pub no_repeat_ngram_size: usize,
    /// Prompt plus generated tokens (Whisper's 448).
    pub max_length: usize,
    /// Suppress `suppress_blank_ids` at the first generated step.
    pub suppress_blank: bool,
    pub suppress_blank_ids: Vec<u32>,
    pub suppress_tokens: Vec<u32>,
    /// The first timestamp may be at most this many 20 ms steps (1.0 s → 50).
    pub max_initial_timestamp_index: usize,
    /// 0: deterministic search; > 0: sampling from softmax(logits / temperature).
    pub temperature: f32,
    /// Hypotheses drawn when sampling (faster-whisper's `best_of`).
    pub num_hypotheses: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            beam_size: 5,
            patience: 1.0,
            length_penalty: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            max_length: 448,
            suppress_blank: true,
            suppress_blank_ids: vec![220, 50256],
            suppress_tokens: Vec::new(),
            max_initial_timestamp_index: 50,
            temperature: 0.0,
            num_hypotheses: 1,
        }
    }
}

/// The best hypothesis of one window.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated tokens, without the prompt and without `<|endoftext|>`.
    pub tokens: Vec<u32>,
    /// `sum(log p) / len^length_penalty`, as CTranslate2 returns it.
    pub score: f32,
    /// Probability of `<|nospeech|>` at the `<|startoftranscript|>` position.
    pub no_speech_prob: f32,
}

/// The rules that shape logits before each choice.
pub(crate) struct Rules<'a> {
    pub(crate) opts: &'a GenerateOptions,
    pub(crate) sp: &'a Specials,
    pub(crate) vocab: usize,
    pub(crate) timestamps: bool,
}

impl Rules<'_> {
    /// Applies every rule to one row of logits, given the tokens generated so far in that row.
    /// A disabled token's logit becomes −∞ (CTranslate2 applies its "disable" list the same way, after the
    /// penalties).
    pub(crate) fn apply(&self, step: usize, logits: &mut [f32], seq: &[u32]) {
        const OFF: f32 = f32::NEG_INFINITY;
        if self.opts.repetition_penalty != 1.0 {
            let p = self.opts.repetition_penalty;
            for &t in seq {
                let l = &mut logits[t as usize];
                *l = if *l < 0.0 { *l * p } else { *l / p };
            }
        }
        let n = self.opts.no_repeat_ngram_size;
        if n > 0 && seq.len() + 1 >= n {
            let tail = &seq[seq.len() + 1 - n..];
            for w in seq.windows(n) {
                if w[..n - 1] == *tail {
                    logits[w[n - 1] as usize] = OFF;
                }
            }
        }
        for &t in &self.opts.suppress_tokens {
            if (t as usize) < self.vocab {
                logits[t as usize] = OFF;
            }
        }
        if self.opts.suppress_blank && step == 0 {
            for &t in &self.opts.suppress_blank_ids {
                if (t as usize) < self.vocab {
                    logits[t as usize] = OFF;
                }
            }
        }
        if self.timestamps {
            self.timestamp_rules(step, logits, seq);
        }
    }

    /// CTranslate2's `ApplyTimestampRules`.
    fn timestamp_rules(&self, step: usize, logits: &mut [f32], seq: &[u32]) {
        const OFF: f32 = f32::NEG_INFINITY;
        let (eot, tb) = (self.sp.eot as usize, self.sp.timestamp_begin as usize);
        let te = self.vocab - 1;
        logits[self.sp.no_timestamps as usize] = OFF;
        let mut check_prob = false;
        if step == 0 {
            logits[..tb].fill(OFF);
            let max_initial = tb + self.opts.max_initial_timestamp_index;
            if max_initial < te {
                logits[max_initial + 1..=te].fill(OFF);
            }
        } else {
            let last = seq[step - 1] as usize;
            if last >= tb {
                let penultimate = if step > 1 {
                    seq[step - 2] as usize
                } else {
                    last
                };
                if penultimate >= tb {
                    logits[tb..=te].fill(OFF);
                } else {
                    logits[..eot].fill(OFF);
                    check_prob = true;
                }
            } else {
                check_prob = true;
            }
            // Timestamps do not decrease.
            if let Some(&t) = seq[..step].iter().rev().find(|t| **t as usize >= tb) {
                logits[tb..t as usize].fill(OFF);
            }
        }
        if check_prob {
            // CTranslate2 compares in log-probabilities: logsumexp(lp[tb..]) > max(lp[..tb]). The normalizer
            // is on both sides, so the logits compare the same way.
            let max_text = logits[..tb].iter().copied().fold(OFF, f32::max);
            if logsumexp(&logits[tb..=te]) > max_text {
                logits[..tb].fill(OFF);
            }
        }
    }
}

use crate::cpu_ops::logsumexp;

pub(crate) fn softmax_at(x: &[f32], i: usize) -> f32 {
    (x[i] - logsumexp(x)).exp()
}

/// Rows of a `[b, V]` f32 tensor.
pub(crate) fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    t.to_dtype(DType::F32)?.to_vec2::<f32>()
}

/// Where the prompt's task part begins and ends (CTranslate2's `get_sot_index`, `get_prompt_length`).
pub(crate) fn prompt_layout(prompt: &[u32], sp: &Specials) -> (usize, usize) {
    let sot_index = prompt.iter().position(|t| *t == sp.sot).unwrap_or(0);
    let mut len = sot_index;
    while len < prompt.len() && prompt[len] >= sp.sot && prompt[len] <= sp.no_timestamps {
        len += 1;
    }
    (sot_index, len.max(1))
}

/// Generates one window's tokens for `prompt` from the encoder output `enc` (`[1, 1500, d]`).
pub fn generate<R: Rng>(
    model: &Whisper,
    enc: &Tensor,
    prompt: &[u32],
    sp: &Specials,
    opts: &GenerateOptions,
    rng: &mut R,
) -> Result<Generation> {
    generate_from(model, model.decoder.start(enc)?, prompt, sp, opts, rng)
}

/// [`generate`] from a fresh decoder state (`Decoder::start` of the encoder output): the temperature
/// fallback decodes one window several times and computes its cross-attention memory once.
pub fn generate_from<R: Rng>(
    model: &Whisper,
    mut state: DecoderState,
    prompt: &[u32],
    sp: &Specials,
    opts: &GenerateOptions,
    rng: &mut R,
) -> Result<Generation> {
    let dec = &model.decoder;
    let dev = &model.device;
    let vocab = model.config.vocab_size;
    let (sot_index, prompt_len) = prompt_layout(prompt, sp);

    // Feed the prompt up to (not including) the start token; read the no-speech probability at <|sot|>.
    let start_step = prompt_len - 1;
    let mut no_speech_prob = None;
    if start_step > 0 {
        let ids = Tensor::new(&prompt[..start_step], dev)?.unsqueeze(0)?;
        let (h, _) = dec.forward(&ids, &mut state, false)?;
        if sot_index < start_step {
            let l = rows(&dec.logits(&h.narrow(1, sot_index, 1)?.squeeze(1)?)?)?;
            no_speech_prob = Some(softmax_at(&l[0], sp.no_speech as usize));
        }
    }
    let rules = Rules {
        opts,
        sp,
        vocab,
        timestamps: prompt[prompt_len - 1] != sp.no_timestamps,
    };
    let max_new = (opts.max_length / 2)
        .min(opts.max_length.saturating_sub(start_step))
        .max(1);
    let start = prompt[prompt_len - 1];

    let (tokens, score, nsp) = if opts.beam_size > 1 && opts.temperature == 0.0 {
        beam_search(model, state, start, &rules, max_new)?
    } else {
        let n = if opts.temperature > 0.0 {
            opts.num_hypotheses.max(1)
        } else {
            1
        };
        let mut best: Option<(Vec<u32>, f32, f32)> = None;
        for _ in 0..n {
            let r = greedy(
                model,
                state.clone(),
                start,
                &rules,
                max_new,
                opts.temperature,
                rng,
            )?;
            if best.as_ref().is_none_or(|b| r.1 > b.1) {
                best = Some(r);
            }
        }
        best.expect("at least one hypothesis")
    };
    Ok(Generation {
        tokens,
        score,
        no_speech_prob: no_speech_prob.unwrap_or(nsp),
    })
}

pub(crate) fn finalize(score: f32, len: usize, length_penalty: f32) -> f32 {
    score / (len as f32).powf(length_penalty)
}

/// Greedy (temperature 0) or sampled decoding of one hypothesis. Returns tokens, finalized score and the
/// no-speech probability of the first step.
fn greedy<R: Rng>(
    model: &Whisper,
    mut state: DecoderState,
    start: u32,
    rules: &Rules,
    max_new: usize,
    temperature: f32,
    rng: &mut R,
) -> Result<(Vec<u32>, f32, f32)> {
    let dec = &model.decoder;
    let mut seq: Vec<u32> = Vec::new();
    let mut score = 0f32;
    let mut nsp = 0f32;
    let mut cur = start;
    for step in 0..max_new {
        let ids = Tensor::new(&[cur], &model.device)?.unsqueeze(0)?;
        let (h, _) = dec.forward(&ids, &mut state, false)?;
        let mut logits = rows(&dec.logits(&h.squeeze(1)?)?)?.remove(0);
        if step == 0 {
            nsp = softmax_at(&logits, rules.sp.no_speech as usize);
        }
        rules.apply(step, &mut logits, &seq);
        let id = if temperature > 0.0 {
            sample(&logits, temperature, rng)
        } else {
            argmax(&logits)
        };
        score += logits[id] - logsumexp(&logits);
        if id as u32 == rules.sp.eot {
            break;
        }
        seq.push(id as u32);
        cur = id as u32;
    }
    let s = finalize(score, seq.len(), rules.opts.length_penalty);
    Ok((seq, s, nsp))
}

pub(crate) fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best
}

fn sample<R: Rng>(logits: &[f32], temperature: f32, rng: &mut R) -> usize {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let lse = logsumexp(&scaled);
    let u: f32 = rng.random();
    let mut acc = 0f32;
    for (i, l) in scaled.iter().enumerate() {
        acc += (l - lse).exp();
        if u < acc {
            return i;
        }
    }
    argmax(&scaled)
}

/// CTranslate2's `BeamSearch::search` for one input (the batched search with one item).
fn beam_search(
    model: &Whisper,
    state: DecoderState,
    start: u32,
    rules: &Rules,
    max_new: usize,
) -> Result<(Vec<u32>, f32, f32)> {
    Ok(
        crate::decode_batch::beam_search_items(model, state, 1, start, rules, max_new)?
            .pop()
            .expect("one item"),
    )
}

/// Indices and values of the `k` largest finite-or-+∞ entries (−∞ are skipped), largest first, ties by index.
/// One pass: an entry enters only if it beats the current `k`-th, which after the first few hundred entries
/// almost none does.
pub(crate) fn top_k(x: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut top: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return top;
    }
    let mut floor = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > floor {
            // After every kept entry with a value ≥ v (those came first, so they win ties).
            let at = top.partition_point(|e| e.1 >= v);
            top.insert(at, (i, v));
            if top.len() > k {
                top.pop();
            }
            if top.len() == k {
                floor = top[k - 1].1;
            }
        }
    }
    top
}

/// The `k` most likely tokens of one row of logits and their log-probabilities, most likely first.
pub(crate) fn top_log_probs(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let lse = logsumexp(logits);
    let mut top = top_k(logits, k);
    top.iter_mut().for_each(|e| e.1 -= lse);
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_sorted_and_skips_disabled() {
        let x = [0.1, f32::NEG_INFINITY, 0.5, 0.3, 0.5];
        assert_eq!(top_k(&x, 3), vec![(2, 0.5), (4, 0.5), (3, 0.3)]);
        assert_eq!(top_k(&x, 10).len(), 4);
    }

    #[test]
    fn top_log_probs_are_normalized_log_probabilities() {
        let lp = top_log_probs(&[1.0, 3.0, 2.0, f32::NEG_INFINITY], 4);
        assert_eq!(lp.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 0]);
        let total: f32 = lp.iter().map(|e| e.1.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((lp[0].1 - (3.0 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln())).abs() < 1e-6);
    }

    fn specials() -> Specials {
        Specials {
            sot: 10,
            eot: 9,
            sot_prev: 11,
            sot_lm: 12,
            no_timestamps: 13,
            no_speech: 14,
            transcribe: 15,
            translate: 16,
            timestamp_begin: 17,
        }
    }

    #[test]
    fn timestamp_rules_follow_ctranslate2() {
        let sp = specials();
        let opts = GenerateOptions {
            max_initial_timestamp_index: 2,
            suppress_blank: false,
            ..Default::default()
        };
        let rules = Rules {
            opts: &opts,
            sp: &sp,
            vocab: 25,
            timestamps: true,
        };
        // First step: only timestamps up to begin + 2.
        let mut l = vec![0.0f32; 25];
        rules.apply(0, &mut l, &[]);
        let allowed: Vec<usize> = (0..25).filter(|i| l[*i] > f32::NEG_INFINITY).collect();
        assert_eq!(allowed, vec![17, 18, 19]);
        // After a text token following a timestamp: no timestamp below the last one. (Text token 3 is likely
        // here, so the "timestamps together more likely than any text" rule does not fire.)
        let mut l = vec![0.0f32; 25];
        l[3] = 10.0;
        rules.apply(2, &mut l, &[19, 3]);
        assert_eq!(l[18], f32::NEG_INFINITY);
        assert!(l[19] > f32::NEG_INFINITY && l[3] > f32::NEG_INFINITY);
        assert_eq!(
            l[13],
            f32::NEG_INFINITY,
            "<|notimestamps|> is always suppressed"
        );
        // Two timestamps in a row: the next must be text (or the end).
        let mut l = vec![0.0f32; 25];
        l[3] = 10.0;
        rules.apply(3, &mut l, &[3, 17, 19]);
        assert!((17..25).all(|i| l[i] == f32::NEG_INFINITY));
    }

    #[test]
    fn prompt_layout_finds_the_start_token() {
        let sp = specials();
        assert_eq!(prompt_layout(&[10], &sp), (0, 1));
        assert_eq!(prompt_layout(&[11, 1, 2, 10], &sp), (3, 4));
        assert_eq!(prompt_layout(&[10, 13], &sp), (0, 2));
    }
}

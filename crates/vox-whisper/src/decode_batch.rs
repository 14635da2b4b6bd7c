//! Decoding several windows together: CTranslate2's `generate` over a batch, as faster-whisper's
//! `BatchedInferencePipeline` calls it. Every item gets the same prompt; the decoder runs all items' rows (one
//! per item for greedy search, `beam` per item for beam search) in one step, items leave the batch when their
//! search ends, and each item's beams share that item's cross-attention memory. The search rules per item are
//! exactly those of [`crate::decode`] (whose single-window beam search is this one with one item).

use candle_core::{Result, Tensor};
use rand::Rng;
use rayon::prelude::*;

use crate::decode::{
    GenerateOptions, Generation, Rules, argmax, finalize, generate, prompt_layout, rows,
    softmax_at, top_log_probs,
};
use crate::model::{DecoderState, Whisper};
use crate::tokenizer::Specials;

/// One row's first-step no-speech probability and its top candidate (token, log-prob) pairs.
type RowTop = (Option<f32>, Vec<(usize, f32)>);

/// Generates tokens for every item of the encoder output `enc` (`[b, 1500, d]`), all with `prompt`.
/// Sampling (`temperature > 0`) decodes the items one by one.
pub fn generate_batch<R: Rng>(
    model: &Whisper,
    enc: &Tensor,
    prompt: &[u32],
    sp: &Specials,
    opts: &GenerateOptions,
    rng: &mut R,
) -> Result<Vec<Generation>> {
    let n = enc.dim(0)?;
    if opts.temperature > 0.0 {
        return (0..n)
            .map(|i| generate(model, &enc.narrow(0, i, 1)?, prompt, sp, opts, rng))
            .collect();
    }
    let dec = &model.decoder;
    let dev = &model.device;
    let (sot_index, prompt_len) = prompt_layout(prompt, sp);
    let mut state = dec.start(enc)?;
    let start_step = prompt_len - 1;
    let mut no_speech: Option<Vec<f32>> = None;
    if start_step > 0 {
        let ids = Tensor::new(&prompt[..start_step], dev)?
            .unsqueeze(0)?
            .repeat((n, 1))?;
        let (h, _) = dec.forward(&ids, &mut state, false)?;
        if sot_index < start_step {
            let l = rows(&dec.logits(&h.narrow(1, sot_index, 1)?.squeeze(1)?)?)?;
            no_speech = Some(
                l.iter()
                    .map(|r| softmax_at(r, sp.no_speech as usize))
                    .collect(),
            );
        }
    }
    let rules = Rules {
        opts,
        sp,
        vocab: model.config.vocab_size,
        timestamps: prompt[prompt_len - 1] != sp.no_timestamps,
    };
    let max_new = (opts.max_length / 2)
        .min(opts.max_length.saturating_sub(start_step))
        .max(1);
    let start = prompt[prompt_len - 1];
    let results = if opts.beam_size > 1 {
        beam_search_items(model, state, n, start, &rules, max_new)?
    } else {
        greedy_items(model, state, n, start, &rules, max_new)?
    };
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, (tokens, score, nsp))| Generation {
            tokens,
            score,
            no_speech_prob: no_speech.as_ref().map_or(nsp, |p| p[i]),
        })
        .collect())
}

/// One decoder step for the rows in flight: the logits of each row, in row order.
fn step_logits(model: &Whisper, inputs: &[u32], state: &mut DecoderState) -> Result<Vec<Vec<f32>>> {
    let dec = &model.decoder;
    let ids = Tensor::new(inputs, &model.device)?.unsqueeze(1)?;
    let (h, _) = dec.forward(&ids, state, false)?;
    rows(&dec.logits(&h.squeeze(1)?)?)
}

/// Keeps `rows` of the state, and only the items `kept` (positions in the batch) when some item left.
fn keep(
    model: &Whisper,
    state: &DecoderState,
    rows: &[u32],
    kept: &[u32],
    before: usize,
) -> Result<DecoderState> {
    let dev = &model.device;
    let rows = Tensor::new(rows, dev)?;
    if kept.len() == before {
        state.select_items(&rows, None)
    } else {
        state.select_items(&rows, Some(&Tensor::new(kept, dev)?))
    }
}

/// Greedy search over `n` items (one row each). Returns per item: tokens, finalized score, and the
/// no-speech probability of the first step.
fn greedy_items(
    model: &Whisper,
    mut state: DecoderState,
    n: usize,
    start: u32,
    rules: &Rules,
    max_new: usize,
) -> Result<Vec<(Vec<u32>, f32, f32)>> {
    let mut out: Vec<(Vec<u32>, f32, f32)> = vec![(Vec::new(), 0.0, 0.0); n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut inputs = vec![start; n];
    for step in 0..max_new {
        let logits = step_logits(model, &inputs, &mut state)?;
        let picks: Vec<(usize, f32, Option<f32>)> = logits
            .into_par_iter()
            .zip(active.par_iter())
            .map(|(mut row, &i)| {
                let nsp = (step == 0).then(|| softmax_at(&row, rules.sp.no_speech as usize));
                rules.apply(step, &mut row, &out[i].0);
                let id = argmax(&row);
                (id, row[id] - crate::cpu_ops::logsumexp(&row), nsp)
            })
            .collect();
        let (mut kept, mut next_active, mut next_inputs) = (Vec::new(), Vec::new(), Vec::new());
        for (p, (id, lp, nsp)) in picks.into_iter().enumerate() {
            let i = active[p];
            if let Some(nsp) = nsp {
                out[i].2 = nsp;
            }
            out[i].1 += lp;
            if id as u32 != rules.sp.eot {
                out[i].0.push(id as u32);
                kept.push(p as u32);
                next_active.push(i);
                next_inputs.push(id as u32);
            }
        }
        if next_active.is_empty() || step + 1 == max_new {
            break;
        }
        state = keep(model, &state, &kept, &kept, active.len())?;
        active = next_active;
        inputs = next_inputs;
    }
    for o in &mut out {
        o.1 = finalize(o.1, o.0.len(), rules.opts.length_penalty);
    }
    Ok(out)
}

/// One item's beams.
struct Beams {
    /// Active hypotheses: tokens so far and cumulative log-prob.
    alive: Vec<(Vec<u32>, f32)>,
    finished: Vec<(Vec<u32>, f32)>,
    no_speech_prob: f32,
}

/// CTranslate2's `BeamSearch::search` over `n` items, starting from one row per item in `state`. Returns per
/// item: the best hypothesis's tokens, its finalized score, and the no-speech probability of the first step.
pub(crate) fn beam_search_items(
    model: &Whisper,
    mut state: DecoderState,
    n: usize,
    start: u32,
    rules: &Rules,
    max_new: usize,
) -> Result<Vec<(Vec<u32>, f32, f32)>> {
    let beam = rules.opts.beam_size;
    let cands = 2 * beam;
    let max_candidates = (beam as f32 * rules.opts.patience).round() as usize;
    let eot = rules.sp.eot;
    let mut items: Vec<Beams> = (0..n)
        .map(|_| Beams {
            alive: vec![(Vec::new(), 0.0)],
            finished: Vec::new(),
            no_speech_prob: 0.0,
        })
        .collect();
    let mut active: Vec<usize> = (0..n).collect();
    let mut inputs = vec![start; n];
    // Rows per active item: 1 at the first step, `beam` after.
    let mut g = 1;
    for step in 0..max_new {
        let logits = step_logits(model, &inputs, &mut state)?;
        // Per row: the first step's no-speech probability and the top `cands` log-probs (only those can
        // enter the item's global top `cands`).
        let per_row: Vec<RowTop> = logits
            .into_par_iter()
            .enumerate()
            .map(|(r, mut row)| {
                let (it, b) = (&items[active[r / g]], r % g);
                let nsp =
                    (step == 0 && b == 0).then(|| softmax_at(&row, rules.sp.no_speech as usize));
                rules.apply(step, &mut row, &it.alive[b].0);
                (nsp, top_log_probs(&row, cands))
            })
            .collect();
        let last_step = step + 1 == max_new;
        let (mut rows_kept, mut kept) = (Vec::new(), Vec::new());
        let (mut next_active, mut next_inputs) = (Vec::new(), Vec::new());
        for (p, &i) in active.iter().enumerate() {
            let it = &mut items[i];
            let mut flat: Vec<(f32, usize, u32)> = Vec::with_capacity(g * cands);
            for b in 0..g {
                let (nsp, top) = &per_row[p * g + b];
                if let Some(nsp) = nsp {
                    it.no_speech_prob = *nsp;
                }
                let base = it.alive[b].1;
                flat.extend(top.iter().map(|&(id, v)| (base + v, b, id as u32)));
            }
            flat.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            flat.truncate(cands);
            let mut next: Vec<(usize, u32, f32)> = Vec::with_capacity(beam);
            let mut secondary = beam;
            for k in 0..beam.min(flat.len()) {
                let (score, origin, id) = flat[k];
                let mut chosen = (origin, id, score);
                if id == eot || last_step {
                    let mut toks = it.alive[origin].0.clone();
                    if id != eot {
                        toks.push(id);
                    }
                    it.finished.push((toks, score));
                    // Replace the finished beam by the next candidate that is not an end.
                    for (j, c) in flat.iter().enumerate().skip(secondary) {
                        if c.2 != eot {
                            chosen = (c.1, c.2, c.0);
                            secondary = j + 1;
                            break;
                        }
                    }
                }
                next.push(chosen);
            }
            if last_step || it.finished.len() >= max_candidates || next.is_empty() {
                continue;
            }
            // Every item keeps `beam` rows so the batch stays rectangular; a missing beam (fewer allowed
            // tokens than beams) repeats one with a score that can never win.
            while next.len() < beam {
                let (o, id, _) = next[next.len() - 1];
                next.push((o, id, f32::NEG_INFINITY));
            }
            it.alive = next
                .iter()
                .map(|(o, id, s)| {
                    let mut t = it.alive[*o].0.clone();
                    t.push(*id);
                    (t, *s)
                })
                .collect();
            rows_kept.extend(next.iter().map(|(o, _, _)| (p * g + o) as u32));
            next_inputs.extend(next.iter().map(|n| n.1));
            kept.push(p as u32);
            next_active.push(i);
        }
        if next_active.is_empty() {
            break;
        }
        state = keep(model, &state, &rows_kept, &kept, active.len())?;
        active = next_active;
        inputs = next_inputs;
        g = beam;
    }
    let lp = rules.opts.length_penalty;
    Ok(items
        .into_iter()
        .map(|it| {
            let (tokens, score) = it
                .finished
                .into_iter()
                .map(|(t, s)| {
                    let f = finalize(s, t.len(), lp);
                    (t, f)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or_default();
            (tokens, score, it.no_speech_prob)
        })
        .collect())
}

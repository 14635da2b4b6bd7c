//! Token-to-frame alignment from cross-attention: CTranslate2's `WhisperReplica::align` (src/models/whisper.cc),
//! which faster-whisper's word timestamps call.
//!
//! The decoder reads `sot_sequence + <|notimestamps|> + text + <|endoftext|>` in one pass. The cross-attention of
//! the model's alignment heads (config.json `alignment_heads`, `[layer, head]` pairs) is softmaxed over the
//! window's real frames only, standardized over the token axis (CTranslate2's `LayerNorm(-2, 0)`), median-filtered
//! along time (width 7, reflected edges), averaged over heads, and the rows from `<|notimestamps|>` to the last
//! text token go through a negative-cost DTW. The text tokens' probabilities come from the same pass, softmaxed
//! over the text vocabulary (ids below `<|endoftext|>`).

use candle_core::{DType, Result, Tensor};

use crate::model::Whisper;
use crate::tokenizer::Specials;

/// The median filter's width (faster-whisper's `find_alignment` default, which it always uses).
const MEDIAN_FILTER_WIDTH: usize = 7;

/// What [`align`] returns for one sequence.
#[derive(Debug, Clone, Default)]
pub struct Alignment {
    /// The DTW path as `(text_index, time_index)` pairs, `text_index` 0 being `<|notimestamps|>`'s row.
    pub path: Vec<(usize, usize)>,
    /// Probability of each text token given the ones before it.
    pub text_token_probs: Vec<f32>,
}

/// The heads openai-whisper falls back to when a checkpoint names none: every head of the decoder's second half.
pub fn default_alignment_heads(decoder_layers: usize, heads: usize) -> Vec<(usize, usize)> {
    (decoder_layers / 2..decoder_layers)
        .flat_map(|l| (0..heads).map(move |h| (l, h)))
        .collect()
}

/// Aligns `text_tokens` with the encoder output `enc` (`[1, 1500, d]`) of a window holding `num_frames` mel frames.
pub fn align(
    model: &Whisper,
    enc: &Tensor,
    sp: &Specials,
    sot_sequence: &[u32],
    text_tokens: &[u32],
    num_frames: usize,
    heads: &[(usize, usize)],
) -> Result<Alignment> {
    if text_tokens.is_empty() {
        return Ok(Alignment::default());
    }
    let mut input: Vec<u32> = sot_sequence.to_vec();
    input.push(sp.no_timestamps);
    input.extend_from_slice(text_tokens);
    input.push(sp.eot);
    let dec = &model.decoder;
    let mut state = dec.start(enc)?;
    let ids = Tensor::new(input.as_slice(), &model.device)?.unsqueeze(0)?;
    let (hidden, cross) = dec.forward(&ids, &mut state, true)?;

    // Token probabilities over the text vocabulary, at the positions that predict each text token.
    let offset = sot_sequence.len();
    let eot = sp.eot as usize;
    let logits = dec
        .logits(&hidden.narrow(1, offset, text_tokens.len())?)?
        .squeeze(0)?
        .narrow(1, 0, eot)?
        .to_vec2::<f32>()?;
    let text_token_probs = logits
        .iter()
        .zip(text_tokens)
        .map(|(row, &t)| {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = row.iter().map(|v| (v - m).exp()).sum();
            if (t as usize) < eot {
                (row[t as usize] - m).exp() / z
            } else {
                0.0
            }
        })
        .collect();

    let frames = num_frames / 2; // the second convolution has stride 2
    if frames == 0 {
        return Ok(Alignment {
            path: Vec::new(),
            text_token_probs,
        });
    }
    let t = input.len();
    let mut mean = vec![0f32; t * frames];
    for &(layer, head) in heads {
        let w = cross
            .get(layer)
            .ok_or_else(|| candle_core::Error::Msg(format!("no decoder layer {layer}")))?
            .get(0)?
            .get(head)?
            .narrow(1, 0, frames)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let mut m = head_matrix(w, frames);
        median_filter(&mut m, t, frames, MEDIAN_FILTER_WIDTH);
        for (acc, v) in mean.iter_mut().zip(&m) {
            *acc += v;
        }
    }
    let n = heads.len().max(1) as f32;
    mean.iter_mut().for_each(|v| *v /= n);
    let rows = text_tokens.len() + 1;
    let matrix = &mean[offset * frames..(offset + rows) * frames];
    Ok(Alignment {
        path: negative_dtw(matrix, rows, frames),
        text_token_probs,
    })
}

/// One head's `[tokens, frames]` weights: renormalized over the kept frames (the model softmaxed over all 1500,
/// CTranslate2 over the window's frames only; dividing by the kept mass is the same softmax), then standardized
/// over the token axis with epsilon 0 as CTranslate2's `LayerNorm(-2, 0)`.
fn head_matrix(w: Vec<Vec<f32>>, frames: usize) -> Vec<f32> {
    let t = w.len();
    let mut m: Vec<f32> = Vec::with_capacity(t * frames);
    for row in &w {
        let z: f32 = row.iter().sum();
        m.extend(row.iter().map(|v| v / z));
    }
    for j in 0..frames {
        let (mut sum, mut sq) = (0f32, 0f32);
        for i in 0..t {
            let x = m[i * frames + j];
            sum += x;
            sq += x * x;
        }
        let mean = sum / t as f32;
        let var = (sq / t as f32 - mean * mean).max(0.0);
        let rstd = 1.0 / var.sqrt();
        for i in 0..t {
            let x = &mut m[i * frames + j];
            *x = (*x - mean) * rstd;
        }
    }
    m
}

/// CTranslate2's `MedianFilter` along the last axis of a `[rows, depth]` matrix, with numpy's "reflect" edges;
/// rows no longer than half the width pass through.
pub fn median_filter(m: &mut [f32], rows: usize, depth: usize, width: usize) {
    let rank = width / 2;
    if depth <= rank {
        return;
    }
    let mut window = vec![0f32; width];
    let mut out = vec![0f32; depth];
    for r in 0..rows {
        let row = &mut m[r * depth..(r + 1) * depth];
        for (j, o) in out.iter_mut().enumerate() {
            for (k, slot) in window.iter_mut().enumerate() {
                let mut read = (j as isize + k as isize - rank as isize).unsigned_abs();
                if read >= depth {
                    read = 2 * depth - read - 2;
                }
                *slot = row[read];
            }
            window.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
            *o = window[rank];
        }
        row.copy_from_slice(&out);
    }
}

/// CTranslate2's `negative_dtw` (src/dtw.cc): the monotonic path maximizing the summed `x[rows, cols]`, with
/// its tie-breaking (diagonal, then up, else left) and backtrace.
pub fn negative_dtw(x: &[f32], n: usize, m: usize) -> Vec<(usize, usize)> {
    let w = m + 1;
    let mut cost = vec![f32::INFINITY; (n + 1) * w];
    let mut trace = vec![-1i8; (n + 1) * w];
    cost[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let c0 = cost[(i - 1) * w + j - 1];
            let c1 = cost[(i - 1) * w + j];
            let c2 = cost[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i * w + j] = -x[(i - 1) * m + (j - 1)] + c;
            trace[i * w + j] = t;
        }
    }
    trace[..=m].iter_mut().for_each(|t| *t = 2);
    for k in 0..=n {
        trace[k * w] = 1;
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        path.push((i.wrapping_sub(1), j.wrapping_sub(1)));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_like_numpy() {
        // numpy's "reflect" does not repeat the edge: windows [1,5,1] [5,1,9] [1,9,2] [9,2,7] [2,7,2].
        let mut m = vec![5.0, 1.0, 9.0, 2.0, 7.0];
        median_filter(&mut m, 1, 5, 3);
        assert_eq!(m, vec![1.0, 5.0, 2.0, 7.0, 2.0]);
    }

    #[test]
    fn dtw_follows_the_high_values() {
        // Two tokens over four frames: token 0 owns frames 0-1, token 1 frames 2-3. CTranslate2's tie rule
        // (equal costs go left) steps down at frame 1 before moving on, as src/dtw.cc does on this input.
        let x = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let path = negative_dtw(&x, 2, 4);
        assert_eq!(path, vec![(0, 0), (0, 1), (1, 1), (1, 2), (1, 3)]);
    }
}

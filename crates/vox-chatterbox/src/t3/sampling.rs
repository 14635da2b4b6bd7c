//! Next-token selection exactly as `T3.inference` does it, on host-side f32 logits:
//! CFG combine → repetition penalty → temperature → min-p → top-p → softmax → draw.
//!
//! The draw is an inverse-CDF lookup of one uniform number per step, so a seeded RNG gives
//! reproducible output and a parity test can feed the reference's uniforms. (The reference's
//! `torch.multinomial` has no injectable uniform; the fixture generator swaps it for this same
//! inverse-CDF draw.)

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Sampling knobs of `ChatterboxTTS.generate` (the defaults are its defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub repetition_penalty: f32,
    pub min_p: f32,
    pub top_p: f32,
    /// Classifier-free guidance weight; 0 disables guidance (and runs a batch of one).
    pub cfg_weight: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            repetition_penalty: 1.2,
            min_p: 0.05,
            top_p: 1.0,
            cfg_weight: 0.5,
        }
    }
}

/// Where the per-step uniform numbers in [0, 1) come from.
pub trait UniformSource {
    fn next_uniform(&mut self) -> f64;
}

/// A seeded RNG (`StdRng`): same seed, same tokens on the same build.
#[derive(Debug, Clone)]
pub struct SeededUniforms(StdRng);

impl SeededUniforms {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }
}

impl UniformSource for SeededUniforms {
    fn next_uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }
}

/// A fixed list of uniforms, e.g. the reference's, for parity tests. Panics when exhausted.
#[derive(Debug, Clone)]
pub struct FedUniforms {
    values: Vec<f64>,
    next: usize,
}

impl FedUniforms {
    pub fn new(values: Vec<f64>) -> Self {
        Self { values, next: 0 }
    }
}

impl UniformSource for FedUniforms {
    fn next_uniform(&mut self) -> f64 {
        let u = self.values[self.next];
        self.next += 1;
        u
    }
}

/// `cond + w·(cond − uncond)`, element-wise in f32 in the reference's operation order.
pub fn cfg_combine(cond: &[f32], uncond: &[f32], w: f32) -> Vec<f32> {
    cond.iter()
        .zip(uncond)
        .map(|(&c, &u)| c + w * (c - u))
        .collect()
}

/// Everything between the raw (CFG-combined) logits and the distribution that is drawn from.
/// `history` is every token id so far, starting with the start-of-speech token.
pub fn process_logits(logits: &mut [f32], history: &[u32], p: &SamplingParams) {
    // RepetitionPenaltyLogitsProcessor: once per distinct id.
    let seen: BTreeSet<u32> = history.iter().copied().collect();
    for id in seen {
        if let Some(s) = logits.get_mut(id as usize) {
            *s = if *s < 0.0 {
                *s * p.repetition_penalty
            } else {
                *s / p.repetition_penalty
            };
        }
    }
    if p.temperature != 1.0 {
        for s in logits.iter_mut() {
            *s /= p.temperature;
        }
    }
    min_p(logits, p.min_p);
    top_p(logits, p.top_p);
}

/// `MinPLogitsWarper`: drop tokens whose probability is below `min_p` × the top probability
/// (the top token always stays).
fn min_p(logits: &mut [f32], min_p: f32) {
    let probs = softmax(logits);
    let (top, top_p) = probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
    let threshold = min_p * top_p;
    for (i, (s, &pr)) in logits.iter_mut().zip(&probs).enumerate() {
        if pr < threshold && i != top {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `TopPLogitsWarper`: sort ascending, drop the prefix whose cumulative probability is
/// ≤ 1 − top_p (the last, most likely token always stays). A no-op at `top_p = 1`.
fn top_p(logits: &mut [f32], top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let sorted: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let probs = softmax(&sorted);
    let cut = (1.0 - f64::from(top_p)) as f32;
    // torch's CPU cumsum accumulates f32 in f64 and stores f32.
    let mut acc = 0f64;
    let last = order.len() - 1;
    for (k, (&i, &pr)) in order.iter().zip(&probs).enumerate() {
        acc += f64::from(pr);
        if (acc as f32) <= cut && k != last {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax in f32 (max-subtracted; f64 sum).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = exps.iter().map(|&e| f64::from(e)).sum();
    let inv = sum as f32;
    exps.iter().map(|&e| e / inv).collect()
}

/// Inverse-CDF draw: the first index whose cumulative probability (f64) exceeds `u`·total.
pub fn draw(probs: &[f32], u: f64) -> u32 {
    let total: f64 = probs.iter().map(|&p| f64::from(p)).sum();
    let target = u * total;
    let mut acc = 0f64;
    for (i, &p) in probs.iter().enumerate() {
        acc += f64::from(p);
        if acc > target {
            return i as u32;
        }
    }
    (probs.len() - 1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_once_per_id() {
        let mut l = vec![2.0, -2.0, 1.0];
        let p = SamplingParams {
            temperature: 1.0,
            repetition_penalty: 2.0,
            min_p: 0.0,
            top_p: 1.0,
            cfg_weight: 0.0,
        };
        process_logits(&mut l, &[0, 1, 0, 0], &p);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn min_p_keeps_tokens_within_the_ratio_of_the_top() {
        // probs ∝ e^0, e^-1, e^-5: with min_p 0.1 the last (ratio e^-5) goes, the middle stays.
        let mut l = vec![0.0, -1.0, -5.0];
        min_p(&mut l, 0.1);
        assert_eq!(l[..2], [0.0, -1.0]);
        assert_eq!(l[2], f32::NEG_INFINITY);
    }

    #[test]
    fn top_p_drops_the_unlikely_tail_and_keeps_the_top() {
        let mut l = vec![(0.6f32).ln(), (0.3f32).ln(), (0.1f32).ln()];
        top_p(&mut l, 0.85);
        assert!(l[0].is_finite() && l[1].is_finite());
        assert_eq!(l[2], f32::NEG_INFINITY);
        let mut one = vec![5.0, -5.0];
        top_p(&mut one, 0.01);
        assert!(one[0].is_finite());
    }

    #[test]
    fn draw_inverts_the_cdf_and_skips_zero_probabilities() {
        let probs = [0.25, 0.0, 0.5, 0.25];
        assert_eq!(draw(&probs, 0.0), 0);
        assert_eq!(draw(&probs, 0.2499), 0);
        assert_eq!(draw(&probs, 0.25), 2);
        assert_eq!(draw(&probs, 0.7499), 2);
        assert_eq!(draw(&probs, 0.9999), 3);
    }
}

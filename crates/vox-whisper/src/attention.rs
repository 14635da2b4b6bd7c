//! The encoder's self-attention on CPU f32, a block of query rows at a time.
//!
//! Why not candle's `matmul` → softmax → `matmul`: for one 30 s window that writes the 6 × 1500 × 1500 scores
//! (54 MB) to memory, reads and rewrites them in the softmax and reads them again, and each of the 2 × 6 per-head
//! products is a separate parallel gemm with its own thread synchronization. Here each task takes one head and
//! [`BLOCK`] query rows: their scores (384 KB) stay in the core's L2 cache from the first product through the
//! softmax to the second, and tasks run independently (one single-threaded gemm each). The arithmetic is the
//! same products, summed in gemm's order; only the blocking of the query rows differs.

use rayon::prelude::*;

use crate::cpu_ops;

/// Query rows per task: 64 rows of 1500 scores fit a 512 KB L2 cache with room for the keys' panel.
const BLOCK: usize = 64;

/// `softmax(q kᵀ) v` per head, for `q` `[b, t, h * d]` (already scaled), `k` and `v` `[b, s, h * d]`, all
/// row-major with the heads side by side (as the projections make them, so no per-head copies); returns
/// `[b, t, h * d]` likewise (as the output projection wants it).
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (b, h, t, s, d): (usize, usize, usize, usize, usize),
) -> Vec<f32> {
    let hd = h * d;
    assert_eq!(q.len(), b * t * hd, "attention: q shape");
    assert_eq!(k.len(), b * s * hd, "attention: k shape");
    assert_eq!(v.len(), b * s * hd, "attention: v shape");
    let blocks = t.div_ceil(BLOCK);
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..b * h * blocks)
        .into_par_iter()
        .map(|task| {
            let (bh, blk) = (task / blocks, task % blocks);
            let (bi, hi) = (bh / h, bh % h);
            let i0 = blk * BLOCK;
            let rows = BLOCK.min(t - i0);
            // Each view starts at its head's first column and ends after its last row's `d` columns.
            let view = |x: &'_ [f32], row0: usize, n: usize| {
                let a = row0 * hd + hi * d;
                let e = (row0 + n - 1) * hd + hi * d + d;
                x[a..e].as_ptr()
            };
            let qb = view(q, bi * t + i0, rows);
            let kh = view(k, bi * s, s);
            let vh = view(v, bi * s, s);
            let mut scores = vec![0f32; rows * s];
            // SAFETY: `qb` is rows × d with row stride hd, `kh` read as its transpose (d × s: column stride hd),
            // `scores` rows × s; every element addressed lies in the views checked above; no aliasing.
            unsafe {
                gemm::gemm(
                    rows,
                    s,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    s as isize,
                    false,
                    qb,
                    1,
                    hd as isize,
                    kh,
                    hd as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            cpu_ops::softmax_rows_slice(&mut scores, s);
            let mut out = vec![0f32; rows * d];
            // SAFETY: `scores` (rows × s) times `vh` (s × d, row stride hd) into `out` (rows × d), in bounds.
            unsafe {
                gemm::gemm(
                    rows,
                    d,
                    s,
                    out.as_mut_ptr(),
                    1,
                    d as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    s as isize,
                    vh,
                    1,
                    hd as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            (bh, i0, out)
        })
        .collect();
    let mut y = vec![0f32; b * t * hd];
    for (bh, i0, out) in parts {
        let (bi, hi) = (bh / h, bh % h);
        for (r, row) in out.chunks(d).enumerate() {
            let dst = (bi * t + i0 + r) * hd + hi * d;
            y[dst..dst + d].copy_from_slice(row);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    /// Double-precision attention, written out (same layouts as [`attention`]).
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        (b, h, t, s, d): (usize, usize, usize, usize, usize),
    ) -> Vec<f64> {
        let hd = h * d;
        let mut y = vec![0f64; b * t * hd];
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..t {
                    let qi = &q[(bi * t + i) * hd + hi * d..][..d];
                    let sc: Vec<f64> = (0..s)
                        .map(|j| {
                            let kj = &k[(bi * s + j) * hd + hi * d..][..d];
                            qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum()
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        y[(bi * t + i) * hd + hi * d + c] = (0..s)
                            .map(|j| e[j] / z * v[(bi * s + j) * hd + hi * d + c] as f64)
                            .sum();
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_a_double_precision_reference() {
        // Several blocks with a partial last one, two items, keys longer than queries.
        let dims = (2, 3, BLOCK * 2 + 5, 150, 16);
        let (b, h, t, s, d) = dims;
        let (q, k, v) = (
            data(b * t * h * d, 1),
            data(b * s * h * d, 2),
            data(b * s * h * d, 3),
        );
        let got = attention(&q, &k, &v, dims);
        let want = reference(&q, &k, &v, dims);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}

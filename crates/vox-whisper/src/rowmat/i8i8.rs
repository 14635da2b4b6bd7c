//! Int8 × int8 products for the decoder's per-token steps: CTranslate2's int8 scheme, where the activations
//! are quantized too (one scale per row, `127 / max|row|`), so a product is integer dot products and one
//! float multiply per output.
//!
//! Why write this: candle has no int8 product, and the `gemm` crate it uses has no integer kernels. The
//! weight-only path in [`super::kernel`] widens every int8 weight to f32 before its FMA, which made it the
//! largest cost of a beam-5 decoding step (the 51864 × 384 output projection, for every token).
//!
//! The AVX2 kernel: `vpmaddubsw` multiplies 32 unsigned bytes by 32 signed bytes and adds adjacent pairs into
//! 16-bit lanes, `vpmaddwd` by ones adds those pairs into 32-bit lanes, so each 32-bit lane gains the dot
//! product of 4 bytes. The unsigned operand is `|x|` and the signed one the weight with `x`'s sign
//! (`vpsignb`): `|x|·(w·sign x) = x·w`, and with both in −127..127 a pair sum (≤ 32258) never saturates
//! (CTranslate2's oneDNN path shifts `x` to unsigned instead, which can). Full 8-bit precision either way.
//!
//! Layout: the weights (`[n, k]`, row-major in the checkpoint) are repacked once at load as blocks of 16
//! output rows: block `j`, step `c` holds rows `16j..16j+16`, columns `4c..4c+4` (64 bytes; row `16j + l` at
//! bytes `4l..4l+4`). An activation row's 4 bytes are broadcast to every lane, so one pass over a block
//! leaves 16 finished outputs per activation row: no horizontal sums, no transposition, and each weight byte
//! is read once per product.

use rayon::prelude::*;

/// Output rows per block: two AVX2 registers of 8 i32 lanes.
const LANES: usize = 16;
/// Blocks per parallel task: 256 output rows, as the f32 kernel's tasks.
const BLOCKS_PER_TASK: usize = 16;
/// Activation rows per pass over a block: 2 × 5 accumulators + 2 weight registers + 2 broadcasts + ones +
/// one temporary fill AVX2's 16 registers (beam 5 takes one pass).
const GROUP: usize = 5;

/// Whether int8 matrices are stored as [`Packed`] and multiplied with quantized activations: the CPU has AVX2
/// (the kernel) and `VOX_INT8_ACTIVATIONS` is not `0` (which keeps the f32-activation path, for comparison).
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        let off = std::env::var("VOX_INT8_ACTIVATIONS").is_ok_and(|v| v == "0" || v == "false");
        !off && cpu_has_avx2()
    })
}

fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// An int8 `[n, k]` matrix with one scale per row (`value = q * scale[row]`), in the block layout above.
#[derive(Clone)]
pub struct Packed {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4; the padding columns are zero.
    kp: usize,
    /// `ceil(n / 16)` blocks of `kp / 4` steps of 64 bytes; padding rows are zero.
    q: Vec<i8>,
    /// Row scales, padded to whole blocks with zeros.
    scale: Vec<f32>,
}

impl Packed {
    /// Packs row-major int8 rows `q` (`[n, k]`) with their scales.
    pub fn new(n: usize, k: usize, q: &[i8], scale: &[f32]) -> Packed {
        assert_eq!(q.len(), n * k, "Packed::new: shape");
        assert_eq!(scale.len(), n, "Packed::new: scales");
        let kp = k.div_ceil(4) * 4;
        let (blocks, steps) = (n.div_ceil(LANES), kp / 4);
        let mut packed = vec![0i8; blocks * steps * 64];
        // One task per block (a load-time pass over every weight of the model).
        packed
            .par_chunks_mut((steps * 64).max(1))
            .enumerate()
            .for_each(|(j, pb)| {
                for lane in 0..LANES.min(n.saturating_sub(j * LANES)) {
                    let r = j * LANES + lane;
                    for (c, v) in q[r * k..(r + 1) * k].iter().enumerate() {
                        pb[(c / 4) * 64 + lane * 4 + c % 4] = *v;
                    }
                }
            });
        let mut scale = scale.to_vec();
        scale.resize(blocks * LANES, 0.0);
        Packed {
            n,
            k,
            kp,
            q: packed,
            scale,
        }
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    pub fn nbytes(&self) -> usize {
        self.q.len() + self.scale.len() * 4
    }

    fn at(&self, r: usize, c: usize) -> i8 {
        let steps = self.kp / 4;
        self.q[((r / LANES) * steps + c / 4) * 64 + (r % LANES) * 4 + c % 4]
    }

    /// Row `r`, dequantized.
    pub fn row(&self, r: usize) -> Vec<f32> {
        (0..self.k)
            .map(|c| self.at(r, c) as f32 * self.scale[r])
            .collect()
    }

    /// The row-major int8 values and the row scales.
    pub fn unpack(&self) -> (Vec<i8>, Vec<f32>) {
        let q = (0..self.n)
            .flat_map(|r| (0..self.k).map(move |c| (r, c)))
            .map(|(r, c)| self.at(r, c))
            .collect();
        (q, self.scale[..self.n].to_vec())
    }

    /// `y = x · Wᵀ (+ bias)`: `x` is `[m, k]` row-major f32, quantized per row here; the result `[m, n]`.
    /// Parallel over blocks of output rows when `parallel`.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, parallel: bool) -> Vec<f32> {
        self.product(x, m, bias, parallel, cpu_has_avx2())
    }

    /// [`Self::matmul`] on the AVX2 kernel (`simd`, which needs AVX2 and FMA) or the portable loops.
    fn product(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        parallel: bool,
        simd: bool,
    ) -> Vec<f32> {
        let (n, k, kp) = (self.n, self.k, self.kp);
        assert_eq!(x.len(), m * k, "Packed::matmul: x shape");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "Packed::matmul: bias");
        }
        let x = Activations::quantize(x, m, k, kp);
        let mut y = vec![0f32; m * n];
        let blocks = n.div_ceil(LANES);
        let out = OutPtr(y.as_mut_ptr());
        let task = |t: usize| {
            let (b0, b1) = (t * BLOCKS_PER_TASK, ((t + 1) * BLOCKS_PER_TASK).min(blocks));
            // SAFETY: task `t` writes only the output columns of its blocks `b0..b1` (each in `0..n`, rows
            // `0..m`), which no other task writes; `y` outlives the tasks.
            unsafe { self.blocks(b0, b1, &x, bias, out, simd) };
        };
        let tasks = blocks.div_ceil(BLOCKS_PER_TASK);
        if parallel {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
        y
    }

    /// `x · row(r)` with `x` in f32 (the weight-only product of one output): for outputs that must not carry
    /// the activations' rounding.
    pub fn dot_row(&self, r: usize, x: &[f32]) -> f32 {
        assert_eq!(x.len(), self.k, "Packed::dot_row: x length");
        let steps = self.kp / 4;
        let block = &self.q[(r / LANES) * steps * 64..];
        let lane = (r % LANES) * 4;
        let mut acc = [0f32; 4];
        for (c, xs) in x.chunks(4).enumerate() {
            for (t, v) in xs.iter().enumerate() {
                acc[t] += block[c * 64 + lane + t] as f32 * v;
            }
        }
        acc.iter().sum::<f32>() * self.scale[r]
    }

    /// Output columns of blocks `b0..b1`, every activation row.
    ///
    /// # Safety
    /// `out` points to an `[m, n]` f32 buffer whose columns of these blocks no one else touches meanwhile;
    /// `simd` only if the CPU has AVX2 and FMA.
    unsafe fn blocks(
        &self,
        b0: usize,
        b1: usize,
        x: &Activations,
        bias: Option<&[f32]>,
        out: OutPtr,
        simd: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the CPU has AVX2 and FMA (the caller's contract), and the caller's contract on `out`.
            return unsafe { x86::blocks(self, b0, b1, x, bias, out) };
        }
        let _ = simd;
        // Portable path: the same integer sums, for CPUs without AVX2 (where `enabled` keeps matrices
        // unpacked, so only the tests run it).
        let steps = self.kp / 4;
        for j in b0..b1 {
            for lane in 0..LANES {
                let r = j * LANES + lane;
                if r >= self.n {
                    break;
                }
                for g in 0..x.rows {
                    let mut acc = 0i32;
                    for c in 0..steps {
                        for t in 0..4 {
                            let w = self.q[(j * steps + c) * 64 + lane * 4 + t] as i32;
                            acc += x.q[g * self.kp + c * 4 + t] as i32 * w;
                        }
                    }
                    let v = acc as f32 * self.scale[r] * x.scale[g] + bias.map_or(0.0, |b| b[r]);
                    // SAFETY: r < n, g < m: inside the caller's buffer, in this task's columns.
                    unsafe { *out.0.add(g * self.n + r) = v };
                }
            }
        }
    }
}

/// The output buffer, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used as documented at `Packed::blocks`: tasks write disjoint elements.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// A product's activation rows, quantized.
struct Activations {
    rows: usize,
    /// `round(x · s)` with `s = 127 / max|row|`, rows padded to the matrix's `kp` columns with zeros.
    q: Vec<i8>,
    /// `|q|`, the unsigned operand of `vpmaddubsw` (kept beside `q` rather than taken per block).
    abs: Vec<u8>,
    /// Each row's `1 / s`.
    scale: Vec<f32>,
}

impl Activations {
    fn quantize(x: &[f32], m: usize, k: usize, kp: usize) -> Activations {
        let mut q = vec![0i8; m * kp];
        let mut scale = vec![0f32; m];
        for g in 0..m {
            scale[g] = super::quantize_row(&x[g * k..(g + 1) * k], &mut q[g * kp..g * kp + k]);
        }
        let abs = q.iter().map(|v| v.unsigned_abs()).collect();
        Activations {
            rows: m,
            q,
            abs,
            scale,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Activations, GROUP, LANES, OutPtr, Packed};
    use std::arch::x86_64::*;

    /// See [`Packed::blocks`]; needs AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocks(
        p: &Packed,
        b0: usize,
        b1: usize,
        x: &Activations,
        bias: Option<&[f32]>,
        out: OutPtr,
    ) {
        for j in b0..b1 {
            let mut g0 = 0;
            while g0 < x.rows {
                let g = (x.rows - g0).min(GROUP);
                // SAFETY (all arms): block j exists, rows g0..g0+g of the activations exist; the caller's
                // contract on `out`; AVX2 and FMA enabled on this function.
                unsafe {
                    match g {
                        5 => tile::<5>(p, j, x, g0, bias, out),
                        4 => tile::<4>(p, j, x, g0, bias, out),
                        3 => tile::<3>(p, j, x, g0, bias, out),
                        2 => tile::<2>(p, j, x, g0, bias, out),
                        1 => tile::<1>(p, j, x, g0, bias, out),
                        _ => unreachable!("at most {GROUP} rows per pass"),
                    }
                }
                g0 += g;
            }
        }
    }

    /// Block `j` (16 output rows, two registers of 8) × activation rows `g0..g0+G`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const G: usize>(
        p: &Packed,
        j: usize,
        x: &Activations,
        g0: usize,
        bias: Option<&[f32]>,
        out: OutPtr,
    ) {
        let (kp, steps) = (p.kp, p.kp / 4);
        assert!((j + 1) * steps * 64 <= p.q.len() && (g0 + G) * kp <= x.q.len());
        assert!(x.abs.len() == x.q.len() && g0 + G <= x.scale.len());
        // acc[g][h]: activation row g0 + g, output rows 8h..8h+8 of the block.
        let mut acc = [[_mm256_setzero_si256(); 2]; G];
        let ones = _mm256_set1_epi16(1);
        // SAFETY: `w` reads block j, `xq`/`xa` rows g0..g0+G, all in bounds (asserted above).
        unsafe {
            let w = p.q.as_ptr().add(j * steps * 64);
            let (xq, xa) = (x.q.as_ptr().add(g0 * kp), x.abs.as_ptr().add(g0 * kp));
            for c in 0..steps {
                let lo = _mm256_loadu_si256(w.add(c * 64) as *const __m256i);
                let hi = _mm256_loadu_si256(w.add(c * 64 + 32) as *const __m256i);
                for (g, acc) in acc.iter_mut().enumerate() {
                    let at = g * kp + c * 4;
                    let s = _mm256_set1_epi32((xq.add(at) as *const i32).read_unaligned());
                    let a = _mm256_set1_epi32((xa.add(at) as *const i32).read_unaligned());
                    for (acc, wv) in acc.iter_mut().zip([lo, hi]) {
                        let t = _mm256_maddubs_epi16(a, _mm256_sign_epi8(wv, s));
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(t, ones));
                    }
                }
            }
        }
        let r0 = j * LANES;
        let live = (p.n - r0).min(LANES);
        for h in 0..2 {
            let r = r0 + 8 * h;
            if r >= p.n {
                break;
            }
            let lanes = (live - 8 * h).min(8);
            // SAFETY: `scale` is padded to whole blocks; `bias` is read only below `n`.
            let (scale, bias) = unsafe {
                let scale = _mm256_loadu_ps(p.scale.as_ptr().add(r));
                let bias = match bias {
                    Some(b) if lanes == 8 => _mm256_loadu_ps(b.as_ptr().add(r)),
                    Some(b) => {
                        let mut v = [0f32; 8];
                        v[..lanes].copy_from_slice(&b[r..r + lanes]);
                        _mm256_loadu_ps(v.as_ptr())
                    }
                    None => _mm256_setzero_ps(),
                };
                (scale, bias)
            };
            for (g, a) in acc.iter().enumerate() {
                let v = _mm256_fmadd_ps(
                    _mm256_mul_ps(_mm256_cvtepi32_ps(a[h]), scale),
                    _mm256_set1_ps(x.scale[g0 + g]),
                    bias,
                );
                // SAFETY: output row g0 + g < m, columns r..r + lanes < n: this task's (the caller's contract).
                unsafe {
                    let dst = out.0.add((g0 + g) * p.n + r);
                    if lanes == 8 {
                        _mm256_storeu_ps(dst, v);
                    } else {
                        let mut tmp = [0f32; 8];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), v);
                        std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, lanes);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The exact result of the scheme: integer dot products of the quantized values, scaled, in f64.
    fn reference(w: &[i8], ws: &[f32], x: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0f64; m * n];
        let mut xq = vec![0i8; k];
        for i in 0..m {
            let s = super::super::quantize_row(&x[i * k..(i + 1) * k], &mut xq);
            for r in 0..n {
                let d: i64 = (0..k).map(|c| xq[c] as i64 * w[r * k + c] as i64).sum();
                y[i * n + r] = d as f64 * s as f64 * ws[r] as f64;
            }
        }
        y
    }

    #[test]
    fn dot_row_is_the_weight_only_product() {
        let (n, k) = (40, 37);
        let w: Vec<i8> = data(n * k, 5)
            .iter()
            .map(|v| (v * 254.0).round() as i8)
            .collect();
        let ws: Vec<f32> = data(n, 6).iter().map(|v| v.abs() + 0.01).collect();
        let x = data(k, 7);
        let p = Packed::new(n, k, &w, &ws);
        for r in [0, 17, 39] {
            let want: f64 = (0..k)
                .map(|c| w[r * k + c] as f64 * ws[r] as f64 * x[c] as f64)
                .sum();
            assert!((p.dot_row(r, &x) as f64 - want).abs() < 1e-5, "row {r}");
        }
    }

    #[test]
    fn products_equal_the_integer_sums_of_the_quantized_values() {
        // Sizes off the block (16 rows) and step (4 columns) grids, row counts past one pass (6) and one task
        // (256 output rows), as in the decoder (384, 1536) and its vocabulary (not a multiple of 16).
        for (m, n, k) in [
            (1, 1, 1),
            (5, 300, 384),
            (13, 1000, 37),
            (10, 51 * 16 + 7, 1536),
        ] {
            let w: Vec<i8> = data(n * k, 1)
                .iter()
                .map(|v| (v * 254.0).round() as i8)
                .collect();
            let ws: Vec<f32> = data(n, 2).iter().map(|v| v.abs() / 100.0 + 1e-3).collect();
            let (x, b) = (data(m * k, 3), data(n, 4));
            let p = Packed::new(n, k, &w, &ws);
            assert_eq!(p.unpack(), (w.clone(), ws.clone()));
            let want = reference(&w, &ws, &x, m, n, k);
            // Both paths (the portable one too, which this CPU would not otherwise run), both schedules.
            let runs =
                [false, true].map(|parallel| [(parallel, false), (parallel, cpu_has_avx2())]);
            for (parallel, simd) in runs.into_iter().flatten() {
                let got = p.product(&x, m, Some(&b), parallel, simd);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    let e = e + b[i % n] as f64;
                    // Only the f32 rounding of the final multiply-add differs.
                    assert!(
                        (*g as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
                        "{m}x{n}x{k} [{i}]: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn rows_read_back_from_the_blocks() {
        let (n, k) = (40, 10);
        let w: Vec<i8> = (0..n * k).map(|i| (i % 251) as i8).collect();
        let ws: Vec<f32> = (0..n).map(|r| 0.5 + r as f32).collect();
        let p = Packed::new(n, k, &w, &ws);
        for r in [0, 15, 16, 39] {
            let want: Vec<f32> = w[r * k..(r + 1) * k]
                .iter()
                .map(|v| *v as f32 * ws[r])
                .collect();
            assert_eq!(p.row(r), want);
        }
    }
}

//! Products of a few activation rows with a row-major weight matrix (`[out, in]`, CTranslate2's layout), for
//! the decoder's per-token steps on CPU.
//!
//! Why not candle's matmul here: its gemm packs the weight matrix on every call, and for 1–16 activation rows
//! the packing costs as much as the product (the 51864 × 384 output projection was read and copied on every
//! token). Here each weight row is streamed from memory once and dotted with every activation row, which sits
//! in L1; the loop is bound by memory bandwidth, as a matrix–vector product should be. Weights are f32 or int8
//! with one scale per row (weight-only quantization: activations stay f32, so int8 only costs the rounding of
//! the weights, unlike CTranslate2's int8 which also quantizes activations).

use rayon::prelude::*;

pub mod i8i8;

/// Weight storage of a [`RowMatrix`].
enum Rows {
    F32(Vec<f32>),
    /// Half precision, widened to f32 as it is read (exactly: every f16 is an f32), so products equal those of
    /// the f32 matrix; half the memory and half the bytes streamed per product.
    F16(Vec<half::f16>),
    /// `value = q * scale[row]`.
    Int8 {
        q: Vec<i8>,
        scale: Vec<f32>,
    },
    /// Int8 rows for the int8 × int8 kernel, which quantizes the activations too ([`i8i8`]).
    Packed(i8i8::Packed),
}

/// A borrowed `[rows, cols]` weight matrix: f32 (e.g. a candle tensor's storage) or int8 with row scales.
#[derive(Clone, Copy)]
pub enum RowsRef<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
    Int8 { q: &'a [i8], scale: &'a [f32] },
    Packed(&'a i8i8::Packed),
}

/// A `[rows, cols]` weight matrix for `x · Wᵀ` with few rows of `x`.
pub struct RowMatrix {
    rows: usize,
    cols: usize,
    w: Rows,
}

/// Weight rows per parallel task: large enough to amortize scheduling, small enough to balance two cores.
const ROWS_PER_TASK: usize = 256; // a multiple of kernel::ROWS

impl RowMatrix {
    pub fn from_f32(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "RowMatrix::from_f32: shape");
        RowMatrix {
            rows,
            cols,
            w: Rows::F32(data),
        }
    }

    /// Half-precision rows (e.g. a checkpoint's float16 data), computed in f32.
    pub fn from_f16(rows: usize, cols: usize, data: Vec<half::f16>) -> Self {
        assert_eq!(data.len(), rows * cols, "RowMatrix::from_f16: shape");
        RowMatrix {
            rows,
            cols,
            w: Rows::F16(data),
        }
    }

    /// Quantizes f32 rows to int8 like CTranslate2 (`scale = 127 / max|row|`, round half away from zero).
    pub fn quantize_int8(rows: usize, cols: usize, data: &[f32]) -> Self {
        assert_eq!(data.len(), rows * cols, "RowMatrix::quantize_int8: shape");
        Self::quantize_int8_blocks(rows, cols, |r0, r1| {
            std::borrow::Cow::Borrowed(&data[r0 * cols..r1 * cols])
        })
    }

    /// [`Self::quantize_int8`] of a matrix read in blocks of rows: `block(r0, r1)` gives rows `r0..r1` as f32
    /// (e.g. converted from a file's float16), so no f32 copy of the whole matrix exists at any time.
    pub fn quantize_int8_blocks<'a, F>(rows: usize, cols: usize, block: F) -> Self
    where
        F: Fn(usize, usize) -> std::borrow::Cow<'a, [f32]> + Sync,
    {
        const BLOCK: usize = 64;
        let mut q = vec![0i8; rows * cols];
        let mut scale = vec![0f32; rows];
        q.par_chunks_mut(BLOCK * cols)
            .zip(scale.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(b, (qb, sb))| {
                let r0 = b * BLOCK;
                let data = block(r0, r0 + sb.len());
                for ((qr, s), row) in qb
                    .chunks_mut(cols)
                    .zip(sb.iter_mut())
                    .zip(data.chunks(cols))
                {
                    *s = quantize_row(row, qr);
                }
            });
        RowMatrix {
            rows,
            cols,
            w: Rows::Int8 { q, scale },
        }
    }

    /// This matrix quantized to int8 rows ([`Self::quantize_int8`] of its f32 values); a copy if already int8.
    pub fn to_int8(&self) -> RowMatrix {
        let c = self.cols;
        match &self.w {
            Rows::F32(w) => Self::quantize_int8(self.rows, c, w),
            Rows::F16(w) => Self::quantize_int8_blocks(self.rows, c, |r0, r1| {
                std::borrow::Cow::Owned(w[r0 * c..r1 * c].iter().map(|v| v.to_f32()).collect())
            }),
            Rows::Int8 { q, scale } => RowMatrix {
                rows: self.rows,
                cols: c,
                w: Rows::Int8 {
                    q: q.clone(),
                    scale: scale.clone(),
                },
            },
            Rows::Packed(p) => RowMatrix {
                rows: self.rows,
                cols: c,
                w: Rows::Packed(p.clone()),
            },
        }
    }

    /// Int8 rows multiplied with int8-quantized activations ([`i8i8`], CTranslate2's int8 scheme) when the
    /// CPU runs that kernel; otherwise, and for float rows, unchanged. The activations' rounding costs
    /// accuracy: on the test set it raised tiny.en's WER by 0.6 points when every decoder product used it, and
    /// not at all when only the output projection does (its largest product, 51864 × 384 per token).
    pub fn with_int8_activations(self) -> RowMatrix {
        match self.w {
            Rows::Int8 { q, scale } if i8i8::enabled() => RowMatrix {
                w: Rows::Packed(i8i8::Packed::new(self.rows, self.cols, &q, &scale)),
                ..self
            },
            _ => self,
        }
    }

    /// Splits the rows into `n` equal matrices (a fused projection into its parts).
    pub fn split_rows(self, n: usize) -> Vec<RowMatrix> {
        let (rows, cols) = (self.rows / n, self.cols);
        if let Rows::Packed(p) = &self.w {
            let (q, scale) = p.unpack();
            let parts = RowMatrix {
                w: Rows::Int8 { q, scale },
                ..self
            };
            return parts
                .split_rows(n)
                .into_iter()
                .map(RowMatrix::with_int8_activations)
                .collect();
        }
        (0..n)
            .map(|i| {
                let (a, b) = (i * rows, (i + 1) * rows);
                RowMatrix {
                    rows,
                    cols,
                    w: match &self.w {
                        Rows::F32(w) => Rows::F32(w[a * cols..b * cols].to_vec()),
                        Rows::F16(w) => Rows::F16(w[a * cols..b * cols].to_vec()),
                        Rows::Int8 { q, scale } => Rows::Int8 {
                            q: q[a * cols..b * cols].to_vec(),
                            scale: scale[a..b].to_vec(),
                        },
                        Rows::Packed(_) => unreachable!("unpacked above"),
                    },
                }
            })
            .collect()
    }

    /// A CTranslate2 int8 weight as stored (`value = q / ct2_scale[row]`).
    pub fn from_ct2_int8(rows: usize, cols: usize, q: &[i8], ct2_scale: &[f32]) -> Self {
        assert_eq!(q.len(), rows * cols, "RowMatrix::from_ct2_int8: shape");
        RowMatrix {
            rows,
            cols,
            w: Rows::Int8 {
                q: q.to_vec(),
                scale: ct2_scale.iter().map(|s| 1.0 / s).collect(),
            },
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.w, Rows::Int8 { .. } | Rows::Packed(_))
    }

    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        match &self.w {
            Rows::F32(w) => w.len() * 4,
            Rows::F16(w) => w.len() * 2,
            Rows::Int8 { q, scale } => q.len() + scale.len() * 4,
            Rows::Packed(p) => p.nbytes(),
        }
    }

    /// Row `r` as f32 (an embedding lookup).
    pub fn row(&self, r: usize) -> Vec<f32> {
        let c = self.cols;
        match &self.w {
            Rows::F32(w) => w[r * c..(r + 1) * c].to_vec(),
            Rows::F16(w) => w[r * c..(r + 1) * c].iter().map(|v| v.to_f32()).collect(),
            Rows::Int8 { q, scale } => q[r * c..(r + 1) * c]
                .iter()
                .map(|v| *v as f32 * scale[r])
                .collect(),
            Rows::Packed(p) => p.row(r),
        }
    }

    /// Whether products with this matrix quantize the activations ([`Self::with_int8_activations`]).
    pub fn quantizes_activations(&self) -> bool {
        matches!(self.w, Rows::Packed(_))
    }

    /// `x · row(r)` with `x` in f32, whatever the storage: one output of the product without the activations'
    /// rounding.
    pub fn dot_row(&self, r: usize, x: &[f32]) -> f32 {
        match &self.w {
            Rows::Packed(p) => p.dot_row(r, x),
            _ => self.row(r).iter().zip(x).map(|(w, x)| w * x).sum(),
        }
    }

    pub fn as_rows(&self) -> RowsRef<'_> {
        match &self.w {
            Rows::F32(w) => RowsRef::F32(w),
            Rows::F16(w) => RowsRef::F16(w),
            Rows::Int8 { q, scale } => RowsRef::Int8 { q, scale },
            Rows::Packed(p) => RowsRef::Packed(p),
        }
    }

    /// `y = x · Wᵀ (+ bias)`: `x` is `[m, cols]` row-major, the result `[m, rows]`.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>) -> Vec<f32> {
        matmul(self.as_rows(), self.rows, self.cols, x, m, bias)
    }
}

/// Quantizes one row into `out`; returns its scale (`value ≈ q * scale`).
fn quantize_row(row: &[f32], out: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn fast(row: &[f32], out: &mut [i8]) -> f32 {
            quantize_row_body(row, out)
        }
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { fast(row, out) };
    }
    quantize_row_body(row, out)
}

/// The loops of [`quantize_row`], written to vectorize: on baseline x86-64 `round` is a libm call per element
/// (it was 40% of loading an int8 model); with SSE4.1/AVX2 it is one instruction for 8 lanes, same results.
#[inline(always)]
fn quantize_row_body(row: &[f32], out: &mut [i8]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    let amax = rest.iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
    let k = if amax > 0.0 { 127.0 / amax } else { 1.0 };
    for (o, v) in out.iter_mut().zip(row) {
        // `max`/`min` rather than `clamp`: they map NaN to -127, so `q` is always finite and in range.
        #[allow(clippy::manual_clamp)]
        let q = (v * k).round().max(-127.0).min(127.0);
        // SAFETY: `q` is finite and within i32; a plain conversion vectorizes where the saturating `as` does not.
        *o = unsafe { q.to_int_unchecked::<i32>() } as i8;
    }
    1.0 / k
}

/// `y = x · Wᵀ (+ bias)` for `W` `[n, k]`: `x` is `[m, k]` row-major, the result `[m, n]`.
pub fn matmul(
    w: RowsRef<'_>,
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    product(w, n, k, x, m, bias, true)
}

/// [`matmul`] on the calling thread only (for callers that parallelize at a coarser level).
pub fn matmul_seq(
    w: RowsRef<'_>,
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    product(w, n, k, x, m, bias, false)
}

fn product(
    w: RowsRef<'_>,
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    parallel: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "rowmat::matmul: x shape");
    match w {
        RowsRef::F32(w) => assert_eq!(w.len(), n * k, "rowmat::matmul: w shape"),
        RowsRef::F16(w) => assert_eq!(w.len(), n * k, "rowmat::matmul: w shape"),
        RowsRef::Int8 { q, scale } => {
            assert_eq!(q.len(), n * k, "rowmat::matmul: w shape");
            assert_eq!(scale.len(), n, "rowmat::matmul: scales");
        }
        RowsRef::Packed(p) => {
            assert_eq!((p.rows(), p.cols()), (n, k), "rowmat::matmul: w shape");
            return p.matmul(x, m, bias, parallel);
        }
    }
    // Computed transposed (`[n, m]`) so that each task owns a contiguous block of the output.
    let mut yt = vec![0f32; n * m];
    let task = |(task, out): (usize, &mut [f32])| {
        let r0 = task * ROWS_PER_TASK;
        for (b, block) in out.chunks_mut(kernel::ROWS * m).enumerate() {
            let r = r0 + b * kernel::ROWS;
            let rows = block.len() / m;
            match w {
                RowsRef::F32(w) => kernel::dots_f32(&w[r * k..(r + rows) * k], k, x, block),
                RowsRef::F16(w) => kernel::dots_f16(&w[r * k..(r + rows) * k], k, x, block),
                RowsRef::Int8 { q, scale } => {
                    kernel::dots_i8(&q[r * k..(r + rows) * k], k, x, block);
                    for (j, dots) in block.chunks_mut(m).enumerate() {
                        dots.iter_mut().for_each(|d| *d *= scale[r + j]);
                    }
                }
                RowsRef::Packed(_) => unreachable!("packed products return above"),
            }
            if let Some(bias) = bias {
                for (j, dots) in block.chunks_mut(m).enumerate() {
                    dots.iter_mut().for_each(|d| *d += bias[r + j]);
                }
            }
        }
    };
    if parallel {
        yt.par_chunks_mut(ROWS_PER_TASK * m)
            .enumerate()
            .for_each(task);
    } else {
        yt.chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(task);
    }
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; m * n];
    for (r, dots) in yt.chunks(m).enumerate() {
        for (i, d) in dots.iter().enumerate() {
            y[i * n + r] = *d;
        }
    }
    y
}

/// Dot products of a block of up to [`kernel::ROWS`] weight rows (`w`, `rows × k`) with every row of `x`
/// (`m × k`), into `out` (`rows × m`). An AVX2+FMA path is chosen at run time (the release binary targets
/// baseline x86-64), with a portable fallback.
mod kernel {
    /// Weight rows per tile: with 3 activation rows per pass that is 12 independent accumulator chains, enough
    /// to hide the FMA latency, and 12 + 4 + 1 vector registers of AVX2's 16.
    pub const ROWS: usize = 4;

    pub fn dots_f32(w: &[f32], k: usize, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); slices are bounds-checked inside.
            return unsafe { x86::dots_f32(w, k, x, out) };
        }
        portable(w, k, x, out, |v| *v)
    }

    pub fn dots_f16(w: &[half::f16], k: usize, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
            return unsafe { x86::dots_f16(w, k, x, out) };
        }
        portable(w, k, x, out, |v| v.to_f32())
    }

    pub fn dots_i8(w: &[i8], k: usize, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { x86::dots_i8(w, k, x, out) };
        }
        portable(w, k, x, out, |v| *v as f32)
    }

    fn portable<T>(w: &[T], k: usize, x: &[f32], out: &mut [f32], f: impl Fn(&T) -> f32) {
        let m = x.len() / k;
        for (j, wr) in w.chunks(k).enumerate() {
            for i in 0..m {
                out[j * m + i] = wr
                    .iter()
                    .zip(&x[i * k..(i + 1) * k])
                    .map(|(a, b)| f(a) * b)
                    .sum();
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        /// Activation rows per pass over a weight tile.
        const GROUP: usize = 3;

        /// Horizontal sum of 8 lanes.
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            // SAFETY: register-only intrinsics; the caller runs with AVX enabled.
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            }
        }

        /// One weight element type: how to load 8 of them as f32 lanes, and one as f32.
        trait Weight: Copy {
            unsafe fn load8(p: *const Self) -> __m256;
            fn to_f32(self) -> f32;
        }

        impl Weight for f32 {
            #[inline(always)]
            unsafe fn load8(p: *const f32) -> __m256 {
                unsafe { _mm256_loadu_ps(p) }
            }
            fn to_f32(self) -> f32 {
                self
            }
        }

        impl Weight for half::f16 {
            #[inline(always)]
            unsafe fn load8(p: *const half::f16) -> __m256 {
                unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
            }
            fn to_f32(self) -> f32 {
                half::f16::to_f32(self)
            }
        }

        impl Weight for i8 {
            #[inline(always)]
            unsafe fn load8(p: *const i8) -> __m256 {
                unsafe {
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
                }
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
        }

        /// `R` weight rows × `G` activation rows starting at `i0`.
        #[inline(always)]
        unsafe fn tile<W: Weight, const R: usize, const G: usize>(
            w: &[W],
            k: usize,
            x: &[f32],
            i0: usize,
            m: usize,
            out: &mut [f32],
        ) {
            // SAFETY: every pointer offset stays inside the slices (asserted first); the caller runs with AVX2
            // and FMA enabled.
            unsafe {
                assert!(w.len() >= R * k && x.len() >= (i0 + G) * k && out.len() >= R * m);
                let body = k / 8 * 8;
                let mut acc = [[_mm256_setzero_ps(); G]; R];
                let mut c = 0;
                while c < body {
                    let mut wv = [_mm256_setzero_ps(); R];
                    for (r, v) in wv.iter_mut().enumerate() {
                        // r < R and c + 8 <= k: within `w`.
                        *v = W::load8(w.as_ptr().add(r * k + c));
                    }
                    for g in 0..G {
                        // i0 + g < i0 + G and c + 8 <= k: within `x`.
                        let xv = _mm256_loadu_ps(x.as_ptr().add((i0 + g) * k + c));
                        for (a, wr) in acc.iter_mut().zip(&wv) {
                            a[g] = _mm256_fmadd_ps(xv, *wr, a[g]);
                        }
                    }
                    c += 8;
                }
                for r in 0..R {
                    for g in 0..G {
                        let mut s = hsum(acc[r][g]);
                        for t in body..k {
                            s += w[r * k + t].to_f32() * x[(i0 + g) * k + t];
                        }
                        out[r * m + i0 + g] = s;
                    }
                }
            }
        }

        /// f32 weights: tiles of up to 4 weight rows × [`GROUP`] activation rows.
        #[inline(always)]
        unsafe fn dots<W: Weight>(w: &[W], k: usize, x: &[f32], out: &mut [f32]) {
            let m = x.len() / k;
            let rows = w.len() / k;
            let mut i0 = 0;
            while i0 < m {
                let g = (m - i0).min(GROUP);
                // SAFETY (all arms): sizes match the slices; AVX2/FMA enabled by the caller.
                unsafe {
                    match (rows, g) {
                        (4, 3) => tile::<W, 4, 3>(w, k, x, i0, m, out),
                        (4, 2) => tile::<W, 4, 2>(w, k, x, i0, m, out),
                        (4, 1) => tile::<W, 4, 1>(w, k, x, i0, m, out),
                        (3, 3) => tile::<W, 3, 3>(w, k, x, i0, m, out),
                        (3, 2) => tile::<W, 3, 2>(w, k, x, i0, m, out),
                        (3, 1) => tile::<W, 3, 1>(w, k, x, i0, m, out),
                        (2, 3) => tile::<W, 2, 3>(w, k, x, i0, m, out),
                        (2, 2) => tile::<W, 2, 2>(w, k, x, i0, m, out),
                        (2, 1) => tile::<W, 2, 1>(w, k, x, i0, m, out),
                        (1, 3) => tile::<W, 1, 3>(w, k, x, i0, m, out),
                        (1, 2) => tile::<W, 1, 2>(w, k, x, i0, m, out),
                        (1, 1) => tile::<W, 1, 1>(w, k, x, i0, m, out),
                        _ => unreachable!("tiles are at most {} rows", super::ROWS),
                    }
                }
                i0 += g;
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dots_f32(w: &[f32], k: usize, x: &[f32], out: &mut [f32]) {
            unsafe { dots(w, k, x, out) }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn dots_f16(w: &[half::f16], k: usize, x: &[f32], out: &mut [f32]) {
            unsafe { dots(w, k, x, out) }
        }

        /// Activation rows per pass for int8 weights, two weight rows at a time: each 8-weight load is
        /// converted to f32 once and used for up to 6 activation rows (beam 5 takes one pass), where the f32
        /// tiling (4 × 3) would convert every weight twice for 5 rows. 12 + 2 + 1 registers.
        const GROUP_I8: usize = 6;

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dots_i8(w: &[i8], k: usize, x: &[f32], out: &mut [f32]) {
            let m = x.len() / k;
            let rows = w.len() / k;
            let mut r0 = 0;
            while r0 < rows {
                let r = (rows - r0).min(2);
                let (w, out) = (&w[r0 * k..(r0 + r) * k], &mut out[r0 * m..(r0 + r) * m]);
                let mut i0 = 0;
                while i0 < m {
                    let g = (m - i0).min(GROUP_I8);
                    // SAFETY (all arms): sizes match the slices; AVX2/FMA enabled on this function.
                    unsafe {
                        match (r, g) {
                            (2, 6) => tile::<i8, 2, 6>(w, k, x, i0, m, out),
                            (2, 5) => tile::<i8, 2, 5>(w, k, x, i0, m, out),
                            (2, 4) => tile::<i8, 2, 4>(w, k, x, i0, m, out),
                            (2, 3) => tile::<i8, 2, 3>(w, k, x, i0, m, out),
                            (2, 2) => tile::<i8, 2, 2>(w, k, x, i0, m, out),
                            (2, 1) => tile::<i8, 2, 1>(w, k, x, i0, m, out),
                            (1, 6) => tile::<i8, 1, 6>(w, k, x, i0, m, out),
                            (1, 5) => tile::<i8, 1, 5>(w, k, x, i0, m, out),
                            (1, 4) => tile::<i8, 1, 4>(w, k, x, i0, m, out),
                            (1, 3) => tile::<i8, 1, 3>(w, k, x, i0, m, out),
                            (1, 2) => tile::<i8, 1, 2>(w, k, x, i0, m, out),
                            (1, 1) => tile::<i8, 1, 1>(w, k, x, i0, m, out),
                            _ => unreachable!("int8 tiles are at most 2 rows"),
                        }
                    }
                    i0 += g;
                }
                r0 += r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        w: &[f32],
        x: &[f32],
        m: usize,
        n: usize,
        k: usize,
        b: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut y = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[j * k + t] as f64;
                }
                y[i * n + j] = s + b.map_or(0.0, |b| b[j] as f64);
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        // A small LCG: deterministic, no test dependency.
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn f32_matches_a_double_precision_reference() {
        // Odd sizes exercise the scalar tails and the partial row groups; n spans several tasks.
        for (m, n, k) in [(1, 3, 5), (5, 600, 384), (7, 257, 19), (16, 1000, 64)] {
            let (w, x, b) = (data(n * k, 1), data(m * k, 2), data(n, 3));
            let got = RowMatrix::from_f32(n, k, w.clone()).matmul(&x, m, Some(&b));
            let want = reference(&w, &x, m, n, k, Some(&b));
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "{m}x{n}x{k}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn int8_error_is_bounded_by_the_rounding_of_the_weights() {
        let (m, n, k) = (5, 300, 384);
        let (w, x) = (data(n * k, 4), data(m * k, 5));
        let q = RowMatrix::quantize_int8(n, k, &w);
        assert!(q.is_int8());
        let got = q.matmul(&x, m, None);
        let want = reference(&w, &x, m, n, k, None);
        for j in 0..n {
            let amax = w[j * k..(j + 1) * k]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            // Each weight moves by at most half a step (amax / 254); |x| ≤ 0.5.
            let bound = k as f32 * 0.5 * amax / 254.0 + 1e-5;
            for i in 0..m {
                let (g, e) = (got[i * n + j], want[i * n + j]);
                assert!(
                    (g - e).abs() <= bound,
                    "row {j}: {g} vs {e} (bound {bound})"
                );
            }
        }
        // Dequantized rows round-trip to within half a step too.
        let r = q.row(7);
        let amax = w[7 * k..8 * k].iter().fold(0f32, |a, v| a.max(v.abs()));
        for (a, b) in r.iter().zip(&w[7 * k..8 * k]) {
            assert!((a - b).abs() <= amax / 254.0 + 1e-7);
        }
    }

    #[test]
    fn f16_rows_give_the_products_of_their_f32_values() {
        for (m, n, k) in [(1, 9, 13), (5, 600, 384), (16, 33, 64)] {
            let w: Vec<half::f16> = data(n * k, 7)
                .iter()
                .map(|v| half::f16::from_f32(*v))
                .collect();
            let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
            let (x, b) = (data(m * k, 8), data(n, 9));
            let h = RowMatrix::from_f16(n, k, w);
            assert_eq!(
                h.matmul(&x, m, Some(&b)),
                RowMatrix::from_f32(n, k, wf.clone()).matmul(&x, m, Some(&b))
            );
            assert_eq!(h.row(n - 1), wf[(n - 1) * k..].to_vec());
        }
    }

    #[test]
    fn vectorized_quantization_rounds_like_the_scalar_rule() {
        // Values on exact half steps too (k * v = n + 0.5), which must round away from zero.
        let (n, k) = (9, 37);
        let mut w = data(n * k, 6);
        w[3] = 127.0;
        w[4] = 0.5;
        w[5] = -1.5;
        w[6] = 2.5;
        let q = RowMatrix::quantize_int8(n, k, &w);
        let Rows::Int8 { q: got, scale } = &q.w else {
            unreachable!()
        };
        for (r, row) in w.chunks(k).enumerate() {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = 127.0 / amax;
            assert_eq!(scale[r], 1.0 / s);
            for (c, v) in row.iter().enumerate() {
                assert_eq!(got[r * k + c], (v * s).round().clamp(-127.0, 127.0) as i8);
            }
        }
        assert_eq!(&got[3..7], &[127, 1, -2, 3]);
    }

    #[test]
    fn ct2_scales_are_inverted() {
        // CTranslate2 stores `value = q / scale`.
        let m = RowMatrix::from_ct2_int8(1, 2, &[10, -20], &[4.0]);
        assert_eq!(m.row(0), vec![2.5, -5.0]);
    }
}

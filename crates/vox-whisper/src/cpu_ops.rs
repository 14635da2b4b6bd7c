//! Softmax and erf-GELU over contiguous CPU f32 tensors, with an exp and an erf that the compiler vectorizes.
//!
//! Why: candle's CPU versions call libm's scalar `expf`/`erff` per element; in the encoder (6 × 1500 × 1500
//! attention scores and 1500 × 1536 GELU inputs per layer) those calls took a quarter of the time. The
//! approximations here are accurate to a few ulp, below f32 rounding of the
//! results they feed. Other devices and dtypes fall back to candle's ops.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// `exp(x)` by range reduction (`x = n ln2 + r`) and a degree-6 polynomial on `|r| ≤ ln2/2`; branch-free so
/// that loops over it vectorize. Inputs at or below about -87.3 (and -inf) give exactly 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.336_54, 88.722_83);
    let n = (x * std::f32::consts::LOG2_E).round();
    // ln2 split in two so that `x - n ln2` is exact enough.
    let r = n.mul_add(-0.693_145_75, x);
    let r = n.mul_add(-1.428_606_8e-6, r);
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_66)
        .mul_add(r, 0.5);
    let p = (p * r).mul_add(r, r) + 1.0;
    // 2^n through the exponent bits, as 2^(n-1) · 2 so that n = 128 stays representable; n = -126 gives 0.
    let scale = f32::from_bits((((n as i32) + 126).clamp(0, 254) as u32) << 23);
    p * scale * 2.0
}

/// `erf(x)`: the rational approximation `x P(x²) / Q(x²)` on `|x| ≤ 4` used by Eigen and XLA for f32
/// (erf(±4) rounds to ±1 in f32); absolute error below 5e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = (-2.726_142_3e-10f32)
        .mul_add(x2, 2.770_681_4e-8)
        .mul_add(x2, -2.101_024e-6)
        .mul_add(x2, -5.692_506_4e-5)
        .mul_add(x2, -7.349_906_3e-4)
        .mul_add(x2, -2.954_600_2e-3)
        .mul_add(x2, -1.609_603_3e-2)
        * x;
    let q = (-1.456_607_2e-5f32)
        .mul_add(x2, -2.133_740_6e-4)
        .mul_add(x2, -1.682_827e-3)
        .mul_add(x2, -7.373_329e-3)
        .mul_add(x2, -1.426_474e-2);
    (p / q).clamp(-1.0, 1.0)
}

#[inline(always)]
fn gelu_slice(xs: &mut [f32]) {
    for v in xs.iter_mut() {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Sum and max over 8 independent lanes: a single accumulator would serialize the loop (float addition is
/// not reassociated by the compiler).
#[inline(always)]
fn lanes<F: Fn(f32, f32) -> f32>(x: &[f32], init: f32, f: F) -> f32 {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    rest.iter().chain(acc.iter()).fold(init, |a, v| f(a, *v))
}

#[inline(always)]
fn softmax_rows(xs: &mut [f32], n: usize) {
    for row in xs.chunks_mut(n) {
        let max = lanes(row, f32::NEG_INFINITY, |a, b| if a > b { a } else { b });
        for v in row.iter_mut() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Runs `f` with AVX2+FMA enabled when the CPU has them (the binary targets baseline x86-64).
macro_rules! dispatch {
    ($name:ident, $body:ident, $($arg:ident: $ty:ty),*) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn fast($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

#[inline(always)]
fn logsumexp_body(x: &[f32]) -> f32 {
    let max = lanes(x, f32::NEG_INFINITY, |a, b| if a > b { a } else { b });
    if max == f32::NEG_INFINITY {
        return max;
    }
    // Not `lanes`: its final fold would apply the exp to the lane sums too.
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += exp(c[i] - max);
        }
    }
    let sum = rest.iter().map(|v| exp(v - max)).sum::<f32>() + acc.iter().sum::<f32>();
    max + sum.ln()
}

/// `ln Σ exp(x)` (−∞ when every element is −∞): a decoding step's normalizer over the vocabulary, once per
/// hypothesis and token.
pub fn logsumexp(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn fast(x: &[f32]) -> f32 {
            logsumexp_body(x)
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { fast(x) };
        }
    }
    logsumexp_body(x)
}

dispatch!(gelu_chunk, gelu_slice, xs: &mut [f32]);
dispatch!(softmax_chunk, softmax_rows, xs: &mut [f32], n: usize);

/// Softmax of each `n`-element row of `xs`, in place, on the calling thread.
pub fn softmax_rows_slice(xs: &mut [f32], n: usize) {
    softmax_chunk(xs, n)
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The in-place forms: the encoder's attention scores are 54 MB per layer, and a copy of them costs as much
/// as the softmax itself.
struct InPlace {
    /// Row length for the softmax; `None` for GELU.
    softmax_row: Option<usize>,
}

impl candle_core::InplaceOp1 for InPlace {
    fn name(&self) -> &'static str {
        if self.softmax_row.is_some() {
            "vox-softmax"
        } else {
            "vox-gelu-erf"
        }
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<()> {
        let candle_core::CpuStorage::F32(all) = storage else {
            candle_core::bail!("{}: f32 only", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous tensors only", self.name())
        };
        let xs = &mut all[start..end];
        match self.softmax_row {
            Some(n) => xs
                .par_chunks_mut(((CHUNK / n).max(1)) * n)
                .for_each(|c| softmax_chunk(c, n)),
            None => xs.par_chunks_mut(CHUNK).for_each(gelu_chunk),
        }
        Ok(())
    }
}

fn is_cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// GELU with erf (Whisper's activation). Consumes `x`: on CPU it is overwritten when it owns its storage.
pub fn gelu_erf(x: Tensor) -> Result<Tensor> {
    if !is_cpu_f32(&x) {
        return x.gelu_erf();
    }
    let x = x.contiguous()?;
    x.inplace_op1(&InPlace { softmax_row: None })?;
    Ok(x)
}

/// Softmax over the last dimension. Consumes `x` like [`gelu_erf`].
pub fn softmax_last_dim(x: Tensor) -> Result<Tensor> {
    if !is_cpu_f32(&x) {
        return candle_nn::ops::softmax_last_dim(&x);
    }
    let n = x.dims().last().copied().unwrap_or(1).max(1);
    let x = x.contiguous()?;
    x.inplace_op1(&InPlace {
        softmax_row: Some(n),
    })?;
    Ok(x)
}

/// Makes glibc's malloc keep freed blocks of any size for reuse. The encoder allocates and frees buffers of tens
/// of MB per layer (the attention scores alone are 54 MB for one window); glibc serves blocks over 32 MiB with a
/// fresh `mmap` each time, so every layer paid page faults and zeroing for all of them (15% of encoder time).
/// Peak memory is unchanged: the same blocks are reused instead of remapped. A process-wide setting, so binaries
/// call it once at start; a no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before inference threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_to_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn logsumexp_matches_double_precision() {
        let x: Vec<f32> = (0..51_871)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let m = x.iter().fold(f64::NEG_INFINITY, |a, v| a.max(*v as f64));
        let want = m + x.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        assert!(
            (logsumexp(&x) as f64 - want).abs() < 1e-5 * want.abs(),
            "{} vs {want}",
            logsumexp(&x)
        );
        let mut y = vec![f32::NEG_INFINITY; 9];
        assert_eq!(logsumexp(&y), f32::NEG_INFINITY);
        y[4] = 2.5;
        assert_eq!(logsumexp(&y), 2.5);
    }

    #[test]
    fn erf_is_accurate() {
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = libm::erf(x as f64);
            // Largest near the tails (a few ulp of values near ±1), where GELU scales it by about 0 or adds it to 1.
            assert!(
                (erf(x) as f64 - want).abs() < 5e-7,
                "erf({x}): {} vs {want}",
                erf(x)
            );
            x += 0.001;
        }
    }

    #[test]
    fn tensor_ops_match_candle() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let x = (Tensor::randn(0f32, 3.0, (3, 7, 513), &dev)? - 1.0)?;
        // Relative to max(1, |b|): GELU multiplies erf's error (≤ 5e-7, either side) by x/2, and x is random
        // (an absolute bound failed about once in 30 runs).
        let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            ((a - b)?.abs()? / b.abs()?.maximum(1f32)?)?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()
        };
        assert!(diff(&gelu_erf(x.copy()?)?, &x.gelu_erf()?)? < 1e-6);
        let s = softmax_last_dim(x.copy()?)?;
        assert!(diff(&s, &candle_nn::ops::softmax_last_dim(&x)?)? < 1e-6);
        // Masked (-inf) entries become exact zeros, as in candle.
        let m = Tensor::new(&[[0f32, f32::NEG_INFINITY, 1.0]], &dev)?;
        let s = softmax_last_dim(m)?.to_vec2::<f32>()?;
        assert_eq!(s[0][1], 0.0);
        Ok(())
    }
}

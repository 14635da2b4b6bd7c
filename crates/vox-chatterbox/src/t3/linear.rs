//! A bias-free linear layer with a CPU fast path for decoding.
//!
//! A T3 decode step multiplies 2 rows (the CFG pair) by every weight matrix: ~2 GB of f32
//! weights per step at the full-size config, so speed is memory bandwidth. candle's CPU gemm
//! packs the transposed weight on each call, which reads and writes it again; for at most
//! `SMALL_M` f32 rows this computes the dot products straight from the row-major weight, each
//! weight row read once for all input rows, split across threads. Everything else (GPU, half
//! precision, prefill) goes through candle's matmul.

use candle_core::{DType, Device, Module, Result, Storage, Tensor};

const SMALL_M: usize = 4;
const LANES: usize = 8;

#[derive(Debug, Clone)]
pub struct FastLinear {
    weight: Tensor,
}

impl FastLinear {
    pub fn new(weight: Tensor) -> Self {
        Self { weight }
    }
}

impl Module for FastLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().expect("rank ≥ 1");
        let rows = x.elem_count() / k;
        let x2 = x.reshape((rows, k))?;
        let y = match small_m_matmul(&x2, &self.weight)? {
            Some(y) => y,
            None => x2.matmul(&self.weight.t()?)?,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank ≥ 1") = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

/// `x (m, k) · wᵀ` for `w (n, k)` when both are f32 on the CPU and `m ≤ SMALL_M`.
fn small_m_matmul(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (m, k) = x.dims2()?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 || w.dtype() != DType::F32 || m > SMALL_M {
        return Ok(None);
    }
    let (n, wk) = w.dims2()?;
    if wk != k {
        candle_core::bail!("linear: input width {k}, weight {n}×{wk}");
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    let wdata = &cpu.as_slice::<f32>()?[start..end];

    // out_t is (n, m): each thread owns a contiguous band of weight rows and of outputs.
    let mut out_t = vec![0f32; n * m];
    let threads = candle_core::utils::get_num_threads().clamp(1, 64);
    let band = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (i, out) in out_t.chunks_mut(band * m).enumerate() {
            let rows = &wdata[i * band * k..(i * band * k + out.len() / m * k)];
            let xs = &xs;
            s.spawn(move || dot_band(rows, xs, k, m, out));
        }
    });
    let out = Tensor::from_vec(out_t, (n, m), &Device::Cpu)?;
    Ok(Some(out.t()?.contiguous()?))
}

/// For each weight row in `rows` (r × k) and each input row j < m: out[r·m + j] = w_r · x_j.
fn dot_band(rows: &[f32], xs: &[f32], k: usize, m: usize, out: &mut [f32]) {
    for (r, w) in rows.chunks_exact(k).enumerate() {
        let mut acc = [[0f32; LANES]; SMALL_M];
        let body = k - k % LANES;
        for c in (0..body).step_by(LANES) {
            let wc: &[f32; LANES] = w[c..c + LANES].try_into().expect("lane chunk");
            for (j, a) in acc.iter_mut().enumerate().take(m) {
                let xc: &[f32; LANES] = xs[j * k + c..j * k + c + LANES]
                    .try_into()
                    .expect("lane chunk");
                for l in 0..LANES {
                    a[l] += wc[l] * xc[l];
                }
            }
        }
        for (j, a) in acc.iter().enumerate().take(m) {
            let mut s: f32 = a.iter().sum();
            for c in body..k {
                s += w[c] * xs[j * k + c];
            }
            out[r * m + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_candle_matmul() {
        let dev = Device::Cpu;
        for (m, n, k) in [(1, 7, 13), (2, 33, 64), (4, 5, 9), (3, 130, 100)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let fast = small_m_matmul(&x, &w).unwrap().expect("fast path taken");
            let slow = x.matmul(&w.t().unwrap()).unwrap();
            let d: f32 = (fast - slow)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-4, "({m},{n},{k}): {d}");
        }
        let big = Tensor::zeros((5, 8), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 8), DType::F32, &dev).unwrap();
        assert!(small_m_matmul(&big, &w).unwrap().is_none());
    }
}

//! Raw little-endian bytes to candle tensors, quantization and dequantization.
//!
//! Hot paths avoid per-element work in this crate: data is reinterpreted (or memcpy'd when unaligned) with
//! `bytemuck`, and f16/bf16 <-> f32 conversion uses `half`'s slice conversion (F16C/NEON when available).

use std::borrow::Cow;

use candle_core::{DType, Device, Tensor};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::Ct2Dtype;

/// Work is split into chunks of this many elements, converted in parallel on rayon's pool (page faults on
/// fresh output buffers and memory bandwidth dominate loading, and both scale with cores).
const CHUNK: usize = 1 << 18;

/// `bytes` as a slice of `T`: borrowed when aligned, copied otherwise.
fn cast_or_copy<T: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Runs `f` over matching chunks of `src` (`per` items per output element) and `dst`, in parallel when large.
fn par_chunks<S: Sync, D: Send>(
    src: &[S],
    per: usize,
    dst: &mut [D],
    f: impl Fn(&[S], &mut [D]) + Sync,
) {
    if dst.len() <= CHUNK {
        f(src, dst);
    } else {
        src.par_chunks(CHUNK * per)
            .zip(dst.par_chunks_mut(CHUNK))
            .for_each(|(s, d)| f(s, d));
    }
}

/// Little-endian 16-bit floats (aligned or not) to f32 with `convert` (half's vectorised slice conversion).
fn half_to_f32<H: bytemuck::Pod + Send + Sync>(
    bytes: &[u8],
    convert: fn(&[H], &mut [f32]),
) -> Vec<f32> {
    let mut out = vec![0f32; bytes.len() / 2];
    par_chunks(bytes, 2, &mut out, |b, o| {
        match bytemuck::try_cast_slice::<u8, H>(b) {
            Ok(h) => convert(h, o),
            Err(_) => {
                // Unaligned: stage through a small aligned buffer instead of copying the whole tensor.
                let mut tmp = [H::zeroed(); 4096];
                for (b, o) in b.chunks(2 * tmp.len()).zip(o.chunks_mut(tmp.len())) {
                    let t = &mut tmp[..o.len()];
                    bytemuck::cast_slice_mut(t).copy_from_slice(b);
                    convert(t, o);
                }
            }
        }
    });
    out
}

/// Float data of type `src` as f32.
pub(crate) fn floats_to_f32(bytes: &[u8], src: Ct2Dtype) -> Cow<'_, [f32]> {
    match src {
        Ct2Dtype::F16 => Cow::Owned(half_to_f32::<f16>(bytes, |h, o| h.convert_to_f32_slice(o))),
        Ct2Dtype::BF16 => Cow::Owned(half_to_f32::<bf16>(bytes, |h, o| h.convert_to_f32_slice(o))),
        Ct2Dtype::F32 => cast_or_copy::<f32>(bytes),
        _ => unreachable!("floats_to_f32 on {src:?}"),
    }
}

/// Integer data of type `src` widened to i64.
pub(crate) fn ints_to_i64(bytes: &[u8], src: Ct2Dtype) -> Vec<i64> {
    match src {
        Ct2Dtype::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
        Ct2Dtype::I16 => bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
            .collect(),
        Ct2Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        _ => unreachable!("ints_to_i64 on {src:?}"),
    }
}

/// An f32 buffer as a tensor of `dtype` on `device` (no copy for f32 on the CPU).
pub(crate) fn f32_to_tensor(
    values: Vec<f32>,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    match (dtype, device) {
        (DType::F32, _) => Tensor::from_vec(values, shape, device),
        (DType::F16, Device::Cpu) => {
            let mut out = bytemuck::zeroed_vec::<f16>(values.len());
            par_chunks(&values, 1, &mut out, |v, o| o.convert_from_f32_slice(v));
            Tensor::from_vec(out, shape, device)
        }
        (DType::BF16, Device::Cpu) => {
            let mut out = bytemuck::zeroed_vec::<bf16>(values.len());
            par_chunks(&values, 1, &mut out, |v, o| o.convert_from_f32_slice(v));
            Tensor::from_vec(out, shape, device)
        }
        _ => Tensor::from_vec(values, shape, device)?.to_dtype(dtype),
    }
}

fn candle_dtype(src: Ct2Dtype) -> DType {
    match src {
        Ct2Dtype::F32 => DType::F32,
        Ct2Dtype::F16 => DType::F16,
        Ct2Dtype::BF16 => DType::BF16,
        Ct2Dtype::I16 => DType::I16,
        Ct2Dtype::I32 => DType::I32,
        Ct2Dtype::I8 => unreachable!("candle has no i8"),
    }
}

/// Data of type `src` (not dequantized) as a tensor of `dtype` on `device`.
///
/// On the CPU floats are converted here without per-element overhead; on an accelerator the data is uploaded
/// in its stored type and converted there. Integers are cast numerically (via i64).
pub(crate) fn raw_to_tensor(
    bytes: &[u8],
    src: Ct2Dtype,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    if !src.is_float() {
        return Tensor::from_vec(ints_to_i64(bytes, src), shape, device)?.to_dtype(dtype);
    }
    if !device.is_cpu() {
        return Tensor::from_raw_buffer(bytes, candle_dtype(src), shape, device)?.to_dtype(dtype);
    }
    match (src, dtype) {
        (Ct2Dtype::F16, DType::F16) => {
            Tensor::from_vec(cast_or_copy::<f16>(bytes).into_owned(), shape, device)
        }
        (Ct2Dtype::BF16, DType::BF16) => {
            Tensor::from_vec(cast_or_copy::<bf16>(bytes).into_owned(), shape, device)
        }
        _ => f32_to_tensor(floats_to_f32(bytes, src).into_owned(), shape, dtype, device),
    }
}

/// Applies `f(rows_of_a, rows_of_b, rows_of_c)` to groups of whole rows, in parallel when large.
fn par_rows<A: Sync, B: Send, C: Send>(
    a: &[A],
    b: &mut [B],
    c: &mut [C],
    cols: usize,
    f: impl Fn(&[A], &mut [B], &mut [C]) + Sync,
) {
    let rows_per = (CHUNK / cols.max(1)).max(1);
    if c.len() <= rows_per {
        f(a, b, c);
    } else {
        let groups = a
            .par_chunks(rows_per * cols)
            .zip(b.par_chunks_mut(rows_per * cols));
        groups
            .zip(c.par_chunks_mut(rows_per))
            .for_each(|((a, b), c)| f(a, b, c));
    }
}

fn dequantize_rows<Q: Copy + Sync + Into<f32>>(q: &[Q], scales: &[f32], out: &mut [f32]) {
    let cols = out.len() / scales.len();
    let mut scales = scales.to_vec();
    par_rows(q, out, &mut scales, cols, |q, out, scales| {
        for ((o, q), &mut s) in out
            .chunks_exact_mut(cols)
            .zip(q.chunks_exact(cols))
            .zip(scales)
        {
            let r = 1.0 / s;
            o.iter_mut().zip(q).for_each(|(o, &q)| *o = q.into() * r);
        }
    });
}

/// Dequantizes int8 (`scales` per row) or int16 (one scale) data as CTranslate2 does: `v * (1 / scale)`.
/// `None` if the number of scales does not divide the number of values.
pub(crate) fn dequantize(bytes: &[u8], src: Ct2Dtype, scales: &[f32]) -> Option<Vec<f32>> {
    let mut out = vec![0f32; bytes.len() / src.size()];
    if scales.is_empty() || !out.len().is_multiple_of(scales.len()) {
        return None;
    }
    if out.is_empty() {
        return Some(out);
    }
    match src {
        Ct2Dtype::I8 => dequantize_rows::<i8>(bytemuck::cast_slice(bytes), scales, &mut out),
        Ct2Dtype::I16 => dequantize_rows::<i16>(&cast_or_copy(bytes), scales, &mut out),
        _ => return None,
    }
    Some(out)
}

/// Quantizes `values` (`rows` rows) to int8 exactly like CTranslate2's `_quantize` for the int8 types:
/// per row `amax = max |v|` (127 if 0), `scale = 127 / amax`, `q = rint(v * scale)` (ties to even), in f32.
pub(crate) fn quantize_int8_rows(values: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let cols = values.len().checked_div(rows).unwrap_or(0);
    let mut q = vec![0i8; values.len()];
    let mut scales = vec![1f32; rows];
    if cols == 0 {
        return (q, scales);
    }
    par_rows(values, &mut q, &mut scales, cols, |values, q, scales| {
        for ((row, out), scale) in values
            .chunks_exact(cols)
            .zip(q.chunks_exact_mut(cols))
            .zip(scales)
        {
            let mut amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if amax == 0.0 {
                amax = 127.0;
            }
            *scale = 127.0f32 / amax;
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (v * *scale).round_ties_even() as i8;
            }
        }
    });
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_matches_ctranslate2_rules() {
        // Row 0: amax 2 -> scale 63.5; 1.0*63.5 = 63.5 rounds to even 64; -2 -> -127.
        // Row 1: all zero -> amax 127 -> scale 1.
        let (q, s) = quantize_int8_rows(&[1.0, -2.0, 0.5, 0.0, 0.0, 0.0], 2);
        assert_eq!(s, vec![63.5, 1.0]);
        assert_eq!(q, vec![64, -127, 32, 0, 0, 0]);
        let back = dequantize(bytemuck::cast_slice(&q), Ct2Dtype::I8, &s).unwrap();
        assert!((back[1] + 2.0).abs() < 1e-6);
    }

    #[test]
    fn unaligned_f16_converts() {
        let vals = [
            f16::from_f32(1.5),
            f16::from_f32(-0.25),
            f16::from_f32(65504.0),
        ];
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(bytemuck::cast_slice(&vals));
        assert_eq!(
            &*floats_to_f32(&bytes[1..], Ct2Dtype::F16),
            &[1.5, -0.25, 65504.0]
        );
    }

    #[test]
    fn dequantize_rejects_bad_scale_count() {
        assert!(dequantize(&[1, 2, 3], Ct2Dtype::I8, &[1.0, 2.0]).is_none());
    }
}

//! Time of the decoder's per-token products (rowmat): the 51864 × 384 output projection and a 1536 × 384
//! feed-forward matrix, f32, int8 weights with f32 activations, and int8 × int8 (quantized activations, the
//! output projection's kernel), for 1 and 5 activation rows (greedy, beam 5). Best of N.
//!
//!   cargo run --release -p vox-whisper --example rowmat_bench -- [N]

use std::time::Instant;

use vox_whisper::rowmat::RowMatrix;

fn main() {
    let n_iter: usize = std::env::args().nth(1).map_or(50, |v| v.parse().unwrap());
    let mut seed = 1u32;
    let mut data = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    };
    for (n, k) in [(51864, 384), (1536, 384)] {
        let w = data(n * k);
        let q = RowMatrix::quantize_int8(n, k, &w);
        let qq = q.to_int8().with_int8_activations();
        let f = RowMatrix::from_f32(n, k, w);
        for m in [1, 5] {
            let x = data(m * k);
            for (name, mat) in [("int8", &q), ("int8 x int8", &qq), ("f32", &f)] {
                let mut best = f64::MAX;
                for _ in 0..n_iter {
                    let t = Instant::now();
                    std::hint::black_box(mat.matmul(&x, m, None));
                    best = best.min(t.elapsed().as_secs_f64());
                }
                println!("{n} x {k}, m = {m}, {name}: {:.1} µs", best * 1e6);
            }
        }
    }
}

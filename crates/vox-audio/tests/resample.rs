//! Resampling: lengths (tails included), quality, channels, and the Whisper loader.

mod common;

use common::*;
use vox_audio::{Audio, AudioError, Limits, load_for_whisper, resample};

fn mono(samples: Vec<f32>, sample_rate: u32) -> Audio {
    Audio {
        samples,
        channels: 1,
        sample_rate,
    }
}

#[test]
fn same_rate_is_a_no_op() {
    let a = mono(sine(440.0, 0.5, 0.1, 16_000), 16_000);
    assert_eq!(resample(&a, 16_000).unwrap(), a);
}

#[test]
fn output_length_covers_the_tail() {
    for (from, to) in [
        (44_100, 16_000),
        (16_000, 48_000),
        (48_000, 16_000),
        (22_050, 16_000),
        (8_000, 24_000),
        (44_101, 16_000),
    ] {
        for n in [1, 7, 1023, 1024, 1025, 16_001] {
            let out = resample(&mono(vec![0.1; n], from), to).unwrap();
            let expected = (n as u64 * to as u64).div_ceil(from as u64) as usize;
            assert_eq!(out.samples.len(), expected, "{from} -> {to}, {n} frames");
            assert_eq!(out.sample_rate, to);
        }
    }
    assert!(
        resample(&mono(vec![], 44_100), 16_000)
            .unwrap()
            .samples
            .is_empty()
    );
}

#[test]
fn sine_survives_resampling() {
    for (from, to) in [
        (44_100, 16_000),
        (16_000, 48_000),
        (22_050, 16_000),
        (96_000, 16_000),
        (8_000, 24_000),
    ] {
        let input = sine(1000.0, 0.5, 1.0, from);
        let out = resample(&mono(input, from), to).unwrap();
        let ideal = sine(1000.0, 0.5, 1.0, to);
        assert!(out.samples.len().abs_diff(ideal.len()) <= 1);
        // Skip the edges, where the filter sees the implicit zeros around the clip; check the
        // middle and the end of the clip (the tail must be real signal, not silence).
        let n = ideal.len().min(out.samples.len());
        let middle_err = (100..n - 100)
            .map(|i| (out.samples[i] - ideal[i]).abs())
            .fold(0.0, f32::max);
        let tail_corr = correlation(&out.samples[n - 400..n - 50], &ideal[n - 400..n - 50]);
        println!("{from} -> {to}: max error {middle_err:e}, tail correlation {tail_corr:.5}");
        assert!(middle_err < 5e-3, "{from} -> {to}: {middle_err}");
        assert!(tail_corr > 0.999, "{from} -> {to}: {tail_corr}");
    }
}

#[test]
fn odd_rate_pair_uses_sinc_and_stays_aligned_within_a_frame() {
    let out = resample(&mono(sine(1000.0, 0.5, 1.0, 44_101), 44_101), 16_000).unwrap();
    let ideal = sine(1000.0, 0.5, 1.0, 16_000);
    assert_eq!(out.samples.len(), 16_000);
    let (corr, lag) = best_correlation(&out.samples[100..15_900], &ideal[100..15_900], 3);
    println!("44101 -> 16000: correlation {corr:.5} at lag {lag}");
    assert!(corr > 0.97 && lag.abs() <= 1, "{corr} at lag {lag}");
}

#[test]
fn high_frequencies_are_filtered_when_downsampling() {
    // 12 kHz cannot exist at 16 kHz; it must be removed, not aliased to 4 kHz.
    let out = resample(&mono(sine(12_000.0, 0.5, 0.5, 48_000), 48_000), 16_000).unwrap();
    let rms = (out.samples[200..7800].iter().map(|x| x * x).sum::<f32>() / 7600.0).sqrt();
    assert!(rms < 1e-3, "aliased energy, rms {rms}");
}

#[test]
fn channels_stay_separate() {
    let (l, r) = (sine(440.0, 0.5, 0.2, 44_100), vec![0.0f32; 8820]);
    let samples = l.iter().zip(&r).flat_map(|(&a, &b)| [a, b]).collect();
    let out = resample(
        &Audio {
            samples,
            channels: 2,
            sample_rate: 44_100,
        },
        16_000,
    )
    .unwrap();
    assert_eq!((out.channels, out.frames()), (2, 3200));
    assert!(
        out.samples
            .iter()
            .skip(1)
            .step_by(2)
            .all(|x| x.abs() < 1e-6)
    );
    assert!(out.samples.iter().step_by(2).any(|x| x.abs() > 0.4));
}

#[test]
fn invalid_rates() {
    assert!(matches!(
        resample(&mono(vec![0.0; 10], 0), 16_000),
        Err(AudioError::InvalidInput(_))
    ));
    assert!(matches!(
        resample(&mono(vec![0.0; 10], 16_000), 0),
        Err(AudioError::InvalidInput(_))
    ));
    let bad = Audio {
        samples: vec![0.0; 3],
        channels: 2,
        sample_rate: 16_000,
    };
    assert!(matches!(
        resample(&bad, 8_000),
        Err(AudioError::InvalidInput(_))
    ));
}

#[test]
fn whisper_loader_gives_16k_mono() {
    // 0.5 s of 44.1 kHz stereo, 16-bit.
    let s = sine(440.0, 0.5, 0.5, 44_100);
    let mut wav = wav_header(1, 2, 44_100, 16, (s.len() * 4) as u32);
    for &x in &s {
        let v = ((x * 32767.0) as i16).to_le_bytes();
        wav.extend_from_slice(&v);
        wav.extend_from_slice(&v);
    }
    let out = load_for_whisper(&wav, Some("wav"), &Limits::default()).unwrap();
    assert_eq!(out.len(), 8_000);
    let (corr, _) = best_correlation(&out, &sine(440.0, 0.5, 0.5, 16_000), 10);
    assert!(corr > 0.999, "{corr}");
}

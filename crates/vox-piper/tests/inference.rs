//! Inference on the real en_US-joe-medium voice against Python onnxruntime 1.32.0
//! (tests/data/reference.json, made by tools/piper/make_reference.py), and synthesis behaviour.

mod common;

use serde_json::Value;
use vox_piper::PiperParams;

fn reference() -> Value {
    let path = common::root().join("crates/vox-piper/tests/data/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(name: &str, got: impl IntoIterator<Item = f64>, want: &[f64], tol: f64) {
    let got: Vec<f64> = got.into_iter().collect();
    assert_eq!(got.len(), want.len(), "{name}: length");
    let max = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (g, w)| m.max((g - w).abs()));
    eprintln!("{name}: max abs diff vs Python onnxruntime {max:e}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{name}[{i}]: {g} vs {w}");
    }
}

#[test]
fn deterministic_scales_match_python_onnxruntime() {
    let Some(voice) = common::voice() else { return };
    let r = reference();
    let ids: Vec<i64> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let scales = [0.0, 1.0, 0.0];
    let a = voice.infer(&ids, scales, None).unwrap();
    let b = voice.infer(&ids, scales, None).unwrap();
    assert_eq!(a, b, "scales [0,1,0] must be deterministic");

    assert_eq!(a.len() as u64, r["len"].as_u64().unwrap());
    let tol = 1e-4;
    let head: Vec<f64> = floats(&r["head"]);
    let tail: Vec<f64> = floats(&r["tail"]);
    let stride = r["stride"].as_u64().unwrap() as usize;
    assert_close(
        "head",
        a[..head.len()].iter().map(|&x| x as f64),
        &head,
        tol,
    );
    assert_close(
        "tail",
        a[a.len() - tail.len()..].iter().map(|&x| x as f64),
        &tail,
        tol,
    );
    assert_close(
        "strided",
        a.iter().step_by(stride).map(|&x| x as f64),
        &floats(&r["strided"]),
        tol,
    );
    let max_abs = a.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert!((max_abs - r["max_abs"].as_f64().unwrap()).abs() <= tol);
    // Sums over ~50k samples: a per-sample error of 1e-4 bounds them loosely; in practice they are equal.
    let sum: f64 = a.iter().map(|&x| x as f64).sum();
    let sum_sq: f64 = a.iter().map(|&x| (x as f64) * (x as f64)).sum();
    assert!((sum - r["sum"].as_f64().unwrap()).abs() <= tol * a.len() as f64);
    assert!((sum_sq - r["sum_sq"].as_f64().unwrap()).abs() <= 1e-3 * r["sum_sq"].as_f64().unwrap());
}

#[test]
fn phonemizer_gives_the_reference_ids() {
    let Some(voice) = common::voice() else { return };
    if !common::espeak_cli() {
        return;
    }
    let r = reference();
    let sentences = voice.phonemize(r["text"].as_str().unwrap()).unwrap();
    assert_eq!(sentences.len(), 1);
    let phonemes: String = sentences[0].iter().collect();
    assert_eq!(phonemes, r["phonemes"].as_str().unwrap());
    let want: Vec<i64> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(voice.phoneme_ids(&sentences[0]), want);
}

fn quiet() -> PiperParams {
    PiperParams {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..PiperParams::default()
    }
}

#[test]
fn synthesis_is_per_sentence_with_silence_and_speed() {
    let Some(voice) = common::voice() else { return };
    if !common::espeak_cli() {
        return;
    }
    assert_eq!(voice.sample_rate(), 22050);
    let text = "The sun is out. We walk to the park.";
    let params = quiet();
    let mut parts = Vec::new();
    let n = voice
        .synthesize_sentences(text, &params, |a| {
            parts.push(a.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 2);
    let silence = (0.2 * 22050.0f32).round() as usize;
    for p in &parts {
        // Each sentence: speech normalised to full scale, then exactly the sentence silence.
        let peak = p.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!((peak - 1.0).abs() < 1e-6, "peak {peak}");
        assert!(p[p.len() - silence..].iter().all(|&x| x == 0.0));
        assert!(p[..p.len() - silence].iter().any(|&x| x.abs() > 0.1));
    }
    let whole = voice.synthesize(text, &params).unwrap();
    assert_eq!(whole, parts.concat());

    let fast = voice
        .synthesize(
            text,
            &PiperParams {
                speed: 2.0,
                ..quiet()
            },
        )
        .unwrap();
    let speech = |len: usize| (len - 2 * silence) as f64;
    let ratio = speech(fast.len()) / speech(whole.len());
    assert!(
        (0.4..0.6).contains(&ratio),
        "speed 2 gave {ratio} of the length"
    );

    let e = voice
        .synthesize(
            text,
            &PiperParams {
                speed: 0.0,
                ..quiet()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("speed"), "{e}");
    let e = voice.synthesize("  ", &quiet()).unwrap_err();
    assert!(e.to_string().contains("nothing to speak"), "{e}");
}

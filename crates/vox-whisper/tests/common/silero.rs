//! Silero VAD from the pinned faster-whisper wheel (tools/test-wheels.txt), on ONNX Runtime
//! (tools/setup/onnxruntime.sh).
#![allow(dead_code)]

use std::io::Read;
use std::sync::OnceLock;

use vox_whisper::vad::SileroVad;

use super::tiny_en::{in_ci, root};

struct Vad {
    _dir: tempfile::TempDir,
    vad: SileroVad,
}

/// The VAD model; `None` (a skip) only outside CI.
pub fn vad() -> Option<&'static SileroVad> {
    static V: OnceLock<Option<Vad>> = OnceLock::new();
    V.get_or_init(|| {
        let wheel = root().join(".cache/wheels/faster_whisper-1.2.1-py3-none-any.whl");
        if !wheel.exists() || vox_onnx::locate().is_err() {
            assert!(
                !in_ci(),
                "the faster-whisper wheel and ONNX Runtime are required under CI"
            );
            eprintln!(
                "SKIPPED: needs {} and ONNX Runtime (tools/setup/onnxruntime.sh)",
                wheel.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silero_vad_v6.onnx");
        let mut z = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
        let mut bytes = Vec::new();
        z.by_name("faster_whisper/assets/silero_vad_v6.onnx")
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let vad = SileroVad::open(&path).unwrap();
        Some(Vad { _dir: dir, vad })
    })
    .as_ref()
    .map(|v| &v.vad)
}

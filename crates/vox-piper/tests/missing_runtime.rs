//! With VOX_ORT_DYLIB pointing at a file that is not ONNX Runtime, loading a voice is an error that says
//! what was tried and how to install the runtime, never a panic. Its own test binary: the runtime is
//! started (or fails) once per process.

use vox_piper::PiperVoice;

#[test]
fn bogus_runtime_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&bogus, b"this is not a shared library").unwrap();
    // SAFETY: the only test of this binary, run before anything reads the environment concurrently.
    unsafe { std::env::set_var("VOX_ORT_DYLIB", &bogus) };

    let voice = dir.path().join("voice");
    std::fs::create_dir(&voice).unwrap();
    std::fs::write(voice.join("v.onnx"), b"not read: the runtime fails first").unwrap();
    std::fs::write(
        voice.join("v.onnx.json"),
        r#"{"audio": {"sample_rate": 22050}, "phoneme_id_map": {"^": [1], "_": [0], "$": [2]}}"#,
    )
    .unwrap();
    let e = PiperVoice::load(&voice).unwrap_err().to_string();
    assert!(e.contains("cannot load ONNX Runtime"), "{e}");
    assert!(e.contains(&bogus.display().to_string()), "{e}");
    // The loader's reason, not just "dlopen failed".
    assert!(e.contains("ELF") || e.contains("too short"), "{e}");
    assert!(e.contains("tools/setup/onnxruntime.sh"), "{e}");
    eprintln!("{e}");
    // The outcome is kept: a second attempt gives the same error instead of loading something else.
    let again = PiperVoice::load(&voice).unwrap_err().to_string();
    assert_eq!(again, e);
    assert!(vox_onnx::runtime().is_err());
}

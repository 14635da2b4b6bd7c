//! Real speech: espeak-ng writes a WAV at test time, sox converts it to FLAC, MP3 and Ogg
//! Vorbis where this sox build can, and every file must decode to the same ~1 s of audio.
//!
//! Without espeak-ng the test prints SKIPPED, unless CI is set, where it fails: CI must install
//! espeak-ng and sox (Debian packages `espeak-ng`, `sox`, `libsox-fmt-mp3`).

use std::path::Path;
use std::process::Command;

use vox_audio::{Limits, decode, load_for_whisper};

fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this sox can write `ext` files (`sox -h` lists the formats it was built with).
fn sox_writes(ext: &str) -> bool {
    let Ok(out) = Command::new("sox").arg("-h").output() else {
        return false;
    };
    let help = String::from_utf8_lossy(&out.stdout);
    help.lines()
        .find_map(|l| l.strip_prefix("AUDIO FILE FORMATS:"))
        .is_some_and(|formats| formats.split_whitespace().any(|f| f == ext))
}

#[test]
fn decodes_espeak_speech_in_every_container() {
    if !available("espeak-ng") {
        assert!(
            std::env::var_os("CI").is_none(),
            "espeak-ng is not installed; CI must install it (apt-get install espeak-ng sox)"
        );
        println!("SKIPPED: espeak-ng is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("hello.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg("hello world")
        .status()
        .unwrap();
    assert!(status.success(), "espeak-ng failed");

    let reference = decode(
        &std::fs::read(&wav).unwrap(),
        Some("wav"),
        &Limits::default(),
    )
    .unwrap();
    let secs = reference.duration_secs();
    println!(
        "wav: {} Hz, {} ch, {secs:.3} s",
        reference.sample_rate, reference.channels
    );
    assert!((0.5..3.0).contains(&secs), "unexpected duration {secs}");
    let peak = reference.samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.05, "espeak output is silent");

    let whisper =
        load_for_whisper(&std::fs::read(&wav).unwrap(), None, &Limits::default()).unwrap();
    assert!(whisper.len().abs_diff((secs * 16_000.0) as usize) <= 1);

    let mut checked = vec!["wav"];
    for ext in ["flac", "mp3", "ogg"] {
        if !available("sox") || !sox_writes(ext) {
            assert!(
                std::env::var_os("CI").is_none() || ext == "mp3",
                "sox cannot write {ext}"
            );
            println!("SKIPPED {ext}: sox cannot write it here");
            continue;
        }
        let out = dir.path().join(format!("hello.{ext}"));
        convert(&wav, &out);
        let audio = decode(&std::fs::read(&out).unwrap(), Some(ext), &Limits::default()).unwrap();
        let d = audio.duration_secs();
        println!(
            "{ext}: {} Hz, {} ch, {d:.3} s",
            audio.sample_rate, audio.channels
        );
        assert_eq!(audio.sample_rate, reference.sample_rate, "{ext}");
        // MP3 without a LAME tag from sox may keep up to two frames of encoder padding.
        assert!((d - secs).abs() < 0.08, "{ext}: {d} s vs {secs} s");
        checked.push(ext);
    }
    println!("decoded: {checked:?}");
}

fn convert(from: &Path, to: &Path) {
    let status = Command::new("sox").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "sox {} failed", to.display());
}

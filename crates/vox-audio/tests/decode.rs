//! Decoding: good files in several sample formats, and every kind of bad input.

mod common;

use common::*;
use vox_audio::{Audio, AudioError, Limits, decode, decode_pcm_s16le};

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn decodes_16_bit_wav() {
    let s = sine(440.0, 0.5, 1.0, 16_000);
    let audio = decode(&wav_s16(&s, 16_000), Some("wav"), &limits()).unwrap();
    assert_eq!(
        (audio.channels, audio.sample_rate, audio.frames()),
        (1, 16_000, 16_000)
    );
    assert!((audio.duration_secs() - 1.0).abs() < 1e-9);
    let max_err = s
        .iter()
        .zip(&audio.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_err < 2.0 / 32768.0, "max error {max_err}");
}

#[test]
fn decodes_8_bit_unsigned_wav() {
    let s = sine(300.0, 0.5, 0.5, 8_000);
    let mut wav = wav_header(1, 1, 8_000, 8, s.len() as u32);
    wav.extend(s.iter().map(|&x| (128.0 + x * 127.0).round() as u8));
    let audio = decode(&wav, None, &limits()).unwrap();
    assert_eq!((audio.frames(), audio.sample_rate), (s.len(), 8_000));
    let max_err = s
        .iter()
        .zip(&audio.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_err < 1.5 / 128.0, "max error {max_err}");
}

#[test]
fn decodes_24_bit_wav() {
    let s = sine(1000.0, 0.9, 0.25, 48_000);
    let mut wav = wav_header(1, 1, 48_000, 24, (s.len() * 3) as u32);
    for &x in &s {
        let v = (x * 8_388_607.0).round() as i32;
        wav.extend_from_slice(&v.to_le_bytes()[..3]);
    }
    let audio = decode(&wav, Some("audio/wav"), &limits()).unwrap();
    assert_eq!(audio.frames(), s.len());
    let max_err = s
        .iter()
        .zip(&audio.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_err < 1e-6, "max error {max_err}");
}

#[test]
fn stereo_wav_and_to_mono() {
    let (l, r) = (
        sine(440.0, 0.5, 0.1, 16_000),
        sine(880.0, 0.25, 0.1, 16_000),
    );
    let mut wav = wav_header(1, 2, 16_000, 16, (l.len() * 4) as u32);
    for (a, b) in l.iter().zip(&r) {
        wav.extend_from_slice(&((a * 32768.0) as i16).to_le_bytes());
        wav.extend_from_slice(&((b * 32768.0) as i16).to_le_bytes());
    }
    let audio = decode(&wav, None, &limits()).unwrap();
    assert_eq!((audio.channels, audio.frames()), (2, l.len()));
    assert!((audio.duration_secs() - 0.1).abs() < 1e-9);
    let mono = audio.to_mono();
    assert_eq!(
        (mono.channels, mono.frames(), mono.sample_rate),
        (1, l.len(), 16_000)
    );
    for i in [0, 17, 1000, l.len() - 1] {
        assert!((mono.samples[i] - (l[i] + r[i]) / 2.0).abs() < 1e-4);
    }
}

#[test]
fn empty_input() {
    assert!(matches!(
        decode(&[], None, &limits()),
        Err(AudioError::Empty)
    ));
    let msg = decode(&[], None, &limits()).unwrap_err().to_string();
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn over_byte_limit() {
    let wav = wav_s16(&sine(440.0, 0.5, 1.0, 16_000), 16_000);
    let small = Limits {
        max_bytes: 1000,
        ..limits()
    };
    match decode(&wav, None, &small) {
        Err(AudioError::TooLarge {
            bytes,
            max_bytes: 1000,
        }) => assert_eq!(bytes, wav.len() as u64),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn truncated_wav() {
    let wav = wav_s16(&sine(440.0, 0.5, 1.0, 16_000), 16_000);
    let err = decode(&wav[..wav.len() / 2], None, &limits()).unwrap_err();
    match err {
        AudioError::Truncated {
            expected_secs,
            decoded_secs,
        } => {
            assert!((expected_secs - 1.0).abs() < 1e-9);
            assert!(decoded_secs > 0.4 && decoded_secs < 0.6, "{decoded_secs}");
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("truncated"), "{err}");
    // Cut inside the header.
    assert!(matches!(
        decode(&wav[..30], None, &limits()),
        Err(AudioError::Malformed { .. })
    ));
    // Header only, no samples, although 1 s is announced.
    assert!(matches!(
        decode(&wav[..44], None, &limits()),
        Err(AudioError::Truncated { .. })
    ));
}

#[test]
fn three_hour_header_is_refused_before_decoding() {
    // Claims 3 h of 16 kHz 16-bit mono but carries only 1 s of data.
    let mut wav = wav_header(1, 1, 16_000, 16, 3 * 3600 * 16_000 * 2);
    wav.extend_from_slice(&wav_s16(&sine(440.0, 0.5, 1.0, 16_000), 16_000)[44..]);
    match decode(&wav, None, &limits()) {
        Err(AudioError::TooLong {
            duration_secs,
            max_secs,
        }) => {
            assert_eq!((duration_secs, max_secs), (10_800.0, 7_200.0));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn stream_without_length_stops_at_limit() {
    // A streaming WAV (sizes unknown) with 30 s of audio and a 2 s limit: refused once decoding
    // passes 2 s, long before the end.
    let s = sine(440.0, 0.5, 30.0, 16_000);
    let mut wav = wav_header(1, 1, 16_000, 16, u32::MAX);
    wav.extend_from_slice(&wav_s16(&s, 16_000)[44..]);
    assert_eq!(decode(&wav, None, &limits()).unwrap().frames(), s.len()); // readable as such
    let small = Limits {
        max_duration_secs: 2.0,
        ..limits()
    };
    match decode(&wav, None, &small) {
        Err(AudioError::TooLong { duration_secs, .. }) => {
            assert!(
                duration_secs > 2.0 && duration_secs < 2.5,
                "stopped at {duration_secs} s"
            );
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn random_bytes() {
    for seed in 1..20 {
        let bytes = noise_bytes(5_000 + seed as usize * 37, seed);
        assert!(decode(&bytes, None, &limits()).is_err(), "seed {seed}");
    }
    assert!(matches!(
        decode(&noise_bytes(100_000, 7), None, &limits()),
        Err(AudioError::UnrecognizedFormat)
    ));
    assert!(matches!(
        decode(b"hello, I am a text file\n", Some("txt"), &limits()),
        Err(AudioError::UnrecognizedFormat)
    ));
    // Random bytes behind real container signatures must fail cleanly too.
    for magic in [
        &b"RIFF\x24\x00\x00\x00WAVEfmt "[..],
        b"fLaC",
        b"OggS\x00\x02",
        b"ID3\x04\x00",
        b"\x00\x00\x00\x20ftypM4A ",
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend(noise_bytes(4_000, 3));
        assert!(decode(&bytes, None, &limits()).is_err(), "{magic:?}");
    }
}

#[test]
fn unsupported_codec() {
    // WAV with format tag 0x2000 (AC-3).
    let mut wav = wav_header(0x2000, 1, 16_000, 16, 3200);
    wav.extend(noise_bytes(3200, 5));
    let err = decode(&wav, None, &limits()).unwrap_err();
    assert!(
        matches!(&err, AudioError::UnsupportedCodec { codec } if codec.contains("0x2000")),
        "{err:?}"
    );
    assert!(err.to_string().contains("convert"), "{err}");
}

#[test]
fn raw_pcm() {
    let bytes: Vec<u8> = [0i16, 16384, -32768, 32767]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let audio = decode_pcm_s16le(&bytes, 16_000, 1).unwrap();
    assert_eq!(audio.samples, vec![0.0, 0.5, -1.0, 32767.0 / 32768.0]);
    let stereo = decode_pcm_s16le(&bytes, 8_000, 2).unwrap();
    assert_eq!((stereo.channels, stereo.frames()), (2, 2));
    assert!(matches!(
        decode_pcm_s16le(&bytes[..3], 16_000, 1),
        Err(AudioError::InvalidInput(_))
    ));
    assert!(matches!(
        decode_pcm_s16le(&bytes[..6], 16_000, 2),
        Err(AudioError::InvalidInput(_))
    ));
    assert!(matches!(
        decode_pcm_s16le(&bytes, 0, 1),
        Err(AudioError::InvalidInput(_))
    ));
    // Through decode() with a MIME hint carrying the rate.
    let via_hint = decode(&bytes, Some("audio/pcm;rate=16000"), &limits()).unwrap();
    assert_eq!(via_hint, audio);
    let err = decode(&bytes, Some("pcm"), &limits()).unwrap_err();
    assert!(err.to_string().contains("rate=16000"), "{err}");
}

#[test]
fn aac_in_mp4_and_opus_in_webm() {
    // Fixtures from tools/audio/make_codec_fixtures.py: 0.5 s of a 440 Hz sine at 0.5.
    for (name, rate) in [("sine_440_aac.m4a", 44_100), ("sine_440_opus.webm", 48_000)] {
        let bytes = std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let audio = decode(&bytes, None, &limits()).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (rate, 1), "{name}");
        // Neither container tells symphonia to trim the encoder's priming/padding here.
        assert!(
            (0.5..0.56).contains(&audio.duration_secs()),
            "{name}: {} s",
            audio.duration_secs()
        );
        let reference = sine(440.0, 0.5, 0.5, rate);
        let (corr, lag) = best_correlation(&audio.samples, &reference, 2200);
        println!("{name}: correlation {corr:.4} at lag {lag}");
        assert!(corr > 0.9, "{name}: correlation {corr}");
    }
}

#[test]
fn cut_files_never_panic() {
    let s = sine(440.0, 0.5, 0.5, 16_000);
    for format in vox_audio::Format::ALL {
        let bytes = vox_audio::encode(&s, 16_000, format).unwrap();
        for cut in [
            1,
            4,
            12,
            40,
            44,
            45,
            100,
            300,
            bytes.len() / 3,
            bytes.len() - 1,
        ] {
            let _ = decode(
                &bytes[..cut.min(bytes.len())],
                Some(format.extension()),
                &limits(),
            );
        }
    }
}

#[test]
fn audio_helpers() {
    let a = Audio {
        samples: vec![0.0; 3200],
        channels: 2,
        sample_rate: 16_000,
    };
    assert_eq!(a.frames(), 1600);
    assert!((a.duration_secs() - 0.1).abs() < 1e-12);
    assert_eq!(a.clone().into_mono().samples.len(), 1600);
    assert_eq!(
        Audio {
            samples: vec![],
            channels: 1,
            sample_rate: 0
        }
        .duration_secs(),
        0.0
    );
    let d = Limits::default();
    assert_eq!(
        (d.max_bytes, d.max_duration_secs),
        (100 * 1024 * 1024, 7200.0)
    );
}

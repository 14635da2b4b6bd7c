//! encode → decode round trips for every output format, and the format table.

mod common;

use common::*;
use vox_audio::{AudioError, Format, Limits, decode, encode, resample};

/// Encode `s`, decode it with `decode()`, bring it back to `rate`, and return the samples.
fn round_trip(s: &[f32], rate: u32, format: Format) -> Vec<f32> {
    let bytes = encode(s, rate, format).unwrap();
    let hint = match format {
        Format::PcmS16le => format!("audio/pcm;rate={rate}"),
        _ => format.extension().to_string(),
    };
    let audio = decode(&bytes, Some(&hint), &Limits::default()).unwrap();
    assert_eq!(audio.channels, 1, "{format}");
    let audio = resample(&audio, rate).unwrap();
    audio.samples
}

#[test]
fn lossless_formats_are_exact() {
    let s = sine(440.0, 0.5, 1.0, 16_000);
    for (format, tolerance) in [
        (Format::Wav16, 0.5 / 32768.0),
        (Format::Flac, 0.5 / 32768.0),
        (Format::PcmS16le, 0.5 / 32768.0),
        (Format::WavF32, 0.0),
    ] {
        let back = round_trip(&s, 16_000, format);
        assert_eq!(back.len(), s.len(), "{format}");
        let max_err = s
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!("{format}: max error {max_err:e}");
        assert!(max_err <= tolerance, "{format}: max error {max_err}");
    }
}

#[test]
fn lossy_formats_keep_duration_and_shape() {
    for rate in [16_000, 22_050, 24_000] {
        let s = sine(440.0, 0.5, 1.0, rate);
        for format in [Format::Mp3, Format::OggOpus] {
            let back = round_trip(&s, rate, format);
            let len_diff = back.len().abs_diff(s.len());
            // Lag 0: the codec's delay must be removed, not just the waveform kept.
            let corr = correlation(&back, &s);
            println!(
                "{format} @ {rate} Hz: {} frames (source {}), correlation {corr:.4}",
                back.len(),
                s.len()
            );
            assert!(
                len_diff <= rate as usize / 100,
                "{format} @ {rate}: {} vs {} frames",
                back.len(),
                s.len()
            );
            assert!(corr > 0.9, "{format} @ {rate}: correlation {corr}");
        }
    }
}

#[test]
fn unusual_rates_are_resampled_for_lossy_codecs() {
    // 7 kHz is below MP3's lowest rate, 44.1 kHz is not an Opus rate.
    for (rate, format) in [
        (7_000, Format::Mp3),
        (44_100, Format::OggOpus),
        (44_100, Format::Mp3),
    ] {
        let s = sine(300.0, 0.5, 0.5, rate);
        let back = round_trip(&s, rate, format);
        let corr = correlation(&back, &s);
        println!(
            "{format} @ {rate} Hz: {} frames (source {}), correlation {corr:.4}",
            back.len(),
            s.len()
        );
        assert!(
            back.len().abs_diff(s.len()) <= rate as usize / 100,
            "{format} @ {rate}"
        );
        assert!(corr > 0.9, "{format} @ {rate}: correlation {corr}");
    }
}

#[test]
fn empty_and_odd_input() {
    for format in Format::ALL {
        assert!(encode(&[], 16_000, format).is_ok(), "{format}");
        let with_nan = [0.1, f32::NAN, f32::INFINITY, -2.0, 0.3];
        assert!(encode(&with_nan, 16_000, format).is_ok(), "{format}");
        assert!(matches!(
            encode(&[0.0; 10], 0, format),
            Err(AudioError::InvalidInput(_))
        ));
    }
    // Clipping instead of wrapping.
    let pcm = encode(&[2.0, -2.0, 1.0], 16_000, Format::PcmS16le).unwrap();
    assert_eq!(
        pcm,
        [32767i16, -32768, 32767]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
}

#[test]
fn format_names_and_content_types() {
    let table = [
        ("wav", Format::Wav16, "audio/wav"),
        ("wav_f32", Format::WavF32, "audio/wav"),
        ("flac", Format::Flac, "audio/flac"),
        ("mp3", Format::Mp3, "audio/mpeg"),
        ("opus", Format::OggOpus, "audio/ogg"),
        ("pcm", Format::PcmS16le, "audio/pcm"),
    ];
    for (name, format, content_type) in table {
        assert_eq!(Format::from_name(name).unwrap(), format);
        assert_eq!(Format::from_name(&name.to_uppercase()).unwrap(), format);
        assert_eq!(name.parse::<Format>().unwrap(), format);
        assert_eq!(format.content_type(), content_type);
        assert_eq!(format.to_string(), name);
    }
    let err = Format::from_name("aiff").unwrap_err();
    assert!(matches!(err, AudioError::UnknownFormat(_)));
    assert!(err.to_string().contains("\"opus\""), "{err}");
}

#[test]
fn encoded_headers_look_right() {
    let s = sine(440.0, 0.5, 0.2, 24_000);
    assert!(
        encode(&s, 24_000, Format::Wav16)
            .unwrap()
            .starts_with(b"RIFF")
    );
    assert!(
        encode(&s, 24_000, Format::Flac)
            .unwrap()
            .starts_with(b"fLaC")
    );
    let ogg = encode(&s, 24_000, Format::OggOpus).unwrap();
    assert!(ogg.starts_with(b"OggS"));
    assert_eq!(&ogg[28..36], b"OpusHead");
    let mp3 = encode(&s, 24_000, Format::Mp3).unwrap();
    assert_eq!((mp3[0], mp3[1] & 0xE0), (0xFF, 0xE0), "MP3 frame sync");
}

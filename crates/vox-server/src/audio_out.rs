//! Turning engine audio into response bytes: format names (OpenAI's and ours), resampling, and per-piece
//! encoding for streamed responses.

use vox_audio::{Audio, Format};

use crate::error::ApiError;

/// Formats the server can return, as the API names them.
pub const SUPPORTED: &str = "wav, mp3, opus, flac, pcm, wav_f32";

/// Parses a response format. `aac` is refused by name: no maintained pure-Rust AAC encoder exists.
pub fn parse_format(name: &str) -> Result<Format, ApiError> {
    let n = name.trim().to_ascii_lowercase();
    if n == "aac" {
        return Err(ApiError::bad_request(format!(
            "response format \"aac\" is not supported by this server; use one of: {SUPPORTED}"
        )));
    }
    Format::from_name(&n).map_err(|_| {
        ApiError::bad_request(format!(
            "unknown response format {name:?}; use one of: {SUPPORTED}"
        ))
    })
}

/// Whether pieces encoded one by one make a valid stream: WAV (header with an open length) and PCM are
/// sample streams; MP3 frames and chained Ogg Opus streams concatenate. FLAC does not.
pub fn streamable(format: Format) -> bool {
    !matches!(format, Format::Flac)
}

/// Checks a requested output rate.
pub fn check_rate(rate: Option<u32>) -> Result<Option<u32>, ApiError> {
    match rate {
        Some(r) if !(8000..=48000).contains(&r) => Err(ApiError::bad_request(format!(
            "sample_rate {r} is outside 8000..=48000"
        ))),
        r => Ok(r),
    }
}

/// Resamples mono samples when `to` differs from `from`.
pub fn resample(
    samples: Vec<f32>,
    from: u32,
    to: Option<u32>,
) -> Result<(Vec<f32>, u32), ApiError> {
    match to {
        Some(to) if to != from => {
            let a = vox_audio::resample(
                &Audio {
                    samples,
                    channels: 1,
                    sample_rate: from,
                },
                to,
            )
            .map_err(|e| {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            })?;
            Ok((a.samples, to))
        }
        _ => Ok((samples, from)),
    }
}

/// A whole clip.
pub fn encode_whole(samples: &[f32], rate: u32, format: Format) -> Result<Vec<u8>, ApiError> {
    vox_audio::encode(samples, rate, format)
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// One piece of a streamed response. The first WAV piece carries a header whose lengths say "unknown"
/// (0xFFFFFFFF), as streaming servers do; later pieces are bare samples.
pub fn encode_piece(
    samples: &[f32],
    rate: u32,
    format: Format,
    first: bool,
) -> Result<Vec<u8>, ApiError> {
    match format {
        Format::Wav16 | Format::PcmS16le => {
            let mut out = Vec::with_capacity(samples.len() * 2 + 44);
            if first && format == Format::Wav16 {
                out.extend_from_slice(&wav_header(rate, 1, 16));
            }
            for s in samples {
                let v = if s.is_finite() {
                    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
                } else {
                    0
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
            Ok(out)
        }
        Format::WavF32 => {
            let mut out = Vec::with_capacity(samples.len() * 4 + 44);
            if first {
                out.extend_from_slice(&wav_header(rate, 3, 32));
            }
            for s in samples {
                out.extend_from_slice(&s.to_le_bytes());
            }
            Ok(out)
        }
        other => encode_whole(samples, rate, other),
    }
}

/// A RIFF/WAVE header for a stream of unknown length.
fn wav_header(rate: u32, format_tag: u16, bits: u16) -> [u8; 44] {
    let block = bits / 8;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&format_tag.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&bits.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_is_refused_with_the_supported_list() {
        let e = parse_format("aac").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains("mp3") && e.message.contains("aac"),
            "{}",
            e.message
        );
        assert_eq!(parse_format("MP3").unwrap(), Format::Mp3);
        assert!(parse_format("ogg-vorbis").is_err());
    }

    #[test]
    fn a_streamed_wav_decodes_to_the_samples_sent() {
        let a: Vec<f32> = (0..800).map(|i| (i as f32 / 40.0).sin() * 0.5).collect();
        let mut bytes = encode_piece(&a[..300], 16000, Format::Wav16, true).unwrap();
        bytes.extend(encode_piece(&a[300..], 16000, Format::Wav16, false).unwrap());
        let d = vox_audio::decode(&bytes, Some("wav"), &vox_audio::Limits::default()).unwrap();
        assert_eq!(d.sample_rate, 16000);
        assert_eq!(d.samples.len(), 800);
        assert!(d.samples.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-3));
    }
}

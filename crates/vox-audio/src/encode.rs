//! Encoding mono audio to the formats the server returns.
//!
//! WAV (hound) and FLAC (flacenc) are pure Rust. MP3 uses LAME (C, compiled from source by
//! `mp3lame-sys`) and Opus uses libopus (C, see `opus.rs`): neither codec has a usable pure-Rust
//! encoder.

use std::borrow::Cow;
use std::io::Cursor;
use std::str::FromStr;

use crate::error::{AudioError, Result};
use crate::resample::resample_mono;

/// An output format for [`encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// WAV, 16-bit signed integer PCM.
    Wav16,
    /// WAV, 32-bit IEEE float PCM (lossless for `f32` input).
    WavF32,
    /// FLAC, 16 bits per sample.
    Flac,
    /// MP3 (MPEG-1/2/2.5 layer III), 64 kb/s CBR mono.
    Mp3,
    /// Opus in an Ogg container, 48 kb/s.
    OggOpus,
    /// Headerless signed 16-bit little-endian PCM.
    PcmS16le,
}

impl Format {
    /// Every format, for listing in help texts and tests.
    pub const ALL: [Format; 6] = [
        Format::Wav16,
        Format::WavF32,
        Format::Flac,
        Format::Mp3,
        Format::OggOpus,
        Format::PcmS16le,
    ];

    /// The HTTP `Content-Type` of the encoded bytes.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Wav16 | Format::WavF32 => "audio/wav",
            Format::Flac => "audio/flac",
            Format::Mp3 => "audio/mpeg",
            Format::OggOpus => "audio/ogg",
            Format::PcmS16le => "audio/pcm",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wav16 | Format::WavF32 => "wav",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::OggOpus => "opus",
            Format::PcmS16le => "pcm",
        }
    }

    /// The name [`Format::from_name`] accepts for this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Wav16 => "wav",
            Format::WavF32 => "wav_f32",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::OggOpus => "opus",
            Format::PcmS16le => "pcm",
        }
    }

    /// Parse an API format name: `wav`, `wav_f32`, `flac`, `mp3`, `opus` or `pcm` (any case).
    pub fn from_name(name: &str) -> Result<Format> {
        let wanted = name.trim();
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| AudioError::UnknownFormat(name.to_string()))
    }
}

impl FromStr for Format {
    type Err = AudioError;
    fn from_str(s: &str) -> Result<Format> {
        Format::from_name(s)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Encode mono `f32` samples (nominally in `[-1, 1]`) at `sample_rate` Hz.
///
/// Integer formats clip to the 16-bit range; NaN and infinite samples become silence. MP3 keeps
/// the rate when MP3 has it (8 to 48 kHz standard rates) and otherwise resamples to the next one
/// up; Opus keeps 8/12/16/24/48 kHz and resamples anything else to 48 kHz (it decodes at 48 kHz).
pub fn encode(samples_mono: &[f32], sample_rate: u32, format: Format) -> Result<Vec<u8>> {
    if sample_rate == 0 {
        return Err(AudioError::InvalidInput(
            "cannot encode at a sample rate of 0 Hz".into(),
        ));
    }
    let samples = finite(samples_mono);
    match format {
        Format::Wav16 => wav(&samples, sample_rate, false),
        Format::WavF32 => wav(&samples, sample_rate, true),
        Format::Flac => flac(&samples, sample_rate),
        Format::Mp3 => mp3(&samples, sample_rate),
        Format::OggOpus => crate::opus::encode_ogg_opus(&samples, sample_rate),
        Format::PcmS16le => Ok(samples
            .iter()
            .flat_map(|&x| to_i16(x).to_le_bytes())
            .collect()),
    }
}

/// Replace NaN/infinity with 0 (copying only when there is something to replace).
fn finite(samples: &[f32]) -> Cow<'_, [f32]> {
    if samples.iter().all(|x| x.is_finite()) {
        Cow::Borrowed(samples)
    } else {
        Cow::Owned(
            samples
                .iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 })
                .collect(),
        )
    }
}

/// Full scale is 32768 so that decoders (which divide by 32768) give back the input exactly,
/// up to rounding; +1.0 clips to 32767.
fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn wav(samples: &[f32], sample_rate: u32, float: bool) -> Result<Vec<u8>> {
    let err = |e: hound::Error| AudioError::encode("wav", e);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut out = Cursor::new(Vec::with_capacity(
        44 + samples.len() * if float { 4 } else { 2 },
    ));
    let mut writer = hound::WavWriter::new(&mut out, spec).map_err(err)?;
    if float {
        for &x in samples {
            writer.write_sample(x).map_err(err)?;
        }
    } else {
        let len = u32::try_from(samples.len()).map_err(|_| {
            AudioError::encode("wav", "more than 2^32 samples do not fit in a WAV file")
        })?;
        let mut w16 = writer.get_i16_writer(len);
        for &x in samples {
            w16.write_sample(to_i16(x));
        }
        w16.flush().map_err(err)?;
    }
    writer.finalize().map_err(err)?;
    Ok(out.into_inner())
}

fn flac(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;

    let ints: Vec<i32> = samples.iter().map(|&x| i32::from(to_i16(x))).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| AudioError::encode("flac", e))?;
    let source = flacenc::source::MemSource::from_samples(&ints, 1, 16, sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| AudioError::encode("flac", e))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| AudioError::encode("flac", e))?;
    let mut out = sink.into_inner();
    // flacenc counts the short final block in STREAMINFO's minimum block size, which the FLAC
    // spec excludes; strict decoders (symphonia) then reject every full-size frame. With a
    // fixed block size the correct minimum is the maximum. Layout: "fLaC", a 4-byte block
    // header, then min and max block size as big-endian u16.
    if out.len() >= 12 && out.starts_with(b"fLaC") {
        out.copy_within(10..12, 8);
    }
    Ok(out)
}

/// Sample rates an MP3 frame can declare (MPEG-2.5, MPEG-2, MPEG-1).
const MP3_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

fn mp3(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    use mp3lame_encoder::{Bitrate, Builder, FlushGap, Mode, MonoPcm, Quality};
    let err = |e: &dyn std::fmt::Display| AudioError::encode("mp3", e);

    let rate = MP3_RATES
        .into_iter()
        .find(|&r| r >= sample_rate)
        .unwrap_or(48_000);
    let samples: Cow<'_, [f32]> = if rate == sample_rate {
        Cow::Borrowed(samples)
    } else {
        Cow::Owned(resample_mono(samples, sample_rate, rate)?)
    };

    let mut builder = Builder::new().ok_or_else(|| err(&"LAME could not allocate an encoder"))?;
    builder.set_num_channels(1).map_err(|e| err(&e))?;
    builder.set_sample_rate(rate).map_err(|e| err(&e))?;
    builder
        .set_output_sample_rate(std::num::NonZeroU32::new(rate))
        .map_err(|e| err(&e))?;
    builder.set_mode(Mode::Mono).map_err(|e| err(&e))?;
    builder.set_brate(Bitrate::Kbps64).map_err(|e| err(&e))?;
    builder
        .set_quality(Quality::NearBest)
        .map_err(|e| err(&e))?;
    // The LAME/Info tag records encoder delay and padding, so decoders can trim them (gapless).
    builder.set_to_write_vbr_tag(true).map_err(|e| err(&e))?;
    let mut encoder = builder.build().map_err(|e| err(&e))?;

    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples.len()));
    encoder
        .encode_to_vec(MonoPcm(samples.as_ref()), &mut out)
        .map_err(|e| err(&e))?;
    out.reserve(7200);
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(|e| err(&e))?;
    // The first frame was written as a placeholder; now that the totals are known, fill it in.
    let mut tag = Vec::with_capacity(encoder.lame_tag_size());
    if encoder.lame_tag_encode_to_vec(&mut tag).is_some() && tag.len() <= out.len() {
        out[..tag.len()].copy_from_slice(&tag);
    }
    Ok(out)
}

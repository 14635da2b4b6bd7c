//! Decoding with symphonia (pure Rust), with limits checked before and during decoding.

use std::io::{Cursor, ErrorKind};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::well_known as codec;
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioCodecParameters, AudioDecoderOptions, CODEC_ID_NULL_AUDIO,
};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::audio::{Audio, Limits};
use crate::error::{AudioError, Result};

/// symphonia's decoders plus libopus for Opus (see `opus.rs`), built once.
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<crate::opus::OpusDecoder>();
    registry
});

/// Decode a whole audio file held in memory.
///
/// `hint` is a file extension (`"mp3"`, `".wav"`) or a MIME type (`"audio/flac"`); it only
/// speeds up probing and the content decides, except for headerless PCM, which needs the hint
/// `"audio/pcm;rate=N"` (optionally `;channels=N`; signed 16-bit little-endian).
/// Supported: WAV (PCM 8/16/24/32-bit, float, A-law, µ-law, ADPCM), FLAC, MP3, Ogg Vorbis,
/// Ogg Opus, MP4/M4A AAC, and WebM/MKV holding Opus, Vorbis, FLAC or AAC.
///
/// Checks `limits` before decoding (byte size; duration from the container's frame count when
/// it states one) and while decoding (stops as soon as the decoded audio passes the limit).
/// Damaged packets inside an otherwise good stream are skipped, as players do; a stream that is
/// mostly damaged, or that ends before the length its header announces, is an error.
pub fn decode(bytes: &[u8], hint: Option<&str>, limits: &Limits) -> Result<Audio> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let len = bytes.len() as u64;
    if len > limits.max_bytes {
        return Err(AudioError::TooLarge {
            bytes: len,
            max_bytes: limits.max_bytes,
        });
    }
    // The input is untrusted and symphonia is a large body of parsing code: a panic in it must
    // become an error for this request, not take down the server.
    catch_unwind(AssertUnwindSafe(|| decode_unchecked(bytes, hint, limits))).unwrap_or_else(|_| {
        Err(AudioError::Malformed {
            detail: "the decoder crashed on this input".into(),
        })
    })
}

/// Interpret `bytes` as raw signed 16-bit little-endian PCM, interleaved when `channels > 1`.
///
/// No [`Limits`] apply here (the output is exactly twice the input's size); use [`decode`] with
/// the hint `"audio/pcm;rate=N"` to have them checked.
pub fn decode_pcm_s16le(bytes: &[u8], sample_rate: u32, channels: u16) -> Result<Audio> {
    if sample_rate == 0 || channels == 0 {
        return Err(AudioError::InvalidInput(format!(
            "raw PCM needs a positive sample rate and channel count (got {sample_rate} Hz, {channels} channels)"
        )));
    }
    let frame_bytes = 2 * usize::from(channels);
    if !bytes.len().is_multiple_of(frame_bytes) {
        return Err(AudioError::InvalidInput(format!(
            "raw s16le PCM with {channels} channel(s) must be a multiple of {frame_bytes} bytes, \
             got {} bytes; the data is cut mid-sample or is not 16-bit PCM",
            bytes.len()
        )));
    }
    let samples = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    Ok(Audio {
        samples,
        channels,
        sample_rate,
    })
}

/// `Some((rate, channels))` when the hint names headerless PCM (`"pcm"`, `"s16le"`, `"raw"`,
/// `"audio/pcm;rate=16000;channels=1"`); the rate is `None` when the hint does not give it.
fn raw_pcm_hint(hint: Option<&str>) -> Option<(Option<u32>, u16)> {
    let hint = hint?.trim().to_ascii_lowercase();
    let mut parts = hint.split(';').map(str::trim);
    let kind = parts.next()?.trim_start_matches('.');
    if !matches!(
        kind,
        "pcm" | "raw" | "s16le" | "audio/pcm" | "audio/x-pcm" | "audio/s16le"
    ) {
        return None;
    }
    let (mut rate, mut channels) = (None, 1);
    for (key, value) in parts.filter_map(|p| p.split_once('=')) {
        match key.trim() {
            "rate" => rate = value.trim().parse().ok(),
            "channels" => channels = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    Some((rate, channels))
}

fn decode_unchecked(bytes: &[u8], hint: Option<&str>, limits: &Limits) -> Result<Audio> {
    if let Some((rate, channels)) = raw_pcm_hint(hint) {
        return decode_raw(bytes, rate, channels, limits);
    }
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut probe_hint = Hint::new();
    match hint.map(str::trim) {
        Some(h) if h.contains('/') => probe_hint.mime_type(h),
        Some(h) if !h.is_empty() => probe_hint.with_extension(h.trim_start_matches('.')),
        _ => &mut probe_hint,
    };
    let mut format = symphonia::default::get_probe()
        .probe(
            &probe_hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| probe_error(e, bytes))?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or(AudioError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or(AudioError::NoAudioTrack)?
        .clone();
    let mut out = Collector::new(&params, track.num_frames, bytes.len(), limits)?;
    let mut decoder = CODECS
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => AudioError::UnsupportedCodec {
                codec: codec_name(params.codec),
            },
            other => malformed(other),
        })?;

    let hit_eof = loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymError::ResetRequired) => break false, // end, or a chained stream
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break true,
            Err(e) => return Err(malformed(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => out.push(&buf)?,
            // A damaged packet: skip it, as players do; `finish` judges how many there were.
            Err(SymError::DecodeError(_) | SymError::IoError(_)) => out.bad_packets += 1,
            Err(SymError::Unsupported(what)) => {
                let codec = format!("{} ({what})", codec_name(params.codec));
                return Err(AudioError::UnsupportedCodec { codec });
            }
            Err(e) => return Err(malformed(e)),
        }
    };
    out.finish(hit_eof)
}

/// Headerless s16le PCM named by the hint, with the duration limit applied up front.
fn decode_raw(bytes: &[u8], rate: Option<u32>, channels: u16, limits: &Limits) -> Result<Audio> {
    let Some(rate) = rate else {
        return Err(AudioError::InvalidInput(
            "raw PCM has no header, so its sample rate must be given: pass the hint \
             \"audio/pcm;rate=16000\" (and \";channels=2\" for stereo), or call decode_pcm_s16le"
                .into(),
        ));
    };
    if rate > 0 && channels > 0 {
        let secs = bytes.len() as f64 / 2.0 / f64::from(channels) / f64::from(rate);
        check_duration(secs, limits)?;
    }
    decode_pcm_s16le(bytes, rate, channels)
}

fn check_duration(secs: f64, limits: &Limits) -> Result<()> {
    if secs > limits.max_duration_secs {
        return Err(AudioError::TooLong {
            duration_secs: secs,
            max_secs: limits.max_duration_secs,
        });
    }
    Ok(())
}

/// Accumulates decoded packets and enforces the duration limit and stream consistency.
struct Collector {
    samples: Vec<f32>,
    /// Rate and channel count of the first decoded packet; later packets must match.
    spec: Option<(u32, u16)>,
    frames: u64,
    good_packets: u64,
    bad_packets: u64,
    /// The container's stated length in frames, when it states one.
    expected_frames: Option<u64>,
    params: AudioCodecParameters,
    limits: Limits,
}

impl Collector {
    /// Refuses a stream whose stated length is over the limit before anything is decoded.
    fn new(
        params: &AudioCodecParameters,
        num_frames: Option<u64>,
        input_len: usize,
        limits: &Limits,
    ) -> Result<Self> {
        let expected_frames = num_frames.filter(|&n| n > 0);
        let mut samples = Vec::new();
        if let Some(frames) = expected_frames {
            if let Some(rate) = params.sample_rate.filter(|&r| r > 0) {
                check_duration(frames as f64 / f64::from(rate), limits)?;
            }
            // Trust the header only as far as the input size makes plausible.
            let channels = params.channels.as_ref().map_or(1, |c| c.count().max(1));
            samples.reserve(
                (frames as usize)
                    .saturating_mul(channels)
                    .min(input_len.saturating_mul(8)),
            );
        }
        Ok(Collector {
            samples,
            spec: None,
            frames: 0,
            good_packets: 0,
            bad_packets: 0,
            expected_frames,
            params: params.clone(),
            limits: *limits,
        })
    }

    fn push(&mut self, buf: &GenericAudioBufferRef<'_>) -> Result<()> {
        self.good_packets += 1;
        let rate = buf.spec().rate();
        let channels = u16::try_from(buf.spec().channels().count()).unwrap_or(0);
        if rate == 0 || channels == 0 {
            let detail = "the stream declares 0 Hz or 0 channels".into();
            return Err(AudioError::Malformed { detail });
        }
        match self.spec {
            None => self.spec = Some((rate, channels)),
            Some((r, c)) if (r, c) != (rate, channels) => {
                let detail = format!(
                    "the stream changes from {r} Hz/{c} ch to {rate} Hz/{channels} ch midway"
                );
                return Err(AudioError::Malformed { detail });
            }
            Some(_) => {}
        }
        let start = self.samples.len();
        self.samples.resize(start + buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut self.samples[start..]);
        self.frames += buf.frames() as u64;
        check_duration(self.frames as f64 / f64::from(rate), &self.limits)
    }

    /// Judge the stream as a whole: empty, mostly damaged, or shorter than announced.
    fn finish(self, hit_eof: bool) -> Result<Audio> {
        let stated_rate = self.params.sample_rate.filter(|&r| r > 0);
        let Some((sample_rate, channels)) = self.spec else {
            return match (self.bad_packets, self.expected_frames, stated_rate) {
                (0, None, Some(sample_rate)) => {
                    // A well-formed file that holds zero samples.
                    let channels = self
                        .params
                        .channels
                        .as_ref()
                        .map_or(1, |c| c.count().max(1));
                    let channels = u16::try_from(channels).unwrap_or(1);
                    Ok(Audio {
                        samples: self.samples,
                        channels,
                        sample_rate,
                    })
                }
                (0, Some(expected), Some(rate)) => Err(AudioError::Truncated {
                    expected_secs: expected as f64 / f64::from(rate),
                    decoded_secs: 0.0,
                }),
                (0, _, _) => Err(AudioError::Malformed {
                    detail: "the file contains no audio data".into(),
                }),
                (bad, _, _) => Err(AudioError::Malformed {
                    detail: format!("none of its {bad} audio packets could be decoded"),
                }),
            };
        };
        if self.bad_packets > self.good_packets {
            let total = self.bad_packets + self.good_packets;
            let detail = format!("{} of {total} audio packets are damaged", self.bad_packets);
            return Err(AudioError::Malformed { detail });
        }
        if let Some(expected) = self.expected_frames {
            // Ends early: mid-packet, or (for PCM, whose length is exact) before the announced
            // frame count. 10 ms of slack covers headers that round the length.
            let short = self.frames + u64::from(sample_rate / 100) < expected;
            if hit_eof || short && is_pcm(self.params.codec) {
                return Err(AudioError::Truncated {
                    expected_secs: expected as f64 / f64::from(sample_rate),
                    decoded_secs: self.frames as f64 / f64::from(sample_rate),
                });
            }
        }
        tracing::debug!(sample_rate, channels, frames = self.frames, "decoded audio");
        Ok(Audio {
            samples: self.samples,
            channels,
            sample_rate,
        })
    }
}

fn probe_error(e: SymError, bytes: &[u8]) -> AudioError {
    match e {
        // A WAV whose fmt chunk names a codec symphonia lacks (AC-3, WMA, GSM, ...).
        SymError::Unsupported(msg) if msg.starts_with("wav: unsupported") => {
            let codec = wav_format_tag(bytes).map_or_else(
                || "in this WAV file".to_string(),
                |t| format!("with WAV format tag {t:#06x}"),
            );
            AudioError::UnsupportedCodec { codec }
        }
        SymError::Unsupported(_) => AudioError::UnrecognizedFormat,
        SymError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => AudioError::Malformed {
            detail: "the file ends inside its header (truncated upload?)".into(),
        },
        other => malformed(other),
    }
}

fn malformed(e: SymError) -> AudioError {
    AudioError::Malformed {
        detail: e.to_string(),
    }
}

/// The format tag of a RIFF/WAVE file's `fmt ` chunk, if the file has one.
fn wav_format_tag(bytes: &[u8]) -> Option<u16> {
    let mut pos = 12;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"fmt " {
            return bytes
                .get(pos + 8..pos + 10)
                .map(|t| u16::from_le_bytes([t[0], t[1]]));
        }
        pos = pos.checked_add(8 + len + len % 2)?;
    }
    None
}

/// Uncompressed codecs, whose decoded length must match the header exactly.
fn is_pcm(id: AudioCodecId) -> bool {
    use codec::*;
    [
        CODEC_ID_PCM_S8,
        CODEC_ID_PCM_U8,
        CODEC_ID_PCM_S16LE,
        CODEC_ID_PCM_S16BE,
        CODEC_ID_PCM_S24LE,
        CODEC_ID_PCM_S24BE,
        CODEC_ID_PCM_S32LE,
        CODEC_ID_PCM_S32BE,
        CODEC_ID_PCM_F32LE,
        CODEC_ID_PCM_F32BE,
        CODEC_ID_PCM_F64LE,
        CODEC_ID_PCM_F64BE,
        CODEC_ID_PCM_ALAW,
        CODEC_ID_PCM_MULAW,
    ]
    .contains(&id)
}

/// A readable name for the codecs people actually send that this crate cannot decode.
fn codec_name(id: AudioCodecId) -> String {
    use codec::*;
    let name = match id {
        CODEC_ID_AC3 => "AC-3",
        CODEC_ID_EAC3 => "E-AC-3",
        CODEC_ID_DCA => "DTS",
        CODEC_ID_WMA => "WMA",
        CODEC_ID_SPEEX => "Speex",
        CODEC_ID_ALAC => "ALAC",
        CODEC_ID_WAVPACK => "WavPack",
        CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio",
        CODEC_ID_ADPCM_G722 => "G.722",
        CODEC_ID_ADPCM_G726 | CODEC_ID_ADPCM_G726LE => "G.726",
        CODEC_ID_NULL_AUDIO => "(unknown)",
        _ => return format!("with id {id}"),
    };
    name.to_string()
}

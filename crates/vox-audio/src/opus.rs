//! Everything that touches libopus: an Ogg Opus writer for [`encode`](crate::encode) and an Opus
//! decoder plugged into symphonia (which demuxes Ogg and WebM Opus but has no Opus decoder).
//!
//! Why libopus (C, via the `opus` crate, which builds the bundled libopus with cmake): there is
//! no production-quality pure-Rust Opus encoder, and using the reference decoder for the way back
//! keeps encode/decode symmetric. The Ogg container is written in pure Rust with the `ogg` crate.

use std::sync::Mutex;

use symphonia::core::audio::{
    AsGenericAudioBufferRef, AudioBuffer, AudioMut, AudioSpec, Channels, GenericAudioBufferRef,
};
use symphonia::core::codecs::CodecInfo;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{
    AudioCodecParameters, AudioDecoder, AudioDecoderOptions, FinalizeResult,
};
use symphonia::core::codecs::registry::{RegisterableAudioDecoder, SupportedAudioCodec};
use symphonia::core::errors::{Error as SymError, Result as SymResult};
use symphonia::core::packet::PacketRef;

use crate::error::{AudioError, Result};
use crate::resample::resample_mono;

/// Opus always decodes to (and Ogg granule positions always count) 48 kHz.
const OPUS_RATE: u32 = 48_000;
/// Longest Opus packet: 120 ms at 48 kHz.
const MAX_PACKET_FRAMES: usize = 5760;
/// 20 ms frames: the usual trade-off between latency and efficiency.
const FRAME_MS: u32 = 20;
/// Mono speech is transparent well below this; 48 kb/s leaves headroom for music-like TTS.
const BITRATE: i32 = 48_000;
/// Pages are closed about once a second so that players can seek and stream.
const PACKETS_PER_PAGE: usize = 50;

/// Encode mono samples as an Ogg Opus file (RFC 7845).
///
/// libopus accepts 8, 12, 16, 24 and 48 kHz input; other rates are resampled to 48 kHz first.
pub(crate) fn encode_ogg_opus(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let err = |e: opus::Error| AudioError::encode("opus", e);
    let (input, rate) = match sample_rate {
        8_000 | 12_000 | 16_000 | 24_000 | 48_000 => {
            (std::borrow::Cow::Borrowed(samples), sample_rate)
        }
        _ => (
            resample_mono(samples, sample_rate, OPUS_RATE)?.into(),
            OPUS_RATE,
        ),
    };
    let scale = (OPUS_RATE / rate) as u64; // input samples -> 48 kHz granule units

    let mut enc =
        opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Audio).map_err(err)?;
    enc.set_bitrate(opus::Bitrate::Bits(BITRATE)).map_err(err)?;
    let lookahead = usize::try_from(enc.get_lookahead().map_err(err)?).unwrap_or(0);
    let pre_skip = lookahead as u64 * scale;

    let serial = 0x766f_7821; // any constant works for a single-stream file
    let mut out = ogg::PacketWriter::new(Vec::with_capacity(input.len() / 8 + 1024));
    let end_page = ogg::PacketWriteEndInfo::EndPage;
    let io = |e: std::io::Error| AudioError::encode("opus", e);
    out.write_packet(opus_head(pre_skip as u16, sample_rate), serial, end_page, 0)
        .map_err(io)?;
    out.write_packet(opus_tags(), serial, end_page, 0)
        .map_err(io)?;

    // Feed the samples plus `lookahead` zeros so the encoder flushes the real end of the signal.
    let frame = (rate * FRAME_MS / 1000) as usize;
    let total = input.len() + lookahead;
    let n_packets = total.div_ceil(frame).max(1);
    let final_granule = pre_skip + input.len() as u64 * scale;
    let mut pcm = vec![0.0f32; frame];
    let mut packet = vec![0u8; 4000];
    for i in 0..n_packets {
        let start = (i * frame).min(input.len());
        let end = ((i + 1) * frame).min(input.len());
        pcm[..end - start].copy_from_slice(&input[start..end]);
        pcm[end - start..].fill(0.0);
        let len = enc.encode_float(&pcm, &mut packet).map_err(err)?;
        let last = i + 1 == n_packets;
        let granule = if last {
            final_granule
        } else {
            ((i + 1) * frame) as u64 * scale
        };
        let info = if last {
            ogg::PacketWriteEndInfo::EndStream
        } else if (i + 1) % PACKETS_PER_PAGE == 0 {
            end_page
        } else {
            ogg::PacketWriteEndInfo::NormalPacket
        };
        out.write_packet(packet[..len].to_vec(), serial, info, granule)
            .map_err(io)?;
    }
    Ok(out.into_inner())
}

/// The identification header (RFC 7845 section 5.1), mono, channel mapping family 0.
fn opus_head(pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(1); // channels
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_rate.to_le_bytes()); // informational only
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono/stereo, no mapping table
    h
}

/// The comment header (RFC 7845 section 5.2) with a vendor string and no comments.
fn opus_tags() -> Vec<u8> {
    let vendor = b"vox-audio";
    let mut h = Vec::with_capacity(8 + 4 + vendor.len() + 4);
    h.extend_from_slice(b"OpusTags");
    h.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    h.extend_from_slice(vendor);
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// libopus behind symphonia's decoder interface, registered for `CODEC_ID_OPUS` so that the Ogg
/// and MKV/WebM demuxers (which handle pre-skip and end trimming) can use it.
pub(crate) struct OpusDecoder {
    params: AudioCodecParameters,
    // `opus::Decoder` is `Send` but not `Sync`; symphonia requires both.
    dec: Mutex<opus::Decoder>,
    channels: usize,
    pcm: Vec<f32>,
    buf: AudioBuffer<f32>,
    gapless: bool,
    /// Pre-skip frames still to drop. symphonia 0.6's Ogg demuxer records the OpusHead pre-skip
    /// as the track's delay but does not mark it on the packets, so the decoder trims it.
    skip: usize,
}

impl OpusDecoder {
    fn try_new(params: &AudioCodecParameters, opts: &AudioDecoderOptions) -> SymResult<Self> {
        let head = params
            .extra_data
            .as_deref()
            .filter(|d| d.len() >= 19 && d.starts_with(b"OpusHead"));
        if head.is_some_and(|h| h[18] != 0) {
            return Err(SymError::Unsupported("opus: multichannel (surround) Opus"));
        }
        let count = match (&params.channels, head) {
            (Some(ch), _) => ch.count(),
            (None, Some(h)) => usize::from(h[9]),
            (None, None) => return Err(SymError::DecodeError("opus: channel count unknown")),
        };
        let opus_channels = match count {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            _ => return Err(SymError::Unsupported("opus: more than two channels")),
        };
        let mut dec = opus::Decoder::new(OPUS_RATE, opus_channels)
            .map_err(|_| SymError::DecodeError("opus: could not create decoder"))?;
        if let Some(h) = head {
            // Output gain, Q7.8 dB, applied by libopus.
            let gain = i16::from_le_bytes([h[16], h[17]]);
            if gain != 0 {
                dec.set_gain(i32::from(gain))
                    .map_err(|_| SymError::DecodeError("opus: bad output gain"))?;
            }
        }
        let skip = head.map_or(0, |h| usize::from(u16::from_le_bytes([h[10], h[11]])));
        let layout = params
            .channels
            .clone()
            .unwrap_or(Channels::Discrete(count as u16));
        Ok(OpusDecoder {
            params: params.clone(),
            dec: Mutex::new(dec),
            channels: count,
            pcm: vec![0.0; MAX_PACKET_FRAMES * count],
            buf: AudioBuffer::new(AudioSpec::new(OPUS_RATE, layout), MAX_PACKET_FRAMES),
            gapless: opts.gapless,
            skip,
        })
    }

    fn decode_inner(&mut self, packet: &PacketRef<'_>) -> SymResult<()> {
        self.buf.clear();
        let mut dec = self
            .dec
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let frames = dec
            .decode_float(packet.data, &mut self.pcm, false)
            .map_err(|_| SymError::DecodeError("opus: invalid packet"))?;
        self.buf.resize_uninit(frames.min(MAX_PACKET_FRAMES));
        self.buf
            .copy_from_slice_interleaved(&&self.pcm[..frames * self.channels]);
        if self.gapless {
            let demuxer_trim = packet.trim_start.get() as usize;
            if demuxer_trim > 0 {
                self.skip = 0; // the demuxer handles pre-skip itself: don't trim twice
            }
            let start = demuxer_trim + self.skip.min(frames);
            self.skip -= self.skip.min(frames);
            self.buf.trim(start, packet.trim_end.get() as usize);
        }
        Ok(())
    }
}

const SUPPORTED: &[SupportedAudioCodec] = &[SupportedAudioCodec {
    id: CODEC_ID_OPUS,
    info: CodecInfo {
        short_name: "opus",
        long_name: "Opus (libopus)",
        profiles: &[],
    },
}];

impl AudioDecoder for OpusDecoder {
    fn reset(&mut self) {
        let mut dec = self
            .dec
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = dec.reset_state();
    }

    fn codec_info(&self) -> &CodecInfo {
        &SUPPORTED[0].info
    }

    fn codec_params(&self) -> &AudioCodecParameters {
        &self.params
    }

    fn decode_ref(&mut self, packet: &PacketRef<'_>) -> SymResult<GenericAudioBufferRef<'_>> {
        if let Err(e) = self.decode_inner(packet) {
            self.buf.clear();
            return Err(e);
        }
        Ok(self.buf.as_generic_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> GenericAudioBufferRef<'_> {
        self.buf.as_generic_audio_buffer_ref()
    }
}

impl RegisterableAudioDecoder for OpusDecoder {
    fn try_registry_new(
        params: &AudioCodecParameters,
        opts: &AudioDecoderOptions,
    ) -> SymResult<Box<dyn AudioDecoder>> {
        Ok(Box::new(OpusDecoder::try_new(params, opts)?))
    }

    fn supported_codecs() -> &'static [SupportedAudioCodec] {
        SUPPORTED
    }
}

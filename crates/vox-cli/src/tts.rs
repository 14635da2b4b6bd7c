//! `vox tts "text" -o out.wav`: speak text with a voice of the manifest, no server needed. Long text is split
//! and joined exactly as the server does it (`vox_engine::synthesize_long`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use vox_engine::{CancelToken, ChunkMode, SpeechSynthesizer, SynthesisRequest, synthesize_long};
use vox_server::Engine;
use vox_store::{Manifest, ModelStore};

use crate::config::Settings;

#[derive(Args)]
pub struct TtsArgs {
    /// The text (use - to read it from stdin).
    text: String,
    /// Output file; its extension picks the format (wav, mp3, opus, flac, pcm) unless --format is given.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// wav, wav_f32, mp3, opus, flac or pcm.
    #[arg(long)]
    format: Option<String>,
    /// Model name in the manifest (default: its first text-to-speech model).
    #[arg(long)]
    model: Option<String>,
    /// Manifest: built-in name or TOML file (default: the configured one).
    #[arg(long, short = 'm')]
    manifest: Option<String>,
    /// A voice of the model (default: its first).
    #[arg(long)]
    voice: Option<String>,
    /// Speaking rate, 0.25–4.
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Output sample rate (default: the voice's).
    #[arg(long)]
    sample_rate: Option<u32>,
}

pub async fn run(args: TtsArgs, settings: &Settings) -> Result<ExitCode> {
    let text = if args.text == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the text from stdin")?
    } else {
        args.text.clone()
    };
    let format_name = match &args.format {
        Some(f) => f.clone(),
        None => args
            .output
            .extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_else(|| "wav".into()),
    };
    let format = vox_audio::Format::from_name(&format_name).with_context(|| {
        format!("format {format_name:?}: use wav, wav_f32, mp3, opus, flac or pcm")
    })?;
    if !(0.25..=4.0).contains(&args.speed) {
        bail!("--speed {} is outside 0.25..=4", args.speed);
    }
    let manifest = Manifest::load(args.manifest.as_deref().unwrap_or(settings.manifest()))?;
    let kinds = crate::serve::engine_kinds();
    let spec = match &args.model {
        Some(n) => manifest.model(n)?.clone(),
        None => manifest
            .models
            .iter()
            .find(|m| m.engine == "piper" || m.engine == "chatterbox")
            .cloned()
            .context("the manifest has no text-to-speech model; give --model or --manifest")?,
    };
    let store = ModelStore::new(settings.store_config()?)?;
    let snapshot = match store.presence(&spec)? {
        Some(s) => s,
        None => {
            let one = Manifest {
                models: vec![spec.clone()],
                origin: manifest.origin.clone(),
            };
            store
                .pull(&one, Arc::new(vox_store::NoProgress))
                .await?
                .snapshots
                .remove(0)
        }
    };
    let t0 = Instant::now();
    let dir = snapshot.dir.clone();
    let kind = spec.engine.clone();
    let engine: Arc<dyn SpeechSynthesizer> =
        match tokio::task::spawn_blocking(move || kinds.load(&kind, &dir)).await? {
            Ok(Engine::Synthesizer(s)) => s,
            Ok(Engine::Transcriber(_)) => {
                bail!("model {:?} is not a text-to-speech model", spec.name)
            }
            Err(e) => bail!("loading model {:?}: {e}", spec.name),
        };
    let load_s = t0.elapsed().as_secs_f64();
    let rate = engine.info().sample_rate;
    let req = SynthesisRequest {
        voice: args.voice.clone(),
        speed: args.speed,
        seed: args.seed,
        ..SynthesisRequest::new(text)
    };
    let t1 = Instant::now();
    let samples = tokio::task::spawn_blocking(move || -> Result<Vec<f32>> {
        let mut out = Vec::new();
        synthesize_long(
            engine.as_ref(),
            &req,
            ChunkMode::Packed,
            &CancelToken::new(),
            &mut |p| {
                out.extend_from_slice(&p);
                Ok(())
            },
        )?;
        Ok(out)
    })
    .await??;
    let synth_s = t1.elapsed().as_secs_f64();
    let audio_s = samples.len() as f64 / f64::from(rate);
    let (samples, rate) = match args.sample_rate {
        Some(to) if to != rate => {
            let a = vox_audio::Audio {
                samples,
                channels: 1,
                sample_rate: rate,
            };
            (vox_audio::resample(&a, to)?.samples, to)
        }
        _ => (samples, rate),
    };
    let bytes = vox_audio::encode(&samples, rate, format)?;
    std::fs::write(&args.output, bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    tracing::info!(model = %spec.name, load_s, synth_s, audio_s, rtf = synth_s / audio_s.max(1e-9), "synthesized");
    Ok(ExitCode::SUCCESS)
}

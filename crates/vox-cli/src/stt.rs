//! `vox stt FILE`: transcribe a file with a model of the manifest, no server needed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use vox_store::{Manifest, ModelStore};
use vox_whisper::format::{ResponseFormat, render};
use vox_whisper::{Task, TranscribeOptions, WhisperPipeline};

use crate::config::Settings;

#[derive(Args)]
pub struct SttArgs {
    /// Audio file (wav, flac, mp3, ogg, m4a).
    file: PathBuf,
    /// Model name in the manifest (default: its first whisper model).
    #[arg(long)]
    model: Option<String>,
    /// Manifest: built-in name or TOML file (default: the configured one).
    #[arg(long, short = 'm')]
    manifest: Option<String>,
    /// text, json, verbose_json, srt or vtt.
    #[arg(long, default_value = "text")]
    format: String,
    /// Language code (multilingual models detect it when absent).
    #[arg(long)]
    language: Option<String>,
    /// Translate to English instead of transcribing.
    #[arg(long)]
    translate: bool,
    #[arg(long, default_value_t = 5)]
    beam_size: usize,
    /// Start of the temperature fallback; 0 with --no-fallback is plain greedy/beam decoding.
    #[arg(long)]
    no_fallback: bool,
    /// Text to condition the first window on.
    #[arg(long)]
    initial_prompt: Option<String>,
    /// Word-level timings from cross-attention (in verbose_json: `words`; segment bounds follow the words).
    #[arg(long)]
    word_timestamps: bool,
    /// auto (int8 decoder weights on CPU, float16 on CUDA), float32, float16, bfloat16, or int8.
    #[arg(long, default_value = "auto")]
    compute: String,
    /// auto (the first GPU when built with `--features cuda` and one is there, else the CPU), cpu, or cuda.
    #[arg(long, env = "VOX_DEVICE", default_value = "auto")]
    device: String,
    /// Silero VAD model (ONNX; faster-whisper's wheel ships one in `faster_whisper/assets`): transcribe only the
    /// speech it finds, like faster-whisper's `vad_filter=True`.
    #[arg(long, env = "VOX_VAD_MODEL")]
    vad_model: Option<PathBuf>,
    /// Batched decoding of the speech chunks, like faster-whisper's BatchedInferencePipeline (no previous-text
    /// prompt, no fallback; needs --vad-model for audio over 30 s).
    #[arg(long)]
    batched: bool,
    /// Chunks encoded and decoded together with --batched.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

/// The candle device `--device` names. `cuda` fails in a build without the `cuda` feature or without a GPU.
fn device(name: &str) -> Result<candle_core::Device> {
    use candle_core::Device;
    Ok(match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context("--device cuda")?,
        "auto" if cfg!(feature = "cuda") => Device::new_cuda(0).unwrap_or(Device::Cpu),
        "auto" => Device::Cpu,
        other => bail!("--device {other:?}: use auto, cpu or cuda"),
    })
}

pub async fn run(args: SttArgs, settings: &Settings) -> Result<ExitCode> {
    let format = ResponseFormat::parse(&args.format).with_context(|| {
        format!(
            "--format {:?}: use text, json, verbose_json, srt or vtt",
            args.format
        )
    })?;
    let manifest = Manifest::load(args.manifest.as_deref().unwrap_or(settings.manifest()))?;
    let spec = match &args.model {
        Some(n) => manifest.model(n)?.clone(),
        None => manifest
            .models
            .iter()
            .find(|m| m.engine == "whisper")
            .cloned()
            .context("the manifest has no whisper model; give --model or --manifest")?,
    };
    if spec.engine != "whisper" {
        bail!(
            "model {:?} is a {} model, not whisper",
            spec.name,
            spec.engine
        );
    }
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
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let hint = args
        .file
        .extension()
        .map(|e| e.to_string_lossy().to_string());
    let samples =
        vox_audio::load_for_whisper(&bytes, hint.as_deref(), &vox_audio::Limits::default())
            .with_context(|| format!("{}", args.file.display()))?;
    let compute: vox_whisper::Compute = args.compute.parse()?;
    let device = device(&args.device)?;
    let t0 = Instant::now();
    let pipeline = WhisperPipeline::load_with(&snapshot.dir, &device, compute)?;
    let load_s = t0.elapsed().as_secs_f64();
    let vad = match &args.vad_model {
        Some(p) => Some(
            vox_whisper::vad::SileroVad::open(p)
                .with_context(|| format!("--vad-model {}", p.display()))?,
        ),
        None => None,
    };
    let base = if args.batched {
        vox_whisper::batched::batched_options()
    } else {
        TranscribeOptions::default()
    };
    let mut opts = TranscribeOptions {
        beam_size: args.beam_size,
        language: args.language.clone(),
        task: if args.translate {
            Task::Translate
        } else {
            Task::Transcribe
        },
        initial_prompt: args.initial_prompt.clone(),
        word_timestamps: args.word_timestamps,
        ..base
    };
    if args.no_fallback {
        opts.temperatures = vec![0.0];
    }
    let t1 = Instant::now();
    let (batched, batch_size) = (args.batched, args.batch_size.max(1));
    let t = tokio::task::spawn_blocking(move || match (batched, &vad) {
        (true, vad) => vox_whisper::batched::BatchedPipeline::new(&pipeline, vad.as_ref())
            .with_batch_size(batch_size)
            .transcribe(&samples, &opts),
        (false, Some(vad)) => vox_whisper::vad::transcribe_with_vad(
            &pipeline,
            vad,
            &samples,
            &opts,
            &vox_whisper::vad::VadOptions::default(),
        ),
        (false, None) => pipeline.transcribe(&samples, &opts),
    })
    .await??;
    let secs = t1.elapsed().as_secs_f64();
    tracing::info!(model = %spec.name, cuda = device.is_cuda(), load_s, transcribe_s = secs, audio_s = t.duration, rtf = secs / t.duration.max(1e-9), "transcribed");
    print!(
        "{}",
        render(
            &t,
            format,
            if args.translate {
                "translate"
            } else {
                "transcribe"
            }
        )
    );
    if !matches!(
        format,
        ResponseFormat::Text | ResponseFormat::Srt | ResponseFormat::Vtt
    ) {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

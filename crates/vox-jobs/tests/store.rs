//! Object storage against a real S3-compatible server (s3s-fs on 127.0.0.1): upload with content type and
//! metadata, multipart for large objects, presigned GET links that work without credentials, and a clear
//! error for bad credentials.

use std::time::Duration;

use bytes::Bytes;
use vox_jobs::testing::S3Server;
use vox_jobs::{MULTIPART_THRESHOLD, Objects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_presign_and_download() {
    let Some(s3) = S3Server::start_or_skip("audio") else {
        return;
    };
    let mut cfg = s3.config();
    cfg.prefix = "tts-out/".into();
    let o = Objects::s3(&cfg).unwrap();
    o.check().await.unwrap();
    let key = "tts/ab/abcdef.wav";
    assert!(!o.exists(key).await.unwrap());
    let audio = Bytes::from(b"RIFF....WAVEfmt fake audio".to_vec());
    o.put(
        key,
        audio.clone(),
        "audio/wav",
        &[("job-id", "job_1".into())],
    )
    .await
    .unwrap();
    assert!(o.exists(key).await.unwrap());
    assert!(
        s3.root
            .path()
            .join("audio/tts-out/tts/ab/abcdef.wav")
            .exists(),
        "the prefix is applied"
    );

    // A presigned link works with no credentials at all, and carries the content type.
    let url = o.presign(key, Duration::from_secs(300), "").await.unwrap();
    assert!(url.contains("X-Amz-Signature"), "{url}");
    let r = reqwest::get(&url).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.bytes().await.unwrap(), audio);
    // Tampering breaks it.
    let bad = url.replace("abcdef", "abcdee");
    assert!(!reqwest::get(&bad).await.unwrap().status().is_success());

    // Large objects go up in uniform parts and come back whole.
    let big: Vec<u8> = (0..MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    o.put("tts/cd/big.wav", Bytes::from(big.clone()), "audio/wav", &[])
        .await
        .unwrap();
    assert_eq!(
        o.get("tts/cd/big.wav").await.unwrap().unwrap().to_vec(),
        big
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_s3_credentials_are_a_clear_error_not_a_missing_object() {
    let Some(s3) = S3Server::start_or_skip("audio") else {
        return;
    };
    let mut cfg = s3.config();
    cfg.secret_access_key = "wrong-secret".into();
    let o = Objects::s3(&cfg).unwrap();
    let e = o.exists("tts/ab/x.wav").await.unwrap_err().to_string();
    assert!(e.contains("object storage at s3://audio@"), "{e}");
    let e2 = o
        .put("tts/ab/x.wav", Bytes::from_static(b"x"), "audio/wav", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e2.contains("upload an object"), "{e2}");
    // Missing credentials are refused before any request.
    cfg.access_key_id.clear();
    let e3 = Objects::s3(&cfg).unwrap_err().to_string();
    assert!(e3.contains("access key"), "{e3}");
}

#[test]
fn r2_account_sets_the_endpoint() {
    let cfg = vox_jobs::S3Config {
        bucket: "b".into(),
        account: Some("acc123".into()),
        access_key_id: "a".into(),
        secret_access_key: "s".into(),
        ..Default::default()
    };
    assert_eq!(
        cfg.endpoint().as_deref(),
        Some("https://acc123.r2.cloudflarestorage.com")
    );
    assert_eq!(
        Objects::s3(&cfg).unwrap().name(),
        "s3://b@https://acc123.r2.cloudflarestorage.com"
    );
}

//! `vox job submit|status|list|cancel`: an HTTP client of `vox worker`'s jobs API.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct JobArgs {
    /// The worker's URL.
    #[arg(
        long,
        global = true,
        env = "VOX_WORKER_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    worker: String,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(clap::Subcommand)]
enum JobCommand {
    /// Queue a text; prints the job id (with --wait, the download URL once done).
    Submit {
        /// The text ("-" reads standard input).
        text: String,
        #[arg(long)]
        voice: Option<String>,
        /// Engine parameters as a JSON object, e.g. '{"seed": 7}'.
        #[arg(long)]
        params: Option<String>,
        /// A duplicate submission with this key returns the first job.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for the job to finish and print its URL (exit 1 if it failed).
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// A job's state, error and download URL (JSON).
    Status { id: String },
    /// Recent jobs, newest first.
    List {
        /// queued, running, done, failed, dead or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job.
    Cancel { id: String },
}

pub async fn run(args: JobArgs) -> Result<ExitCode> {
    let base = args.worker.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    match args.command {
        JobCommand::Submit {
            text,
            voice,
            params,
            idempotency_key,
            wait,
            timeout_secs,
        } => {
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                text
            };
            let params: Option<Value> = params
                .map(|p| serde_json::from_str(&p).context("--params must be a JSON object"))
                .transpose()?;
            let body = json!({"text": text, "voice": voice, "params": params, "idempotency_key": idempotency_key});
            let v = call(http.post(format!("{base}/jobs")).json(&body)).await?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            if !wait {
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            let t0 = Instant::now();
            loop {
                let s = call(http.get(format!("{base}/jobs/{id}"))).await?;
                match s["state"].as_str().unwrap_or_default() {
                    "done" => {
                        println!("{}", s["url"].as_str().unwrap_or_default());
                        return Ok(ExitCode::SUCCESS);
                    }
                    "failed" | "dead" | "cancelled" => {
                        eprintln!(
                            "job {id} {}: {}",
                            s["state"].as_str().unwrap_or_default(),
                            s["error"].as_str().unwrap_or("no reason recorded")
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                    _ => {}
                }
                if t0.elapsed() > Duration::from_secs(timeout_secs) {
                    bail!("job {id} is still {} after {timeout_secs} s", s["state"]);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        JobCommand::Status { id } => {
            let v = call(http.get(format!("{base}/jobs/{id}"))).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        JobCommand::List { state, limit, json } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(s) = state {
                q.push(("state", s));
            }
            let v = call(http.get(format!("{base}/jobs")).query(&q)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<28} {:<10} {:>8}  ERROR / OBJECT",
                    "ID", "STATE", "ATTEMPTS"
                );
                for j in v["jobs"].as_array().into_iter().flatten() {
                    let detail = j["error"]
                        .as_str()
                        .or(j["object_key"].as_str())
                        .unwrap_or("");
                    println!(
                        "{:<28} {:<10} {:>8}  {detail}",
                        j["id"].as_str().unwrap_or_default(),
                        j["state"].as_str().unwrap_or_default(),
                        j["attempts"]
                    );
                }
            }
        }
        JobCommand::Cancel { id } => {
            let v = call(http.post(format!("{base}/jobs/{id}/cancel"))).await?;
            println!("{}", v["state"].as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends a request; a non-2xx answer becomes an error carrying the worker's message.
async fn call(req: reqwest::RequestBuilder) -> Result<Value> {
    let resp = req
        .send()
        .await
        .context("reaching the worker (is `vox worker` running? see --worker)")?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "the worker answered {status}: {}",
            v["error"].as_str().unwrap_or("no message")
        );
    }
    Ok(v)
}

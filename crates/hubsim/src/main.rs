//! `hubsim`: serve directories or synthetic files as a Hugging Face Hub on loopback, for benchmarks and
//! for checks with Python clients. Prints `{"endpoint": "...", "cdn": "..."}` on one line once listening,
//! then serves until killed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use hubsim::{DEFAULT_LFS_THRESHOLD, HubSim, Repo, RepoFile, SimConfig};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A Hugging Face Hub-compatible test server (tests and benchmarks only)"
)]
struct Args {
    /// Address of the Hub origin.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Address of the CDN origin that LFS files redirect to (must differ from --bind).
    #[arg(long, default_value = "127.0.0.1:0")]
    cdn_bind: SocketAddr,
    /// Body bandwidth per response in bytes per second (suffixes K, M, G: powers of 1024).
    #[arg(long, value_parser = parse_size)]
    bandwidth: Option<u64>,
    /// Token accepted for private repositories.
    #[arg(long)]
    token: Option<String>,
    /// Serve every file under DIR as repository ORG/NAME (files of at least --lfs-threshold bytes as LFS).
    #[arg(long = "repo", value_name = "ORG/NAME=DIR")]
    repos: Vec<String>,
    /// Add a file of SIZE bytes of deterministic pseudo-random content as LFS (suffixes K, M, G).
    #[arg(long = "synthetic", value_name = "ORG/NAME:PATH=SIZE")]
    synthetic: Vec<String>,
    /// Make repository ORG/NAME private (needs --token).
    #[arg(long = "private", value_name = "ORG/NAME")]
    private: Vec<String>,
    /// Files of at least this size become LFS files with --repo.
    #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_LFS_THRESHOLD)]
    lfs_threshold: u64,
    /// Entries per page of the tree API.
    #[arg(long, default_value_t = 1000)]
    tree_page_size: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let repos = build_repos(&args)?;
    let cfg = SimConfig {
        token: args.token,
        bandwidth_per_conn: args.bandwidth,
        tree_page_size: args.tree_page_size,
    };
    let sim = HubSim::start_at(repos, cfg, args.bind, args.cdn_bind).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::json!({ "endpoint": sim.endpoint(), "cdn": sim.cdn_endpoint() })
    )?;
    stdout.flush()?;
    drop(stdout);
    std::future::pending::<()>().await;
    Ok(())
}

fn build_repos(args: &Args) -> anyhow::Result<Vec<Repo>> {
    let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
    for spec in &args.repos {
        let (id, dir) = spec
            .split_once('=')
            .with_context(|| format!("--repo {spec}: expected ORG/NAME=DIR"))?;
        check_repo_id(id)?;
        let loaded = Repo::from_dir(id, &PathBuf::from(dir), args.lfs_threshold)
            .with_context(|| format!("--repo {spec}: reading {dir}"))?;
        repo_mut(&mut repos, id).files.extend(loaded.files);
    }
    for spec in &args.synthetic {
        let parsed = spec
            .split_once(':')
            .and_then(|(id, rest)| rest.rsplit_once('=').map(|(path, size)| (id, path, size)))
            .with_context(|| format!("--synthetic {spec}: expected ORG/NAME:PATH=SIZE"))?;
        let (id, path, size) = parsed;
        check_repo_id(id)?;
        let size = parse_size(size).map_err(anyhow::Error::msg)?;
        repo_mut(&mut repos, id)
            .files
            .push(RepoFile::synthetic(id, path, size));
    }
    for id in &args.private {
        repos
            .get_mut(id)
            .with_context(|| format!("--private {id}: no such repository"))?
            .private = true;
    }
    Ok(repos.into_values().collect())
}

fn repo_mut<'a>(repos: &'a mut BTreeMap<String, Repo>, id: &str) -> &'a mut Repo {
    repos
        .entry(id.to_owned())
        .or_insert_with(|| Repo::new(id, Vec::new()))
}

fn check_repo_id(id: &str) -> anyhow::Result<()> {
    match id.split_once('/') {
        Some((org, name)) if !org.is_empty() && !name.is_empty() && !name.contains('/') => Ok(()),
        _ => bail!("repository id {id:?} is not ORG/NAME"),
    }
}

/// `123`, `64K`, `10M`, `2G` (also `KiB`, `MB`…, all powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{s:?}: unknown size unit {unit:?}")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
    }
}

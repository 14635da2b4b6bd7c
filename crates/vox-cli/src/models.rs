//! `vox models …`: provisioning from the command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vox_store::{Manifest, ModelStore, ProgressSink};

use crate::config::Settings;
use crate::progress::{Bars, JsonLines};

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    cmd: ModelsCmd,
}

#[derive(Args, Clone)]
struct ManifestArg {
    /// Manifest: a built-in name (starter, production) or a TOML file (default: the configured one).
    #[arg(long, short = 'm', value_name = "NAME|FILE")]
    manifest: Option<String>,
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Download what is missing (only that), verified; a complete volume with pinned commits needs no network.
    Pull {
        #[command(flatten)]
        m: ManifestArg,
        /// Only these models of the manifest.
        models: Vec<String>,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check sizes (and with --deep, content hashes); fetch again what is missing or corrupt.
    Verify {
        #[command(flatten)]
        m: ManifestArg,
        models: Vec<String>,
        /// Re-hash every file against its content address.
        #[arg(long)]
        deep: bool,
        /// Only report; do not re-fetch.
        #[arg(long)]
        no_repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the manifest's models: revision, commit, size, complete or not.
    List {
        #[command(flatten)]
        m: ManifestArg,
        #[arg(long)]
        json: bool,
    },
    /// Remove snapshots and blobs no manifest references (a dry run unless --yes).
    Prune {
        /// Manifests whose models to keep (repeatable; default: the configured one).
        #[arg(long = "manifest", short = 'm', value_name = "NAME|FILE")]
        manifests: Vec<String>,
        /// Really delete.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Import a directory, or a folder inside a wheel/zip/tar, as the pseudo-repo vox-local/NAME.
    Import {
        /// A directory, .whl, .zip, .tar or .tar.gz.
        path: PathBuf,
        /// The model's name (the repo becomes vox-local/NAME).
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// The folder inside PATH holding the model files.
        #[arg(long, default_value = "")]
        path_inside: String,
        /// The ref to record (a branch name).
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Upload the manifest's models from the volume to an S3/R2 mirror (s3://bucket/prefix).
    Mirror {
        #[command(flatten)]
        m: ManifestArg,
        /// Target (default: the configured mirror).
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        to: Option<String>,
    },
}

impl ModelsArgs {
    /// The `--manifest` flag of the subcommand, if given (it overrides VOX_MANIFEST).
    pub fn manifest_flag(&self) -> Option<&str> {
        match &self.cmd {
            ModelsCmd::Pull { m, .. }
            | ModelsCmd::Verify { m, .. }
            | ModelsCmd::List { m, .. }
            | ModelsCmd::Mirror { m, .. } => m.manifest.as_deref(),
            ModelsCmd::Prune { .. } | ModelsCmd::Import { .. } => None,
        }
    }
}

fn progress_sink() -> Arc<dyn ProgressSink> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(JsonLines::new())
    }
}

fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

pub async fn run(args: ModelsArgs, settings: &Settings) -> Result<ExitCode> {
    let store = ModelStore::new(settings.store_config()?)?;
    let load = |sel: &[String]| -> Result<Manifest> {
        Ok(Manifest::load(settings.manifest())?.select(sel)?)
    };
    match args.cmd {
        ModelsCmd::Pull { models, json, .. } => {
            let manifest = load(&models)?;
            let t0 = Instant::now();
            let report = store.pull(&manifest, progress_sink()).await?;
            let secs = t0.elapsed().as_secs_f64();
            if json {
                println!("{}", serde_json::json!({"report": report, "seconds": secs}));
            } else {
                for s in &report.snapshots {
                    println!(
                        "{:<20} {:<40} {}  {}",
                        s.model,
                        s.repo,
                        &s.commit[..12],
                        s.dir.display()
                    );
                }
                println!(
                    "{} models ready in {:.3} s; downloaded {} files, {}{}",
                    report.snapshots.len(),
                    secs,
                    report.files_downloaded,
                    gib(report.bytes_downloaded),
                    if report.used_network {
                        ""
                    } else {
                        " (no network)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::Verify {
            models,
            deep,
            no_repair,
            json,
            ..
        } => {
            let manifest = load(&models)?;
            let problems = store
                .verify(&manifest, deep, !no_repair, progress_sink())
                .await?;
            if json {
                println!("{}", serde_json::json!({"problems": problems}));
            } else if problems.is_empty() {
                println!(
                    "{} models verified{}: all good",
                    manifest.models.len(),
                    if deep {
                        " (content hashes)"
                    } else {
                        " (sizes)"
                    }
                );
            } else {
                for p in &problems {
                    println!(
                        "{:<20} {:<30} {}{}",
                        p.model,
                        p.file,
                        p.issue,
                        if p.repaired { " — repaired" } else { "" }
                    );
                }
            }
            let unrepaired = problems.iter().any(|p| !p.repaired);
            Ok(if unrepaired {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ModelsCmd::List { json, .. } => {
            let manifest = load(&[])?;
            let rows = store.list(&manifest)?;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                println!(
                    "MODEL                ENGINE     REPO@REVISION                            COMMIT             SIZE    FILES  STATE"
                );
                for r in rows {
                    println!(
                        "{:<20} {:<10} {:<40} {:<12} {:>10} {:>8}  {}",
                        r.model,
                        r.engine,
                        format!("{}@{}", r.repo, r.revision),
                        r.commit
                            .as_deref()
                            .map(|c| &c[..12.min(c.len())])
                            .unwrap_or("-"),
                        gib(r.bytes_total),
                        format!("{}/{}", r.files_present, r.files_total),
                        if r.complete {
                            "complete"
                        } else if r.commit.is_some() {
                            "incomplete"
                        } else {
                            "missing"
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::Prune {
            manifests,
            yes,
            json,
        } => {
            let names = if manifests.is_empty() {
                vec![settings.manifest().to_string()]
            } else {
                manifests
            };
            let ms = names
                .iter()
                .map(|n| Manifest::load(n))
                .collect::<Result<Vec<_>, _>>()?;
            let report = store.prune(&ms, yes)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for (p, size) in &report.paths {
                    println!(
                        "{} {:>10}  {}",
                        if yes { "removed" } else { "would remove" },
                        gib(*size),
                        p.display()
                    );
                }
                println!(
                    "{} {} in {} paths{}",
                    if yes { "freed" } else { "would free" },
                    gib(report.bytes),
                    report.paths.len(),
                    if yes || report.paths.is_empty() {
                        ""
                    } else {
                        "; run again with --yes to delete"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::Import {
            path,
            name,
            path_inside,
            revision,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bail!("--as {name:?}: use letters, digits, '-', '_' or '.'");
            }
            let repo = vox_store::import_repo_id(&name);
            let imported =
                vox_store::import(store.cache(), &path, &path_inside, &repo, &revision, None)
                    .with_context(|| format!("importing {} as {name}", path.display()))?;
            let bytes: u64 = imported.listing.files.values().map(|e| e.size).sum();
            println!(
                "imported {} files ({}) as {repo}@{revision} = {}\nsnapshot: {}\nmanifest entry:\n[[models]]\nname = \"{name}\"\nengine = \"…\"\nrepo = \"{repo}\"\nrevision = \"{}\"",
                imported.listing.files.len(),
                gib(bytes),
                imported.commit,
                store
                    .cache()
                    .repo(&repo)
                    .snapshot_dir(&imported.commit)
                    .display(),
                imported.commit
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::Mirror { to, .. } => {
            let manifest = load(&[])?;
            let url = match to.as_deref().or(settings.get("mirror")) {
                Some(u) => u.to_string(),
                None => bail!("no mirror: give --to s3://bucket/prefix or set VOX_MIRROR"),
            };
            let mirror = vox_store::Mirror::open(
                &url,
                settings.get("mirror_endpoint"),
                settings.get("mirror_region"),
            )?;
            let mut total = 0;
            for spec in &manifest.models {
                let Some(snap) = store.presence(spec)? else {
                    bail!(
                        "model {:?} is not complete on the volume; run `vox models pull` first",
                        spec.name
                    );
                };
                let rc = store.cache().repo(&spec.repo);
                let listing = rc.read_listing(&snap.commit)?.context("listing vanished")?;
                let wanted: Vec<_> = listing
                    .files
                    .values()
                    .filter(|e| snap.files.contains(&e.path))
                    .cloned()
                    .collect();
                let n = mirror
                    .push(
                        store.cache(),
                        &spec.repo,
                        &spec.revision,
                        &snap.commit,
                        &listing,
                        &wanted,
                    )
                    .await?;
                println!("{:<20} {} uploaded to {}", spec.name, gib(n), mirror.url());
                total += n;
            }
            println!(
                "mirrored {} models, {} uploaded",
                manifest.models.len(),
                gib(total)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

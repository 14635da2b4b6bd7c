//! The on-disk cache, laid out exactly as Python's `huggingface_hub` lays it out, so that either can read what the
//! other wrote:
//!
//! ```text
//! $HF_HUB_CACHE/
//!   .locks/models--org--name/<etag>.lock      flock(2) locks shared with huggingface_hub
//!   models--org--name/
//!     blobs/<etag>                              content, named by its address
//!     blobs/<etag>.vox-part(.state)             vox's resumable partial download (never visible as a blob)
//!     refs/<revision>                           the 40-hex commit, no trailing newline
//!     snapshots/<commit>/<path>                 relative symlink to ../../blobs/<etag> (or a copy)
//!     trees/<commit>.json                       the commit's file listing (huggingface_hub 2.x format)
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Etag;

/// One file of a repository at a commit: what the tree API (or an import) says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoEntry {
    pub path: String,
    pub size: u64,
    /// The blob name: `lfs_sha256` for LFS files, else the git blob id.
    pub etag: Etag,
    /// The git blob id as the tree API reports it (for LFS files: of the pointer file).
    pub blob_id: String,
}

/// The files of a repository at one commit, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub files: BTreeMap<String, RepoEntry>,
}

#[derive(Serialize, Deserialize)]
struct TreeFile {
    format_version: u32,
    files: BTreeMap<String, TreeFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct TreeFileEntry {
    size: u64,
    blob_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    lfs_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    lfs_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    xet_hash: Option<String>,
}

impl Listing {
    pub fn from_entries(entries: impl IntoIterator<Item = RepoEntry>) -> Self {
        Listing {
            files: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        }
    }

    /// Serializes as huggingface_hub 2.x's `trees/<commit>.json`.
    pub fn to_tree_json(&self) -> String {
        let files = self
            .files
            .values()
            .map(|e| {
                let (lfs_sha256, lfs_size) = match &e.etag {
                    Etag::Sha256(s) => (Some(s.clone()), Some(e.size)),
                    Etag::GitSha1(_) => (None, None),
                };
                (
                    e.path.clone(),
                    TreeFileEntry {
                        size: e.size,
                        blob_id: e.blob_id.clone(),
                        lfs_sha256,
                        lfs_size,
                        xet_hash: None,
                    },
                )
            })
            .collect();
        serde_json::to_string_pretty(&TreeFile {
            format_version: 1,
            files,
        })
        .expect("listing serializes")
    }

    pub fn from_tree_json(text: &str) -> Option<Listing> {
        let t: TreeFile = serde_json::from_str(text).ok()?;
        if t.format_version != 1 {
            return None;
        }
        let mut files = BTreeMap::new();
        for (path, e) in t.files {
            let etag = match &e.lfs_sha256 {
                Some(s) => Etag::parse(s)?,
                None => Etag::parse(&e.blob_id)?,
            };
            files.insert(
                path.clone(),
                RepoEntry {
                    path,
                    size: e.size,
                    etag,
                    blob_id: e.blob_id,
                },
            );
        }
        Some(Listing { files })
    }
}

/// The root of a huggingface_hub cache (`HF_HUB_CACHE`).
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the cache root. No `CACHEDIR.TAG`: huggingface_hub 2.x writes one, but 0.x's `scan_cache_dir`
    /// reports it as a corrupt repo, and the volume must read cleanly with both.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root).ctx("create cache directory", &self.root)
    }

    pub fn repo(&self, repo_id: &str) -> RepoCache {
        RepoCache {
            cache_root: self.root.clone(),
            folder: repo_folder_name(repo_id),
            repo_id: repo_id.to_string(),
        }
    }

    /// Every `models--*` folder in the cache, as repo ids.
    pub fn repos(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("list cache", &self.root, e)),
        };
        for ent in rd {
            let ent = ent.ctx("list cache", &self.root)?;
            let name = ent.file_name().to_string_lossy().to_string();
            if let Some(rest) = name.strip_prefix("models--") {
                out.push(rest.replace("--", "/"));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `org/name` → `models--org--name`, as `huggingface_hub.file_download.repo_folder_name`.
pub fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    cache_root: PathBuf,
    folder: String,
    pub repo_id: String,
}

impl RepoCache {
    pub fn dir(&self) -> PathBuf {
        self.cache_root.join(&self.folder)
    }
    pub fn blobs_dir(&self) -> PathBuf {
        self.dir().join("blobs")
    }
    pub fn blob_path(&self, etag: &Etag) -> PathBuf {
        self.blobs_dir().join(etag.as_str())
    }
    /// vox's partial download of a blob. Deliberately not `<etag>.incomplete`: huggingface_hub 0.x would resume
    /// that by its length, and ours is preallocated and filled out of order.
    pub fn part_path(&self, etag: &Etag) -> PathBuf {
        self.blobs_dir().join(format!("{}.vox-part", etag.as_str()))
    }
    pub fn lock_path(&self, etag: &Etag) -> PathBuf {
        self.cache_root
            .join(".locks")
            .join(&self.folder)
            .join(format!("{}.lock", etag.as_str()))
    }
    /// A lock for repo-level metadata (refs, trees, snapshot links): same folder as the blob locks.
    pub fn repo_lock_path(&self) -> PathBuf {
        self.cache_root
            .join(".locks")
            .join(&self.folder)
            .join("vox-repo.lock")
    }
    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir().join("snapshots").join(commit)
    }
    pub fn snapshot_path(&self, commit: &str, path: &str) -> PathBuf {
        self.snapshot_dir(commit).join(path)
    }
    pub fn tree_path(&self, commit: &str) -> PathBuf {
        self.dir().join("trees").join(format!("{commit}.json"))
    }
    fn ref_path(&self, revision: &str) -> PathBuf {
        self.dir().join("refs").join(revision)
    }

    /// The commit a branch or tag points to, as last recorded; a 40-hex revision is its own commit.
    pub fn read_ref(&self, revision: &str) -> Result<Option<String>> {
        if is_commit(revision) {
            return Ok(Some(revision.to_string()));
        }
        let p = self.ref_path(revision);
        match std::fs::read_to_string(&p) {
            // huggingface_hub reads without stripping; we tolerate whitespace written by others.
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read ref", p, e)),
        }
    }

    /// Records `revision → commit`: atomically, no trailing newline (a newline breaks Python's branch lookups).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let p = self.ref_path(revision);
        if std::fs::read_to_string(&p).ok().as_deref() == Some(commit) {
            return Ok(());
        }
        write_atomic(&p, commit.as_bytes())
    }

    pub fn read_listing(&self, commit: &str) -> Result<Option<Listing>> {
        let p = self.tree_path(commit);
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Listing::from_tree_json(&s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read listing", p, e)),
        }
    }

    pub fn write_listing(&self, commit: &str, listing: &Listing) -> Result<()> {
        write_atomic(&self.tree_path(commit), listing.to_tree_json().as_bytes())
    }

    /// Is `snapshots/<commit>/<path>` present with the expected size? One `stat` through the link.
    pub fn snapshot_file_ok(&self, commit: &str, entry: &RepoEntry) -> bool {
        std::fs::metadata(self.snapshot_path(commit, &entry.path))
            .map(|m| m.is_file() && m.len() == entry.size)
            .unwrap_or(false)
    }

    /// Makes `snapshots/<commit>/<path>` point at the blob: a relative symlink, or a copy where the filesystem
    /// has no symlinks (as huggingface_hub does; `HF_HUB_DISABLE_SYMLINKS=1` forces copies).
    pub fn link_snapshot(&self, commit: &str, entry: &RepoEntry, use_symlinks: bool) -> Result<()> {
        let dst = self.snapshot_path(commit, &entry.path);
        let parent = dst.parent().expect("snapshot path has a parent");
        std::fs::create_dir_all(parent).ctx("create snapshot directory", parent)?;
        let blob = self.blob_path(&entry.etag);
        if use_symlinks {
            let depth = entry.path.split('/').count() - 1;
            let mut target = PathBuf::new();
            for _ in 0..depth + 2 {
                target.push("..");
            }
            target.push("blobs");
            target.push(entry.etag.as_str());
            if std::fs::read_link(&dst).ok().as_deref() == Some(target.as_path()) {
                return Ok(());
            }
            let tmp = tmp_sibling(&dst);
            std::os::unix::fs::symlink(&target, &tmp).ctx("create symlink", &tmp)?;
            std::fs::rename(&tmp, &dst).ctx("rename symlink", &dst)
        } else {
            if self.snapshot_file_ok(commit, entry)
                && std::fs::symlink_metadata(&dst)
                    .map(|m| m.is_file())
                    .unwrap_or(false)
            {
                return Ok(());
            }
            let tmp = tmp_sibling(&dst);
            std::fs::copy(&blob, &tmp).ctx("copy blob into snapshot", &tmp)?;
            std::fs::rename(&tmp, &dst).ctx("rename snapshot file", &dst)
        }
    }

    /// All snapshot commits present in this repo folder.
    pub fn snapshot_commits(&self) -> Result<Vec<String>> {
        list_names(&self.dir().join("snapshots"))
    }

    /// All `refs/*` (top level and nested like `refs/pr/1`) with their commits.
    pub fn refs(&self) -> Result<Vec<(String, String)>> {
        let root = self.dir().join("refs");
        let mut out = Vec::new();
        walk_files(&root, &mut |p| {
            if let (Ok(rel), Ok(c)) = (p.strip_prefix(&root), std::fs::read_to_string(p)) {
                out.push((rel.to_string_lossy().to_string(), c.trim().to_string()));
            }
        })?;
        out.sort();
        Ok(out)
    }
}

/// Is this a full commit hash (40 hex digits)?
pub fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Does this filesystem take symlinks? Probed once per cache root, like huggingface_hub's
/// `are_symlinks_supported`. `HF_HUB_DISABLE_SYMLINKS=1` answers no.
pub fn symlinks_supported(dir: &Path) -> bool {
    static PROBE: OnceLock<std::sync::Mutex<BTreeMap<PathBuf, bool>>> = OnceLock::new();
    let mut m = PROBE
        .get_or_init(Default::default)
        .lock()
        .expect("probe lock");
    if let Some(v) = m.get(dir) {
        return *v;
    }
    let ok = (|| {
        let _ = std::fs::create_dir_all(dir);
        let t = tempfile::tempdir_in(dir).ok()?;
        std::os::unix::fs::symlink("target", t.path().join("link")).ok()
    })()
    .is_some();
    m.insert(dir.to_path_buf(), ok);
    ok
}

pub(crate) fn tmp_sibling(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    p.with_file_name(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// Writes a small file so that readers see either the old or the new content, never a half-written one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("file has a parent");
    std::fs::create_dir_all(parent).ctx("create directory", parent)?;
    let tmp = tmp_sibling(path);
    let mut f = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(bytes).ctx("write", &tmp)?;
    drop(f);
    std::fs::rename(&tmp, path).ctx("rename", path)
}

fn list_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                out.push(
                    e.ctx("list", dir)?
                        .file_name()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("list", dir, e)),
    }
    out.sort();
    Ok(out)
}

/// Calls `f` on every non-directory entry under `dir` (symlinks are not followed).
pub(crate) fn walk_files(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for e in rd {
        let e = e.ctx("list", dir)?;
        let ft = e.file_type().ctx("stat", &e.path())?;
        if ft.is_dir() {
            walk_files(&e.path(), f)?;
        } else {
            f(&e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{git_sha1_hex, sha256_hex};

    #[test]
    fn folder_names_follow_huggingface_hub() {
        assert_eq!(
            repo_folder_name("Systran/faster-whisper-tiny.en"),
            "models--Systran--faster-whisper-tiny.en"
        );
    }

    #[test]
    fn snapshot_links_are_relative_and_refs_have_no_newline() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path());
        let repo = cache.repo("acme/tts");
        let data = b"{}".to_vec();
        let e = RepoEntry {
            path: "sub/dir/config.json".into(),
            size: 2,
            etag: Etag::GitSha1(git_sha1_hex(&data)),
            blob_id: git_sha1_hex(&data),
        };
        std::fs::create_dir_all(repo.blobs_dir()).unwrap();
        std::fs::write(repo.blob_path(&e.etag), &data).unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        repo.link_snapshot(commit, &e, true).unwrap();
        let link = std::fs::read_link(repo.snapshot_path(commit, &e.path)).unwrap();
        assert_eq!(link, PathBuf::from(format!("../../../../blobs/{}", e.etag)));
        assert!(repo.snapshot_file_ok(commit, &e));
        repo.write_ref("main", commit).unwrap();
        assert_eq!(
            std::fs::read(repo.dir().join("refs/main")).unwrap(),
            commit.as_bytes()
        );
        assert_eq!(repo.read_ref("main").unwrap().as_deref(), Some(commit));
    }

    #[test]
    fn copy_fallback_makes_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = HubCache::new(dir.path()).repo("a/b");
        let data = vec![7u8; 100];
        let e = RepoEntry {
            path: "m.bin".into(),
            size: 100,
            etag: Etag::Sha256(sha256_hex(&data)),
            blob_id: "x".repeat(40),
        };
        std::fs::create_dir_all(repo.blobs_dir()).unwrap();
        std::fs::write(repo.blob_path(&e.etag), &data).unwrap();
        repo.link_snapshot("c".repeat(40).as_str(), &e, false)
            .unwrap();
        let p = repo.snapshot_path(&"c".repeat(40), "m.bin");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert_eq!(std::fs::read(p).unwrap(), data);
    }

    #[test]
    fn tree_json_round_trips_in_python_format() {
        let l = Listing::from_entries([
            RepoEntry {
                path: "a.json".into(),
                size: 3,
                etag: Etag::GitSha1("1".repeat(40)),
                blob_id: "1".repeat(40),
            },
            RepoEntry {
                path: "w.bin".into(),
                size: 9,
                etag: Etag::Sha256("2".repeat(64)),
                blob_id: "3".repeat(40),
            },
        ]);
        let j = l.to_tree_json();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["files"]["w.bin"]["lfs_sha256"], "2".repeat(64));
        assert_eq!(v["files"]["w.bin"]["lfs_size"], 9);
        assert!(v["files"]["a.json"].get("lfs_sha256").is_none());
        assert_eq!(Listing::from_tree_json(&j).unwrap(), l);
    }
}

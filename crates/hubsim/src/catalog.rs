//! The server's view of its repositories: every file hashed once, the commit history of each repository,
//! and the CDN's index of LFS blobs by sha256.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::repo::{Repo, commit_of, git_blob_sha1, lfs_pointer, sha256_hex};

/// A file with the hashes the Hub reports for it.
#[derive(Debug)]
pub(crate) struct FileEntry {
    pub path: String,
    pub content: Bytes,
    pub lfs: bool,
    /// sha256 (LFS) or git blob sha1 (regular): the ETag and the client's blob name.
    pub etag: String,
    /// git blob sha1 of what git stores: the content, or the LFS pointer file.
    pub blob_id: String,
    /// Size of the LFS pointer file (LFS files only).
    pub pointer_size: Option<u64>,
}

impl FileEntry {
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }
}

/// One commit of a repository.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub commit: String,
    pub files: BTreeMap<String, Arc<FileEntry>>,
}

impl Snapshot {
    /// Hashes every file of `repo`; the expensive part of adding a repository, done outside any lock.
    fn build(repo: &Repo) -> Self {
        let files: BTreeMap<String, Arc<FileEntry>> = repo
            .files
            .iter()
            .map(|f| {
                let size = f.content.len() as u64;
                let entry = if f.lfs {
                    let sha = sha256_hex(&f.content);
                    let pointer = lfs_pointer(&sha, size);
                    FileEntry {
                        path: f.path.clone(),
                        content: f.content.clone(),
                        lfs: true,
                        blob_id: git_blob_sha1(pointer.as_bytes()),
                        pointer_size: Some(pointer.len() as u64),
                        etag: sha,
                    }
                } else {
                    FileEntry {
                        path: f.path.clone(),
                        content: f.content.clone(),
                        lfs: false,
                        etag: git_blob_sha1(&f.content),
                        blob_id: git_blob_sha1(&f.content),
                        pointer_size: None,
                    }
                };
                (f.path.clone(), Arc::new(entry))
            })
            .collect();
        let commit = commit_of(files.values().map(|f| (f.path.as_str(), f.etag.clone())));
        Self { commit, files }
    }

    /// Every directory that holds a file, as paths without trailing slash.
    pub fn directories(&self) -> BTreeSet<String> {
        let mut dirs = BTreeSet::new();
        for path in self.files.keys() {
            let mut end = path.len();
            while let Some(slash) = path[..end].rfind('/') {
                dirs.insert(path[..slash].to_owned());
                end = slash;
            }
        }
        dirs
    }
}

/// A repository with its commit history; `main` is the newest snapshot.
#[derive(Debug)]
pub(crate) struct RepoState {
    pub private: bool,
    history: Vec<Arc<Snapshot>>,
}

impl RepoState {
    /// `main` (or the empty revision) resolves to the newest commit; a 40-hex commit resolves to any commit
    /// this repository has had. Everything else is unknown.
    pub fn resolve(&self, rev: &str) -> Option<Arc<Snapshot>> {
        if rev == "main" {
            return self.history.last().cloned();
        }
        self.history.iter().rev().find(|s| s.commit == rev).cloned()
    }
}

/// An LFS blob the CDN serves, with the `org/name/path` of every file that has this content.
#[derive(Debug, Clone)]
pub(crate) struct CdnBlob {
    pub content: Bytes,
    pub labels: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    repos: HashMap<String, RepoState>,
    blobs: HashMap<String, CdnBlob>,
}

/// A repository hashed and ready to go into the catalog.
pub(crate) struct PreparedRepo {
    id: String,
    private: bool,
    snapshot: Snapshot,
}

impl PreparedRepo {
    pub fn new(repo: &Repo) -> Self {
        Self {
            id: repo.id.clone(),
            private: repo.private,
            snapshot: Snapshot::build(repo),
        }
    }
}

impl Catalog {
    /// Adds a repository or gives an existing one a new `main` commit; older commits stay resolvable.
    pub fn insert(&mut self, prepared: PreparedRepo) {
        let PreparedRepo {
            id,
            private,
            snapshot,
        } = prepared;
        for file in snapshot.files.values().filter(|f| f.lfs) {
            let label = format!("{id}/{}", file.path);
            let blob = (self.blobs.entry(file.etag.clone())).or_insert_with(|| CdnBlob {
                content: file.content.clone(),
                labels: Vec::new(),
            });
            if !blob.labels.contains(&label) {
                blob.labels.push(label);
            }
        }
        let state = self.repos.entry(id).or_insert_with(|| RepoState {
            private,
            history: Vec::new(),
        });
        state.private = private;
        state.history.retain(|s| s.commit != snapshot.commit);
        state.history.push(Arc::new(snapshot));
    }

    pub fn repo(&self, id: &str) -> Option<&RepoState> {
        self.repos.get(id)
    }

    pub fn blob(&self, sha256: &str) -> Option<CdnBlob> {
        self.blobs.get(sha256).cloned()
    }
}

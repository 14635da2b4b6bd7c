//! Repositories and files as the simulated Hub holds them, and the hashes the Hub derives from them.

use std::io;
use std::path::Path;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Files at least this large become LFS files when a repository is loaded from a directory.
pub const DEFAULT_LFS_THRESHOLD: u64 = 1 << 20;

/// One file of a repository at its only commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path inside the repository, `/`-separated, no leading slash (`tokenizer/vocab.txt`).
    pub path: String,
    pub content: Bytes,
    /// LFS files are redirected to the CDN origin; regular files are served by the Hub origin.
    pub lfs: bool,
}

impl RepoFile {
    /// A regular (git-stored) file: served directly by the Hub, ETag = git blob sha1.
    pub fn regular(path: &str, content: impl Into<Bytes>) -> Self {
        Self {
            path: path.to_owned(),
            content: content.into(),
            lfs: false,
        }
    }

    /// An LFS file: the Hub answers `302` to the CDN origin, ETag = sha256 of the content.
    pub fn lfs(path: &str, content: impl Into<Bytes>) -> Self {
        Self {
            path: path.to_owned(),
            content: content.into(),
            lfs: true,
        }
    }

    /// An LFS file of `size` bytes of deterministic pseudo-random content (see [`synthetic_content`]).
    pub fn synthetic(repo_id: &str, path: &str, size: u64) -> Self {
        Self::lfs(path, synthetic_content(repo_id, path, size))
    }

    /// The blob name a client stores this file under: sha256 hex of the content for LFS files, the git
    /// blob sha1 (`sha1("blob {len}\0" + bytes)`) for regular files. Hashes the whole content on each call.
    pub fn etag(&self) -> String {
        if self.lfs {
            sha256_hex(&self.content)
        } else {
            git_blob_sha1(&self.content)
        }
    }

    /// Size of the content in bytes.
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }
}

/// A model repository with a single branch, `main`, pointing at [`Repo::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `org/name`.
    pub id: String,
    pub files: Vec<RepoFile>,
    /// Private repositories answer `401` unless the request carries `Authorization: Bearer <token>` with
    /// the token of [`crate::SimConfig::token`].
    pub private: bool,
}

impl Repo {
    /// A public repository.
    pub fn new(id: &str, files: Vec<RepoFile>) -> Self {
        Self {
            id: id.to_owned(),
            files,
            private: false,
        }
    }

    /// Loads every file under `dir` (recursively, skipping `.git`); files of at least `lfs_threshold`
    /// bytes become LFS files, the others regular files.
    pub fn from_dir(id: &str, dir: &Path, lfs_threshold: u64) -> io::Result<Self> {
        let mut files = Vec::new();
        collect_dir(dir, "", lfs_threshold, &mut files)?;
        Ok(Self::new(id, files))
    }

    /// The commit `main` points at: a deterministic 40-hex sha1 over the sorted `(path, etag)` pairs,
    /// so any change of content gives a new commit. Hashes every file on each call.
    pub fn commit(&self) -> String {
        commit_of(self.files.iter().map(|f| (f.path.as_str(), f.etag())))
    }
}

fn collect_dir(
    dir: &Path,
    prefix: &str,
    lfs_threshold: u64,
    out: &mut Vec<RepoFile>,
) -> io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name != ".git" {
                collect_dir(&entry.path(), &format!("{path}/"), lfs_threshold, out)?;
            }
        } else if kind.is_file() || entry.path().is_file() {
            let content = Bytes::from(std::fs::read(entry.path())?);
            let lfs = content.len() as u64 >= lfs_threshold;
            out.push(RepoFile { path, content, lfs });
        }
    }
    Ok(())
}

/// `sha1("blob {len}\0" + content)` in hex: what git names a blob, and the Hub's ETag of a regular file.
pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())
}

/// sha256 of `content` in hex: the Hub's ETag of an LFS file.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// The git-lfs pointer file that git stores in place of an LFS file.
pub(crate) fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Sha1 over the sorted `(path, etag)` pairs; see [`Repo::commit`].
pub(crate) fn commit_of<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort();
    let mut h = Sha1::new();
    for (path, etag) in pairs {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(etag.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

const BLOCK: usize = 1 << 20;

/// `size` bytes of pseudo-random content that depend only on `repo_id`, `path` and `size`.
///
/// A 2 MiB pool comes from a seeded wyrand generator; each 1 MiB block of the output is a window of the
/// pool at an offset hashed from the block index, stamped with that index in its first 8 bytes, so no two
/// blocks are equal and data put at the wrong offset changes the file's hash. Copying windows (on all
/// cores) keeps this at memory speed even in unoptimized builds: 2 GiB take a few seconds, mostly page
/// faults.
pub fn synthetic_content(repo_id: &str, path: &str, size: u64) -> Bytes {
    let seed = {
        let mut h = Sha256::new();
        h.update(repo_id.as_bytes());
        h.update(b"\0");
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(size.to_le_bytes());
        u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    };
    let mut rng = WyRand(seed);
    let mut pool = vec![0u8; 2 * BLOCK];
    for word in pool.chunks_exact_mut(8) {
        word.copy_from_slice(&rng.next().to_le_bytes());
    }
    let size = usize::try_from(size).expect("synthetic size fits in memory");
    let mut out = vec![0u8; size];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let blocks_per_thread = size.div_ceil(BLOCK).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(blocks_per_thread * BLOCK).enumerate() {
            let pool = &pool;
            scope.spawn(move || {
                for (j, block) in part.chunks_mut(BLOCK).enumerate() {
                    let index = (t * blocks_per_thread + j) as u64;
                    let key = WyRand(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next();
                    let start = (key % BLOCK as u64) as usize;
                    block.copy_from_slice(&pool[start..start + block.len()]);
                    let stamp = (index ^ seed).to_le_bytes();
                    let k = stamp.len().min(block.len());
                    block[..k].copy_from_slice(&stamp[..k]);
                }
            });
        }
    });
    Bytes::from(out)
}

/// wyrand: tiny, fast, good enough for test data.
struct WyRand(u64);

impl WyRand {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) as u64) ^ (t as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `git hash-object /dev/null` and `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn etag_depends_on_kind() {
        let regular = RepoFile::regular("a", "hello\n");
        let lfs = RepoFile::lfs("a", "hello\n");
        assert_eq!(regular.etag(), git_blob_sha1(b"hello\n"));
        assert_eq!(
            lfs.etag(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }

    #[test]
    fn commit_is_deterministic_and_order_independent() {
        let a = Repo::new(
            "o/n",
            vec![RepoFile::regular("x", "1"), RepoFile::lfs("y", "2")],
        );
        let b = Repo::new(
            "o/n",
            vec![RepoFile::lfs("y", "2"), RepoFile::regular("x", "1")],
        );
        let c = Repo::new(
            "o/n",
            vec![RepoFile::regular("x", "1"), RepoFile::lfs("y", "3")],
        );
        assert_eq!(a.commit(), b.commit());
        assert_ne!(a.commit(), c.commit());
        assert_eq!(a.commit().len(), 40);
    }

    #[test]
    fn synthetic_content_is_deterministic_and_distinct() {
        let size = 3 * BLOCK as u64 + 5;
        let a = synthetic_content("o/n", "m.bin", size);
        assert_eq!(a.len() as u64, size);
        assert_eq!(a, synthetic_content("o/n", "m.bin", size));
        assert_ne!(a, synthetic_content("o/n", "other.bin", size));
        assert_ne!(a[..BLOCK], a[BLOCK..2 * BLOCK]);
        assert_ne!(&a[..100], &synthetic_content("o/n", "m.bin", 100)[..]);
        assert!(synthetic_content("o/n", "m.bin", 0).is_empty());
    }

    #[test]
    fn lfs_pointer_has_git_lfs_shape() {
        let p = lfs_pointer(&"0".repeat(64), 123_456_789);
        assert_eq!(p.len(), 134);
        assert!(p.starts_with("version https://git-lfs.github.com/spec/v1\noid sha256:"));
    }
}

//! Content addresses. A blob's name in the cache is its etag: the sha256 of the content for LFS files, the git
//! blob sha1 (`sha1("blob <len>\0" + bytes)`) for regular files. Both are checked before a blob becomes visible.

use std::io::Read;
use std::path::Path;

use sha1::Digest as _;

use crate::error::{IoContext, Result};

/// A blob's content address, as named in the cache's `blobs/` folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Etag {
    /// 64 hex digits: sha256 of the bytes (LFS and Xet files, and every imported file).
    Sha256(String),
    /// 40 hex digits: git's blob id (regular files in a git repo).
    GitSha1(String),
}

impl Etag {
    /// Parses a normalized etag (no quotes, no `W/`): its length says which hash it is.
    pub fn parse(s: &str) -> Option<Etag> {
        let s = s
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_ascii_lowercase();
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match s.len() {
            64 => Some(Etag::Sha256(s)),
            40 => Some(Etag::GitSha1(s)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Etag::Sha256(s) | Etag::GitSha1(s) => s,
        }
    }

    pub fn hasher(&self, len: u64) -> BlobHasher {
        match self {
            Etag::Sha256(_) => BlobHasher::Sha256(sha2::Sha256::new()),
            Etag::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {len}\0").as_bytes());
                BlobHasher::GitSha1(h)
            }
        }
    }
}

impl std::fmt::Display for Etag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Incremental hasher for one of the two address kinds.
pub enum BlobHasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl BlobHasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            BlobHasher::Sha256(h) => h.update(data),
            BlobHasher::GitSha1(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            BlobHasher::Sha256(h) => hex::encode(h.finalize()),
            BlobHasher::GitSha1(h) => hex::encode(h.finalize()),
        }
    }
}

/// Hashes a file the way its etag says and returns the hex digest.
pub fn hash_file(path: &Path, etag: &Etag) -> Result<String> {
    let mut f = std::fs::File::open(path).ctx("open", path)?;
    let len = f.metadata().ctx("stat", path)?.len();
    let mut h = etag.hasher(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish_hex())
}

/// sha256 hex of a byte slice.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Git blob sha1 hex of a byte slice.
pub fn git_sha1_hex(data: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_sha1_hex(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn parse_normalizes_quotes_and_weak_prefix() {
        let e = Etag::parse("W/\"CE013625030BA8DBA906F756967F9E9CA394464A\"").unwrap();
        assert_eq!(
            e,
            Etag::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into())
        );
        assert!(Etag::parse("\"abc\"").is_none());
        assert!(Etag::parse(&"z".repeat(64)).is_none());
    }

    #[test]
    fn hash_file_uses_the_etag_kind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        let g = Etag::GitSha1(git_sha1_hex(b"hello\n"));
        assert_eq!(hash_file(&p, &g).unwrap(), g.as_str());
        let s = Etag::Sha256(sha256_hex(b"hello\n"));
        assert_eq!(hash_file(&p, &s).unwrap(), s.as_str());
    }
}

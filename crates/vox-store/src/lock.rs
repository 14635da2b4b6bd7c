//! Cross-process locks on `$HF_HUB_CACHE/.locks/<repo folder>/<etag>.lock`, the files huggingface_hub locks with
//! `filelock` (flock(2)). `std::fs::File::try_lock` is flock on Linux too, so vox and Python exclude each other.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{IoContext, Result, StoreError};

/// An exclusive lock, released when dropped (the file stays, as huggingface_hub leaves its lock files).
#[derive(Debug)]
pub struct FileLock {
    _file: Option<File>,
}

impl FileLock {
    /// Waits (without blocking the async runtime) until the lock is ours. Logs every 10 s while waiting, like
    /// huggingface_hub; waits indefinitely since the holder is making progress on the same blob.
    pub async fn acquire(path: &Path) -> Result<FileLock> {
        let parent = path.parent().expect("lock path has a parent");
        std::fs::create_dir_all(parent).ctx("create lock directory", parent)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o664)
            .open(path)
            .ctx("open lock", path)?;
        let started = Instant::now();
        let mut last_log = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: Some(file) }),
                Err(TryLockError::WouldBlock) => {
                    if last_log.elapsed() > Duration::from_secs(10) {
                        tracing::info!(lock = %path.display(), waited_s = started.elapsed().as_secs(), "waiting for another process to finish this file");
                        last_log = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(TryLockError::Error(e))
                    if e.kind() == std::io::ErrorKind::Unsupported
                        || e.raw_os_error() == Some(libc::ENOLCK) =>
                {
                    // Like filelock's SoftFileLock fallback: no exclusion, but temp names are unique per
                    // process and renames atomic, so the worst case is a duplicate download.
                    tracing::warn!(lock = %path.display(), "the filesystem has no flock; continuing without a lock");
                    return Ok(FileLock { _file: None });
                }
                Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".locks/x/e.lock");
        let first = FileLock::acquire(&p).await.unwrap();
        let p2 = p.clone();
        let waiter =
            tokio::spawn(async move { FileLock::acquire(&p2).await.map(|_| Instant::now()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiter.is_finished(),
            "the lock must exclude a second holder"
        );
        let released = Instant::now();
        drop(first);
        let got = waiter.await.unwrap().unwrap();
        assert!(got >= released);
        assert!(
            p.exists(),
            "lock files are left in place, as huggingface_hub leaves them"
        );
    }
}

//! The download engine: one blob at a time, split into chunks fetched over parallel HTTP Range (or S3 ranged GET)
//! requests, resumable across process restarts, verified against its content address before it becomes visible.
//!
//! A blob in progress is `blobs/<etag>.vox-part` (preallocated to the full size, chunks written at their offsets)
//! plus `blobs/<etag>.vox-part.state` (one byte per chunk, 1 = written). A killed process leaves both; the next run
//! fetches only the missing chunks. Only after the whole file hashes to its etag is it renamed to `blobs/<etag>`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::Semaphore;

use crate::error::{IoContext, Result, StoreError};
use crate::hub::{FileLocation, HubClient};
use crate::layout::{RepoCache, RepoEntry};
use crate::lock::FileLock;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::retry::RetryPolicy;

/// Where one blob's bytes come from.
#[derive(Clone)]
pub(crate) enum Origin {
    Hub {
        client: HubClient,
        repo: String,
        commit: String,
    },
    Mirror {
        store: Arc<dyn object_store::ObjectStore>,
        path: object_store::path::Path,
    },
}

/// An origin after its one-time lookup (the Hub's resolve redirect), ready for ranged reads.
enum Located {
    Hub(HubClient, FileLocation),
    Mirror(Arc<dyn object_store::ObjectStore>, object_store::path::Path),
}

impl Origin {
    async fn locate(&self, entry: &RepoEntry) -> Result<Located> {
        match self {
            Origin::Hub {
                client,
                repo,
                commit,
            } => Ok(Located::Hub(
                client.clone(),
                client.locate(repo, commit, entry).await?,
            )),
            Origin::Mirror { store, path } => Ok(Located::Mirror(store.clone(), path.clone())),
        }
    }
}

type ByteStream = BoxStream<'static, std::result::Result<Bytes, String>>;

impl Located {
    async fn open(&self, start: u64, end: u64, what: &str) -> Result<ByteStream> {
        match self {
            Located::Hub(client, loc) => {
                let resp = client.get_range(loc, start, end, what).await?;
                Ok(resp
                    .bytes_stream()
                    .map(|r| r.map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e))))
                    .boxed())
            }
            Located::Mirror(store, path) => {
                let opts = object_store::GetOptions {
                    range: Some((start..end + 1).into()),
                    ..Default::default()
                };
                let r = store
                    .get_opts(path, opts)
                    .await
                    .map_err(|e| StoreError::Mirror {
                        url: path.to_string(),
                        message: e.to_string(),
                    })?;
                Ok(r.into_stream()
                    .map(|r| r.map_err(|e| e.to_string()))
                    .boxed())
            }
        }
    }
}

/// Settings shared by all downloads of one pull.
#[derive(Clone)]
pub(crate) struct FetchCtx {
    pub chunk_size: u64,
    /// Open connections across all files of the pull.
    pub connections: Arc<Semaphore>,
    pub retry: RetryPolicy,
    pub progress: Arc<dyn ProgressSink>,
    pub model: String,
    pub fsync: bool,
}

/// Makes `blobs/<etag>` exist with verified content. Returns whether bytes were downloaded (false: it was already
/// there, e.g. fetched meanwhile by another process holding the lock).
pub(crate) async fn fetch_blob(
    repo: &RepoCache,
    entry: &RepoEntry,
    origin: &Origin,
    ctx: &FetchCtx,
) -> Result<bool> {
    let blob = repo.blob_path(&entry.etag);
    let _lock = FileLock::acquire(&repo.lock_path(&entry.etag)).await?;
    if blob_present(&blob, entry.size) {
        return Ok(false);
    }
    let blobs_dir = repo.blobs_dir();
    std::fs::create_dir_all(&blobs_dir).ctx("create blobs directory", &blobs_dir)?;
    // A hash mismatch (bad bytes from a server or a disk) discards the partial file; try the whole blob again.
    let mut last_err = None;
    for _ in 0..3 {
        match fetch_attempt(repo, entry, origin, ctx).await {
            Ok(()) => return Ok(true),
            Err(e @ StoreError::HashMismatch { .. }) => {
                tracing::warn!(file = %entry.path, error = %e, "downloaded content failed verification; fetching again");
                ctx.progress.event(&ProgressEvent::Retry {
                    model: ctx.model.clone(),
                    file: entry.path.clone(),
                    attempt: 1,
                    error: e.to_string(),
                });
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.expect("loop ran"))
}

pub(crate) fn blob_present(blob: &Path, size: u64) -> bool {
    std::fs::metadata(blob)
        .map(|m| m.is_file() && m.len() == size)
        .unwrap_or(false)
}

fn state_path(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_owned();
    s.push(".state");
    PathBuf::from(s)
}

async fn fetch_attempt(
    repo: &RepoCache,
    entry: &RepoEntry,
    origin: &Origin,
    ctx: &FetchCtx,
) -> Result<()> {
    let part = repo.part_path(&entry.etag);
    let state = state_path(&part);
    let size = entry.size;
    let chunk = ctx.chunk_size.max(1);
    let n_chunks = size.div_ceil(chunk).max(1) as usize;

    // Resume only a consistent pair: the part at full size and a state of one byte per chunk of this size.
    let resumable = std::fs::metadata(&part)
        .map(|m| m.len() == size)
        .unwrap_or(false)
        && std::fs::metadata(&state)
            .map(|m| m.len() == n_chunks as u64)
            .unwrap_or(false);
    let done: Vec<bool> = if resumable {
        std::fs::read(&state)
            .ctx("read download state", &state)?
            .iter()
            .map(|b| *b == 1)
            .collect()
    } else {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&part)
            .ctx("create partial file", &part)?;
        f.set_len(size).ctx("preallocate partial file", &part)?;
        std::fs::write(&state, vec![0u8; n_chunks]).ctx("write download state", &state)?;
        vec![false; n_chunks]
    };
    let already: u64 = done
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .map(|(i, _)| chunk_len(i, chunk, size))
        .sum();
    if already > 0 {
        tracing::info!(file = %entry.path, resumed_bytes = already, "resuming a partial download");
        ctx.progress.event(&ProgressEvent::Bytes {
            model: ctx.model.clone(),
            file: entry.path.clone(),
            bytes: already,
        });
    }

    // The hash runs alongside the download: a thread walks the chunks in order, hashing each as soon as it is
    // written (from the page cache), so verification costs little more than the last chunk's hashing.
    let hasher = InOrderHasher::start(part.clone(), entry.etag.clone(), size, chunk, done.clone());
    let todo: Vec<usize> = (0..n_chunks).filter(|i| !done[*i]).collect();
    if !todo.is_empty() && size > 0 {
        let result = download_chunks(&part, &state, todo, entry, origin, ctx, &hasher).await;
        if let Err(e) = result {
            hasher.abort();
            return Err(e);
        }
    }
    let (actual, fsync, part2) = (hasher.clone(), ctx.fsync, part.clone());
    let actual = tokio::task::spawn_blocking(move || {
        let digest = actual.finish()?;
        if fsync {
            std::fs::File::open(&part2)
                .and_then(|f| f.sync_all())
                .ctx("sync", &part2)?;
        }
        Ok::<_, StoreError>(digest)
    })
    .await
    .expect("hash task")?;
    if actual != entry.etag.as_str() {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&state);
        return Err(StoreError::HashMismatch {
            path: format!("{}/{}", repo.repo_id, entry.path),
            expected: entry.etag.to_string(),
            actual,
        });
    }
    let blob = repo.blob_path(&entry.etag);
    std::fs::rename(&part, &blob).ctx("rename into place", &blob)?;
    let _ = std::fs::remove_file(&state);
    Ok(())
}

/// Fetches the missing chunks in parallel (bounded by the shared connection pool), recording each in the state
/// file and telling the hasher.
async fn download_chunks(
    part: &Path,
    state: &Path,
    todo: Vec<usize>,
    entry: &RepoEntry,
    origin: &Origin,
    ctx: &FetchCtx,
    hasher: &InOrderHasher,
) -> Result<()> {
    let (size, chunk) = (entry.size, ctx.chunk_size.max(1));
    let located = Arc::new(origin.locate(entry).await?);
    let part_file = Arc::new(
        OpenOptions::new()
            .write(true)
            .open(part)
            .ctx("open partial file", part)?,
    );
    let state_file = Arc::new(
        OpenOptions::new()
            .write(true)
            .open(state)
            .ctx("open download state", state)?,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in todo {
        let (located, part_file, state_file, ctx, entry, hasher) = (
            located.clone(),
            part_file.clone(),
            state_file.clone(),
            ctx.clone(),
            entry.clone(),
            hasher.clone(),
        );
        let part = part.to_path_buf();
        tasks.spawn(async move {
            let _permit = ctx
                .connections
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let start = i as u64 * chunk;
            let end = start + chunk_len(i, chunk, size) - 1;
            fetch_chunk(&located, &part_file, start, end, &entry, &ctx, &part).await?;
            state_file
                .write_all_at(&[1], i as u64)
                .ctx("write download state", &part)?;
            hasher.chunk_done(i);
            Ok::<(), StoreError>(())
        });
    }
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if first_err.is_none() {
                    first_err = Some(e);
                    tasks.abort_all();
                }
            }
            Err(j) if j.is_cancelled() => {}
            Err(j) => std::panic::resume_unwind(j.into_panic()),
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Hashes a part file chunk by chunk in order, on its own thread, as chunks are reported written.
#[derive(Clone)]
struct InOrderHasher {
    shared: Arc<(std::sync::Mutex<HasherState>, std::sync::Condvar)>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<Result<String>>>>>,
}

struct HasherState {
    done: Vec<bool>,
    aborted: bool,
}

impl InOrderHasher {
    fn start(
        part: PathBuf,
        etag: crate::hash::Etag,
        size: u64,
        chunk: u64,
        done: Vec<bool>,
    ) -> Self {
        let shared = Arc::new((
            std::sync::Mutex::new(HasherState {
                done,
                aborted: false,
            }),
            std::sync::Condvar::new(),
        ));
        let s2 = shared.clone();
        let thread = std::thread::spawn(move || -> Result<String> {
            let mut h = etag.hasher(size);
            let file = std::fs::File::open(&part).ctx("open partial file", &part)?;
            let n = size.div_ceil(chunk).max(1) as usize;
            let mut buf = vec![0u8; (chunk as usize).min(8 << 20)];
            for i in 0..n {
                {
                    let (lock, cv) = &*s2;
                    let mut st = lock.lock().expect("hasher state");
                    while !st.done[i] && !st.aborted {
                        st = cv.wait(st).expect("hasher state");
                    }
                    if st.aborted {
                        return Ok(String::new());
                    }
                }
                let (mut pos, end) = (i as u64 * chunk, (i as u64 * chunk + chunk).min(size));
                while pos < end {
                    let want = ((end - pos) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..want], pos)
                        .ctx("read partial file", &part)?;
                    h.update(&buf[..want]);
                    pos += want as u64;
                }
                // Start writing this chunk back to disk now, so the fsync before the rename has little left
                // to wait for. Only a hint: errors are ignored and the fsync still decides.
                #[cfg(target_os = "linux")]
                // SAFETY: a valid open descriptor and an in-file range; the call only schedules write-back.
                unsafe {
                    use std::os::fd::AsRawFd;
                    let start = (i as u64 * chunk) as libc::off64_t;
                    libc::sync_file_range(
                        file.as_raw_fd(),
                        start,
                        (end - i as u64 * chunk) as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WRITE,
                    );
                }
            }
            Ok(h.finish_hex())
        });
        InOrderHasher {
            shared,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        }
    }

    fn chunk_done(&self, i: usize) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("hasher state").done[i] = true;
        cv.notify_all();
    }

    fn abort(&self) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("hasher state").aborted = true;
        cv.notify_all();
        if let Some(t) = self.thread.lock().expect("hasher thread").take() {
            let _ = t.join();
        }
    }

    /// Waits for the digest (blocking: call off the async threads).
    fn finish(&self) -> Result<String> {
        let t = self
            .thread
            .lock()
            .expect("hasher thread")
            .take()
            .expect("finish called once");
        t.join().expect("hasher thread panicked")
    }
}

fn chunk_len(i: usize, chunk: u64, size: u64) -> u64 {
    let start = i as u64 * chunk;
    chunk.min(size.saturating_sub(start))
}

/// Fetches bytes `start..=end` into the part file, resuming within the chunk after a cut connection. Opening the
/// request has its own retries (statuses, connection errors); this loop retries bodies that stop early.
async fn fetch_chunk(
    located: &Located,
    file: &std::fs::File,
    start: u64,
    end: u64,
    entry: &RepoEntry,
    ctx: &FetchCtx,
    part: &Path,
) -> Result<()> {
    let what = format!("download {}", entry.path);
    let mut pos = start;
    let mut failures = 0u32;
    while pos <= end {
        let mut stream = located.open(pos, end, &what).await?;
        let mut cut = None;
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            };
            let take = piece.len().min((end + 1 - pos) as usize);
            file.write_all_at(&piece[..take], pos).ctx("write", part)?;
            pos += take as u64;
            failures = 0; // progress resets the budget, as huggingface_hub does
            ctx.progress.event(&ProgressEvent::Bytes {
                model: ctx.model.clone(),
                file: entry.path.clone(),
                bytes: take as u64,
            });
            if pos > end {
                break;
            }
        }
        if pos > end {
            return Ok(());
        }
        let e = cut.unwrap_or_else(|| {
            format!(
                "connection closed after {} of {} bytes",
                pos - start,
                end + 1 - start
            )
        });
        failures += 1;
        if failures >= ctx.retry.max_attempts {
            return Err(StoreError::RetriesExhausted {
                context: what,
                attempts: failures,
                last: e,
            });
        }
        ctx.progress.event(&ProgressEvent::Retry {
            model: ctx.model.clone(),
            file: entry.path.clone(),
            attempt: failures,
            error: e.clone(),
        });
        tracing::warn!(file = %entry.path, offset = pos, attempt = failures, error = %e, "download interrupted, resuming");
        tokio::time::sleep(ctx.retry.delay(failures, None)).await;
    }
    Ok(())
}

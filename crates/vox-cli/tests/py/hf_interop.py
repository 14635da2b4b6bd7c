"""huggingface_hub's view of a cache, for vox's interop tests.

  read  CACHE REPO COMMIT PATTERN...   offline: snapshot_download + hf_hub_download + scan_cache_dir must all
                                        find the repo at COMMIT; prints a JSON summary
  write CACHE REPO PATTERN...           online (HF_ENDPOINT): snapshot_download into CACHE; prints the path

Run with PYTHONPATH pointing at a huggingface_hub install (the tests use 2.x and 0.36).
"""
import json
import os
import sys

mode, cache, repo = sys.argv[1], sys.argv[2], sys.argv[3]
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
if mode == "read":
    os.environ["HF_HUB_OFFLINE"] = "1"

import huggingface_hub as hh  # noqa: E402

if mode == "read":
    commit, patterns = sys.argv[4], sys.argv[5:]
    path = hh.snapshot_download(repo, cache_dir=cache, allow_patterns=patterns, local_files_only=True)
    assert os.path.basename(path) == commit, (path, commit)
    by_commit = hh.snapshot_download(repo, revision=commit, cache_dir=cache, allow_patterns=patterns, local_files_only=True)
    assert by_commit == path, (by_commit, path)
    files = []
    for root, _, names in os.walk(path):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), path)
            got = hh.hf_hub_download(repo, rel, cache_dir=cache, local_files_only=True)
            assert os.path.realpath(got) == os.path.realpath(os.path.join(path, rel)), (got, rel)
            files.append(rel)
    info = hh.scan_cache_dir(cache)
    repos = {r.repo_id: r for r in info.repos}
    assert repo in repos, list(repos)
    r = repos[repo]
    revs = {rev.commit_hash: rev for rev in r.revisions}
    assert commit in revs, list(revs)
    assert "main" in revs[commit].refs, revs[commit].refs
    print(json.dumps({
        "version": hh.__version__,
        "files": sorted(files),
        "size_on_disk": r.size_on_disk,
        "warnings": [str(w) for w in info.warnings],
    }))
elif mode == "write":
    patterns = sys.argv[4:]
    path = hh.snapshot_download(repo, cache_dir=cache, allow_patterns=patterns)
    print(json.dumps({"version": hh.__version__, "path": path}))
else:
    sys.exit(f"unknown mode {mode}")

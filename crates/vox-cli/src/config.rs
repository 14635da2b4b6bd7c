//! Effective settings: built-in defaults, then a TOML config file, then the environment, then flags (each later
//! source wins). Every value remembers where it came from, for `vox config`.
//!
//! The environment names are the deployment's: `MODELS_DIR`, `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`,
//! `HF_TOKEN`, `HF_HUB_OFFLINE`, … (see [`SETTINGS`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use vox_store::{MirrorSettings, RetryPolicy, StoreConfig};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    Derived(&'static str),
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::Derived(from) => write!(f, "default (from {from})"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

/// One setting: its key in the config file, the environment variables read (first set wins), whether it is a
/// secret, and what it is for.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static [&'static str],
    pub secret: bool,
    pub help: &'static str,
}

/// Every setting, in the order `vox config` prints them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "models_dir",
        env: &["MODELS_DIR"],
        secret: false,
        help: "the model volume (default ./data/models; /data/models in the image)",
    },
    Setting {
        key: "hf_home",
        env: &["HF_HOME"],
        secret: false,
        help: "huggingface_hub home (default $MODELS_DIR/huggingface)",
    },
    Setting {
        key: "hf_hub_cache",
        env: &[
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "TRANSFORMERS_CACHE",
        ],
        secret: false,
        help: "the hub cache (default $HF_HOME/hub)",
    },
    Setting {
        key: "torch_home",
        env: &["TORCH_HOME"],
        secret: false,
        help: "torch hub cache for Python tools sharing the volume (default $MODELS_DIR/torch)",
    },
    Setting {
        key: "hf_endpoint",
        env: &["HF_ENDPOINT"],
        secret: false,
        help: "the Hugging Face Hub endpoint",
    },
    Setting {
        key: "hf_token",
        env: &["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"],
        secret: true,
        help: "Hub token (else read from $HF_HOME/token)",
    },
    Setting {
        key: "hf_hub_offline",
        env: &["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"],
        secret: false,
        help: "never touch the network",
    },
    Setting {
        key: "hf_hub_disable_symlinks",
        env: &["HF_HUB_DISABLE_SYMLINKS"],
        secret: false,
        help: "copy files into snapshots instead of symlinking",
    },
    Setting {
        key: "manifest",
        env: &["VOX_MANIFEST"],
        secret: false,
        help: "manifest: a built-in name (starter, production) or a TOML file",
    },
    Setting {
        key: "mirror",
        env: &["VOX_MIRROR"],
        secret: false,
        help: "s3://bucket/prefix of a cache mirror to read from first",
    },
    Setting {
        key: "mirror_endpoint",
        env: &["VOX_MIRROR_ENDPOINT", "AWS_ENDPOINT_URL"],
        secret: false,
        help: "S3 endpoint of the mirror (R2: https://<account>.r2.cloudflarestorage.com)",
    },
    Setting {
        key: "mirror_region",
        env: &["VOX_MIRROR_REGION", "AWS_REGION"],
        secret: false,
        help: "S3 region of the mirror",
    },
    Setting {
        key: "max_connections",
        env: &["VOX_MAX_CONNECTIONS"],
        secret: false,
        help: "HTTP connections at once",
    },
    Setting {
        key: "parallel_files",
        env: &["VOX_PARALLEL_FILES"],
        secret: false,
        help: "files downloaded at once",
    },
    Setting {
        key: "chunk_mib",
        env: &["VOX_CHUNK_MIB"],
        secret: false,
        help: "MiB per ranged request",
    },
    Setting {
        key: "reserve_mib",
        env: &["VOX_RESERVE_MIB"],
        secret: false,
        help: "MiB to leave free on the volume",
    },
    Setting {
        key: "retry_attempts",
        env: &["VOX_RETRY_ATTEMPTS"],
        secret: false,
        help: "attempts per request",
    },
    Setting {
        key: "retry_base_ms",
        env: &["VOX_RETRY_BASE_MS"],
        secret: false,
        help: "first backoff delay",
    },
    Setting {
        key: "fsync",
        env: &["VOX_FSYNC"],
        secret: false,
        help: "fsync blobs before they become visible",
    },
];

/// Flags that override the environment.
#[derive(Debug, Default, Clone)]
pub struct FlagOverrides {
    pub config: Option<PathBuf>,
    pub values: Vec<(&'static str, String)>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Settings {
    /// Resolves from the process environment.
    pub fn load(flags: &FlagOverrides) -> Result<Settings> {
        Settings::resolve(flags, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Resolves with an explicit environment (tests).
    pub fn resolve(
        flags: &FlagOverrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let mut values: BTreeMap<&'static str, (String, Origin)> = BTreeMap::new();
        // Config file: --config, else VOX_CONFIG, else ./vox.toml if present.
        let file = flags
            .config
            .clone()
            .or_else(|| env("VOX_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("vox.toml");
                p.exists().then_some(p)
            });
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("config file {}: cannot read it", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("config file {}: does not parse", path.display()))?;
            for (k, v) in table {
                let Some(s) = SETTINGS.iter().find(|s| s.key == k) else {
                    bail!(
                        "config file {}: unknown setting {k:?}; known: {}",
                        path.display(),
                        SETTINGS
                            .iter()
                            .map(|s| s.key)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                };
                let v = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                values.insert(s.key, (v, Origin::File(path.clone())));
            }
        }
        for s in SETTINGS {
            if let Some((var, v)) = s.env.iter().find_map(|var| env(var).map(|v| (*var, v))) {
                values.insert(s.key, (v, Origin::Env(var)));
            }
        }
        for (k, v) in &flags.values {
            values.insert(k, (v.clone(), Origin::Flag(flag_name(k))));
        }
        // Defaults, some derived from others.
        fn set_default(
            values: &mut BTreeMap<&'static str, (String, Origin)>,
            k: &'static str,
            v: String,
            o: Origin,
        ) -> String {
            values.entry(k).or_insert((v, o)).0.clone()
        }
        let models_dir = set_default(
            &mut values,
            "models_dir",
            "./data/models".into(),
            Origin::Default,
        );
        let hf_home = set_default(
            &mut values,
            "hf_home",
            format!("{models_dir}/huggingface"),
            Origin::Derived("models_dir"),
        );
        set_default(
            &mut values,
            "hf_hub_cache",
            format!("{hf_home}/hub"),
            Origin::Derived("hf_home"),
        );
        set_default(
            &mut values,
            "torch_home",
            format!("{models_dir}/torch"),
            Origin::Derived("models_dir"),
        );
        set_default(
            &mut values,
            "hf_endpoint",
            vox_store::config::DEFAULT_ENDPOINT.into(),
            Origin::Default,
        );
        let token_file = env("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&hf_home).join("token"));
        if !values.contains_key("hf_token")
            && let Ok(t) = std::fs::read_to_string(&token_file)
            && !t.trim().is_empty()
        {
            values.insert(
                "hf_token",
                (t.trim().to_string(), Origin::Derived("token file")),
            );
        }
        for (k, v) in [
            ("hf_hub_offline", "0"),
            ("hf_hub_disable_symlinks", "0"),
            ("manifest", "starter"),
            ("max_connections", "8"),
            ("parallel_files", "4"),
            ("chunk_mib", "16"),
            ("reserve_mib", "0"),
            ("retry_attempts", "8"),
            ("retry_base_ms", "250"),
            ("fsync", "1"),
        ] {
            set_default(&mut values, k, v.into(), Origin::Default);
        }
        let s = Settings { values };
        s.store_config()?; // validate numbers and booleans now, with the setting's name in the message
        Ok(s)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    fn bool(&self, key: &str) -> Result<bool> {
        let v = self.get(key).unwrap_or("0");
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => bail!(
                "setting {key} = {v:?} ({}): expected 1/0, true/false, yes/no or on/off",
                self.values[key].1
            ),
        }
    }

    fn num(&self, key: &str) -> Result<u64> {
        let v = self.get(key).unwrap_or("0");
        v.trim().parse::<u64>().map_err(|_| {
            anyhow::anyhow!(
                "setting {key} = {v:?} ({}): expected a whole number",
                self.values[key].1
            )
        })
    }

    pub fn models_dir(&self) -> PathBuf {
        PathBuf::from(self.get("models_dir").unwrap_or_default())
    }

    pub fn manifest(&self) -> &str {
        self.get("manifest").unwrap_or("starter")
    }

    /// The store's configuration.
    pub fn store_config(&self) -> Result<StoreConfig> {
        let mut c = StoreConfig::new(self.get("hf_hub_cache").unwrap_or_default());
        c.scratch_dir = self.models_dir().join(".vox-scratch");
        c.endpoint = self.get("hf_endpoint").unwrap_or_default().to_string();
        c.token = self.get("hf_token").map(str::to_string);
        c.offline = self.bool("hf_hub_offline")?;
        c.symlinks = if self.bool("hf_hub_disable_symlinks")? {
            Some(false)
        } else {
            None
        };
        c.mirror = self.get("mirror").map(|url| MirrorSettings {
            url: url.to_string(),
            endpoint: self.get("mirror_endpoint").map(str::to_string),
            region: self.get("mirror_region").map(str::to_string),
        });
        c.max_connections = self.num("max_connections")?.max(1) as usize;
        c.max_parallel_files = self.num("parallel_files")?.max(1) as usize;
        c.chunk_size = self.num("chunk_mib")?.max(1) << 20;
        c.reserve_bytes = self.num("reserve_mib")? << 20;
        c.retry = RetryPolicy {
            max_attempts: self.num("retry_attempts")?.max(1) as u32,
            base_delay: std::time::Duration::from_millis(self.num("retry_base_ms")?),
            ..RetryPolicy::default()
        };
        c.fsync = self.bool("fsync")?;
        Ok(c)
    }

    /// Rows for `vox config`: key, value (secrets masked), origin, help.
    pub fn rows(&self) -> Vec<(&'static str, String, String, &'static str)> {
        SETTINGS
            .iter()
            .map(|s| {
                let (v, o) = self
                    .values
                    .get(s.key)
                    .cloned()
                    .unwrap_or((String::new(), Origin::Default));
                let shown = if s.secret && !v.is_empty() {
                    mask(&v)
                } else {
                    v
                };
                (s.key, shown, o.to_string(), s.help)
            })
            .collect()
    }

    /// Exports the paths to child processes (pip, Python tools) so they share the volume's caches.
    pub fn export_env(&self) {
        for (k, var) in [
            ("hf_home", "HF_HOME"),
            ("hf_hub_cache", "HF_HUB_CACHE"),
            ("torch_home", "TORCH_HOME"),
        ] {
            if let Some(v) = self.get(k) {
                // SAFETY: called once at start-up, before any other thread exists.
                unsafe { std::env::set_var(var, v) };
            }
        }
    }
}

fn flag_name(key: &str) -> &'static str {
    match key {
        "models_dir" => "models-dir",
        "hf_endpoint" => "endpoint",
        "hf_hub_offline" => "offline",
        "manifest" => "manifest",
        "mirror" => "mirror",
        _ => "set",
    }
}

/// Shows only the first 4 characters of a secret.
fn mask(v: &str) -> String {
    let head: String = v.chars().take(4).collect();
    format!("{head}…(masked, {} chars)", v.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_derive_from_models_dir() {
        let s = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("MODELS_DIR", "/data/models")]),
        )
        .unwrap();
        assert_eq!(s.get("hf_home"), Some("/data/models/huggingface"));
        assert_eq!(s.get("hf_hub_cache"), Some("/data/models/huggingface/hub"));
        assert_eq!(
            s.store_config().unwrap().hub_cache,
            PathBuf::from("/data/models/huggingface/hub")
        );
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("vox.toml");
        std::fs::write(
            &f,
            "models_dir = '/from/file'\nmanifest = 'production'\nmax_connections = 3\n",
        )
        .unwrap();
        let flags = FlagOverrides {
            config: Some(f.clone()),
            values: vec![("manifest", "x.toml".into())],
        };
        let s = Settings::resolve(&flags, env(&[("MODELS_DIR", "/from/env")])).unwrap();
        assert_eq!(s.get("models_dir"), Some("/from/env"));
        assert_eq!(s.get("manifest"), Some("x.toml"));
        assert_eq!(s.get("max_connections"), Some("3"));
        let rows = s.rows();
        let origin = |k: &str| rows.iter().find(|r| r.0 == k).unwrap().2.clone();
        assert_eq!(origin("models_dir"), "env MODELS_DIR");
        assert_eq!(origin("manifest"), "flag --manifest");
        assert!(origin("max_connections").starts_with("file "));
        assert_eq!(origin("hf_home"), "default (from models_dir)");
    }

    #[test]
    fn secrets_are_masked_and_bad_values_named() {
        let s = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("HF_TOKEN", "hf_abcdefghijkl")]),
        )
        .unwrap();
        let row = s.rows().into_iter().find(|r| r.0 == "hf_token").unwrap();
        assert!(
            !row.1.contains("efghijkl") && row.1.starts_with("hf_a"),
            "{}",
            row.1
        );
        let e = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("HF_HUB_OFFLINE", "maybe")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("hf_hub_offline") && e.contains("HF_HUB_OFFLINE"),
            "{e}"
        );
        let e = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("VOX_MAX_CONNECTIONS", "lots")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_connections"), "{e}");
    }

    #[test]
    fn legacy_cache_variables_are_honored() {
        let s = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("TRANSFORMERS_CACHE", "/old/cache")]),
        )
        .unwrap();
        assert_eq!(s.get("hf_hub_cache"), Some("/old/cache"));
        let s = Settings::resolve(
            &FlagOverrides::default(),
            env(&[("TRANSFORMERS_CACHE", "/old"), ("HF_HUB_CACHE", "/new")]),
        )
        .unwrap();
        assert_eq!(s.get("hf_hub_cache"), Some("/new"));
    }
}

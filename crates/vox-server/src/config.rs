//! [`ServerConfig`]: everything the server needs besides the models. The CLI fills it from flags and the
//! environment; tests build it directly.

use std::net::SocketAddr;
use std::time::Duration;

use vox_engine::QueueConfig;

/// Bounds on what one request may ask for.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Largest request body (uploads, JSON), in bytes.
    pub max_body_bytes: usize,
    /// Longest text one TTS request may carry, in characters.
    pub max_text_chars: usize,
    /// Longest audio one STT request may carry, in seconds.
    pub max_audio_secs: f64,
    /// Time to produce a response's headers (a streamed body may take longer).
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: 100 << 20,
            max_text_chars: 100_000,
            max_audio_secs: 3.0 * 3600.0,
            request_timeout: Duration::from_secs(600),
        }
    }
}

/// How the server runs.
#[derive(Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Accepted Bearer keys; empty = no authentication (only allowed on loopback or with `insecure`).
    pub api_keys: Vec<String>,
    /// Allow a non-loopback address without keys.
    pub insecure: bool,
    pub limits: RequestLimits,
    /// Per engine: threads, queue size, queue deadline.
    pub queue: QueueConfig,
    /// After SIGTERM: how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for ServerConfig {
    // Keys never reach a log: only their number is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("api_keys", &format_args!("[{} keys]", self.api_keys.len()))
            .field("insecure", &self.insecure)
            .field("limits", &self.limits)
            .field("queue", &self.queue)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl ServerConfig {
    pub fn new(bind: SocketAddr) -> Self {
        ServerConfig {
            bind,
            api_keys: Vec::new(),
            insecure: false,
            limits: RequestLimits::default(),
            queue: QueueConfig::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }

    /// Splits a comma-separated key list (`VOX_API_KEY`), dropping blanks.
    pub fn parse_keys(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Refuses an open server on a reachable address.
    pub fn check(&self) -> Result<(), String> {
        if self.api_keys.is_empty() && !self.bind.ip().is_loopback() && !self.insecure {
            return Err(format!(
                "refusing to serve on {} without an API key: set VOX_API_KEY (comma-separated for several), \
                 bind a loopback address, or pass --insecure",
                self.bind
            ));
        }
        if self.api_keys.iter().any(|k| k.len() < 8) {
            return Err("every API key must have at least 8 characters".into());
        }
        Ok(())
    }
}

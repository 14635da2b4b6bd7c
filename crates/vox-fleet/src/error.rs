use reqwest::StatusCode;

/// What can go wrong talking to Vast.ai. Messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum VastError {
    #[error("the Vast.ai base URL {url:?} is not a valid URL: {reason}")]
    BadBaseUrl { url: String, reason: String },

    #[error(
        "Vast.ai rejected the API key ({msg}); check VAST_API_KEY (create a key at console.vast.ai → Account → Keys)"
    )]
    Unauthorized { msg: String },

    #[error(
        "Vast.ai refused {what} ({msg}); the API key lacks a permission: give it instance_read, instance_write and misc"
    )]
    Forbidden { what: String, msg: String },

    #[error(
        "Vast.ai found nothing for {what} ({msg}); the instance was destroyed or the id is wrong"
    )]
    NotFound { what: String, msg: String },

    #[error("offer {offer} is no longer available ({msg}); search offers again and pick another")]
    OfferGone { offer: u64, msg: String },

    #[error(
        "Vast.ai kept rate-limiting {what} after {attempts} attempts{}; make fewer calls (poll every 5-10 s) or retry later",
        retry_after.map(|s| format!(" (last Retry-After {s} s)")).unwrap_or_default()
    )]
    RateLimited {
        what: String,
        attempts: u32,
        retry_after: Option<u64>,
    },

    #[error(
        "Vast.ai failed on {what}: HTTP {status} ({msg}); the service may be down, retry later"
    )]
    Server {
        what: String,
        status: StatusCode,
        msg: String,
    },

    #[error("Vast.ai rejected {what}: HTTP {status} {code} ({msg})")]
    Api {
        what: String,
        status: StatusCode,
        code: String,
        msg: String,
    },

    #[error("could not reach Vast.ai for {what}: {source}; check the network and the base URL")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("Vast.ai answered {what} with a body vox cannot read: {reason}")]
    Decode { what: String, reason: String },
}

impl VastError {
    /// Whether a later identical call may succeed (rate limits, server and network trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            VastError::RateLimited { .. } | VastError::Server { .. } | VastError::Transport { .. }
        )
    }
}

/// Errors of a [`crate::Provider`].
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Vast(#[from] VastError),

    #[error(
        "no Vast.ai offer matches the search for {label:?}; relax the offer filters or raise the price cap"
    )]
    NoOffer { label: String },

    #[error("instance {id} is gone; acquire a new one")]
    Gone { id: u64 },

    #[error("local vox serve: {reason}")]
    Local { reason: String },
}

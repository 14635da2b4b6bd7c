//! The crate's one error type. Messages say what failed and what to check.

/// What went wrong in the job system.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The database could not be opened or answered with an error.
    #[error("the job database failed to {what}: {source}")]
    Db {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A setting is wrong (bad URL, missing credential).
    #[error("{0}")]
    Config(String),
    /// The request itself is wrong: the job fails at once, a retry cannot help.
    #[error("{0}")]
    BadInput(String),
    /// Object storage failed (network, credentials, bucket).
    #[error("object storage at {store} failed to {what}: {message}")]
    Storage {
        store: String,
        what: &'static str,
        message: String,
    },
    /// No such job.
    #[error("no job {0}")]
    NotFound(String),
}

impl JobsError {
    pub(crate) fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> JobsError {
        move |source| JobsError::Db { what, source }
    }
}

pub type Result<T, E = JobsError> = std::result::Result<T, E>;

//! `vox-fleet`: rents and runs the GPU machines a vox worker sends speech jobs to. It holds a Vast.ai REST
//! client ([`VastClient`]: show/list/start/stop/create/search/destroy with bounded retries on rate limits
//! and server errors), the [`Provider`] trait with its Vast.ai implementation, and the instance
//! lifecycle as a pure state machine ([`lifecycle::step`]) that decides when to start, poll, health-check,
//! fall back and stop. It keeps no job queue. It defines the contracts for shared leases and cost records
//! ([`ledger`]); `vox-jobs` stores them in its database. Tests run the client against the `vastsim`
//! simulator; production code only ever sees a base URL.

mod client;
mod error;
mod fleet;
mod idle_policy;
pub mod ledger;
pub mod lifecycle;
mod local;
mod provider;
mod types;
pub mod watchdog;

pub use client::{RetryPolicy, VAST_BASE_URL, VastClient};
pub use error::{ProviderError, VastError};
pub use fleet::{Clock, Fleet, FleetConfig, FleetError, InstanceGuard, SystemClock};
pub use idle_policy::{IdleInputs, IdlePolicy, MIN_GAPS, hindsight_timeout};
pub use ledger::{
    CostLedger, Hold, InstanceInterval, InstancePhase, JobCost, Lease, LeaseStore, LedgerError,
    MemoryLedger,
};
pub use lifecycle::{
    Action, LifecycleEvent, LifecyclePolicy, LifecycleState, Observation, StopReason,
};
pub use local::{LOCAL_ID, LocalConfig, LocalProvider};
pub use provider::{
    InstanceInfo, Provider, SERVER_KEY_ENV, VastProvider, VastRole, new_server_key,
};
pub use types::{
    ActualStatus, CreateInstance, Created, Endpoint, Instance, Offer, OfferQuery, Op, PortBinding,
    StartOutcome,
};

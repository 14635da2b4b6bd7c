//! `vox-fleet`: rents and runs the GPU machines a vox worker sends speech jobs to. [`Fleet`] hands a worker's
//! jobs a ready instance ([`Fleet::acquire`] → [`InstanceGuard`]: base URL + the server's own key), starting it
//! when stopped, falling back to another instance or a new one from an offer when a start stalls, and stops
//! instances when idle ([`Fleet::run_idle_loop`], [`IdlePolicy`]), recording what each one cost. Instances
//! come from a [`Provider`]: [`VastProvider`] (the Vast.ai REST client [`VastClient`], with bounded retries on
//! rate limits and server errors) or [`LocalProvider`] (`vox serve` as a child process). The lifecycle is a
//! pure state machine ([`lifecycle::step`]) that the fleet drives. Shared leases and cost records are
//! contracts ([`ledger`]) that `vox-jobs` stores in its database, so workers on several machines never stop
//! an instance another one uses. [`watchdog`] lets `vox serve` stop its own idle instance. It keeps no job
//! queue and never uploads audio. Tests run against the `vastsim` simulator; production code only ever sees a
//! base URL.

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
    Account, ActualStatus, CreateInstance, Created, Endpoint, Instance, Offer, OfferQuery, Op,
    PortBinding, StartOutcome,
};

//! Where instances come from. A [`Provider`] lists the instances a worker may use, creates new ones, starts and
//! stops them, and reports their status, server endpoint, server key and prices; the [`crate::Fleet`] (through
//! the lifecycle state machine) decides when.

use std::future::Future;

use rand::Rng as _;

use crate::types::{CreateInstance, Endpoint, Instance, OfferQuery, StartOutcome};
use crate::{Observation, ProviderError, VastClient};

/// What a worker needs to know about one instance besides its state: how to authenticate to its server
/// and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    /// The server's own API key (`VOX_API_KEY` of its `vox serve`), sent as a Bearer token.
    pub api_key: Option<String>,
    /// $/h for compute while running.
    pub gpu_dph: f64,
    /// $/h for the disk, running or stopped.
    pub storage_dph: f64,
}

/// A source of GPU instances. Implementations: [`VastProvider`] and [`crate::LocalProvider`].
pub trait Provider: Send + Sync + 'static {
    /// Short name used in instance keys `"<kind>/<id>"` (`"vast"`, `"local"`).
    fn kind(&self) -> &str;

    /// Existing instances this worker may use, in order of preference (may be empty).
    fn candidates(&self) -> impl Future<Output = Result<Vec<u64>, ProviderError>> + Send;

    /// Creates a new instance, avoiding the hosts of the instances in `avoid` (their GPUs were taken).
    fn create(&self, avoid: &[u64]) -> impl Future<Output = Result<u64, ProviderError>> + Send;

    /// The first candidate, or a new instance when there is none.
    fn acquire(&self) -> impl Future<Output = Result<u64, ProviderError>> + Send {
        async {
            match self.candidates().await?.first() {
                Some(&id) => Ok(id),
                None => self.create(&[]).await,
            }
        }
    }

    fn start(&self, id: u64) -> impl Future<Output = Result<StartOutcome, ProviderError>> + Send;
    fn stop(&self, id: u64) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// The instance as the provider sees it now; [`ProviderError::Gone`] if it no longer exists.
    fn status(&self, id: u64) -> impl Future<Output = Result<Observation, ProviderError>> + Send;
    /// Where the server listens, once published (re-read after every start: ports change).
    fn endpoint(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<Endpoint>, ProviderError>> + Send;
    /// Server key and prices.
    fn info(&self, id: u64) -> impl Future<Output = Result<InstanceInfo, ProviderError>> + Send;
}

/// What a Vast-backed worker rents: the offer search and what to run on the instance.
#[derive(Debug, Clone)]
pub struct VastRole {
    /// Unique label: how the worker finds its instances again after a restart.
    pub label: String,
    /// Instances to try first, in order (e.g. rented by hand); labelled ones follow.
    pub instances: Vec<u64>,
    pub offers: OfferQuery,
    /// What a new instance runs. Unless `env` already has `VOX_API_KEY`, each new instance gets a fresh
    /// random one (read back from its `extra_env`), so a key leaked from one host opens nothing else.
    pub create: CreateInstance,
    /// Container port the speech server listens on.
    pub server_port: u16,
}

impl VastRole {
    /// An `onstart` for a vox image: fill the volume (`vox models pull`), then serve on `VOX_BIND`
    /// (`0.0.0.0:<server_port>`, set in the env by [`VastProvider::new`]), logging to `$VOX_ONSTART_LOG`
    /// (default `/var/log/vox.log`). Vast runs it at every container start; it returns at once, the server
    /// runs in the background.
    pub fn vox_onstart() -> String {
        "nohup sh -c 'vox models pull && exec vox serve' >> \"${VOX_ONSTART_LOG:-/var/log/vox.log}\" 2>&1 &"
            .to_owned()
    }
}

/// [`Provider`] on Vast.ai.
#[derive(Debug, Clone)]
pub struct VastProvider {
    client: VastClient,
    role: VastRole,
}

/// The server key's variable, in the instance env and `vox serve`'s environment.
pub const SERVER_KEY_ENV: &str = "VOX_API_KEY";

/// A fresh random server key (128 bits, hex).
pub fn new_server_key() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl VastProvider {
    pub fn new(client: VastClient, mut role: VastRole) -> VastProvider {
        role.create.label = Some(role.label.clone());
        role.create = role.create.publish_port(role.server_port);
        role.create
            .env
            .entry("VOX_BIND".to_owned())
            .or_insert_with(|| format!("0.0.0.0:{}", role.server_port));
        VastProvider { client, role }
    }

    pub fn client(&self) -> &VastClient {
        &self.client
    }

    async fn instance(&self, id: u64) -> Result<Instance, ProviderError> {
        self.client
            .show_instance(id)
            .await?
            .ok_or(ProviderError::Gone { id })
    }
}

impl Provider for VastProvider {
    fn kind(&self) -> &str {
        "vast"
    }

    async fn candidates(&self) -> Result<Vec<u64>, ProviderError> {
        let mine = self.client.list_instances().await?;
        let mut ids: Vec<u64> = self
            .role
            .instances
            .iter()
            .copied()
            .filter(|id| mine.iter().any(|i| i.id == *id))
            .collect();
        for i in &mine {
            if i.label.as_deref() == Some(&self.role.label) && !ids.contains(&i.id) {
                ids.push(i.id);
            }
        }
        Ok(ids)
    }

    async fn create(&self, avoid: &[u64]) -> Result<u64, ProviderError> {
        let mut machines = Vec::new();
        for &id in avoid {
            if let Ok(Some(i)) = self.client.show_instance(id).await {
                machines.extend(i.machine_id);
            }
        }
        let offers = self.client.search_offers(&self.role.offers).await?;
        let offer = offers
            .iter()
            .find(|o| o.machine_id.is_none_or(|m| !machines.contains(&m)))
            .ok_or_else(|| ProviderError::NoOffer {
                label: self.role.label.clone(),
            })?;
        let mut create = self.role.create.clone();
        create
            .env
            .entry(SERVER_KEY_ENV.to_owned())
            .or_insert_with(new_server_key);
        tracing::info!(offer = offer.id, gpu = ?offer.gpu_name, dph = ?offer.dph_total, label = %self.role.label, "renting a Vast.ai instance");
        Ok(self.client.create_instance(offer.id, &create).await?.id)
    }

    async fn start(&self, id: u64) -> Result<StartOutcome, ProviderError> {
        Ok(self.client.start_instance(id).await?)
    }

    async fn stop(&self, id: u64) -> Result<(), ProviderError> {
        Ok(self.client.stop_instance(id).await?)
    }

    async fn status(&self, id: u64) -> Result<Observation, ProviderError> {
        let i = self.instance(id).await?;
        Ok(Observation {
            endpoint: i.endpoint(self.role.server_port),
            intends_running: i.intends_running(),
            failed: i.has_error_message(),
            actual: i.actual_status,
        })
    }

    async fn endpoint(&self, id: u64) -> Result<Option<Endpoint>, ProviderError> {
        Ok(self.instance(id).await?.endpoint(self.role.server_port))
    }

    async fn info(&self, id: u64) -> Result<InstanceInfo, ProviderError> {
        let i = self.instance(id).await?;
        Ok(InstanceInfo {
            api_key: i
                .env_var(SERVER_KEY_ENV)
                .map(str::to_owned)
                .or_else(|| self.role.create.env.get(SERVER_KEY_ENV).cloned()),
            gpu_dph: i.dph_base.unwrap_or(0.0),
            storage_dph: i.storage_dph(),
        })
    }
}

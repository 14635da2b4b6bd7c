//! Where instances come from. A [`Provider`] finds or creates one instance per worker role, starts and
//! stops it, and reports its status and server endpoint; the lifecycle state machine decides when.

use std::future::Future;

use crate::types::{CreateInstance, Endpoint, Instance, OfferQuery, StartOutcome};
use crate::{Observation, ProviderError, VastClient};

/// A source of GPU instances. Implementations: [`VastProvider`]. (A `local` provider that runs
/// `vox serve` as a child process is not written yet.)
pub trait Provider {
    /// The id of this role's instance: an existing one (found by label) or a newly created one.
    fn acquire(&self) -> impl Future<Output = Result<u64, ProviderError>> + Send;
    fn start(&self, id: u64) -> impl Future<Output = Result<StartOutcome, ProviderError>> + Send;
    fn stop(&self, id: u64) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// The instance as the provider sees it now; [`ProviderError::Gone`] if it no longer exists.
    fn status(&self, id: u64) -> impl Future<Output = Result<Observation, ProviderError>> + Send;
    /// Where the server listens, once published (re-read after every start: ports change).
    fn endpoint(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<Endpoint>, ProviderError>> + Send;
}

/// What a Vast-backed worker rents: the offer search and what to run on the instance.
#[derive(Debug, Clone)]
pub struct VastRole {
    /// Unique label: how the worker finds its instance again after a restart.
    pub label: String,
    pub offers: OfferQuery,
    pub create: CreateInstance,
    /// Container port the speech server listens on.
    pub server_port: u16,
}

/// [`Provider`] on Vast.ai.
#[derive(Debug, Clone)]
pub struct VastProvider {
    client: VastClient,
    role: VastRole,
}

impl VastProvider {
    pub fn new(client: VastClient, mut role: VastRole) -> VastProvider {
        role.create.label = Some(role.label.clone());
        role.create = role.create.publish_port(role.server_port);
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
    async fn acquire(&self) -> Result<u64, ProviderError> {
        let mine = self.client.list_instances().await?;
        if let Some(i) = mine
            .iter()
            .find(|i| i.label.as_deref() == Some(&self.role.label))
        {
            return Ok(i.id);
        }
        let offers = self.client.search_offers(&self.role.offers).await?;
        let offer = offers.first().ok_or_else(|| ProviderError::NoOffer {
            label: self.role.label.clone(),
        })?;
        tracing::info!(offer = offer.id, gpu = ?offer.gpu_name, dph = ?offer.dph_total, label = %self.role.label, "renting a Vast.ai instance");
        Ok(self
            .client
            .create_instance(offer.id, &self.role.create)
            .await?
            .id)
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
}

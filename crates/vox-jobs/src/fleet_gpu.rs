//! The runner on a `vox_fleet::Fleet`: an acquired [`InstanceGuard`] is the instance a job runs on (its lease is
//! renewed by the fleet while the guard lives; dropping it lets the idle policy stop the instance later).

use vox_fleet::{CostLedger, Fleet, InstanceGuard, LeaseStore, Provider};

use crate::runner::{Gpu, GpuInstance};

impl GpuInstance for InstanceGuard {
    fn instance(&self) -> &str {
        InstanceGuard::instance(self)
    }
    fn base_url(&self) -> &str {
        InstanceGuard::base_url(self)
    }
    fn api_key(&self) -> Option<&str> {
        InstanceGuard::api_key(self)
    }
    fn gpu_dph(&self) -> f64 {
        InstanceGuard::gpu_dph(self)
    }
    fn mark_broken(&self) {
        InstanceGuard::mark_broken(self)
    }
}

impl<P: Provider, L: LeaseStore + CostLedger + 'static> Gpu for Fleet<P, L> {
    type Instance = InstanceGuard;
    async fn acquire(&self) -> Result<InstanceGuard, String> {
        Fleet::acquire(self).await.map_err(|e| e.to_string())
    }
}

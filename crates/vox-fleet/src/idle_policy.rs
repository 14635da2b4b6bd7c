//! How long an idle instance keeps running before it is stopped.
//!
//! The default is the break-even rule of ski rental: keeping an idle instance costs the GPU price per second;
//! stopping it and starting it again for the next job costs the restart (start-to-ready seconds, billed at the
//! running price, the storage being paid either way). Waiting exactly as long as a restart costs, then stopping,
//! never pays more than twice the clairvoyant choice, whatever the arrivals.

use std::time::Duration;

/// Idle-stop policy of a [`crate::Fleet`].
#[derive(Debug, Clone, PartialEq)]
pub enum IdlePolicy {
    /// Stop after this much idle time.
    Fixed(Duration),
    /// Break-even timeout from the measured restart cost and the prices; see [`IdlePolicy::timeout`].
    BreakEven {
        /// Start-to-ready time assumed until one has been measured.
        assumed_restart: Duration,
        /// Bounds on the computed timeout.
        min: Duration,
        max: Duration,
    },
}

impl Default for IdlePolicy {
    fn default() -> Self {
        IdlePolicy::BreakEven {
            assumed_restart: Duration::from_secs(120),
            min: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

/// What the break-even rule is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleInputs {
    /// Measured start-to-ready seconds (median of recent restarts), if any.
    pub restart_secs: Option<f64>,
    /// $/h for compute while running.
    pub gpu_dph: f64,
    /// $/h for the disk (billed running or stopped).
    pub storage_dph: f64,
}

impl IdlePolicy {
    /// The idle timeout for an instance with these inputs.
    ///
    /// Break-even: a restart costs `restart_secs × (gpu + storage) / 3600` dollars (running price while it
    /// boots); idling costs `gpu / 3600` dollars per second more than being stopped (storage bills either
    /// way). The timeout is the idle time that costs as much as one restart. A free GPU (local provider)
    /// makes idling free, so the maximum applies.
    pub fn timeout(&self, inputs: &IdleInputs) -> Duration {
        match self {
            IdlePolicy::Fixed(d) => *d,
            IdlePolicy::BreakEven {
                assumed_restart,
                min,
                max,
            } => {
                let restart = inputs
                    .restart_secs
                    .unwrap_or_else(|| assumed_restart.as_secs_f64());
                if inputs.gpu_dph <= 0.0 {
                    return *max;
                }
                let restart_usd = restart * (inputs.gpu_dph + inputs.storage_dph) / 3600.0;
                let idle_usd_per_s = inputs.gpu_dph / 3600.0;
                let secs = restart_usd / idle_usd_per_s;
                Duration::from_secs_f64(secs.clamp(min.as_secs_f64(), max.as_secs_f64()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_even_waits_as_long_as_a_restart_costs() {
        let p = IdlePolicy::default();
        let i = IdleInputs {
            restart_secs: Some(90.0),
            gpu_dph: 0.40,
            storage_dph: 0.04,
        };
        // 90 s × 0.44 $/h of restart ≙ 99 s of idling at 0.40 $/h.
        assert_eq!(p.timeout(&i).as_secs(), 99);
        let unmeasured = IdleInputs {
            restart_secs: None,
            ..i.clone()
        };
        assert_eq!(p.timeout(&unmeasured).as_secs(), 132);
        let free = IdleInputs { gpu_dph: 0.0, ..i };
        assert_eq!(p.timeout(&free), Duration::from_secs(3600));
        assert_eq!(
            IdlePolicy::Fixed(Duration::from_secs(5)).timeout(&free),
            Duration::from_secs(5)
        );
    }
}

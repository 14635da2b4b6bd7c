//! How long an idle instance keeps running before it is stopped.
//!
//! The default is the break-even rule of ski rental: keeping an idle instance costs the GPU price per second;
//! stopping it and starting it again for the next job costs the restart (start-to-ready seconds billed at the
//! GPU price; the disk bills the same stopped or running, so the storage price cancels out). Waiting exactly as
//! long as a restart costs, then stopping, never pays more than twice the clairvoyant choice, whatever the
//! arrivals. [`IdlePolicy::Adaptive`] does better on steady traffic: it picks the timeout that would have cost
//! least over the recent idle gaps (never below the break-even guarantee's reach when history is short).

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
    /// The timeout that would have cost least over the last idle gaps ([`hindsight_timeout`]), falling back to
    /// break-even while fewer than 8 gaps are known.
    Adaptive {
        assumed_restart: Duration,
        min: Duration,
        max: Duration,
    },
}

impl Default for IdlePolicy {
    /// [`IdlePolicy::Adaptive`] (break-even until it has seen [`MIN_GAPS`] idle gaps), at most 1 h.
    fn default() -> Self {
        IdlePolicy::Adaptive {
            assumed_restart: Duration::from_secs(120),
            min: Duration::ZERO,
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
    /// Recent idle gaps in seconds (end of one busy period to the next request), oldest first.
    pub recent_gaps: Vec<f64>,
}

/// Fewest idle gaps [`IdlePolicy::Adaptive`] learns from.
pub const MIN_GAPS: usize = 8;

/// The timeout (seconds; `f64::INFINITY` = never stop) that minimizes the GPU-seconds spent over `gaps`,
/// replayed in order: idling costs 1 per second; a stop costs the timeout's idling plus `break_even` (the
/// restart, in seconds of GPU time: the break-even timeout equals the start-to-ready time). Jobs that arrive
/// while the instance restarts wait and run in the same busy period, so the gaps that fit inside a restart
/// cost nothing more: the replay absorbs them. (Ignoring that overrates idling whenever gaps are short next to
/// a restart: with 60 s gaps and a 90 s restart, one restart serves about two jobs.) The optimum over
/// thresholds is 0, ∞ or one of the gaps, so those are the candidates.
pub fn hindsight_timeout(gaps: &[f64], break_even: f64) -> f64 {
    let cost = |t: f64| -> f64 {
        let mut c = 0.0;
        let mut i = 0;
        while i < gaps.len() {
            let g = gaps[i];
            i += 1;
            if g <= t {
                c += g;
                continue;
            }
            c += t + break_even;
            let mut waited = 0.0;
            while i < gaps.len() && waited + gaps[i] < break_even {
                waited += gaps[i];
                i += 1;
            }
        }
        c
    };
    // Descending, so ties go to the longer timeout: on busy traffic every recent gap is short and bridging
    // all of them costs the same as never stopping; the longer choice keeps latency low when a slightly
    // longer gap comes.
    let mut candidates: Vec<f64> = gaps.to_vec();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates.push(0.0);
    let mut best = (f64::INFINITY, cost(f64::INFINITY));
    for t in candidates {
        let c = cost(t);
        if c < best.1 - 1e-9 {
            best = (t, c);
        }
    }
    best.0
}

impl IdlePolicy {
    /// The idle timeout for an instance with these inputs.
    ///
    /// Break-even: a restart costs `restart_secs × gpu / 3600` dollars (the GPU bills while it boots; the
    /// disk bills `storage` per hour whether the instance runs or not, so it adds the same to both sides);
    /// idling costs `gpu / 3600` dollars per second. The timeout is the idle time that costs as much as one
    /// restart. A free GPU (local provider) makes idling free, so the maximum applies.
    pub fn timeout(&self, inputs: &IdleInputs) -> Duration {
        let (assumed_restart, min, max) = match self {
            IdlePolicy::Fixed(d) => return *d,
            IdlePolicy::BreakEven {
                assumed_restart,
                min,
                max,
            }
            | IdlePolicy::Adaptive {
                assumed_restart,
                min,
                max,
            } => (assumed_restart, min, max),
        };
        if inputs.gpu_dph <= 0.0 {
            return *max;
        }
        let restart = inputs.restart_secs.unwrap_or(assumed_restart.as_secs_f64());
        let restart_usd = restart * inputs.gpu_dph / 3600.0;
        let idle_usd_per_s = inputs.gpu_dph / 3600.0;
        let break_even = restart_usd / idle_usd_per_s;
        let secs = match self {
            IdlePolicy::Adaptive { .. } if inputs.recent_gaps.len() >= MIN_GAPS => {
                hindsight_timeout(&inputs.recent_gaps, break_even)
            }
            _ => break_even,
        };
        Duration::from_secs_f64(secs.clamp(min.as_secs_f64(), max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_even_waits_as_long_as_a_restart_costs() {
        let p = IdlePolicy::BreakEven {
            assumed_restart: Duration::from_secs(120),
            min: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        };
        let i = IdleInputs {
            restart_secs: Some(90.0),
            gpu_dph: 0.40,
            storage_dph: 0.04,
            recent_gaps: Vec::new(),
        };
        assert_eq!(p.timeout(&i).as_secs(), 90);
        let unmeasured = IdleInputs {
            restart_secs: None,
            ..i.clone()
        };
        assert_eq!(p.timeout(&unmeasured).as_secs(), 120);
        let free = IdleInputs { gpu_dph: 0.0, ..i };
        assert_eq!(p.timeout(&free), Duration::from_secs(3600));
        assert_eq!(
            IdlePolicy::Fixed(Duration::from_secs(5)).timeout(&free),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn hindsight_keeps_running_through_short_gaps_and_stops_at_once_for_long_ones() {
        assert_eq!(hindsight_timeout(&[10.0, 20.0, 15.0], 90.0), f64::INFINITY);
        assert_eq!(hindsight_timeout(&[1000.0, 2000.0, 1500.0], 90.0), 0.0);
        // Mixed: short gaps are bridged, long ones stop after the longest short one.
        assert_eq!(
            hindsight_timeout(&[5.0, 8.0, 3000.0, 6.0, 4000.0], 90.0),
            8.0
        );
    }

    #[test]
    fn hindsight_counts_the_jobs_a_restart_absorbs() {
        // Gaps of 60 s and a 90 s restart: idling costs 60 per gap; stopping costs 90 per restart, but the job
        // 60 s later arrives while the instance restarts and rides along, so 45 per gap. Stop at once.
        assert_eq!(hindsight_timeout(&[60.0; 16], 90.0), 0.0);
        // Gaps of 5 s: all sixteen together idle 80 s, less than one restart.
        assert_eq!(hindsight_timeout(&[5.0; 16], 90.0), f64::INFINITY);
    }

    #[test]
    fn adaptive_needs_history_before_it_departs_from_break_even() {
        let p = IdlePolicy::Adaptive {
            assumed_restart: Duration::from_secs(90),
            min: Duration::ZERO,
            max: Duration::from_secs(3600),
        };
        let mut i = IdleInputs {
            restart_secs: Some(90.0),
            gpu_dph: 0.4,
            storage_dph: 0.0,
            recent_gaps: vec![1000.0; MIN_GAPS - 1],
        };
        assert_eq!(p.timeout(&i).as_secs(), 90);
        i.recent_gaps.push(1000.0);
        assert_eq!(p.timeout(&i), Duration::ZERO);
    }
}

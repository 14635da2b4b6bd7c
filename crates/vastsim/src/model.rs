//! The simulated world: offers, instances, their lifecycle and billing. Pure data plus a clock; the HTTP
//! layer in `api.rs` only translates requests into calls on [`World`].
//!
//! Lifecycle steps happen when an instance is *observed* (shown or listed), at most one step per
//! observation, once the step's delay has passed on the simulator clock. That makes every intermediate
//! state (`loading`, `running` without ports, ...) visible to a polling client, in a fixed order, whatever
//! the delays are.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::OfferSpec;

/// Public IP the simulated hosts report; the trailing newline is deliberate (the real API sends one).
pub const PUBLIC_IP: &str = "127.0.0.1\n";

/// What the container is doing, as `actual_status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created, not provisioned yet (`actual_status: null`).
    Provisioning,
    Loading,
    /// `running`; `ports_visible` turns true one observation later.
    Running {
        ports_visible: bool,
    },
    Exited,
}

/// Accumulated charges of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Billing {
    /// Seconds charged at `dph_base` (container running).
    pub gpu_seconds: f64,
    /// Seconds charged for storage (every second the instance exists).
    pub storage_seconds: f64,
    /// Total in dollars.
    pub usd: f64,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: u64,
    pub offer: OfferSpec,
    pub label: Option<String>,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub onstart: Option<String>,
    pub runtype: String,
    pub disk_gb: f64,
    pub intended_running: bool,
    pub phase: Phase,
    /// Simulator time when `phase` (or the pending stop/start) began.
    pub phase_since: Duration,
    /// A stop was requested and the container has not reported `exited` yet.
    pub stopping: bool,
    /// A start was refused for lack of GPUs and stays queued ("Scheduling").
    pub scheduling: bool,
    /// While true, starts of this instance are answered `resources_unavailable` and stay queued.
    pub start_blocked: bool,
    pub created_epoch: f64,
    pub billing: Billing,
    pub billed_until: Duration,
    /// Host ports for each requested container port, stable for the instance's life.
    pub port_map: BTreeMap<u16, u16>,
}

impl Instance {
    fn storage_usd_per_s(&self) -> f64 {
        self.offer.storage_cost * self.disk_gb / (720.0 * 3600.0)
    }

    /// Charges the time since the last accrual at the current phase's rates.
    pub fn accrue(&mut self, now: Duration) {
        let secs = now.saturating_sub(self.billed_until).as_secs_f64();
        self.billed_until = now;
        self.billing.storage_seconds += secs;
        self.billing.usd += secs * self.storage_usd_per_s();
        if matches!(self.phase, Phase::Running { .. }) {
            self.billing.gpu_seconds += secs;
            self.billing.usd += secs * self.offer.dph_base / 3600.0;
        }
    }

    /// Advances at most one lifecycle step if its delay has passed.
    pub fn observe(&mut self, now: Duration, delays: &Delays) {
        self.accrue(now);
        let elapsed = now.saturating_sub(self.phase_since);
        let next = if self.stopping {
            (elapsed >= delays.stop).then_some(Phase::Exited)
        } else if !self.intended_running || self.scheduling {
            None
        } else {
            match self.phase {
                Phase::Provisioning | Phase::Exited => {
                    (elapsed >= delays.provision).then_some(Phase::Loading)
                }
                Phase::Loading => (elapsed >= delays.loading).then_some(Phase::Running {
                    ports_visible: false,
                }),
                Phase::Running {
                    ports_visible: false,
                } => Some(Phase::Running {
                    ports_visible: true,
                }),
                Phase::Running { .. } => None,
            }
        };
        if let Some(phase) = next {
            self.phase = phase;
            self.phase_since = now;
            if phase == Phase::Exited {
                self.stopping = false;
            }
        }
    }

    /// The JSON row the API returns, with the field types the official CLI relies on.
    pub fn to_json(&self, epoch_now: f64) -> Value {
        let actual = match self.phase {
            Phase::Provisioning => Value::Null,
            Phase::Loading => json!("loading"),
            Phase::Running { .. } => json!("running"),
            Phase::Exited => json!("exited"),
        };
        let running = matches!(self.phase, Phase::Running { .. });
        let ports = match self.phase {
            Phase::Running {
                ports_visible: true,
            } => {
                let map: serde_json::Map<String, Value> = self
                    .port_map
                    .iter()
                    .map(|(inner, host)| {
                        (
                            format!("{inner}/tcp"),
                            json!([{"HostIp": "0.0.0.0", "HostPort": host.to_string()}]),
                        )
                    })
                    .collect();
                Value::Object(map)
            }
            _ => json!({}),
        };
        let storage_per_h = self.storage_usd_per_s() * 3600.0;
        let o = &self.offer;
        let status_msg = match self.phase {
            Phase::Running { .. } => format!("success, running {}/ssh", self.image),
            _ if self.scheduling => "Required resources are currently unavailable".to_owned(),
            _ => String::new(),
        };
        json!({
            "id": self.id,
            "machine_id": o.machine_id,
            "host_id": o.machine_id + 1000,
            "bundle_id": o.id,
            "actual_status": actual,
            "intended_status": if self.intended_running { "running" } else { "stopped" },
            "cur_state": if self.intended_running && !self.scheduling { "running" } else { "stopped" },
            "next_state": if self.intended_running { "running" } else { "stopped" },
            "status_msg": status_msg,
            "label": self.label,
            "image_uuid": self.image,
            "image_runtype": self.runtype,
            "image_args": [],
            "onstart": self.onstart,
            "extra_env": self.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "template_id": null,
            "template_hash_id": null,
            "template_name": null,
            "start_date": self.created_epoch,
            "end_date": self.created_epoch + o.duration_days * 86400.0,
            "duration": epoch_now - self.created_epoch,
            "uptime_mins": if running { json!(0.0) } else { Value::Null },
            "public_ipaddr": PUBLIC_IP,
            "ports": ports,
            "ssh_host": "ssh1.vastsim.invalid",
            "ssh_port": 20000 + self.id % 10000,
            "ssh_idx": "1",
            "local_ipaddrs": "127.0.0.1\n",
            "direct_port_count": o.direct_port_count,
            "direct_port_start": -1,
            "direct_port_end": -1,
            "static_ip": false,
            "gpu_name": o.gpu_name,
            "num_gpus": o.num_gpus,
            "gpu_ram": o.gpu_ram,
            "gpu_totalram": o.gpu_ram,
            "gpu_util": if running { json!(0.0) } else { Value::Null },
            "gpu_temp": Value::Null,
            "gpu_frac": 1.0,
            "cpu_cores": 16,
            "cpu_cores_effective": 16.0,
            "cpu_ram": 64000,
            "cpu_name": "Simulated CPU",
            "cpu_arch": "amd64",
            "disk_space": self.disk_gb,
            "disk_usage": -1.0,
            "disk_util": -1.0,
            "volume_info": [],
            "dph_base": o.dph_base,
            "dph_total": o.dph_base + storage_per_h,
            "storage_cost": o.storage_cost,
            "storage_total_cost": storage_per_h,
            "inet_up": o.inet_down,
            "inet_down": o.inet_down,
            "min_bid": o.dph_base / 2.0,
            "is_bid": false,
            "reliability2": o.reliability,
            "verification": "verified",
            "geolocation": o.geolocation,
            "rentable": true,
            "cuda_max_good": o.cuda_max_good,
        })
    }
}

/// Lifecycle delays on the simulator clock.
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    pub provision: Duration,
    pub loading: Duration,
    pub stop: Duration,
}

/// All mutable state of the simulator.
#[derive(Debug)]
pub struct World {
    pub offers: Vec<OfferSpec>,
    /// Offers that are rented out by someone else (create gets `no_such_ask` / stopped).
    pub unavailable_offers: Vec<u64>,
    pub instances: BTreeMap<u64, Instance>,
    /// Final charges of destroyed instances.
    pub destroyed: BTreeMap<u64, Billing>,
    pub next_id: u64,
    /// Starting credit; the balance is this minus all charges.
    pub credit: f64,
}

impl World {
    pub fn new(offers: Vec<OfferSpec>) -> World {
        World {
            offers,
            unavailable_offers: Vec::new(),
            instances: BTreeMap::new(),
            destroyed: BTreeMap::new(),
            next_id: 1000,
            credit: 100.0,
        }
    }

    pub fn accrue_all(&mut self, now: Duration) {
        for inst in self.instances.values_mut() {
            inst.accrue(now);
        }
    }

    pub fn total_charges(&self) -> f64 {
        self.instances.values().map(|i| i.billing.usd).sum::<f64>()
            + self.destroyed.values().map(|b| b.usd).sum::<f64>()
    }

    pub fn billing(&self, id: u64) -> Option<Billing> {
        self.instances
            .get(&id)
            .map(|i| i.billing)
            .or_else(|| self.destroyed.get(&id).copied())
    }

    /// Host ports for `-p A:B` requests in a create `env`; 22 is always mapped.
    pub fn allocate_ports(&mut self, env: &[(String, String)]) -> BTreeMap<u16, u16> {
        let mut inner: Vec<u16> = vec![22];
        for (k, _) in env {
            if let Some(spec) = k.strip_prefix("-p ") {
                let container = spec.rsplit(':').next().unwrap_or(spec);
                let container = container.trim_end_matches("/tcp");
                if let Ok(p) = container.parse() {
                    inner.push(p);
                }
            }
        }
        inner.into_iter().map(|p| (p, free_host_port())).collect()
    }
}

/// A port nothing listens on now, from the OS. Ports are not counted up from a base: several simulators run
/// at once (parallel tests), and a shared sequence would hand two instances the same port, so one `vox
/// serve` would fail to bind.
fn free_host_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

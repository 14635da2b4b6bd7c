//! Request and response shapes of the Vast.ai API (`notes/vast-api.md` §2–§4), reduced to what a worker
//! needs; unknown fields are ignored and absent ones default, so new API fields never break parsing.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

/// `actual_status`: what the host last reported about the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ActualStatus {
    /// `null`: being provisioned.
    #[default]
    Provisioning,
    Created,
    Loading,
    Running,
    Stopped,
    Exited,
    Frozen,
    Rebooting,
    Unknown,
    Offline,
    /// A value this client does not know yet.
    Other(String),
}

impl ActualStatus {
    fn parse(raw: Option<&str>) -> ActualStatus {
        match raw {
            None => ActualStatus::Provisioning,
            Some("created") => ActualStatus::Created,
            Some("loading") => ActualStatus::Loading,
            Some("running") => ActualStatus::Running,
            Some("stopped") => ActualStatus::Stopped,
            Some("exited") => ActualStatus::Exited,
            Some("frozen") => ActualStatus::Frozen,
            Some("rebooting") | Some("restarting") => ActualStatus::Rebooting,
            Some("unknown") => ActualStatus::Unknown,
            Some("offline") => ActualStatus::Offline,
            Some(other) => ActualStatus::Other(other.to_owned()),
        }
    }

    /// Host lost: waiting longer will not help.
    pub fn is_host_lost(&self) -> bool {
        matches!(self, ActualStatus::Unknown | ActualStatus::Offline)
    }
}

fn actual_status<'de, D: Deserializer<'de>>(d: D) -> Result<ActualStatus, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(ActualStatus::parse(raw.as_deref()))
}

/// `public_ipaddr` may carry trailing whitespace or a newline.
fn trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

fn env_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let raw: Option<Value> = Option::deserialize(d)?;
    let Some(Value::Array(rows)) = raw else {
        return Ok(Vec::new());
    };
    Ok(rows
        .iter()
        .filter_map(|r| match r.as_array()?.as_slice() {
            [Value::String(k), v] => Some((
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )),
            _ => None,
        })
        .collect())
}

/// One Docker port binding; `HostPort` arrives as a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// The instance object of `GET /instances/{id}/` and the v1 list.
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    pub id: u64,
    #[serde(default, deserialize_with = "actual_status")]
    pub actual_status: ActualStatus,
    #[serde(default)]
    pub intended_status: Option<String>,
    #[serde(default)]
    pub cur_state: Option<String>,
    #[serde(default)]
    pub status_msg: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub image_uuid: Option<String>,
    #[serde(default, deserialize_with = "trimmed")]
    pub public_ipaddr: Option<String>,
    /// `"8000/tcp" → bindings`; absent or empty while not running.
    #[serde(default)]
    pub ports: Option<BTreeMap<String, Vec<PortBinding>>>,
    #[serde(default)]
    pub machine_id: Option<u64>,
    #[serde(default)]
    pub gpu_name: Option<String>,
    #[serde(default)]
    pub num_gpus: Option<u32>,
    #[serde(default)]
    pub dph_base: Option<f64>,
    #[serde(default)]
    pub dph_total: Option<f64>,
    #[serde(default)]
    pub storage_cost: Option<f64>,
    /// $/h for this instance's disk.
    #[serde(default)]
    pub storage_total_cost: Option<f64>,
    #[serde(default)]
    pub disk_space: Option<f64>,
    /// The create `env` as `[[name, value], ...]`; rows of another shape are skipped.
    #[serde(default, deserialize_with = "env_pairs")]
    pub extra_env: Vec<(String, String)>,
    #[serde(default)]
    pub start_date: Option<f64>,
    #[serde(default)]
    pub end_date: Option<f64>,
}

impl Instance {
    /// A variable of the instance's create `env`.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.extra_env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// $/h for the disk: `storage_total_cost`, else `storage_cost` ($/GB/month) × disk over 720 h.
    pub fn storage_dph(&self) -> f64 {
        self.storage_total_cost.unwrap_or_else(|| {
            self.storage_cost.unwrap_or(0.0) * self.disk_space.unwrap_or(0.0) / 720.0
        })
    }

    /// The user asked for it to run (`intended_status == "running"`).
    pub fn intends_running(&self) -> bool {
        self.intended_status.as_deref() == Some("running")
    }

    /// The external port mapped to container TCP port `inner`, if published yet.
    pub fn host_port(&self, inner: u16) -> Option<u16> {
        self.ports
            .as_ref()?
            .get(&format!("{inner}/tcp"))?
            .iter()
            .find_map(|b| b.host_port.trim().parse().ok())
    }

    /// `(public ip, external port)` of container port `inner`, once both are known.
    pub fn endpoint(&self, inner: u16) -> Option<Endpoint> {
        Some(Endpoint {
            host: self.public_ipaddr.clone()?,
            port: self.host_port(inner)?,
        })
    }

    /// `status_msg` reports a container failure (the official self-test's markers).
    pub fn has_error_message(&self) -> bool {
        let msg = self.status_msg.as_deref().unwrap_or("").to_lowercase();
        [
            "error",
            "failed",
            "failure",
            "exception",
            "traceback",
            "oci runtime",
            "permission denied",
        ]
        .iter()
        .any(|m| msg.contains(m))
    }
}

/// Where a server on an instance can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

/// The account a key belongs to (`GET /users/current`; only the fields vox reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: u64,
    /// Prepaid credit in dollars; at zero Vast stops every instance.
    #[serde(default)]
    pub credit: Option<f64>,
}

/// An offer from `POST /bundles/`.
#[derive(Debug, Clone, Deserialize)]
pub struct Offer {
    pub id: u64,
    #[serde(default)]
    pub machine_id: Option<u64>,
    #[serde(default)]
    pub gpu_name: Option<String>,
    #[serde(default)]
    pub num_gpus: Option<u32>,
    #[serde(default)]
    pub gpu_ram: Option<f64>,
    #[serde(default)]
    pub dph_base: Option<f64>,
    #[serde(default)]
    pub dph_total: Option<f64>,
    #[serde(default)]
    pub storage_cost: Option<f64>,
    #[serde(default)]
    pub disk_space: Option<f64>,
    #[serde(default)]
    pub reliability: Option<f64>,
    #[serde(default)]
    pub direct_port_count: Option<i64>,
    #[serde(default)]
    pub geolocation: Option<String>,
}

/// A comparison in an offer query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
}

impl Op {
    fn key(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::NotIn => "notin",
        }
    }
}

/// An offer search (`POST /api/v0/bundles/` body): `field → {op: value}` plus order, limit and the
/// disk to price into `dph_total`.
#[derive(Debug, Clone)]
pub struct OfferQuery {
    filters: Map<String, Value>,
    order: Vec<(String, bool)>,
    limit: Option<u32>,
    allocated_storage_gb: Option<f64>,
}

impl Default for OfferQuery {
    /// The CLI's defaults: verified, rentable, not external, on-demand; cheapest first.
    fn default() -> Self {
        OfferQuery {
            filters: Map::new(),
            order: vec![("dph_total".to_owned(), false)],
            limit: None,
            allocated_storage_gb: None,
        }
        .filter("verified", Op::Eq, true)
        .filter("external", Op::Eq, false)
        .filter("rentable", Op::Eq, true)
    }
}

impl OfferQuery {
    /// Adds `field op value` (several ops on one field all apply).
    pub fn filter(mut self, field: &str, op: Op, value: impl Into<Value>) -> Self {
        let entry = self
            .filters
            .entry(field.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ops) = entry {
            ops.insert(op.key().to_owned(), value.into());
        }
        self
    }

    /// Sort by `col`, ascending unless `desc`; replaces the default order.
    pub fn order_by(mut self, col: &str, desc: bool) -> Self {
        self.order = vec![(col.to_owned(), desc)];
        self
    }

    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Disk (GB) the instance will get, so `dph_total` includes its storage price.
    pub fn allocated_storage(mut self, gb: f64) -> Self {
        self.allocated_storage_gb = Some(gb);
        self
    }

    pub(crate) fn to_body(&self) -> Value {
        let mut body = self.filters.clone();
        let order: Vec<Value> = self
            .order
            .iter()
            .map(|(c, d)| json!([c, if *d { "desc" } else { "asc" }]))
            .collect();
        body.insert("order".into(), order.into());
        body.insert("type".into(), "on-demand".into());
        if let Some(l) = self.limit {
            body.insert("limit".into(), l.into());
        }
        if let Some(gb) = self.allocated_storage_gb {
            body.insert("allocated_storage".into(), gb.into());
        }
        Value::Object(body)
    }
}

/// What to run on a new instance (`PUT /api/v0/asks/{offer}/`).
#[derive(Debug, Clone, Serialize)]
pub struct CreateInstance {
    pub image: String,
    /// Container disk in GB, fixed for the instance's life.
    pub disk: f64,
    pub label: Option<String>,
    /// Environment; port publications as `"-p 8000:8000" → "1"` (see [`CreateInstance::publish_port`]).
    pub env: BTreeMap<String, String>,
    /// Shell run at every container start (ssh runtypes).
    pub onstart: Option<String>,
    pub runtype: String,
    /// Fail with [`crate::VastError::OfferGone`] instead of creating a stopped instance when the offer's
    /// GPUs are gone.
    pub cancel_unavail: bool,
    pub target_state: String,
}

impl CreateInstance {
    /// Defaults: direct SSH runtype (so `onstart` runs and ports are direct), 16 GB, start running,
    /// fail rather than create a stopped box.
    pub fn new(image: impl Into<String>) -> Self {
        CreateInstance {
            image: image.into(),
            disk: 16.0,
            label: None,
            env: BTreeMap::new(),
            onstart: None,
            runtype: "ssh_direc ssh_proxy".to_owned(),
            cancel_unavail: true,
            target_state: "running".to_owned(),
        }
    }

    /// Publishes container TCP port `port` on a public port.
    pub fn publish_port(mut self, port: u16) -> Self {
        self.env.insert(format!("-p {port}:{port}"), "1".to_owned());
        self
    }
}

/// Result of a create call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: u64,
    /// False when the instance was created stopped for lack of capacity (storage bills; destroy or wait).
    pub started: bool,
    /// Key that can start/stop/destroy only this instance.
    pub instance_api_key: Option<String>,
}

/// Result of a start call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Accepted,
    /// `resources_unavailable`: the GPU is taken; the start stays queued ("Scheduling") until it frees
    /// or a stop cancels it.
    Queued,
}

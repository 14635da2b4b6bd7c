//! `POST /api/v0/bundles/`: offer search with the `{field: {op: value}}` query language (§4.1), including
//! the CLI's quirks: numbers sent as strings, `_` for spaces in names, country codes matched against the
//! end of `geolocation`.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{error, reply};
use crate::{OfferSpec, Shared};

const SPECIAL: [&str; 5] = [
    "order",
    "type",
    "limit",
    "allocated_storage",
    "disable_bundling",
];

pub async fn search(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let q: Value = match super::body_json(&body) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let Some(q) = q.as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_args",
            "Invalid query: must be dict of conditions",
        );
    };
    let storage = q.get("allocated_storage").and_then(as_f64).unwrap_or(5.0);
    let w = s.world();
    let mut offers: Vec<Value> = w
        .offers
        .iter()
        .map(|o| offer_json(o, storage, !w.unavailable_offers.contains(&o.id)))
        .filter(|o| {
            q.iter()
                .filter(|(k, _)| !SPECIAL.contains(&k.as_str()))
                // Unknown fields do not filter: the simulator carries only a subset of offer columns.
                .all(|(k, cond)| o.get(k).is_none_or(|v| matches(v, cond)))
        })
        .collect();
    let order = q
        .get("order")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![json!(["score", "desc"])]);
    offers.sort_by(|a, b| {
        for key in &order {
            let col = key.get(0).and_then(Value::as_str).unwrap_or("score");
            let desc = key.get(1).and_then(Value::as_str) == Some("desc");
            let ord = cmp_values(&a[col], &b[col]);
            let ord = if desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        cmp_values(&a["id"], &b["id"])
    });
    if let Some(limit) = q.get("limit").and_then(as_f64) {
        offers.truncate(limit.max(0.0) as usize);
    }
    reply(StatusCode::OK, json!({ "offers": offers }))
}

fn offer_json(o: &OfferSpec, storage_gb: f64, available: bool) -> Value {
    let storage_per_h = o.storage_cost * storage_gb / 720.0;
    json!({
        "id": o.id, "ask_contract_id": o.id, "bundle_id": o.id, "machine_id": o.machine_id,
        "host_id": o.machine_id + 1000, "gpu_name": o.gpu_name, "num_gpus": o.num_gpus,
        "gpu_ram": o.gpu_ram, "gpu_total_ram": o.gpu_ram * u64::from(o.num_gpus),
        "dph_base": o.dph_base, "dph_total": o.dph_base + storage_per_h, "min_bid": o.dph_base / 2.0,
        "storage_cost": o.storage_cost, "storage_total_cost": storage_per_h,
        "disk_space": o.disk_space, "reliability": o.reliability, "reliability2": o.reliability,
        "inet_down": o.inet_down, "inet_up": o.inet_down, "direct_port_count": o.direct_port_count,
        "cuda_max_good": o.cuda_max_good, "geolocation": o.geolocation, "verified": o.verified,
        "verification": if o.verified { "verified" } else { "unverified" },
        "rentable": available, "rented": !available, "external": false,
        "duration": o.duration_days * 86400.0, "public_ipaddr": crate::PUBLIC_IP,
        "score": o.reliability * 100.0 / o.dph_base.max(0.01), "is_bid": false,
        "static_ip": false, "hosting_type": 0,
    })
}

pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn norm(s: &str) -> String {
    s.replace('_', " ").to_lowercase()
}

/// Equality with the CLI's coercions: numbers vs numeric strings, `_` vs space, and a country code
/// matching the end of a `geolocation` like `"Oregon, US"`.
fn equal(field: &Value, want: &Value) -> bool {
    match (field, want) {
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Bool(a), Value::String(b)) => b.eq_ignore_ascii_case(&a.to_string()),
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (norm(a), norm(b));
            a == b || a.ends_with(&format!(", {b}"))
        }
        _ => match (as_f64(field), as_f64(want)) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            _ => false,
        },
    }
}

/// Whether `field` satisfies `cond`, an object `{op: value, ...}` (all ops must hold) or a bare value
/// (equality).
pub fn matches(field: &Value, cond: &Value) -> bool {
    let Some(ops) = cond.as_object() else {
        return equal(field, cond);
    };
    ops.iter().all(|(op, want)| {
        let list = || {
            want.as_array()
                .cloned()
                .unwrap_or_else(|| vec![want.clone()])
        };
        let num = || as_f64(field).zip(as_f64(want));
        match op.as_str() {
            "eq" => equal(field, want),
            "neq" => !equal(field, want),
            "in" => list().iter().any(|w| equal(field, w)),
            "notin" => !list().iter().any(|w| equal(field, w)),
            "gt" => num().is_some_and(|(a, b)| a > b),
            "gte" => num().is_some_and(|(a, b)| a >= b),
            "lt" => num().is_some_and(|(a, b)| a < b),
            "lte" => num().is_some_and(|(a, b)| a <= b),
            _ => false,
        }
    })
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (as_f64(a), as_f64(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_encodings_match() {
        assert!(matches(&json!("RTX 4090"), &json!({"eq": "RTX_4090"})));
        assert!(matches(&json!(1), &json!({"eq": "1"})));
        assert!(matches(&json!(0.99), &json!({"gt": "0.98"})));
        assert!(!matches(&json!(0.97), &json!({"gt": "0.98"})));
        assert!(matches(&json!("Oregon, US"), &json!({"in": ["US", "CA"]})));
        assert!(!matches(
            &json!("Bavaria, DE"),
            &json!({"in": ["US", "CA"]})
        ));
        assert!(matches(&json!(true), &json!({"eq": true})));
        assert!(!matches(&json!(false), &json!({"eq": true})));
    }
}

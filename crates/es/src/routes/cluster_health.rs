//! `_cluster/health` for a `read` token: the token's view of the cluster, never a wait.
//!
//! The request is forwarded as `/_cluster/health/<the token's concrete allowed indices>` (or
//! `*,-*` when it may read none; `/_cluster/health/{index}` narrowed like a search path), so the
//! status and shard counts are those of the token's indices only. It is always sent with
//! `level=cluster` (no per-index or per-shard listing) and `timeout=0s`: a `wait_for_status`
//! (Grafana's health check sends `yellow`) is checked once, as Elasticsearch does with a zero
//! timeout (met: 200; not met: `timed_out: true` and 408), and never holds the request. Other
//! waits (`wait_for_nodes`, `wait_for_active_shards`, `wait_for_events`, ...) are refused by the
//! parameter list.
//!
//! The answer is rebuilt from an allow-list: Elasticsearch computes
//! `active_shards_percent_as_number` over the whole routing table and reports cluster-wide
//! counters (`delayed_unassigned_shards`, `number_of_pending_tasks`,
//! `number_of_in_flight_fetch`, `task_max_waiting_in_queue_millis`) that reflect indices the
//! token cannot see: the percentage is recomputed from the view's own shard counts and those
//! counters are reported as 0.
//!
//! Invariant: pure; the answer carries nothing computed outside the forwarded indices.

use serde_json::{Map, Value};

use super::{Request, Shape, Spec, Transform, Upstream};
use crate::request::params::{Kind, Param, ParamSet};
use crate::{Method, Rejection};

// Never a wait: `timeout=0s` is forwarded in place of `timeout` ([`forwarded_params`]), so a
// `wait_for_status` is checked once; the other `wait_for_*` are refused.
const PARAMS: &[(&str, Kind)] = &[
    ("wait_for_status", Kind::OneOf(&["green", "yellow", "red"])),
    ("level", Kind::OneOf(&["cluster"])),
    ("timeout", Kind::Time),
];

pub(crate) const CLUSTER_HEALTH: Spec = Spec {
    action: "cluster_health",
    params: ParamSet::own(PARAMS),
    index: true,
    body: false,
    dialect: None,
    prepare,
};

const HEALTH: &str = "/_cluster/health/";

/// Forwarded with [`forwarded_params`], its answer rebuilt by [`view`].
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let mut up = Upstream::at_path(Method::Get, req.index()?, HEALTH, "");
    // Without a path index, the token's concrete indices: never a literal pattern that names no
    // index (health would be red for it).
    if !req.named_index {
        up.shape = Shape::ConcreteIndices { before: HEALTH };
    }
    req.params = forwarded_params(&req.params);
    up.transform = Some(Transform::ClusterHealth);
    Ok(up)
}

/// The parameters forwarded upstream, from the checked client parameters: `wait_for_status`
/// kept, `level=cluster` and `timeout=0s` forced, everything else dropped.
pub fn forwarded_params(params: &[Param]) -> Vec<Param> {
    let mut out: Vec<Param> = params
        .iter()
        .filter(|(k, _)| k == "wait_for_status")
        .cloned()
        .collect();
    out.push(("level".into(), "cluster".into()));
    out.push(("timeout".into(), "0s".into()));
    out
}

/// Keys passed as the backend computed them for the forwarded indices.
const VIEW_KEYS: &[&str] = &[
    "cluster_name",
    "status",
    "timed_out",
    "number_of_nodes",
    "number_of_data_nodes",
    "discovered_master",
    "discovered_cluster_manager",
    "active_primary_shards",
    "active_shards",
    "relocating_shards",
    "initializing_shards",
    "unassigned_shards",
    "unassigned_primary_shards",
];

/// Cluster-wide counters, reported as 0 (see the module doc).
const ZEROED_KEYS: &[&str] = &[
    "delayed_unassigned_shards",
    "number_of_pending_tasks",
    "number_of_in_flight_fetch",
    "task_max_waiting_in_queue_millis",
];

/// The token's view of a health answer (200, or 408 for an unmet `wait_for_status`); `None`
/// when the answer does not have the health shape.
pub fn view(answer: &Value) -> Option<Value> {
    let m = answer.as_object()?;
    m.get("status")?.as_str()?;
    let count = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = Map::new();
    for k in VIEW_KEYS {
        if let Some(v) = m.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    for k in ZEROED_KEYS {
        out.insert((*k).to_string(), Value::from(0));
    }
    let active = count("active_shards");
    let total = active + count("initializing_shards") + count("unassigned_shards");
    let percent = if total == 0 {
        100.0
    } else {
        active as f64 * 100.0 / total as f64
    };
    out.insert(
        "active_shards_percent_as_number".into(),
        serde_json::Number::from_f64(percent).map_or(Value::Null, Value::Number),
    );
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::pairs as p;

    #[test]
    fn waits_are_checked_once_and_the_level_fixed() {
        let table = [
            (
                p(&[("wait_for_status", "yellow")]),
                p(&[
                    ("wait_for_status", "yellow"),
                    ("level", "cluster"),
                    ("timeout", "0s"),
                ]),
            ),
            (
                p(&[("timeout", "60s"), ("level", "cluster")]),
                p(&[("level", "cluster"), ("timeout", "0s")]),
            ),
            (p(&[]), p(&[("level", "cluster"), ("timeout", "0s")])),
        ];
        for (given, forwarded) in table {
            assert_eq!(forwarded_params(&given), forwarded, "{given:?}");
        }
    }

    #[test]
    fn the_view_recomputes_the_percentage_and_zeroes_cluster_wide_counters() {
        let answer = json!({"cluster_name": "c", "status": "yellow", "timed_out": false,
            "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 2,
            "active_shards": 2, "relocating_shards": 0, "initializing_shards": 0,
            "unassigned_shards": 2, "delayed_unassigned_shards": 5,
            "number_of_pending_tasks": 3, "number_of_in_flight_fetch": 1,
            "task_max_waiting_in_queue_millis": 9, "active_shards_percent_as_number": 20.0,
            "indices": {"secret": {}}, "task_max_waiting_in_queue": "9ms"});
        let v = view(&answer).unwrap();
        assert_eq!(v["active_shards_percent_as_number"], json!(50.0));
        for k in ZEROED_KEYS {
            assert_eq!(v[*k], json!(0), "{k}");
        }
        assert!(v.get("indices").is_none());
        assert!(v.get("task_max_waiting_in_queue").is_none());
        assert_eq!(v["status"], "yellow");
        assert_eq!(v["unassigned_shards"], 2);
        let none = json!({"cluster_name": "c", "status": "green", "timed_out": false,
            "active_shards": 0, "active_shards_percent_as_number": 37.5});
        assert_eq!(
            view(&none).unwrap()["active_shards_percent_as_number"],
            json!(100.0)
        );
        assert_eq!(view(&json!({"hits": {}})), None);
        assert_eq!(view(&json!([1])), None);
    }
}

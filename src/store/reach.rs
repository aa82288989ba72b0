//! Whether the data credential can reach the cluster store's index (attack17b). With
//! `store.kind = "elasticsearch"` in the backend cluster, esgate refuses every request that
//! names the store index, but an `all` token's request can make the cluster compute the name (a
//! reindex script setting `ctx._index`, an ingest pipeline setting `_index`, a template's
//! parameters): only the cluster's own security keeps such a request out of the store, and only
//! when the store is read and written with a credential of its own (`[store]` `username` /
//! `api_key`) and the `[backend]` credential, which every `all` token's request carries, holds
//! nothing on the store index.
//!
//! At start (and after a reload, which may change the backend credential) esgate asks the
//! cluster with the backend credential (`_security/user/_has_privileges`) and warns when it
//! holds a privilege that reads, writes or administers the store index, or `manage_security`
//! (which grants any). It does not refuse to start: a cluster without security cannot answer
//! (then it says so), and a role fixed while esgate serves needs no restart.
//!
//! Invariant: nothing secret is logged (privilege and index names and a status only).

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::upstream::Upstream;

/// The index privileges that read, write or administer the store index (`manage` adds aliases,
/// so a name the data credential may use could point at the store index; `delete_index` and
/// `manage_ilm`, below `manage`, delete it: every token gone, or an older copy restored from a
/// snapshot in its place, the tokens revoked since valid again; attack17d).
pub const INDEX_PRIVILEGES: &[&str] = &[
    "read",
    "write",
    "index",
    "create",
    "create_doc",
    "delete",
    "manage",
    "delete_index",
    "manage_ilm",
];
/// The cluster privileges that grant any index privilege.
pub const CLUSTER_PRIVILEGES: &[&str] = &["manage_security"];

/// Longest the check waits: the store answered a moment ago.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest answer read (a few privileges).
const MAX_ANSWER: usize = 64 * 1024;

/// What the cluster says about the data credential and the store index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// It holds none of the privileges asked about.
    None,
    /// The privileges it holds (`index:<name>`, `cluster:<name>`).
    Holds(Vec<String>),
    /// The cluster could not say (no security, an error): why.
    Unknown(String),
}

/// The `_has_privileges` body: the store index's privileges and the cluster's.
pub fn question(index: &str) -> Value {
    json!({
        "cluster": CLUSTER_PRIVILEGES,
        "index": [{"names": [index], "privileges": INDEX_PRIVILEGES}],
    })
}

/// Reads the cluster's answer. Pure.
pub fn judge(status: u16, body: &[u8], index: &str) -> Reach {
    if status != 200 {
        return Reach::Unknown(format!(
            "the cluster answered status {status} to _security/user/_has_privileges (a cluster without security cannot keep the data credential away from the store index)"
        ));
    }
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Reach::Unknown("the cluster's _has_privileges answer is not JSON".into());
    };
    let held = |section: Option<&Value>, names: &[&str], prefix: &str| -> Option<Vec<String>> {
        let section = section?.as_object()?;
        names
            .iter()
            .map(|name| match section.get(*name) {
                Some(Value::Bool(b)) => Some(b.then(|| format!("{prefix}:{name}"))),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect())
    };
    let index_held = held(
        answer.get("index").and_then(|i| i.get(index)),
        INDEX_PRIVILEGES,
        "index",
    );
    let cluster_held = held(answer.get("cluster"), CLUSTER_PRIVILEGES, "cluster");
    match (index_held, cluster_held) {
        (Some(mut i), Some(c)) => {
            i.extend(c);
            if i.is_empty() {
                Reach::None
            } else {
                Reach::Holds(i)
            }
        }
        _ => Reach::Unknown(
            "the cluster's _has_privileges answer does not name every privilege asked about".into(),
        ),
    }
}

/// Asks the cluster what `authorization` (the data credential) holds on `index`.
pub async fn check(
    upstream: &Upstream,
    authorization: Option<&http::HeaderValue>,
    index: &str,
) -> Reach {
    let body = Bytes::from(question(index).to_string());
    let asked = upstream.own_request(
        Method::POST,
        "/_security/user/_has_privileges",
        authorization,
        Some(("application/json", body)),
        MAX_ANSWER,
    );
    match tokio::time::timeout(TIMEOUT, asked).await {
        Ok(Ok((status, bytes))) => judge(status, &bytes, index),
        Ok(Err(e)) => Reach::Unknown(format!("_security/user/_has_privileges failed: {e}")),
        Err(_) => Reach::Unknown(format!(
            "_security/user/_has_privileges did not answer within {TIMEOUT:?}"
        )),
    }
}

/// Logs what `reach` means for the store index.
pub fn log(reach: &Reach, index: &str) {
    match reach {
        Reach::None => tracing::info!(
            store_index = %index,
            "The [backend] credential holds no privilege on the store index: all tokens cannot reach it"
        ),
        Reach::Holds(privileges) => tracing::warn!(
            store_index = %index,
            privileges = %privileges.join(","),
            "The [backend] credential, which every all token's request carries, can reach the store index: a request whose index name the cluster computes (a reindex script, an ingest pipeline) can write token records past esgate's checks. Take the store index out of the data credential's role (see \"Several replicas\" in the README)"
        ),
        Reach::Unknown(why) => tracing::warn!(
            store_index = %index,
            reason = %why,
            "Cannot tell whether the [backend] credential can reach the store index; on a cluster with security, give the data credential a role without it (see \"Several replicas\" in the README)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(index: &str, held: &[&str], cluster: bool) -> Vec<u8> {
        let privileges: serde_json::Map<String, Value> = INDEX_PRIVILEGES
            .iter()
            .map(|p| (p.to_string(), Value::Bool(held.contains(p))))
            .collect();
        serde_json::to_vec(&json!({
            "username": "esgate_data",
            "has_all_requested": false,
            "cluster": {"manage_security": cluster},
            "index": {index: privileges},
            "application": {},
        }))
        .unwrap()
    }

    #[test]
    fn the_privileges_held_on_the_store_index_are_named() {
        assert_eq!(
            judge(200, &answer(".esgate", &[], false), ".esgate"),
            Reach::None
        );
        assert_eq!(
            judge(
                200,
                &answer(".esgate", &["read", "create_doc"], false),
                ".esgate"
            ),
            Reach::Holds(vec!["index:read".into(), "index:create_doc".into()])
        );
        assert_eq!(
            judge(200, &answer(".esgate", &[], true), ".esgate"),
            Reach::Holds(vec!["cluster:manage_security".into()])
        );
    }

    /// attack17d (L): a data role that may only delete the store index (`delete_index`, or
    /// `manage_ilm`: a policy with a delete phase) is not "none": deleted, every token is gone,
    /// or an older copy restored from a snapshot brings back the tokens revoked since.
    #[test]
    fn deleting_the_store_index_is_reaching_it() {
        let question = question(".esgate");
        let asked = &question["index"][0]["privileges"];
        for p in ["delete_index", "manage_ilm"] {
            assert!(asked.as_array().unwrap().contains(&json!(p)), "{question}");
            assert_eq!(
                judge(200, &answer(".esgate", &[p], false), ".esgate"),
                Reach::Holds(vec![format!("index:{p}")])
            );
        }
    }

    /// A cluster without security (or that answers something else) cannot say: never "none".
    #[test]
    fn an_answer_that_names_not_every_privilege_is_unknown() {
        for (status, body) in [
            (404, b"{}".to_vec()),
            (400, b"{\"error\":\"no handler\"}".to_vec()),
            (500, b"{}".to_vec()),
            (200, b"not json".to_vec()),
            (200, b"{}".to_vec()),
            // Another index's answer.
            (200, answer(".other", &[], false)),
            (
                200,
                br#"{"cluster":{"manage_security":false},"index":{".esgate":{"read":"no"}}}"#
                    .to_vec(),
            ),
        ] {
            assert!(
                matches!(judge(status, &body, ".esgate"), Reach::Unknown(_)),
                "{status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn the_question_names_the_store_index_and_every_privilege() {
        let q = question(".esgate-x");
        assert_eq!(q["index"][0]["names"], json!([".esgate-x"]));
        assert_eq!(q["index"][0]["privileges"], json!(INDEX_PRIVILEGES));
        assert_eq!(q["cluster"], json!(CLUSTER_PRIVILEGES));
    }
}

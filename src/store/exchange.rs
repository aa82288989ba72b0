//! `esgate store export` / `esgate store import`: the whole store as one JSON document, the
//! same for both kinds of store, so a single instance can grow into replicas and back.
//!
//! Format: `{"esgate_store_export": 1, "changes": [...]}` where `changes` are the store's own
//! serde records ([`Change`]: IP filters, library filters, tokens, then one `last_used`), exactly
//! what the file store's snapshot holds. Secrets stay SHA-256 hashes. The id-sealing key is not
//! exported (it is not a record; open scrolls simply expire).

use serde::{Deserialize, Serialize};

use super::{Change, Snapshot};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Export {
    esgate_store_export: u32,
    changes: Vec<Change>,
}

/// The whole state as export JSON (deterministic: records sorted by key).
pub fn export(snapshot: &Snapshot) -> String {
    let doc = Export {
        esgate_store_export: FORMAT_VERSION,
        changes: super::file::state_changes(snapshot),
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Parses an export. Only records (puts and last-used times) are accepted, and the result
/// must be consistent (every library filter and IP filter a token names is in it).
pub fn parse(text: &str) -> Result<Vec<Change>, String> {
    let doc: Export =
        serde_json::from_str(text).map_err(|e| format!("not an esgate store export: {e}"))?;
    if doc.esgate_store_export != FORMAT_VERSION {
        return Err(format!(
            "export format {} is not supported (expected {FORMAT_VERSION})",
            doc.esgate_store_export
        ));
    }
    let mut state = Snapshot::default();
    for c in &doc.changes {
        match c {
            Change::PutToken { .. }
            | Change::PutFilter { .. }
            | Change::PutIpFilter { .. }
            | Change::PutLink { .. }
            | Change::LastUsed { .. } => state.apply(c),
            _ => return Err("an export holds records only (no deletes)".into()),
        }
    }
    for c in &doc.changes {
        if let Change::PutLink { link } = c {
            if state.token(&link.token_id).is_none() {
                return Err(format!(
                    "link '{}' names a missing token '{}' (tokens come before their links)",
                    link.id, link.token_id
                ));
            }
        }
    }
    for t in state.tokens() {
        if let Err(e) = state.resolve_filters(t) {
            return Err(format!("token '{}': {e}", t.id));
        }
        if let Some(name) = &t.ip_filter {
            if state.ip_filter(name).is_none() {
                return Err(format!(
                    "token '{}' names a missing IP filter '{name}'",
                    t.id
                ));
            }
        }
    }
    // Records first, then the last-used times (which apply to known tokens only).
    let mut changes = doc.changes;
    changes.sort_by_key(|c| matches!(c, Change::LastUsed { .. }));
    Ok(changes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::model::{FilterRef, IpFilter, LibraryFilter, Permission, SecretHash, Token};

    pub(crate) fn sample() -> Vec<Change> {
        vec![
            Change::PutIpFilter {
                ip_filter: IpFilter {
                    name: "office".into(),
                    cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                    created_at: 1,
                },
            },
            Change::PutFilter {
                filter: LibraryFilter {
                    id: "flt_1".into(),
                    description: "d".into(),
                    field: "env".into(),
                    value: "test".into(),
                    created_at: 2,
                },
            },
            Change::PutToken {
                token: Token {
                    id: "tok_1".into(),
                    name: "n".into(),
                    secret_hash: SecretHash([9; 32]),
                    filters: vec![FilterRef::Library("flt_1".into())],
                    indices: vec!["logs-*".into()],
                    permissions: [Permission::Read].into(),
                    created_at: 3,
                    expires_at: Some(99),
                    ip_filter: Some("office".into()),
                    previous_secret: None,
                    limits: Default::default(),
                    kibana_spaces: vec!["default".into()],
                    scores: None,
                },
            },
            Change::LastUsed {
                times: vec![("tok_1".into(), 7)],
            },
        ]
    }

    #[test]
    fn export_then_parse_is_lossless() {
        let mut state = Snapshot::default();
        for c in sample() {
            state.apply(&c);
        }
        let text = export(&state);
        assert!(!text.contains("esg_"), "no secret in an export");
        assert_eq!(parse(&text).unwrap(), sample());
    }

    #[test]
    fn deletes_dangling_references_and_other_versions_are_refused() {
        let bad = [
            r#"{"esgate_store_export":1,"changes":[{"op":"delete_token","id":"a"}]}"#,
            r#"{"esgate_store_export":2,"changes":[]}"#,
            r#"{"changes":[]}"#,
            r#"[]"#,
        ];
        for text in bad {
            assert!(parse(text).is_err(), "{text}");
        }
        let mut changes = sample();
        changes.remove(1);
        let text = serde_json::json!({"esgate_store_export": 1, "changes": changes}).to_string();
        assert!(parse(&text).unwrap_err().contains("flt_1"));
    }
}

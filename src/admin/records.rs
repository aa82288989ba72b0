//! Store records held to the admin API's rules, for records that did not come through it: an
//! `esgate store import` file (attack 19a). A file anyone may have edited could otherwise hold
//! a token the admin API cannot name (so cannot delete or reset), an `all` token listing filters
//! it never applies, a link whose path is another origin (an open redirect on the Kibana front)
//! or a second token opened by another's secret.
//!
//! The checks are the admin API's own parsers, run on the record written back in the API's
//! shape, so the two cannot drift apart. Policies (`[policies]`) are not applied: an import is
//! a restore, and the CLI reads only `[store]`. Errors name the record and the field, never a
//! value.

use serde_json::{json, Map, Value};

use crate::store::model::{FilterRef, Token};
use crate::store::{Change, Snapshot};

use super::input::AdminError;
use super::{filters, ip_filters, limits, links, tokens};

/// Why `change` is not a record the admin API could have written (`Err` names the record).
pub fn check(change: &Change) -> Result<(), String> {
    let (what, id, checked) = match change {
        Change::PutToken { token } => ("token", &token.id, check_token(token)),
        Change::PutFilter { filter } => (
            "filter",
            &filter.id,
            key(&filter.id).and_then(|()| {
                let map = object(json!({"description": filter.description}));
                filters::parse_description(&map)?;
                tokens::check_field_value(
                    "field",
                    "value",
                    &Value::from(filter.field.as_str()),
                    &Value::from(filter.value.as_str()),
                )
                .map(drop)
            }),
        ),
        Change::PutIpFilter { ip_filter } => (
            "IP filter",
            &ip_filter.name,
            if ip_filters::valid_name(&ip_filter.name) {
                let cidrs: Vec<String> = ip_filter.cidrs.iter().map(|c| c.to_string()).collect();
                ip_filters::parse_cidrs(&object(json!({ "cidrs": cidrs }))).map(drop)
            } else {
                Err(AdminError::field("name", "is not an IP filter name"))
            },
        ),
        Change::PutLink { link } => ("link", &link.id, {
            // As `links::new_link_id` makes them: lower-case hex digits.
            let hex = crate::kibana::link_id_hex(&link.id);
            if hex.is_none_or(|h| h.bytes().any(|b| b.is_ascii_uppercase())) {
                Err(AdminError::field("id", "is not lnk_ and 32 hex digits"))
            } else {
                crate::kibana::path::check(&link.path)
                    .map_err(|why| AdminError::field("path", why))
                    .and_then(|()| match &link.time {
                        Some(t) => links::parse_time(&object(
                            json!({"time": {"from": t.from, "to": t.to}}),
                        ))
                        .map(drop),
                        None => Ok(()),
                    })
            }
        }),
        Change::LastUsed { .. }
        | Change::DeleteToken { .. }
        | Change::DeleteFilter { .. }
        | Change::DeleteIpFilter { .. }
        | Change::DeleteLink { .. } => return Ok(()),
    };
    checked.map_err(|e| format!("{what} '{}': {}", super::display_name(id), e.reason))
}

/// The records of an export about to be imported into a store holding `stored`: each one
/// [`check`]ed, and every token of the store after the import opened by secrets of its own.
pub fn check_import(changes: &[Change], stored: &Snapshot) -> Result<(), String> {
    changes.iter().try_for_each(check)?;
    let mut state = stored.clone();
    for c in changes {
        state.apply(c);
    }
    check_unique_secrets(&state)
}

/// Every token opened by secrets of its own: no secret hash (current or previous) is another
/// token's. `state` is what the store holds once the records are applied.
pub fn check_unique_secrets(state: &Snapshot) -> Result<(), String> {
    let mut seen = std::collections::HashMap::new();
    for t in state.tokens() {
        let hashes =
            std::iter::once(t.secret_hash).chain(t.previous_secret.as_ref().map(|p| p.hash));
        for h in hashes {
            if let Some(other) = seen.insert(h, t.id.as_str()) {
                if other != t.id {
                    return Err(format!(
                        "tokens '{}' and '{}' are opened by the same secret (a secret hash appears twice)",
                        super::display_name(other),
                        super::display_name(&t.id)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_token(t: &Token) -> Result<(), AdminError> {
    key(&t.id)
        .map_err(|_| AdminError::field("id", "is not an admin API id ([A-Za-z0-9_-], 1 to 128)"))?;
    let filters: Vec<Value> = t
        .filters
        .iter()
        .map(|f| match f {
            FilterRef::Inline(fv) => json!({"field": fv.field, "value": fv.value}),
            FilterRef::Library(id) => Value::from(id.as_str()),
        })
        .collect();
    let permissions: Vec<&str> = t.permissions.iter().map(|p| p.as_str()).collect();
    let map = object(json!({
        "name": t.name,
        "filters": filters,
        "indices": t.indices,
        "permissions": permissions,
        "kibana_spaces": t.kibana_spaces,
    }));
    tokens::parse_name(&map)?;
    tokens::parse_filters(&map)?;
    tokens::parse_indices(&map)?;
    let permissions = tokens::parse_permissions(&map)?.unwrap_or_default();
    tokens::parse_kibana_spaces(&map)?;
    tokens::check_all_is_unrestricted(&permissions, !t.filters.is_empty(), &t.indices)?;
    let shown = serde_json::to_value(limits::view(&t.limits))
        .map_err(|_| AdminError::field("limits", "cannot be read"))?;
    if limits::parse(&shown, "limits")? != t.limits {
        return Err(AdminError::field("limits", "are out of range"));
    }
    Ok(())
}

fn key(id: &str) -> Result<(), AdminError> {
    if super::valid_key(id) {
        Ok(())
    } else {
        Err(AdminError::field(
            "id",
            "is not an admin API id ([A-Za-z0-9_-], 1 to 128)",
        ))
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::exchange::{self, tests::sample};
    use crate::store::model::{FieldValue, Permission, SecretHash};

    /// An export as `esgate store import` takes it into an empty store.
    fn import(text: &str) -> Result<Vec<Change>, String> {
        let changes = exchange::parse(text)?;
        check_import(&changes, &Snapshot::default())?;
        Ok(changes)
    }

    fn with(mut changes: Vec<Change>, edit: impl FnOnce(&mut Vec<Change>)) -> String {
        edit(&mut changes);
        serde_json::json!({"esgate_store_export": 1, "changes": changes}).to_string()
    }

    fn token_of(changes: &mut [Change]) -> &mut Token {
        changes
            .iter_mut()
            .find_map(|c| match c {
                Change::PutToken { token } => Some(token),
                _ => None,
            })
            .unwrap()
    }

    fn link(token_id: &str, path: &str) -> Change {
        Change::PutLink {
            link: crate::store::model::Link {
                id: format!("lnk_{}", "0a".repeat(16)),
                token_id: token_id.into(),
                path: path.into(),
                time: None,
                created_at: 4,
                expires_at: None,
                secret_generation: "00".repeat(8),
            },
        }
    }

    /// Attack 19a: an export is a file anyone may have edited. Its records held to the admin
    /// API's rules: a token the admin API cannot name (so cannot delete or reset), an `all`
    /// token listing filters it never applies, a link whose path is another origin (an open
    /// redirect on the Kibana front), a second token opened by the same secret.
    #[test]
    fn records_the_admin_api_could_not_have_written_are_refused() {
        let good = with(sample(), |c| {
            c.push(link("tok_1", "/app/dashboards#/view/x"))
        });
        assert!(import(&good).is_ok(), "{:?}", import(&good));
        let bad: Vec<(&str, String)> = vec![
            (
                "token id",
                with(sample(), |c| {
                    let t = token_of(c);
                    t.id = "tok 1/../x".into();
                    c.pop();
                }),
            ),
            (
                "empty token id",
                with(sample(), |c| {
                    token_of(c).id = String::new();
                    c.pop();
                }),
            ),
            (
                "all with filters",
                with(sample(), |c| {
                    token_of(c).permissions = [Permission::All].into();
                }),
            ),
            (
                "no indices",
                with(sample(), |c| token_of(c).indices = vec![]),
            ),
            (
                "index pattern",
                with(sample(), |c| {
                    token_of(c).indices = vec!["logs,secrets".into()]
                }),
            ),
            (
                "no permissions",
                with(sample(), |c| token_of(c).permissions = Default::default()),
            ),
            (
                "inline filter",
                with(sample(), |c| {
                    token_of(c).filters = vec![FilterRef::Inline(FieldValue {
                        field: String::new(),
                        value: "x".into(),
                    })]
                }),
            ),
            (
                "name",
                with(sample(), |c| token_of(c).name = "a\u{202e}b".into()),
            ),
            (
                "kibana space",
                with(sample(), |c| {
                    token_of(c).kibana_spaces = vec!["../x".into()]
                }),
            ),
            (
                "limits",
                with(sample(), |c| {
                    token_of(c).limits.max_concurrent = Some(0);
                }),
            ),
            (
                "library filter",
                with(sample(), |c| {
                    if let Change::PutFilter { filter } = &mut c[1] {
                        filter.value = String::new();
                    }
                }),
            ),
            (
                "ip filter without cidrs",
                with(sample(), |c| {
                    if let Change::PutIpFilter { ip_filter } = &mut c[0] {
                        ip_filter.cidrs = vec![];
                    }
                }),
            ),
            (
                "ip filter name",
                with(sample(), |c| {
                    if let Change::PutIpFilter { ip_filter } = &mut c[0] {
                        ip_filter.name = "of fice".into();
                    }
                    token_of(c).ip_filter = Some("of fice".into());
                }),
            ),
            (
                "link path",
                with(sample(), |c| c.push(link("tok_1", "//evil.example/app/x"))),
            ),
            (
                "link url",
                with(sample(), |c| c.push(link("tok_1", "https://evil.example/"))),
            ),
            (
                "link id",
                with(sample(), |c| {
                    c.push(link("tok_1", "/app/dashboards"));
                    if let Some(Change::PutLink { link }) = c.last_mut() {
                        link.id = "lnk_x".into();
                    }
                }),
            ),
            (
                "link time",
                with(sample(), |c| {
                    c.push(link("tok_1", "/app/dashboards"));
                    if let Some(Change::PutLink { link }) = c.last_mut() {
                        link.time = Some(crate::store::model::TimeRange {
                            from: "now-1d',to:'now'),refreshInterval:(pause:!f".into(),
                            to: "2026-01-01T00:00:00Z".into(),
                        });
                    }
                }),
            ),
            (
                "shared secret",
                with(sample(), |c| {
                    let mut twin = token_of(c).clone();
                    twin.id = "tok_2".into();
                    twin.filters = vec![];
                    c.insert(3, Change::PutToken { token: twin });
                }),
            ),
            (
                "previous secret is another's current",
                with(sample(), |c| {
                    let mut twin = token_of(c).clone();
                    twin.id = "tok_2".into();
                    twin.secret_hash = SecretHash([8; 32]);
                    twin.previous_secret = Some(Box::new(crate::store::model::PreviousSecret {
                        hash: SecretHash([9; 32]),
                        expires_at: 50,
                    }));
                    c.insert(3, Change::PutToken { token: twin });
                }),
            ),
        ];
        for (what, text) in bad {
            let err = import(&text).expect_err(what);
            assert!(!err.contains("0909"), "{what}: a hash in the error: {err}");
        }
        // The same token twice (a later record replacing an earlier one) is not a shared secret.
        let twice = with(sample(), |c| {
            let t = token_of(c).clone();
            c.insert(3, Change::PutToken { token: t });
        });
        assert!(import(&twice).is_ok(), "{:?}", import(&twice));
    }

    /// An import adds to the store it lands in: a token of another id opened by a secret a
    /// stored token already has would take that token's secret over.
    #[test]
    fn an_import_cannot_reuse_a_stored_tokens_secret() {
        let changes = exchange::parse(&with(sample(), |_| {})).unwrap();
        let mut store = Snapshot::default();
        assert!(check_import(&changes, &store).is_ok());
        let mut other = match &changes[2] {
            Change::PutToken { token } => token.clone(),
            _ => unreachable!(),
        };
        // The same token (a re-import) is fine.
        store.apply(&Change::PutToken {
            token: other.clone(),
        });
        assert!(check_import(&changes, &store).is_ok());
        other.id = "tok_stored".into();
        let mut store = Snapshot::default();
        store.apply(&Change::PutToken { token: other });
        let err = check_import(&changes, &store).unwrap_err();
        assert!(err.contains("tok_1") && err.contains("tok_stored"), "{err}");
    }
}

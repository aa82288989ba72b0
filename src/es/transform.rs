//! Response transforms: routes esgate answers by rewriting the backend's response, not only
//! the request (`_terms_enum` from a filtered terms aggregation, `_cat/indices` rendered by
//! esgate, `_explain` with unmatched documents made indistinguishable from missing ones).
//!
//! A [`Transform`] travels in the `Permit`; the proxy reads the upstream body whole (capped,
//! identity encoding asked for) and calls [`apply`]. Backend errors (non-2xx) pass unchanged
//! unless the route says otherwise (`_explain` turns its 404 into esgate's own body).
//!
//! Invariant: pure (no I/O). A successful backend answer that does not have the expected shape
//! is an error (the proxy answers 502), never relayed as is: relaying it could hand the client
//! what the transform exists to remove.

use serde_json::Value;

use super::{cat_indices, explain, terms_enum};

/// How the backend's answer is turned into the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transform {
    /// A `_search` answer becomes `{"_shards","terms","complete"}`.
    TermsEnum(terms_enum::Answer),
    /// `_cat/indices?format=json` rows are rendered with the token's columns.
    CatIndices(cat_indices::Table),
    /// An unmatched document answers like a missing one; explanations lose their statistics.
    Explain,
}

/// The backend answered a success that does not have the shape the route expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the backend's answer to a transformed request does not have the expected shape")]
pub struct TransformError;

/// The content type of a transformed answer.
pub const JSON: &str = "application/json; charset=UTF-8";
pub const TEXT: &str = "text/plain; charset=UTF-8";

/// Turns the backend's `(status, body)` into the client's.
pub fn apply(t: &Transform, status: u16, body: &[u8]) -> Result<(u16, Vec<u8>), TransformError> {
    let success = (200..300).contains(&status);
    match t {
        Transform::Explain => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return if success {
                    Err(TransformError)
                } else {
                    Ok((status, body.to_vec()))
                };
            };
            let (status, out) = explain::answer(status, &v).ok_or(TransformError)?;
            Ok((
                status,
                serde_json::to_vec(&out).map_err(|_| TransformError)?,
            ))
        }
        _ if !success => Ok((status, body.to_vec())),
        Transform::TermsEnum(spec) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| TransformError)?;
            let out = terms_enum::answer(spec, &v).ok_or(TransformError)?;
            Ok((
                status,
                serde_json::to_vec(&out).map_err(|_| TransformError)?,
            ))
        }
        Transform::CatIndices(table) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| TransformError)?;
            Ok((
                status,
                cat_indices::render(table, &v).ok_or(TransformError)?,
            ))
        }
    }
}

/// The content type of what [`apply`] returned for `status`: text only for a successful
/// `_cat` text table (errors stay the backend's JSON).
pub fn content_type(t: &Transform, status: u16) -> &'static str {
    match t {
        Transform::CatIndices(table)
            if (200..300).contains(&status) && table.format() == cat_indices::Format::Text =>
        {
            TEXT
        }
        _ => JSON,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> terms_enum::Answer {
        terms_enum::Answer {
            prefix: String::new(),
            case_insensitive: false,
            search_after: None,
            size: 10,
        }
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn terms_enum_search_answer_is_reshaped() {
        let body = json!({"timed_out": false, "_shards": {"total": 1, "failed": 0},
            "aggregations": {"terms_enum": {"buckets": [{"key": "alice", "doc_count": 3}]}}});
        let (status, out) = apply(
            &Transform::TermsEnum(spec()),
            200,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            parsed(&out),
            json!({"_shards": {"total": 1, "failed": 0}, "terms": ["alice"], "complete": true})
        );
    }

    #[test]
    fn backend_errors_pass_unchanged_except_explain_misses() {
        let err = br#"{"error":{"type":"x"},"status":400}"#;
        for t in [
            Transform::TermsEnum(spec()),
            Transform::Explain,
            Transform::CatIndices(cat_indices::plan(&[], true).unwrap().1),
        ] {
            assert_eq!(apply(&t, 400, err).unwrap(), (400, err.to_vec()), "{t:?}");
            assert_eq!(content_type(&t, 400), JSON);
        }
        assert_eq!(
            apply(&Transform::Explain, 502, b"not json").unwrap(),
            (502, b"not json".to_vec())
        );
        let miss = br#"{"_id":"x","_index":"logs-a","matched":false}"#;
        let (status, out) = apply(&Transform::Explain, 404, miss).unwrap();
        assert_eq!(status, 404);
        assert_eq!(
            parsed(&out),
            json!({"_index": "logs-a", "_id": "x", "matched": false})
        );
    }

    #[test]
    fn successes_of_the_wrong_shape_are_errors() {
        let cat = Transform::CatIndices(cat_indices::plan(&[], true).unwrap().1);
        for t in [Transform::TermsEnum(spec()), Transform::Explain, cat] {
            assert_eq!(apply(&t, 200, b"<html>"), Err(TransformError), "{t:?}");
            assert_eq!(apply(&t, 200, b"{\"x\":1}"), Err(TransformError), "{t:?}");
        }
    }

    #[test]
    fn cat_text_tables_are_text() {
        let (_, text) = cat_indices::plan(&[], true).unwrap();
        let (_, json_table) =
            cat_indices::plan(&[("format".to_string(), "json".to_string())], true).unwrap();
        let rows = br#"[{"index":"logs-a","health":"green"}]"#;
        let t = Transform::CatIndices(text);
        assert_eq!(content_type(&t, 200), TEXT);
        assert_eq!(apply(&t, 200, rows).unwrap().1, b"green logs-a\n".to_vec());
        let j = Transform::CatIndices(json_table);
        assert_eq!(content_type(&j, 200), JSON);
        assert_eq!(
            parsed(&apply(&j, 200, rows).unwrap().1),
            json!([{"health": "green", "index": "logs-a"}])
        );
    }
}

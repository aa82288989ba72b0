//! Which REST dialect the backend speaks: Elasticsearch or OpenSearch. A few routes exist in
//! one dialect only (point in time: Elasticsearch `POST /{index}/_pit` and `DELETE /_pit`,
//! OpenSearch `POST /{index}/_search/point_in_time` and `DELETE /_search/point_in_time`), and a
//! backend of the other dialect may treat such a request as something else (the Elasticsearch 8
//! dialect runs `/{index}/_search/point_in_time` as an unfiltered search). esgate forwards a
//! dialect's own form only to a backend known to speak it (issue #8.6): the proxy learns the
//! dialect once from the backend's `GET /` and passes it in with the [`crate::Resolution`];
//! the other dialect's form is answered like Elasticsearch answers a route it does not have
//! (400, no handler), and an unknown dialect refuses both (fail closed).
//!
//! Invariant: pure; the dialect is data the proxy passes in.

use serde_json::Value;

/// A backend's REST dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Elasticsearch,
    OpenSearch,
}

/// The dialect a `GET /` answer announces: `version.distribution` is `opensearch` for
/// OpenSearch; Elasticsearch has no distribution (or `elasticsearch`) and a `version.number`
/// of 5 or later. Anything else is unknown (`None`).
pub fn from_root(body: &[u8]) -> Option<Dialect> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let version = v.get("version")?.as_object()?;
    let number = version.get("number")?.as_str()?;
    let major: u32 = number.split('.').next()?.parse().ok()?;
    match version.get("distribution").map(Value::as_str) {
        Some(Some("opensearch")) => Some(Dialect::OpenSearch),
        None | Some(Some("elasticsearch")) if major >= 5 => Some(Dialect::Elasticsearch),
        _ => None,
    }
}

/// A route that exists in one dialect only, as Elasticsearch names it in its router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialectRoute {
    pub dialect: Dialect,
    pub method: &'static str,
    pub template: &'static str,
}

impl DialectRoute {
    /// Whether the route may be forwarded to a backend of `backend` dialect.
    pub fn check(&self, backend: Option<Dialect>) -> Result<(), crate::Rejection> {
        match backend {
            Some(d) if d == self.dialect => Ok(()),
            // What Elasticsearch (and OpenSearch) answer for a route they do not have.
            Some(_) => Err(crate::Rejection::bad_request(format!(
                "no handler found for uri [{}] and method [{}]",
                self.template, self.method
            ))),
            None => Err(crate::Rejection::forbidden(
                "point in time is refused: the backend's dialect (Elasticsearch or OpenSearch) is not known",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectKind;

    #[test]
    fn the_root_answer_names_the_dialect() {
        let table: &[(&str, Option<Dialect>)] = &[
            (
                r#"{"version":{"distribution":"opensearch","number":"3.8.0"},"tagline":"The OpenSearch Project"}"#,
                Some(Dialect::OpenSearch),
            ),
            (
                r#"{"version":{"distribution":"opensearch","number":"1.3.0"}}"#,
                Some(Dialect::OpenSearch),
            ),
            (
                r#"{"version":{"build_flavor":"default","number":"8.15.3"},"tagline":"You Know, for Search"}"#,
                Some(Dialect::Elasticsearch),
            ),
            (
                r#"{"version":{"number":"7.10.2"}}"#,
                Some(Dialect::Elasticsearch),
            ),
            (
                r#"{"version":{"number":"9.1.0-SNAPSHOT"}}"#,
                Some(Dialect::Elasticsearch),
            ),
            (r#"{"version":{"number":"2.4.0"}}"#, None),
            (
                r#"{"version":{"distribution":"other","number":"8.0.0"}}"#,
                None,
            ),
            (r#"{"version":{"number":8}}"#, None),
            (r#"{"name":"x"}"#, None),
            ("<html>", None),
            ("", None),
        ];
        for (body, expected) in table {
            assert_eq!(from_root(body.as_bytes()), *expected, "{body}");
        }
    }

    #[test]
    fn only_the_backends_own_form_is_forwarded() {
        let es_pit = DialectRoute {
            dialect: Dialect::Elasticsearch,
            method: "POST",
            template: "/{index}/_pit",
        };
        assert_eq!(es_pit.check(Some(Dialect::Elasticsearch)), Ok(()));
        let other = es_pit.check(Some(Dialect::OpenSearch)).unwrap_err();
        assert_eq!(other.kind, RejectKind::BadRequest);
        assert_eq!(
            other.reason,
            "no handler found for uri [/{index}/_pit] and method [POST]"
        );
        assert_eq!(es_pit.check(None).unwrap_err().kind, RejectKind::Forbidden);
    }
}

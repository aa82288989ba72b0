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

/// How a backend makes the empty buckets of a `histogram` or `date_histogram` with
/// `min_doc_count: 0` (`dsl::fill`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmptyBuckets {
    /// Counted as they are made, refused past `search.max_buckets`: Elasticsearch 7.13 and
    /// later.
    Counted,
    /// All made first and counted after: OpenSearch (every version), Elasticsearch before
    /// 7.13, and a backend whose `GET /` esgate does not know (fail closed).
    #[default]
    MadeFirst,
}

/// What a `GET /` answer says of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Banner {
    pub dialect: Dialect,
    pub empty_buckets: EmptyBuckets,
}

/// The dialect a `GET /` answer announces: `version.distribution` is `opensearch` for
/// OpenSearch; Elasticsearch has no distribution (or `elasticsearch`) and a `version.number`
/// of 5 or later. Anything else is unknown (`None`).
pub fn from_root(body: &[u8]) -> Option<Dialect> {
    banner(body).map(|b| b.dialect)
}

/// [`from_root`], and how the backend makes empty histogram buckets: counted as made from
/// Elasticsearch 7.13 (`version.number` major and minor), made first on OpenSearch and on
/// Elasticsearch before 7.13 (a minor that does not read as a number counts as before).
pub fn banner(body: &[u8]) -> Option<Banner> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let version = v.get("version")?.as_object()?;
    let number = version.get("number")?.as_str()?;
    let mut parts = number.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: Option<u32> = parts.next().and_then(|m| m.parse().ok());
    let dialect = match version.get("distribution").map(Value::as_str) {
        Some(Some("opensearch")) => Dialect::OpenSearch,
        None | Some(Some("elasticsearch")) if major >= 5 => Dialect::Elasticsearch,
        _ => return None,
    };
    let counted = dialect == Dialect::Elasticsearch
        && (major > 7 || (major == 7 && minor.is_some_and(|m| m >= 13)));
    Some(Banner {
        dialect,
        empty_buckets: if counted {
            EmptyBuckets::Counted
        } else {
            EmptyBuckets::MadeFirst
        },
    })
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

    /// attack26 (hist27): only Elasticsearch 7.13 and later count empty histogram buckets as
    /// they make them; OpenSearch of any version, older Elasticsearch and unknown answers do not.
    #[test]
    fn the_root_answer_says_how_empty_buckets_are_made() {
        use EmptyBuckets::{Counted, MadeFirst};
        let table: &[(&str, Option<EmptyBuckets>)] = &[
            (r#"{"version":{"number":"8.15.3"}}"#, Some(Counted)),
            (r#"{"version":{"number":"7.13.0"}}"#, Some(Counted)),
            (r#"{"version":{"number":"7.17.9"}}"#, Some(Counted)),
            (r#"{"version":{"number":"9.1.0-SNAPSHOT"}}"#, Some(Counted)),
            (r#"{"version":{"number":"7.12.1"}}"#, Some(MadeFirst)),
            (r#"{"version":{"number":"7.10.2"}}"#, Some(MadeFirst)),
            (r#"{"version":{"number":"7"}}"#, Some(MadeFirst)),
            (r#"{"version":{"number":"7.x"}}"#, Some(MadeFirst)),
            (r#"{"version":{"number":"6.8.23"}}"#, Some(MadeFirst)),
            (
                r#"{"version":{"distribution":"opensearch","number":"3.8.0"}}"#,
                Some(MadeFirst),
            ),
            (
                r#"{"version":{"distribution":"opensearch","number":"7.13.0"}}"#,
                Some(MadeFirst),
            ),
            (r#"{"version":{"number":"2.4.0"}}"#, None),
            (r#"{"name":"x"}"#, None),
        ];
        for (body, expected) in table {
            let got = banner(body.as_bytes()).map(|b| b.empty_buckets);
            assert_eq!(got, *expected, "{body}");
            assert_eq!(
                banner(body.as_bytes()).map(|b| b.dialect),
                from_root(body.as_bytes())
            );
        }
        assert_eq!(EmptyBuckets::default(), MadeFirst);
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

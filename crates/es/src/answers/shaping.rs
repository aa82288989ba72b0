//! Response-shaping parameters: `filter_path`, `pretty` and `human` only remove parts of an
//! answer or change its layout, so every route takes them (the official clients send them:
//! the Node client's `helpers.search` and `helpers.scrollDocuments` add `filter_path`).
//! `error_trace=false` (the default) is accepted and dropped.
//!
//! Where they apply depends on how esgate relays the answer ([`crate::Answer`]):
//! - an answer streamed untouched: they are forwarded, the backend applies them;
//! - an answer esgate reads whole (a sealed id, a transform): they are never forwarded (a
//!   `filter_path` could strip the id esgate must seal or the parts a transform checks) and
//!   esgate applies `filter_path` and `pretty` to its own final answer, after every other
//!   step, in one place (`proxy::finish_read_whole`). `human` (which only adds human-readable
//!   copies of values) is not applied there.
//!
//! Invariant: pure; [`Shaping::apply`] only removes parts of a JSON answer or re-indents it.

use serde_json::Value;

use crate::answers::filter_path::FilterPath;
use crate::Rejection;

/// The response-shaping parameters of one request, taken out of its query string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shaping {
    /// The parameters as received (checked), to forward when the backend applies them.
    received: Vec<(String, String)>,
    filter_path: Option<FilterPath>,
    pretty: bool,
}

/// Largest answer esgate shapes itself: parsing a JSON answer into a tree takes several times
/// its size in memory, and the client chooses to ask for it. A larger answer is sent unshaped
/// (shaping only ever removes parts, so the client gets more than it asked, never less).
pub const MAX_SHAPED_ANSWER: usize = 32 * 1024 * 1024;

/// The shaping parameters (all on `params::COMMON`, so every route takes them).
const NAMES: [&str; 4] = ["filter_path", "pretty", "human", "error_trace"];

impl Shaping {
    /// Takes the shaping parameters out of the checked query parameters.
    pub fn take(params: &mut Vec<(String, String)>) -> Result<Shaping, Rejection> {
        let mut shaping = Shaping::default();
        let mut rest = Vec::with_capacity(params.len());
        for (name, value) in params.drain(..) {
            if !NAMES.contains(&name.as_str()) {
                rest.push((name, value));
                continue;
            }
            match name.as_str() {
                "filter_path" => shaping.filter_path = FilterPath::parse(&value)?,
                "pretty" => shaping.pretty = value != "false",
                // `params` accepts only `false`, the default: nothing to forward.
                "error_trace" => continue,
                _ => {}
            }
            shaping.received.push((name, value));
        }
        *params = rest;
        Ok(shaping)
    }

    /// The parameters to forward when the backend shapes the answer itself.
    pub fn forwarded(&self) -> &[(String, String)] {
        &self.received
    }

    /// Whether [`apply`](Self::apply) leaves every answer as it is.
    pub fn is_identity(&self) -> bool {
        self.filter_path.is_none() && !self.pretty
    }

    /// The answer shaped as asked: filtered, then pretty-printed. `None` when the body is not
    /// JSON (a `_cat` text table: left as it is, as Elasticsearch does) or larger than
    /// [`MAX_SHAPED_ANSWER`] (left as it is).
    pub fn apply(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.is_identity() {
            return Some(body.to_vec());
        }
        if body.len() > MAX_SHAPED_ANSWER {
            return None;
        }
        let mut value: Value = serde_json::from_slice(body).ok()?;
        if let Some(filter) = &self.filter_path {
            value = filter.apply(value);
        }
        let out = if self.pretty {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        };
        out.ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::pairs as params;

    #[test]
    fn take_removes_the_shaping_parameters_and_keeps_the_rest() {
        let mut p = params(&[
            ("size", "2"),
            ("filter_path", "hits.hits._source"),
            ("human", "true"),
            ("error_trace", "false"),
            ("scroll", "1m"),
            ("pretty", ""),
        ]);
        let s = Shaping::take(&mut p).unwrap();
        assert_eq!(p, params(&[("size", "2"), ("scroll", "1m")]));
        assert_eq!(
            s.forwarded(),
            params(&[
                ("filter_path", "hits.hits._source"),
                ("human", "true"),
                ("pretty", "")
            ])
            .as_slice()
        );
        assert!(!s.is_identity());
    }

    #[test]
    fn apply_filters_then_pretty_prints_and_leaves_text_alone() {
        let mut p = params(&[("filter_path", "_scroll_id,hits.hits._source")]);
        let s = Shaping::take(&mut p).unwrap();
        let body = json!({"_scroll_id": "esgc1_x", "took": 1,
            "hits": {"hits": [{"_id": "1", "_source": {"a": 1}}]}});
        let out: Value =
            serde_json::from_slice(&s.apply(&serde_json::to_vec(&body).unwrap()).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"_scroll_id": "esgc1_x", "hits": {"hits": [{"_source": {"a": 1}}]}})
        );
        assert_eq!(s.apply(b"green logs-a\n"), None);
        let mut huge = b"{\"a\":\"".to_vec();
        huge.resize(MAX_SHAPED_ANSWER + 1, b'x');
        huge.extend_from_slice(b"\"}");
        assert_eq!(s.apply(&huge), None, "too large to parse: sent as it is");

        let mut p = params(&[("pretty", "true")]);
        let pretty = Shaping::take(&mut p).unwrap();
        assert_eq!(pretty.apply(b"{\"a\":1}").unwrap(), b"{\n  \"a\": 1\n}");

        let mut p = params(&[("human", "true")]);
        let human = Shaping::take(&mut p).unwrap();
        assert!(human.is_identity());
        assert_eq!(human.apply(b"{\"a\": 1}").unwrap(), b"{\"a\": 1}");
    }

    #[test]
    fn a_malformed_filter_path_is_a_bad_request() {
        let mut p = params(&[("filter_path", "a..b")]);
        assert_eq!(
            Shaping::take(&mut p).unwrap_err().kind,
            crate::RejectKind::BadRequest
        );
    }
}

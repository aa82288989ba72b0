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

use crate::answers::filter_path::FilterPath;
use crate::memory::Meter;
use crate::request::body::parse_value_within;
use crate::request::params::Param;
use crate::{RejectKind, Rejection};

/// The response-shaping parameters of one request, taken out of its query string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shaping {
    /// The parameters as received (checked), to forward when the backend applies them.
    received: Vec<Param>,
    filter_path: Option<FilterPath>,
    pretty: bool,
}

/// Largest answer esgate shapes itself: parsing a JSON answer into a tree takes several times
/// its size in memory (claimed from the request's meter as it is built), and the client
/// chooses to ask for it. A larger answer is sent unshaped (shaping only ever removes parts, so
/// the client gets more than it asked, never less).
pub const MAX_SHAPED_ANSWER: usize = 32 * 1024 * 1024;

/// The shaping parameters (all on `params::COMMON`, so every route takes them).
const NAMES: [&str; 4] = ["filter_path", "pretty", "human", "error_trace"];

impl Shaping {
    /// Takes the shaping parameters out of the checked query parameters.
    pub fn take(params: &mut Vec<Param>) -> Result<Shaping, Rejection> {
        let mut shaping = Shaping::default();
        // None of them (nearly every request): the list stays as it is, not moved into a new
        // one (issue 10, goal 6: an allocation and a move of every parameter per request).
        if !params.iter().any(|(name, _)| NAMES.contains(&&**name)) {
            return Ok(shaping);
        }
        let mut rest = Vec::with_capacity(params.len());
        for (name, value) in params.drain(..) {
            if !NAMES.contains(&&*name) {
                rest.push((name, value));
                continue;
            }
            match &*name {
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
    pub fn forwarded(&self) -> &[Param] {
        &self.received
    }

    /// Whether [`apply`](Self::apply) leaves every answer as it is.
    pub fn is_identity(&self) -> bool {
        self.filter_path.is_none() && !self.pretty
    }

    /// The answer shaped as asked: filtered, then pretty-printed. `Ok(None)` when the body is
    /// not JSON (a `_cat` text table: left as it is, as Elasticsearch does), larger than
    /// [`MAX_SHAPED_ANSWER`], or its tree larger than the whole of the memory `meter` grants
    /// (left as it is); `Err` when that memory is held by others now (`RejectKind::Busy`).
    pub fn apply(&self, body: &[u8], meter: &Meter<'_>) -> Result<Option<Vec<u8>>, Rejection> {
        if self.is_identity() {
            meter.take(body.len())?;
            return Ok(Some(body.to_vec()));
        }
        if body.len() > MAX_SHAPED_ANSWER {
            return Ok(None);
        }
        let mut value = match parse_value_within(body, meter) {
            Ok(Some(value)) => value,
            Err(busy) if busy.kind == RejectKind::Busy => return Err(busy),
            Ok(None) | Err(_) => return Ok(None),
        };
        if let Some(filter) = &self.filter_path {
            value = filter.apply(value);
        }
        // The text is measured, then claimed before it is written (session 12 review:
        // pretty-printing a nested answer makes it many times larger than its tree); one that
        // could never fit is sent as it is.
        let write = |to: &mut dyn std::io::Write| {
            if self.pretty {
                serde_json::to_writer_pretty(to, &value)
            } else {
                serde_json::to_writer(to, &value)
            }
        };
        match meter.write(write) {
            Err(busy) if busy.kind == RejectKind::Busy => Err(busy),
            written => Ok(written.ok().flatten()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::testing::pairs as params;

    /// A list without a shaping parameter is left as it was (the fast path of `take`), in
    /// order, and the shaping is the identity; one shaping parameter anywhere is taken out.
    #[test]
    fn take_leaves_a_list_without_shaping_parameters_as_it_is() {
        let rest = [
            ("size", "2"),
            ("scroll", "1m"),
            ("expand_wildcards", "open"),
        ];
        let mut p = params(&rest);
        let s = Shaping::take(&mut p).unwrap();
        assert_eq!(p, params(&rest));
        assert_eq!(s, Shaping::default());
        assert!(s.is_identity());
        for (name, value) in [
            ("pretty", ""),
            ("human", "true"),
            ("filter_path", "took"),
            ("error_trace", "false"),
        ] {
            for at in 0..=rest.len() {
                let mut with = rest.to_vec();
                with.insert(at, (name, value));
                let mut p = params(&with);
                Shaping::take(&mut p).unwrap();
                assert_eq!(p, params(&rest), "{name} at {at}");
            }
        }
    }

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
        let all = Meter::unlimited();
        let shaped = s.apply(&serde_json::to_vec(&body).unwrap(), &all);
        let out: Value = serde_json::from_slice(&shaped.unwrap().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"_scroll_id": "esgc1_x", "hits": {"hits": [{"_source": {"a": 1}}]}})
        );
        assert_eq!(s.apply(b"green logs-a\n", &all), Ok(None));
        let mut huge = b"{\"a\":\"".to_vec();
        huge.resize(MAX_SHAPED_ANSWER + 1, b'x');
        huge.extend_from_slice(b"\"}");
        assert_eq!(
            s.apply(&huge, &all),
            Ok(None),
            "too large to parse: sent as it is"
        );

        let mut p = params(&[("pretty", "true")]);
        let pretty = Shaping::take(&mut p).unwrap();
        assert_eq!(
            pretty.apply(b"{\"a\":1}", &all).unwrap().unwrap(),
            b"{\n  \"a\": 1\n}"
        );

        let mut p = params(&[("human", "true")]);
        let human = Shaping::take(&mut p).unwrap();
        assert!(human.is_identity());
        assert_eq!(
            human.apply(b"{\"a\": 1}", &all).unwrap().unwrap(),
            b"{\"a\": 1}"
        );
    }

    /// Session 11: the answer's tree is claimed from the meter as it is built. An answer whose
    /// tree could never fit is sent as it is; one whose tree does not fit now is refused busy;
    /// the tree's values are serde_json's (a repeated key's last value wins, as before).
    #[test]
    fn the_answers_tree_is_claimed_from_the_meter() {
        use crate::memory::{budget, Refused};
        let mut p = params(&[("filter_path", "hits.total")]);
        let s = Shaping::take(&mut p).unwrap();
        let dense = format!(
            r#"{{"hits":{{"total":1,"hits":[{{"_source":{{"v":[{}]}}}}]}}}}"#,
            vec!["0.5"; 50_000].join(",")
        );
        let never = budget(1 << 20, Refused::TooLarge);
        assert_eq!(s.apply(dense.as_bytes(), &Meter::new(&never)), Ok(None));
        let busy = budget(1 << 20, Refused::Busy);
        let err = s.apply(dense.as_bytes(), &Meter::new(&busy)).unwrap_err();
        assert_eq!(err.kind, RejectKind::Busy);
        let all = Meter::new(&|_| Ok(()));
        let shaped = s.apply(dense.as_bytes(), &all).unwrap().unwrap();
        assert_eq!(shaped, br#"{"hits":{"total":1}}"#);
        assert!(all.used() >= 50_000 * std::mem::size_of::<Value>());
        let twice = br#"{"hits":{"total":1,"total":2}}"#;
        assert_eq!(
            s.apply(twice, &all).unwrap().unwrap(),
            br#"{"hits":{"total":2}}"#
        );
    }

    /// Session 12 review: what `apply` writes is claimed before it is written. Pretty-printing
    /// indents every value of a nested answer on its own line, so an answer of nested arrays
    /// (a document of a backend) came out a hundred times its size, far beyond its tree's
    /// claim; it is sent as it is when its text could never fit, refused busy when it does
    /// not fit now. An answer asked unshaped (`human`) is copied, claimed too.
    #[test]
    fn the_shaped_text_is_claimed_before_it_is_written() {
        use crate::memory::{budget, Refused};
        let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let body = format!(r#"{{"hits":[{}]}}"#, vec![nested.as_str(); 200].join(","));
        let mut p = params(&[("pretty", "true")]);
        let pretty = Shaping::take(&mut p).unwrap();
        let all = Meter::unlimited();
        let out = pretty.apply(body.as_bytes(), &all).unwrap().unwrap();
        assert!(
            out.len() > 50 * body.len(),
            "{} of {}",
            out.len(),
            body.len()
        );
        assert!(
            all.used() >= out.len(),
            "{} claimed for {}",
            all.used(),
            out.len()
        );
        // Room for the tree but not the text.
        let tree = Meter::unlimited();
        crate::request::body::parse_value_within(body.as_bytes(), &tree).unwrap();
        let room = tree.used() + out.len() / 2;
        let never = budget(room, Refused::TooLarge);
        let shaped = pretty.apply(body.as_bytes(), &Meter::new(&never));
        assert_eq!(shaped.map(|out| out.map(|o| o.len())), Ok(None));
        let busy = budget(room, Refused::Busy);
        let err = pretty
            .apply(body.as_bytes(), &Meter::new(&busy))
            .unwrap_err();
        assert_eq!(err.kind, RejectKind::Busy);
        let mut p = params(&[("human", "true")]);
        let human = Shaping::take(&mut p).unwrap();
        let all = Meter::unlimited();
        let copy = human.apply(body.as_bytes(), &all).unwrap().unwrap();
        assert_eq!(all.used(), copy.len());
        let busy = budget(body.len() / 2, Refused::Busy);
        let err = human
            .apply(body.as_bytes(), &Meter::new(&busy))
            .unwrap_err();
        assert_eq!(err.kind, RejectKind::Busy);
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

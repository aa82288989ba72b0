//! The skipped-shard counts of an async search answer, reported as 0 (review 14).
//!
//! Elasticsearch's can-match phase skips a shard when the query cannot match any document of
//! it, any tenant's, decided from the shard's index-wide min/max values, and an answer's
//! `_shards.skipped` counts those shards: with a range query it tells whether other tenants'
//! values fall in the range. A `_search` or `_msearch` forwarded by esgate turns the phase off
//! (`ParamSet::without_pre_filter`), but an async search always runs it (Elasticsearch refuses
//! any `pre_filter_shard_size` but 1 on a submit), so esgate, which reads every async search
//! answer whole to seal its ids, writes 0 over the counts. A skipped shard is also counted in
//! `successful`, so the rest of `_shards` reads as an answer where no shard was skipped.
//!
//! Invariant: only the counts at [`PLACES`] change, in place and keeping the answer's length
//! (the digits become `0` and spaces); documents and every other byte are left as they are.
//! Containers off those places are skipped without being read into anything.

/// Where a skipped count sits in an async search answer: the search response under `response`
/// (submit, poll) or the answer itself (status), per cluster in `_clusters.details` too; `*` is
/// any key. Keys are compared as written (Elasticsearch writes these without escapes).
const PLACES: &[&[&str]] = &[
    &["_shards", "skipped"],
    &["response", "_shards", "skipped"],
    &["_clusters", "details", "*", "_shards", "skipped"],
    &[
        "response",
        "_clusters",
        "details",
        "*",
        "_shards",
        "skipped",
    ],
];

/// Writes 0 over every non-zero skipped count at `PLACES` in `body`; returns how many it
/// changed, or `None` when `body` is not the JSON the scan expects (the counts it met before
/// are still zeroed).
pub fn zero_skipped(body: &mut [u8]) -> Option<usize> {
    let mut scan = Scan {
        b: body,
        i: 0,
        changed: 0,
    };
    let mut path = Vec::with_capacity(6);
    scan.value(&mut path)?;
    scan.ws();
    (scan.i == scan.b.len()).then_some(scan.changed)
}

struct Scan<'b> {
    b: &'b mut [u8],
    i: usize,
    changed: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// A string at `i` (its opening quote); its content's place.
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end));
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }

    /// A scalar that is not a string (number, `true`, `false`, `null`): its place.
    fn scalar(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then_some((start, self.i))
    }

    /// Skips the value at `i`, however deep, without recursion.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            self.i += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.i += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.i += 1,
                    }
                }
            }
            _ => self.scalar().map(drop),
        }
    }

    /// Whether `path` (key places) leads to a place, and whether it is one.
    fn on_place(&self, path: &[(usize, usize)]) -> (bool, bool) {
        let (mut leads, mut is) = (false, false);
        for place in PLACES {
            if place.len() < path.len() {
                continue;
            }
            let same = path
                .iter()
                .zip(place.iter())
                .all(|(&(s, e), want)| *want == "*" || self.b.get(s..e) == Some(want.as_bytes()));
            if same {
                leads = true;
                is |= place.len() == path.len();
            }
        }
        (leads, is)
    }

    /// The value at `i`, `path` the keys leading to it: read when it leads to a place,
    /// skipped otherwise.
    fn value(&mut self, path: &mut Vec<(usize, usize)>) -> Option<()> {
        self.ws();
        let (leads, is) = self.on_place(path);
        if !leads {
            return self.skip();
        }
        match self.peek()? {
            b'{' if !is => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return None;
                    }
                    self.i += 1;
                    path.push(key);
                    let read = self.value(path);
                    path.pop();
                    read?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' if is => {
                let (s, e) = self.scalar()?;
                if &self.b[s..e] != b"0" {
                    self.b[s] = b'0';
                    self.b[s + 1..e].fill(b' ');
                    self.changed += 1;
                }
                Some(())
            }
            _ => self.skip(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn zeroed(body: &str) -> (Option<usize>, String) {
        let mut b = body.as_bytes().to_vec();
        let n = zero_skipped(&mut b);
        assert_eq!(b.len(), body.len(), "the length is kept");
        (n, String::from_utf8(b).unwrap())
    }

    #[test]
    fn skipped_counts_are_zeroed_where_elasticsearch_writes_them() {
        let body = json!({
            "id": "x", "is_running": false,
            "_shards": {"total": 5, "successful": 5, "skipped": 3, "failed": 0},
            "_clusters": {"total": 1, "details": {"(local)": {"_shards": {"skipped": 12}}}},
            "response": {
                "took": 1,
                "_shards": {"total": 5, "successful": 5, "skipped": 4, "failed": 0},
                "_clusters": {"details": {"(local)": {"status": "successful",
                    "_shards": {"total": 5, "skipped": 2}}}},
                "hits": {"hits": [{"_source": {"_shards": {"skipped": 7}, "skipped": 9}}]},
            },
        })
        .to_string();
        let (n, out) = zeroed(&body);
        assert_eq!(n, Some(4));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["_shards"],
            json!({"total": 5, "successful": 5, "skipped": 0, "failed": 0})
        );
        assert_eq!(
            v["_clusters"]["details"]["(local)"]["_shards"]["skipped"],
            0
        );
        assert_eq!(v["response"]["_shards"]["skipped"], 0);
        assert_eq!(v["response"]["_shards"]["total"], 5);
        assert_eq!(
            v["response"]["_clusters"]["details"]["(local)"]["_shards"],
            json!({"total": 5, "skipped": 0})
        );
        // A document's own fields are left alone.
        assert_eq!(
            v["response"]["hits"]["hits"][0]["_source"],
            json!({"_shards": {"skipped": 7}, "skipped": 9})
        );
    }

    #[test]
    fn pretty_repeated_and_zero_counts() {
        let pretty = "{\n  \"response\" : {\n    \"_shards\" : {\n      \"skipped\" : 128 ,\n      \"total\" : 200\n    }\n  }\n}\n";
        let (n, out) = zeroed(pretty);
        assert_eq!(n, Some(1));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["response"]["_shards"],
            json!({"skipped": 0, "total": 200})
        );
        // Every value of a repeated key (serde_json keeps the last, other readers the first).
        let (n, out) = zeroed(r#"{"_shards":{"skipped":1,"skipped":2},"_shards":{"skipped":-3}}"#);
        assert_eq!(n, Some(3));
        assert_eq!(
            out,
            r#"{"_shards":{"skipped":0,"skipped":0},"_shards":{"skipped":0 }}"#
        );
        assert_eq!(zeroed(r#"{"_shards":{"skipped":0}}"#).0, Some(0));
    }

    #[test]
    fn other_shapes_are_left_alone_and_broken_bodies_are_none() {
        for body in [
            r#"{"_shards":{"skipped":"3"}}"#,
            r#"{"_shards":[{"skipped":3}]}"#,
            r#"{"error":{"type":"x","reason":"skipped: 3"},"status":400}"#,
            r#"{"_shard\u0073":{"skipped":3}}"#,
            r#"[1,{"_shards":{"skipped":3}}]"#,
        ] {
            assert_eq!(zeroed(body), (Some(0), body.to_string()), "{body}");
        }
        for body in ["", "{", r#"{"_shards":{"skipped":3"#, r#"{"a" 1}"#, "{} x"] {
            assert_eq!(zeroed(body).0, None, "{body}");
        }
    }
}

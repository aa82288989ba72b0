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
//! A search's other shortcuts show in the same answers (attack22): `hide_reduce_progress`
//! writes over the successful-shard counts of an answer that is not final and the number of
//! partial reduces.
//!
//! Invariant: only the counts at [`PLACES`] change, in place and keeping the answer's length
//! (the digits become `0` and spaces); documents and every other byte are left as they are.
//! The same for `hide_reduce_progress` and its places. Both are made by one scan
//! ([`hide_shard_shortcuts`], perf23c), which esgate runs on every async search answer; the two
//! halves apart (`zero_skipped`, `hide_reduce_progress`) are the tests' views of each.
//! Containers off those places are skipped without being read into anything
//! (`answers::scan`'s loose skip: a byte no JSON value holds is stepped over, not a stop).

use std::ops::Range;

use crate::answers::scan::{Cursor, Fault, Walk};

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
/// are still zeroed). The tests' view of one half of [`hide_shard_shortcuts`].
#[cfg(test)]
pub fn zero_skipped(body: &mut [u8]) -> Option<usize> {
    let found = Found::scan(body);
    let n = found.write_skipped(body);
    found.skipped_whole.then_some(n)
}

/// What a search's shortcuts left in an async search answer beside the skipped counts
/// (attack22): Elasticsearch's can-match phase counts a skipped shard as successful as soon as
/// the search starts, and a shard whose query its own index-wide values rewrite to no match
/// (a date range outside every document's dates; a field sort whose every value, any
/// tenant's, ranks below the hits already found) answers with nothing, which never enters a
/// partial reduce. So while the search runs (or when it stopped part way) `successful` counts
/// the skipped shards, and `num_reduce_phases` counts the shards that were not cut short: both
/// follow other tenants' values as `skipped` did.
///
/// `num_reduce_phases` is written as `1` (what Elasticsearch answers without partial reduces,
/// when it leaves the key out) and, unless the answer says it is neither running nor partial,
/// every `successful` count at [`SUCCESSFUL`] as `0`; in place, keeping the answer's length. A
/// final, whole answer's `successful` is `total - failed` whatever was skipped and is kept.
const REDUCE_PHASES: &[&[&str]] = &[&["response", "num_reduce_phases"], &["num_reduce_phases"]];

/// Where a successful-shard count sits (the places of [`PLACES`], one key over).
const SUCCESSFUL: &[&[&str]] = &[
    &["_shards", "successful"],
    &["response", "_shards", "successful"],
    &["_clusters", "details", "*", "_shards", "successful"],
    &[
        "response",
        "_clusters",
        "details",
        "*",
        "_shards",
        "successful",
    ],
];

/// The answer's own state: whether the search still runs, whether its results are partial.
const STATE: &[&[&str]] = &[&["is_running"], &["is_partial"]];

/// Writes `1` over every `num_reduce_phases` and, unless the answer is final and whole, `0`
/// over every successful-shard count, in `body` (see `REDUCE_PHASES` for why); returns how many it
/// changed, or `None` when `body` is not the JSON the scan expects (what it met before is still
/// written, the answer then taken as not final). The tests' view of the other half of
/// [`hide_shard_shortcuts`].
#[cfg(test)]
pub fn hide_reduce_progress(body: &mut [u8]) -> Option<usize> {
    let found = Found::scan(body);
    let n = found.write_progress(body);
    found.whole.then_some(n)
}

/// `zero_skipped` and then `hide_reduce_progress` in one scan of `body`: the same bytes
/// written (neither changes a byte the other reads as more than a number's token, and the
/// scan stops collecting skipped counts where `zero_skipped`'s own scan would have stopped).
/// Returns how many counts it changed, or `None` when either would have returned `None`.
/// perf23c: each scan cost about 10 instructions a byte of a large answer (session 22).
///
/// attack26c: the digits a count had after its first are then cut out of `body` (the answer
/// gets shorter): written over with spaces and left there, they told how many digits the
/// hidden count had (`"skipped":0   ` for 1234), so whether ten or more shards were skipped.
pub fn hide_shard_shortcuts(body: &mut Vec<u8>) -> Option<usize> {
    let (n, tails) = hide_in_place(body);
    cut(body, tails);
    n
}

/// [`hide_shard_shortcuts`] before the cut: what it returns, and the tails of the counts it
/// wrote over (each count's bytes after its first, now spaces), in no order.
fn hide_in_place(body: &mut [u8]) -> (Option<usize>, Vec<Range<usize>>) {
    let found = Found::scan(body);
    let n = found.write_skipped(body) + found.write_progress(body);
    let tails = found.written_tails();
    ((found.skipped_whole && found.whole).then_some(n), tails)
}

/// Removes the disjoint ranges `tails` from `body`, moving what follows each one down.
fn cut(body: &mut Vec<u8>, mut tails: Vec<Range<usize>>) {
    tails.retain(|r| !r.is_empty());
    if tails.is_empty() {
        return;
    }
    tails.sort_unstable_by_key(|r| r.start);
    tails.dedup();
    let mut to = tails[0].start;
    for (i, r) in tails.iter().enumerate() {
        let next = tails.get(i + 1).map_or(body.len(), |n| n.start);
        body.copy_within(r.end..next, to);
        to += next - r.end;
    }
    body.truncate(to);
}

/// What one scan of an answer found at the places of both rewrites.
struct Found {
    /// Non-zero skipped counts, met before `zero_skipped`'s scan would have stopped.
    skipped: Vec<Range<usize>>,
    /// `num_reduce_phases` values other than `1`.
    reduces: Vec<Range<usize>>,
    /// Successful-shard counts other than `0`.
    successful: Vec<Range<usize>>,
    /// The answer is final: `is_running` and `is_partial` read as `false`, and only so.
    settled: bool,
    /// The answer read whole as `hide_reduce_progress` reads it.
    whole: bool,
    /// The answer read whole as `zero_skipped` reads it.
    skipped_whole: bool,
}

impl Found {
    fn scan(body: &[u8]) -> Found {
        let mut scan = Scan {
            c: Cursor::new(body),
            path: Vec::with_capacity(6),
            skipped: Vec::new(),
            skipped_cut: false,
            reduces: Vec::new(),
            successful: Vec::new(),
            falses: [false; 2],
            others: [false; 2],
        };
        let read = scan.value();
        let whole = read.is_ok() && scan.c.at_end();
        // Final and whole: both read as `false` and never as anything else (a repeated key).
        let settled = scan.falses.iter().all(|f| *f) && !scan.others.iter().any(|o| *o);
        Found {
            skipped: scan.skipped,
            reduces: scan.reduces,
            successful: scan.successful,
            settled,
            whole,
            skipped_whole: whole && !scan.skipped_cut,
        }
    }

    /// `0` over the skipped counts; how many.
    fn write_skipped(&self, body: &mut [u8]) -> usize {
        for at in &self.skipped {
            body[at.start] = b'0';
            body[at.start + 1..at.end].fill(b' ');
        }
        self.skipped.len()
    }

    /// The bytes after the first of every count [`write_skipped`](Self::write_skipped) and
    /// [`write_progress`](Self::write_progress) write over.
    fn written_tails(&self) -> Vec<Range<usize>> {
        let successful = if !self.whole || !self.settled {
            &self.successful[..]
        } else {
            &[]
        };
        (self.skipped.iter().chain(&self.reduces).chain(successful))
            .map(|at| at.start + 1..at.end)
            .collect()
    }

    /// `1` over the reduce phases, `0` over the successful counts unless the answer is final
    /// and whole; how many.
    fn write_progress(&self, body: &mut [u8]) -> usize {
        let mut changed = 0;
        for at in &self.reduces {
            body[at.start] = b'1';
            body[at.start + 1..at.end].fill(b' ');
            changed += 1;
        }
        if !self.whole || !self.settled {
            for at in &self.successful {
                body[at.start] = b'0';
                body[at.start + 1..at.end].fill(b' ');
                changed += 1;
            }
        }
        changed
    }
}

struct Scan<'b> {
    c: Cursor<'b>,
    /// The keys leading to the value at the cursor.
    path: Vec<&'b [u8]>,
    /// The non-zero skipped counts met, in order.
    skipped: Vec<Range<usize>>,
    /// Where `zero_skipped`'s scan would have stopped: a state value that is no token (`"is_running":,`),
    /// which it skips as any value and this scan reads as a literal.
    skipped_cut: bool,
    /// `num_reduce_phases` values other than `1`.
    reduces: Vec<Range<usize>>,
    /// Successful-shard counts other than `0`.
    successful: Vec<Range<usize>>,
    /// `is_running`, `is_partial`: read as `false`.
    falses: [bool; 2],
    /// `is_running`, `is_partial`: read as anything else.
    others: [bool; 2],
}

impl<'b> Walk<'b> for Scan<'b> {
    fn cursor(&mut self) -> &mut Cursor<'b> {
        &mut self.c
    }
}

impl Scan<'_> {
    /// Whether `path` matches `place` so far, and whether it is all of it.
    fn matches(path: &[&[u8]], place: &[&str]) -> (bool, bool) {
        let same = place.len() >= path.len()
            && path
                .iter()
                .zip(place.iter())
                .all(|(&key, want)| *want == "*" || key == want.as_bytes());
        (same, same && place.len() == path.len())
    }

    /// The value at the cursor: read when the path leads to a place, skipped otherwise.
    fn value(&mut self) -> Result<(), Fault> {
        let (mut leads, mut skipped, mut reduce, mut successful, mut state) =
            (false, false, false, false, None);
        for place in PLACES {
            let (l, is) = Self::matches(&self.path, place);
            leads |= l;
            skipped |= is;
        }
        for place in REDUCE_PHASES {
            let (l, is) = Self::matches(&self.path, place);
            leads |= l;
            reduce |= is;
        }
        for place in SUCCESSFUL {
            let (l, is) = Self::matches(&self.path, place);
            leads |= l;
            successful |= is;
        }
        for (i, place) in STATE.iter().enumerate() {
            let (l, is) = Self::matches(&self.path, place);
            leads |= l;
            if is {
                state = Some(i);
            }
        }
        if !leads {
            return self.c.skip_loosely();
        }
        let is = skipped || reduce || successful || state.is_some();
        match self.c.next_byte()? {
            b'{' if !is => self.object(|s, key| {
                s.path.push(key);
                let read = s.value();
                s.path.pop();
                read
            }),
            // A number's token is what a loose skip steps over (both scans read it so).
            b'-' | b'0'..=b'9' if skipped || reduce || successful => {
                let count = self.c.token();
                let (keep, list) = if skipped {
                    if self.skipped_cut {
                        return Ok(());
                    }
                    (&b"0"[..], &mut self.skipped)
                } else if reduce {
                    (&b"1"[..], &mut self.reduces)
                } else {
                    (&b"0"[..], &mut self.successful)
                };
                if self.c.bytes(count.clone()) != keep {
                    list.push(count);
                }
                Ok(())
            }
            _ => match state {
                Some(i) => {
                    if matches!(self.c.next_byte()?, b'{' | b'[' | b'"') {
                        self.others[i] = true;
                        return self.c.skip_loosely();
                    }
                    let literal = self.c.token();
                    // A loose skip refuses an empty token, where `zero_skipped`'s scan stopped.
                    self.skipped_cut |= literal.is_empty();
                    if self.c.bytes(literal) == b"false" {
                        self.falses[i] = true;
                    } else {
                        self.others[i] = true;
                    }
                    Ok(())
                }
                None => self.c.skip_loosely(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The scan before the shared cursor (session 16), kept as the reference of the
    /// differential below: byte for byte, with its own lenient skip.
    mod old {
        use super::super::PLACES;

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
                    let same = path.iter().zip(place.iter()).all(|(&(s, e), want)| {
                        *want == "*" || self.b.get(s..e) == Some(want.as_bytes())
                    });
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
    }

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

    fn progress_hidden(body: &str) -> (Option<usize>, Value) {
        let mut b = body.as_bytes().to_vec();
        let n = hide_reduce_progress(&mut b);
        assert_eq!(b.len(), body.len(), "the length is kept");
        (n, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// attack22: a running (or stopped, partial) async search counts the shards the can-match
    /// phase skipped as successful from its start, and its partial reduces count only the
    /// shards that were not cut short by their own index-wide values: both are hidden, the
    /// documents and a final answer's counts are not.
    #[test]
    fn running_progress_and_reduce_phases_are_hidden() {
        let running = json!({
            "id": "x", "is_partial": true, "is_running": true,
            "response": {
                "num_reduce_phases": 37,
                "_shards": {"total": 100, "successful": 92, "skipped": 0, "failed": 0},
                "hits": {"hits": [{"_source": {"num_reduce_phases": 5, "_shards": {"successful": 4}}}]},
            },
        });
        let (n, v) = progress_hidden(&running.to_string());
        assert_eq!(n, Some(2));
        assert_eq!(v["response"]["num_reduce_phases"], 1);
        assert_eq!(
            v["response"]["_shards"],
            json!({"total": 100, "successful": 0, "skipped": 0, "failed": 0})
        );
        assert_eq!(
            v["response"]["hits"]["hits"][0]["_source"],
            json!({"num_reduce_phases": 5, "_shards": {"successful": 4}})
        );
        // A status answer of a running search.
        let status = json!({"id": "x", "is_running": true, "is_partial": true,
            "_shards": {"total": 100, "successful": 90, "skipped": 0, "failed": 1}});
        let (n, v) = progress_hidden(&status.to_string());
        assert_eq!(n, Some(1));
        assert_eq!(v["_shards"]["successful"], 0);
        assert_eq!(v["_shards"]["failed"], 1);
        // A search that stopped part way (cancelled, failed): partial, not running.
        let stopped = json!({"id": "x", "is_partial": true, "is_running": false,
            "response": {"_shards": {"total": 9, "successful": 7, "skipped": 0, "failed": 0}}});
        assert_eq!(
            progress_hidden(&stopped.to_string()).1["response"]["_shards"]["successful"],
            0
        );
        // A final, whole answer keeps its successful count (total - failed, whatever was
        // skipped), but not its reduce phases.
        let done = json!({"id": "x", "is_partial": false, "is_running": false,
            "response": {"num_reduce_phases": 4,
                "_shards": {"total": 9, "successful": 8, "skipped": 0, "failed": 1},
                "_clusters": {"details": {"(local)": {"_shards": {"successful": 8}}}}}});
        let (n, v) = progress_hidden(&done.to_string());
        assert_eq!(n, Some(1));
        assert_eq!(v["response"]["num_reduce_phases"], 1);
        assert_eq!(v["response"]["_shards"]["successful"], 8);
        assert_eq!(
            v["response"]["_clusters"]["details"]["(local)"]["_shards"]["successful"],
            8
        );
        let status_done = r#"{"id":"x","is_running":false,"is_partial":false,"_shards":{"total":3,"successful":3,"skipped":0,"failed":0},"completion_status":200}"#;
        assert_eq!(
            progress_hidden(status_done),
            (Some(0), serde_json::from_str(status_done).unwrap())
        );
        // Anything but a plain `false` (missing, repeated with `true`, a string) is not final.
        for body in [
            r#"{"is_running":false,"_shards":{"successful":3}}"#,
            r#"{"is_running":false,"is_partial":false,"is_running":true,"_shards":{"successful":3}}"#,
            r#"{"is_running":"false","is_partial":false,"_shards":{"successful":3}}"#,
            r#"{"is_running":false,"is_partial":null,"_shards":{"successful":3}}"#,
        ] {
            let (n, v) = progress_hidden(body);
            assert_eq!(
                (n, &v["_shards"]["successful"]),
                (Some(1), &json!(0)),
                "{body}"
            );
        }
        // A pretty answer, and a body cut short: what was met is still written.
        let pretty = "{\n  \"is_running\" : false,\n  \"is_partial\" : false,\n  \"response\" : {\n    \"num_reduce_phases\" : 12 ,\n    \"_shards\" : { \"successful\" : 10 }\n  }\n}\n";
        let (n, v) = progress_hidden(pretty);
        assert_eq!(n, Some(1));
        assert_eq!(
            v["response"],
            json!({"num_reduce_phases": 1, "_shards": {"successful": 10}})
        );
        let mut cut = br#"{"is_running":false,"is_partial":false,"response":{"num_reduce_phases":12,"_shards":{"successful":10"#.to_vec();
        assert_eq!(hide_reduce_progress(&mut cut), None);
        assert_eq!(
            cut,
            br#"{"is_running":false,"is_partial":false,"response":{"num_reduce_phases":1 ,"_shards":{"successful":0 "#
        );
    }

    /// A small generator of async search answers (repeatable per seed).
    struct Gen<R>(R);

    impl<R: FnMut() -> u64> Gen<R> {
        fn next(&mut self) -> u64 {
            (self.0)()
        }
        fn chance(&mut self, in_n: u64) -> bool {
            self.next().is_multiple_of(in_n)
        }
        fn count(&mut self) -> Value {
            match self.next() % 6 {
                0 => json!(0),
                1 => json!(-2),
                2 => json!(1_234_567),
                3 => json!(1.5e3),
                _ => json!(self.next() % 40),
            }
        }

        fn shards(&mut self) -> Value {
            let mut s = serde_json::Map::new();
            s.insert("total".into(), json!(5));
            if self.chance(2) {
                s.insert("successful".into(), self.count());
            }
            if !self.chance(8) {
                s.insert("skipped".into(), self.count());
            }
            if self.chance(6) {
                s.insert("skipped".into(), json!("3"));
            }
            if self.chance(4) {
                s.insert(
                    "failures".into(),
                    json!([{"shard": 0, "reason": {"type": "x", "reason": "skipped: 3 }]"}}]),
                );
            }
            Value::Object(s)
        }

        fn clusters(&mut self) -> Value {
            let mut details = serde_json::Map::new();
            for name in ["(local)", "remote\"1", "r\\2"]
                .iter()
                .take(1 + (self.next() % 3) as usize)
            {
                let mut c = json!({"status": "successful", "indices": "logs-*"});
                if !self.chance(5) {
                    c["_shards"] = self.shards();
                }
                details.insert((*name).into(), c);
            }
            json!({"total": details.len(), "skipped": self.count(), "details": details})
        }

        /// A document whose source names the places.
        fn doc(&mut self) -> Value {
            json!({"_index": "logs-a", "_id": "1", "_source": {
                "_shards": {"skipped": 7}, "skipped": 9, "response": {"_shards": {"skipped": 8}},
                "text": "\"_shards\":{\"skipped\":3}", "n": [1, -2.5e-3, true, null, {}],
            }})
        }

        fn search(&mut self) -> Value {
            let mut m = serde_json::Map::new();
            m.insert("took".into(), json!(self.next() % 100));
            m.insert("timed_out".into(), json!(false));
            if self.chance(2) {
                m.insert("num_reduce_phases".into(), self.count());
            }
            if !self.chance(6) {
                m.insert("_shards".into(), self.shards());
            }
            if self.chance(2) {
                m.insert("_clusters".into(), self.clusters());
            }
            let docs: Vec<Value> = (0..self.next() % 3).map(|_| self.doc()).collect();
            m.insert(
                "hits".into(),
                json!({"total": {"value": docs.len()}, "hits": docs}),
            );
            Value::Object(m)
        }

        /// A submit or poll answer (`response`), or a status answer (its own `_shards`).
        fn answer(&mut self) -> Value {
            let mut a = json!({"id": "RmlkPQ==", "is_partial": self.chance(3), "is_running": self.chance(2),
                "start_time_in_millis": 1, "expiration_time_in_millis": 2});
            if self.chance(3) {
                a["_shards"] = self.shards();
                if self.chance(2) {
                    a["_clusters"] = self.clusters();
                }
                a["completion_status"] = json!(200);
            } else {
                a["response"] = self.search();
            }
            a
        }
    }

    /// What a scan returned, and the text it left.
    type Zeroed = (Option<usize>, Vec<u8>);

    /// The new scan's and the old one's on `text`.
    fn both(text: &[u8]) -> (Zeroed, Zeroed) {
        let (mut a, mut b) = (text.to_vec(), text.to_vec());
        let new = zero_skipped(&mut a);
        let old = old::zero_skipped(&mut b);
        ((new, a), (old, b))
    }

    /// The scan on the shared cursor writes what the session 16 scan wrote, and returns the
    /// same, on random async search answers (compact and pretty), every beginning of them, the
    /// answers with a repeated key, and the answers broken by a byte.
    #[test]
    fn the_cursor_scan_zeroes_what_the_old_scan_zeroed() {
        for seed in 1..=300u64 {
            let mut g = Gen(crate::testing::xorshift(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            ));
            let v = g.answer();
            let mut text = if g.chance(2) {
                serde_json::to_vec(&v).unwrap()
            } else {
                serde_json::to_vec_pretty(&v).unwrap()
            };
            if g.chance(4) {
                // A repeated key: `{"_shards":{"skipped":5},` at the front.
                text.splice(
                    1..1,
                    br#""_shards":{"skipped":5,"skipped":0},"#.iter().copied(),
                );
            }
            let (new, old) = both(&text);
            assert_eq!(new, old, "{seed}: {}", String::from_utf8_lossy(&text));
            assert!(new.0.is_some(), "{seed}");
            for n in 0..text.len() {
                let (new, old) = both(&text[..n]);
                assert_eq!(new, old, "{seed}: {n}");
            }
            for _ in 0..50 {
                let at = (g.next() % text.len() as u64) as usize;
                let mut broken = text.clone();
                broken[at] = b"@/*\"{}[],:x1 \\"[(g.next() % 14) as usize];
                let (new, old) = both(&broken);
                assert_eq!(new, old, "{seed}: {}", String::from_utf8_lossy(&broken));
            }
        }
    }

    /// attack26c: the counts written over leave nothing of their length behind. Answers that
    /// differ only in hidden counts (skipped, a running answer's successful counts, reduce
    /// phases; one digit or four, compact or pretty) come out as the same bytes, and as the
    /// answer with every such count already `0` (`1` for reduce phases); a final answer's
    /// successful counts and every other byte, the pretty answer's own spaces included, are
    /// kept.
    #[test]
    fn hidden_counts_leave_no_trace_of_their_digits() {
        let answer = |n: u64, running: bool, reduces: u64| {
            json!({"id": "x", "is_partial": running, "is_running": running,
                "_shards": {"total": 9000, "successful": n, "skipped": n, "failed": 0},
                "response": {"num_reduce_phases": reduces,
                    "_shards": {"total": 9000, "successful": n, "skipped": n, "failed": 0},
                    "_clusters": {"details": {"(local)": {"_shards": {"successful": n, "skipped": n}}}},
                    "hits": {"hits": [{"_source": {"skipped": 1234}}]}}})
        };
        for running in [true, false] {
            for pretty in [false, true] {
                let text = |v: Value| {
                    let mut b = if pretty {
                        serde_json::to_vec_pretty(&v).unwrap()
                    } else {
                        serde_json::to_vec(&v).unwrap()
                    };
                    hide_shard_shortcuts(&mut b);
                    b
                };
                let few = text(answer(3, running, 2));
                let many = text(answer(1234, running, 123));
                let none = text(answer(0, running, 1));
                if running {
                    assert_eq!(few, many, "{}", String::from_utf8_lossy(&many));
                    assert_eq!(none, many, "{}", String::from_utf8_lossy(&many));
                } else {
                    // Only a final answer's successful counts (kept) differ.
                    let keep = |b: &[u8]| String::from_utf8_lossy(b).replace("1234", "3");
                    assert_eq!(keep(&few), keep(&many));
                }
                let v: Value = serde_json::from_slice(&many).unwrap();
                assert_eq!(v["response"]["_shards"]["skipped"], 0);
                assert_eq!(v["response"]["num_reduce_phases"], 1);
                assert_eq!(v["response"]["hits"]["hits"][0]["_source"]["skipped"], 1234);
                let kept = if running { 0 } else { 1234 };
                assert_eq!(v["_shards"]["successful"], kept);
            }
        }
        // A pretty answer's own spaces around a count are its own: kept.
        let mut b = b"{\"_shards\" : { \"skipped\" : 128 , \"total\" : 200 }}".to_vec();
        assert_eq!(hide_shard_shortcuts(&mut b), Some(1));
        assert_eq!(b, b"{\"_shards\" : { \"skipped\" : 0 , \"total\" : 200 }}");
    }

    /// perf23c: the one scan writes what `zero_skipped` and then `hide_reduce_progress` wrote,
    /// and returns the same, on random async search answers (running, partial, final;
    /// compact and pretty), every beginning of them, and the answers broken by a byte (a
    /// state value with no token stops `zero_skipped`'s scan only).
    #[test]
    fn one_scan_writes_what_the_two_scans_wrote() {
        fn two(text: &[u8]) -> Zeroed {
            let mut b = text.to_vec();
            let skipped = zero_skipped(&mut b);
            let progress = hide_reduce_progress(&mut b);
            (skipped.zip(progress).map(|(a, b)| a + b), b)
        }
        fn one(text: &[u8]) -> Zeroed {
            let mut b = text.to_vec();
            (hide_in_place(&mut b).0, b)
        }
        for seed in 1..=300u64 {
            let mut g = Gen(crate::testing::xorshift(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            ));
            let v = g.answer();
            let text = if g.chance(2) {
                serde_json::to_vec(&v).unwrap()
            } else {
                serde_json::to_vec_pretty(&v).unwrap()
            };
            assert_eq!(
                one(&text),
                two(&text),
                "{seed}: {}",
                String::from_utf8_lossy(&text)
            );
            for n in 0..text.len() {
                assert_eq!(one(&text[..n]), two(&text[..n]), "{seed}: {n}");
            }
            for _ in 0..50 {
                let at = (g.next() % text.len() as u64) as usize;
                let mut broken = text.clone();
                broken[at] = b"@/*\"{}[],:x1 \\"[(g.next() % 14) as usize];
                assert_eq!(
                    one(&broken),
                    two(&broken),
                    "{seed}: {}",
                    String::from_utf8_lossy(&broken)
                );
            }
        }
        // A state with no value: `zero_skipped` stops there, `hide_reduce_progress` reads on.
        let text = br#"{"is_running":,"_shards":{"skipped":3,"successful":2}}"#;
        let (n, out) = one(text);
        assert_eq!(n, None);
        assert_eq!(
            &out[..],
            br#"{"is_running":,"_shards":{"skipped":3,"successful":0}}"#
        );
        assert_eq!((n, out), two(text));
    }
}

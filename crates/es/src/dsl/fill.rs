//! Empty histogram buckets made before they are counted (attack26, M: availability; hist27).
//!
//! `histogram` and `date_histogram` default to `min_doc_count: 0`: the final reduce fills
//! every empty bucket between the data's smallest and largest key (and the
//! `extended_bounds`). Elasticsearch 7.13 and later count them as they are made and refuse past
//! `search.max_buckets`; OpenSearch (every version, opensearch-project/OpenSearch#17702) and
//! Elasticsearch before 7.13 make them all first (`InternalHistogram.addEmptyBuckets`, the date
//! one alike) and count after, so one search over values 0 and 1e6 with `interval: 1e-9`, or a
//! `date_histogram` at `1ms` over years, ran the coordinating node out of heap. Where the
//! backend makes them first ([`EmptyBuckets::MadeFirst`], which an unknown backend counts as),
//! every such histogram whose `min_doc_count` is 0 must have a bounded fill:
//!
//! 1. numeric `hard_bounds` (`min` and `max`): counted as before (`values`, `cost`);
//! 2. else a `range` on the histogram's own field in a conjunctive position of the query
//!    (the query itself, `bool.filter` / `bool.must`, `constant_score.filter`, nested in those;
//!    never `should`, `must_not`, `post_filter`), both bounds read exactly: numbers (a
//!    `histogram` without `format`), `format: epoch_millis` integers, or `format:
//!    strict_date_optional_time` strings `YYYY-MM-DDTHH:MM:SS.sssZ` (Dashboards'); no time
//!    zone but UTC. esgate adds `hard_bounds` spanning that range and the `extended_bounds`,
//!    widened by one interval (the longest a calendar unit can be, plus a daylight-saving hour
//!    for a calendar unit or a time zone): every key a matching document's value rounds to
//!    lies inside, so the answer is the one the backend gave without them (but for a document
//!    with values of the field outside the range: a multi-valued field, a range field), and
//!    the fill is counted as in 1.;
//! 3. else refused (403), the reason naming the three ways.
//!
//! How the backends filter by hard bounds (read in their code): a `date_histogram` keeps a
//! value when its key (rounded down, offset and time zone applied) is `>= round(min)` and
//! `< round(max)` (`LongBounds.contain`, the bounds rounded down by the interval without the
//! offset); a `histogram` when `floor((value - offset) / interval) * interval`, the key without
//! its offset, is within `[min, max]` (`DoubleBounds.contain`). A key is never above its
//! value and more than one interval below it, so the widening keeps every key: `min` a
//! (longest) interval below the range (and, for a `histogram`, the offset below that), `max`
//! an interval above it. Both backends refuse `extended_bounds` outside the hard bounds: the
//! hull takes them in.
//!
//! A histogram under a bucketing parent fills per parent bucket, each fill within the same
//! hard bounds: each is at most [`MAX_BUCKETS`] here, the backend's `search.max_buckets`
//! counter (which adds up over the whole reduce) refuses after the fill that crosses it, and a
//! token's `max_buckets` multiplies parents by fill already (`cost::buckets`).
//!
//! A numeric histogram whose bounds or offset are more than 2^40 intervals from 0 is refused
//! too: the backend steps from key to key in doubles, and where `key + interval` rounds back to
//! `key` its fill never ends (`interval: 1e-300` at 1.0).
//!
//! The same walk names, on every backend, the fields of the histograms neither these bounds nor
//! their own bound, whose types `authorize` must know (`histogram_fields`, range28): one walk
//! over the aggregations for both (on a backend that counts empty buckets, a light pass over
//! each histogram's parameters: its `field`, and whether it has `hard_bounds`).
//!
//! Invariant: pure; [`EmptyBuckets::Counted`] changes nothing; the edits are computed once
//! over [`J`] and applied alike to either representation (the tree and serde paths forward the
//! same bytes), and what the checks after the fill read is what is forwarded (on the tree path
//! the bounds go into the parsed `aggs`' tape and text alike, [`apply_tree`]); reasons name
//! keys, never values.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};
use smallvec::SmallVec;

use super::histogram_fields::{self, HistogramFields};
use super::json::{Obj, J};
use super::values::{self, number_of, uint_of, HOUR_MS, MAX_BUCKETS};
use crate::request::body::MAX_DEPTH;
use crate::request::dialect::EmptyBuckets;
use crate::request::tree::{Added, Arena, Container, Node};
use crate::Rejection;

/// Most intervals a numeric histogram's bounds and offset may lie from 0 (see the module).
const MAX_KEY_STEPS: f64 = (1u64 << 40) as f64;

/// `hard_bounds` to add to one histogram: the positions of the entries that lead from the
/// body's top level to its parameters (`aggs`, the aggregation's name, its type; a
/// sub-aggregation's `aggs`, name and type after its parent's), and the bounds.
#[derive(Debug, PartialEq)]
pub(crate) struct Edit {
    path: Vec<usize>,
    min: Bound,
    max: Bound,
}

/// A hard bound as written: epoch milliseconds (a `date_histogram` takes integers) or a number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bound {
    Millis(i64),
    Number(f64),
}

impl Bound {
    fn number(self) -> Number {
        match self {
            Bound::Millis(ms) => Number::from(ms),
            // Finite: the bounds come from finite numbers and a finite width.
            Bound::Number(f) => Number::from_f64(f).unwrap_or_else(|| Number::from(0)),
        }
    }
}

/// The `hard_bounds` the body's histograms need for a backend that makes empty buckets `how`,
/// or the refusal of one that cannot have them; and, from the same walk over every histogram
/// (on every backend), the fields of those neither their own `hard_bounds` nor these bound
/// within 65,535 and `max_buckets` intervals, added to `fields` (`histogram_fields`: their
/// types are looked up).
pub(crate) fn plan(
    body: Obj<'_>,
    how: EmptyBuckets,
    max_buckets: Option<u64>,
    fields: &mut HistogramFields,
) -> Result<Vec<Edit>, Rejection> {
    let mut edits = Vec::new();
    // The entries read inline (issue 10), every search's top level; only the aggregations'
    // values read (perf28c: each entry's made a `J` was half the walk of a Kibana search).
    let aggs_key = |key: &str| matches!(key, "aggs" | "aggregations");
    body.try_each_wanted(aggs_key, |i, _, value| {
        if let J::Object(aggs) = value {
            let mut walk = Walk {
                query: Query { body, found: None },
                how,
                max_buckets,
                edits: &mut edits,
                fields: &mut *fields,
            };
            let mut path = Path::new();
            path.push(i);
            walk.aggs(aggs, &mut path, 0)?;
        }
        Ok(())
    })?;
    Ok(edits)
}

/// The positions leading to an aggregation (in place: a walk allocates nothing for them).
type Path = SmallVec<[usize; 8]>;

/// The body's [`documents_query`], looked up when a histogram first needs it (most bodies'
/// histograms fill nothing: `min_doc_count` 1, Kibana's).
struct Query<'a> {
    body: Obj<'a>,
    found: Option<Option<J<'a>>>,
}

impl<'a> Query<'a> {
    fn get(&mut self) -> Option<J<'a>> {
        *self.found.get_or_insert_with(|| documents_query(self.body))
    }
}

/// The query that selects every document the aggregations see: the body's `query`, unless
/// a kNN search, sub-searches or a retriever bring in documents of their own.
fn documents_query(body: Obj<'_>) -> Option<J<'_>> {
    if ["knn", "sub_searches", "retriever"]
        .iter()
        .any(|k| body.contains_key(k))
    {
        return None;
    }
    body.get("query")
}

/// One walk over a body's aggregations: the edits and the fields [`plan`] returns.
struct Walk<'a, 'o> {
    query: Query<'a>,
    how: EmptyBuckets,
    max_buckets: Option<u64>,
    edits: &'o mut Vec<Edit>,
    fields: &'o mut HistogramFields,
}

impl<'a> Walk<'a, '_> {
    fn aggs(&mut self, aggs: Obj<'a>, path: &mut Path, depth: usize) -> Result<(), Rejection> {
        if depth > MAX_DEPTH {
            return Err(Rejection::bad_request("aggregations are nested too deeply"));
        }
        let mut j = 0;
        aggs.try_each(|_, def| {
            if let J::Object(def) = def {
                let mut k = 0;
                def.try_each(|key, value| {
                    if let J::Object(m) = value {
                        self.agg(key, m, path, [j, k], depth)?;
                    }
                    k += 1;
                    Ok(())
                })?;
            }
            j += 1;
            Ok(())
        })
    }

    /// The entry `key: m` of an aggregation's definition, at `at` in the aggregations at `path`.
    fn agg(
        &mut self,
        key: &str,
        m: Obj<'a>,
        path: &mut Path,
        at: [usize; 2],
        depth: usize,
    ) -> Result<(), Rejection> {
        let ty = match key {
            "aggs" | "aggregations" => {
                path.extend(at);
                self.aggs(m, path, depth + 1)?;
                path.truncate(path.len() - 2);
                return Ok(());
            }
            "histogram" => "histogram",
            "date_histogram" => "date_histogram",
            _ => return Ok(()),
        };
        if self.how == EmptyBuckets::Counted {
            // Nothing to fill: the field and whether there are hard bounds are all that
            // matters, in one light pass (the common path on Elasticsearch: Kibana's and
            // Grafana's date histograms have none); all the parameters only beside bounds.
            let (mut field, mut hard) = (None, false);
            let _ = m.try_each::<()>(|k, v| {
                match k {
                    "field" if field.is_none() => field = Some(v),
                    "hard_bounds" => hard = true,
                    _ => {}
                }
                Ok(())
            });
            if !hard {
                return histogram_fields::add_unbounded(ty, field, self.fields);
            }
            return histogram_fields::add(ty, &HistParams::of(m), self.max_buckets, self.fields);
        }
        let p = HistParams::of(m);
        let filled = hard_bounds(ty, &p, &mut self.query)?;
        match filled {
            // Bounded by the hard bounds added (counted within 65,535 here, and within
            // `max_buckets` by `cost`, which counts them after).
            Some((min, max)) => {
                let mut edit_at = path.to_vec();
                edit_at.extend(at);
                self.edits.push(Edit {
                    path: edit_at,
                    min,
                    max,
                });
                Ok(())
            }
            None => histogram_fields::add(ty, &p, self.max_buckets, self.fields),
        }
    }
}

/// The parameters [`hard_bounds`] (and `histogram_fields`) read, gathered in one pass (issue
/// 10: a scan of the object for each was a tenth of a Grafana search's rewrite).
#[derive(Default)]
pub(crate) struct HistParams<'a> {
    pub(crate) min_doc_count: Option<J<'a>>,
    pub(crate) hard_bounds: Option<J<'a>>,
    pub(crate) extended_bounds: Option<J<'a>>,
    pub(crate) field: Option<J<'a>>,
    pub(crate) time_zone: Option<J<'a>>,
    pub(crate) offset: Option<J<'a>>,
    pub(crate) interval: Option<J<'a>>,
    pub(crate) format: Option<J<'a>>,
    /// How many of `calendar_interval`, `fixed_interval`, `interval`, and the last.
    pub(crate) intervals: usize,
    pub(crate) last_interval: Option<(&'a str, J<'a>)>,
}

impl<'a> HistParams<'a> {
    pub(crate) fn of(m: Obj<'a>) -> HistParams<'a> {
        let mut p = HistParams::default();
        let _ = m.try_each::<()>(|k, v| {
            let slot = match k {
                "min_doc_count" => &mut p.min_doc_count,
                "hard_bounds" => &mut p.hard_bounds,
                "extended_bounds" => &mut p.extended_bounds,
                "field" => &mut p.field,
                "time_zone" => &mut p.time_zone,
                "offset" => &mut p.offset,
                "format" => &mut p.format,
                "calendar_interval" | "fixed_interval" | "interval" => {
                    p.intervals += 1;
                    p.last_interval = Some((k, v));
                    if k != "interval" {
                        return Ok(());
                    }
                    &mut p.interval
                }
                _ => return Ok(()),
            };
            // The first of a key, as `Obj::get` reads it (a body has no duplicate keys).
            if slot.is_none() {
                *slot = Some(v);
            }
            Ok(())
        });
        p
    }
}

/// The hard bounds histogram `ty` with parameters `p` needs (`None`: it fills nothing, or
/// its own numeric hard bounds bound the fill).
fn hard_bounds<'a>(
    ty: &str,
    p: &HistParams<'a>,
    query: &mut Query<'a>,
) -> Result<Option<(Bound, Bound)>, Rejection> {
    if p.min_doc_count.and_then(uint_of).is_some_and(|n| n >= 1) {
        return Ok(None);
    }
    let date = ty == "date_histogram";
    // A `date_histogram` reads a JSON number as epoch milliseconds, a string in its format.
    let read = |v: J<'_>| if date { v.as_f64() } else { number_of(v) };
    let (interval, offset) = if date {
        (0.0, 0.0)
    } else {
        let interval = p
            .interval
            .and_then(number_of)
            .filter(|i| *i > 0.0)
            .ok_or_else(|| Rejection::bad_request("[interval] must be a number greater than 0"))?;
        (interval, p.offset.and_then(number_of).unwrap_or(0.0))
    };
    if let Some(hard) = p.hard_bounds {
        let bound = |k: &str| hard.get(k).and_then(read);
        return match (bound("min"), bound("max")) {
            (Some(min), Some(max)) => {
                if !date {
                    key_steps(min, max, interval, offset)?;
                }
                Ok(None)
            }
            _ => Err(unbounded(ty)),
        };
    }
    let (mut ext_min, mut ext_max) = (None, None);
    if let Some(ext) = p.extended_bounds {
        for (key, slot) in [("min", &mut ext_min), ("max", &mut ext_max)] {
            match ext.get(key) {
                None | Some(J::Null) => {}
                Some(v) => *slot = Some(read(v).ok_or_else(|| unread_extended(ty))?),
            }
        }
    }
    let range = match (p.field.and_then(J::as_str), query.get()) {
        (Some(field), Some(query)) => {
            let mut range = Range::default();
            range.conjuncts(query, field, date, 0);
            range.both()
        }
        _ => None,
    };
    let Some((lo, hi)) = range else {
        return Err(unbounded(ty));
    };
    let lo = ext_min.map_or(lo, |e| lo.min(e));
    let hi = ext_max.map_or(hi, |e| hi.max(e)).max(lo);
    let (min, max, shortest) = if date {
        let (1, Some((key, v))) = (p.intervals, p.last_interval) else {
            return Err(Rejection::bad_request(
                "[date_histogram] needs exactly one interval",
            ));
        };
        let shortest = values::date_interval_of(key, v)?;
        let (longest, calendar) = match values::calendar_longest_of(key, v) {
            Some(ms) => (ms, true),
            None => (shortest, false),
        };
        let zoned = p.time_zone.is_some_and(|z| !z.as_str().is_some_and(utc));
        let width = longest + if calendar || zoned { HOUR_MS } else { 0.0 };
        (lo.floor() - width, hi.ceil() + width, shortest)
    } else {
        let min = lo.min(lo - offset) - 2.0 * interval;
        let max = hi.max(hi - offset) + interval;
        key_steps(min, max, interval, offset)?;
        (min, max, interval)
    };
    if (max - min) / shortest + 1.0 > MAX_BUCKETS as f64 {
        return Err(Rejection::bad_request(format!(
            "[{ty}] over the range of its field in the query asks for more than {MAX_BUCKETS} \
             buckets with this interval"
        )));
    }
    Ok(Some(if date {
        (Bound::Millis(millis(min)), Bound::Millis(millis(max)))
    } else {
        (Bound::Number(min), Bound::Number(max))
    }))
}

/// Milliseconds as an integer (the bounds are within a few intervals of epoch milliseconds the
/// body gave as integers; out-of-range values saturate).
fn millis(ms: f64) -> i64 {
    ms.round() as i64
}

/// A numeric histogram's bounds and offset within [`MAX_KEY_STEPS`] intervals of 0.
fn key_steps(min: f64, max: f64, interval: f64, offset: f64) -> Result<(), Rejection> {
    if !key_steps_hold(min, max, interval, offset) {
        return Err(Rejection::bad_request(
            "[histogram] [interval] is too small for the size of its bounds: the backend's \
             empty buckets would never reach the next key",
        ));
    }
    Ok(())
}

/// Whether a numeric histogram's bounds and offset lie within [`MAX_KEY_STEPS`] intervals of 0
/// (the backend's keys, counted in intervals, then stay far below 2^53, where a double's next
/// integer is itself).
pub(crate) fn key_steps_hold(min: f64, max: f64, interval: f64, offset: f64) -> bool {
    let far = min.abs().max(max.abs()).max(offset.abs());
    far / interval <= MAX_KEY_STEPS
}

fn unbounded(ty: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{ty}] with [min_doc_count] 0 is refused on this backend, which makes every empty \
         bucket between the data's smallest and largest key before it counts them: set \
         [min_doc_count] to 1 or more, give numeric [hard_bounds] ([min] and [max]), or put a \
         [range] on its [field] with both bounds in the query's filter (numbers; for dates \
         epoch_millis integers with [format] epoch_millis, or UTC strings like \
         2024-01-01T00:00:00.000Z with [format] strict_date_optional_time)"
    ))
}

fn unread_extended(ty: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{ty}] with [min_doc_count] 0 is refused on this backend with [extended_bounds] that \
         are not numbers (epoch milliseconds for dates): its empty buckets could not be bounded"
    ))
}

/// What the conjunctive `range` clauses on one field say: the largest lower bound and the
/// smallest upper bound read.
#[derive(Default)]
struct Range {
    lo: Option<f64>,
    hi: Option<f64>,
}

impl Range {
    fn both(&self) -> Option<(f64, f64)> {
        Some((self.lo?, self.hi?))
    }

    /// Reads the clauses of `q` every matching document satisfies.
    fn conjuncts(&mut self, q: J<'_>, field: &str, date: bool, depth: usize) {
        let J::Object(o) = q else { return };
        if depth > MAX_DEPTH {
            return;
        }
        for (ty, body) in o {
            match ty {
                "bool" => {
                    for key in ["filter", "must"] {
                        match body.get(key) {
                            Some(J::Array(items)) => {
                                for item in items {
                                    self.conjuncts(item, field, date, depth + 1);
                                }
                            }
                            Some(one) => self.conjuncts(one, field, date, depth + 1),
                            None => {}
                        }
                    }
                }
                "constant_score" => {
                    if let Some(f) = body.get("filter") {
                        self.conjuncts(f, field, date, depth + 1);
                    }
                }
                "range" => {
                    if let Some(J::Object(p)) = body.get(field) {
                        self.read(p, date);
                    }
                }
                _ => {}
            }
        }
    }

    /// One range's bounds on the field, those read exactly (an unread bound is left out: the
    /// others still hold). One pass over its entries.
    fn read(&mut self, p: Obj<'_>, date: bool) {
        let (mut format, mut zone) = (None, None);
        let (mut lows, mut highs) = ([None; 3], [None; 3]);
        for (k, v) in p {
            match k {
                "format" => format = Some(v),
                "time_zone" => zone = Some(v),
                "gte" => lows[0] = Some(v),
                "gt" => lows[1] = Some(v),
                "from" => lows[2] = Some(v),
                "lte" => highs[0] = Some(v),
                "lt" => highs[1] = Some(v),
                "to" => highs[2] = Some(v),
                _ => {}
            }
        }
        if zone.is_some_and(|z| !z.as_str().is_some_and(utc)) {
            return;
        }
        let read: fn(J<'_>) -> Option<f64> = match format {
            None if !date => number_of,
            Some(J::String("epoch_millis")) => epoch_millis,
            Some(J::String("strict_date_optional_time")) => iso_utc,
            _ => return,
        };
        for v in lows.into_iter().flatten().filter_map(read) {
            self.lo = Some(self.lo.map_or(v, |lo| lo.max(v)));
        }
        for v in highs.into_iter().flatten().filter_map(read) {
            self.hi = Some(self.hi.map_or(v, |hi| hi.min(v)));
        }
    }
}

/// A time zone that is UTC.
fn utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "Z" | "+00:00" | "Etc/UTC")
}

/// Epoch milliseconds: an integer, or a string of digits (with a leading `-`).
pub(crate) fn epoch_millis(v: J<'_>) -> Option<f64> {
    match v {
        // An integer literal is read without serde_json's parser (`Num::as_u64`).
        J::Number(n) => n
            .as_u64()
            .map(|ms| ms as f64)
            .or_else(|| n.as_i64().map(|ms| ms as f64)),
        J::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            s.parse::<i64>().ok().map(|ms| ms as f64)
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` (what JavaScript's `toISOString` writes, Dashboards' range) as
/// epoch milliseconds; any other string is not read.
pub(crate) fn iso_utc(v: J<'_>) -> Option<f64> {
    let s = v.as_str()?.as_bytes();
    if s.len() != 24 {
        return None;
    }
    let punct = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if punct.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        s[from..to].iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), 1970-01-01 is day 0.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) as f64 * 1000.0 + ms as f64)
}

/// The edits made on a serde_json body.
pub(crate) fn apply_value(body: &mut Map<String, Value>, edits: Vec<Edit>) {
    for edit in edits {
        if let Some(params) = value_at(body, &edit.path) {
            let mut bounds = Map::new();
            bounds.insert("min".into(), Value::Number(edit.min.number()));
            bounds.insert("max".into(), Value::Number(edit.max.number()));
            params.insert("hard_bounds".into(), Value::Object(bounds));
        }
    }
}

fn value_at<'v>(
    m: &'v mut Map<String, Value>,
    path: &[usize],
) -> Option<&'v mut Map<String, Value>> {
    let (&i, rest) = path.split_first()?;
    let Value::Object(next) = m.iter_mut().nth(i)?.1 else {
        return None;
    };
    if rest.is_empty() {
        Some(next)
    } else {
        value_at(next, rest)
    }
}

/// The edits made on a tree body's top-level entries. The edits under a parsed entry (the
/// request path's `aggs`: `rewrite::search_tree` opens only the top level) are made in one new
/// parsed value, `hard_bounds` put last in each histogram's parameters, tape and source text
/// ([`Parsed::with_added`](crate::request::tree::Parsed::with_added)): the checks after this
/// read them and the writer copies the text whole (session 28: three containers were opened
/// for each, written item by item). Any other edit opens each container on its way.
pub(crate) fn apply_tree<'a>(
    body: &mut Entries<'a>,
    edits: Vec<Edit>,
    arena: &'a Arena<'_>,
) -> Result<(), Rejection> {
    let mut rest = &edits[..];
    while let Some(first) = rest.first() {
        // The edits under one top-level entry (`plan` gives them in body order).
        let top = first.path.first().copied();
        let n = rest
            .iter()
            .take_while(|e| e.path.first().copied() == top)
            .count();
        let (under, after) = rest.split_at(n);
        rest = after;
        let parsed = match top.and_then(|i| body.get(i)) {
            Some((_, Node::Parsed(p))) => Some(*p),
            _ => None,
        };
        if let (Some(i), Some(p)) = (top, parsed) {
            let numbers: SmallVec<[[(&'static str, Number); 2]; 2]> = under
                .iter()
                .map(|e| [("min", e.min.number()), ("max", e.max.number())])
                .collect();
            let added: SmallVec<[Added<'_>; 2]> = under
                .iter()
                .zip(&numbers)
                .map(|(e, numbers)| Added {
                    path: e.path.get(1..).unwrap_or_default(),
                    key: "hard_bounds",
                    numbers,
                })
                .collect();
            if let Some(amended) = p.with_added(arena, &added)? {
                if let Some((_, v)) = body.make_mut().get_mut(i) {
                    *v = Node::Parsed(amended);
                }
                continue;
            }
        }
        for edit in under {
            apply_opened(body, edit);
        }
    }
    Ok(())
}

/// One edit made with each container on its way opened ([`Node::open`]).
fn apply_opened(body: &mut Entries<'_>, edit: &Edit) {
    if let Some(params) = node_at(body, &edit.path) {
        let number = |b: Bound| Node::Number(Cow::Owned(b.number().to_string()));
        let bounds = Node::object(vec![
            (Cow::Borrowed("min"), number(edit.min)),
            (Cow::Borrowed("max"), number(edit.max)),
        ]);
        params.set("hard_bounds", bounds);
    }
}

type Entries<'a> = Container<'a, (Cow<'a, str>, Node<'a>)>;

fn node_at<'n, 'a>(entries: &'n mut Entries<'a>, path: &[usize]) -> Option<&'n mut Entries<'a>> {
    let (&i, rest) = path.split_first()?;
    let node = &mut entries.make_mut().get_mut(i)?.1;
    node.open();
    let Node::Object(next) = node else {
        return None;
    };
    if rest.is_empty() {
        Some(next)
    } else {
        node_at(next, rest)
    }
}

#[cfg(test)]
mod tests;

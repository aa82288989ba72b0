//! Value checks for search bodies (issue #17.5): what `rewrite` lets through by key must also
//! make sense by value, so that nonsense gets a 400 from esgate instead of reaching the cluster,
//! where a zero interval, a composite `size: 0`, an order by a path that names nothing or a
//! bucket explosion ended in a 5xx (or took a node down). (Samplers, which also crashed without
//! a sub-aggregation, are refused outright: they pick documents by score, see `expansion`.)
//!
//! Checked here: histogram and date-histogram intervals (present, parseable, > 0, calendar
//! units from Elasticsearch's list), bucket counts computable from `extended_bounds` /
//! `hard_bounds` and the interval (at most [`MAX_BUCKETS`], Elasticsearch's and OpenSearch's
//! `search.max_buckets`), sizes of bucketing aggregations (1..=[`MAX_BUCKETS`]), `order` paths (`_count`, `_key`, `_term`, or
//! a path through existing single-bucket sub-aggregations ending at a metric or single-bucket
//! one), the sizes of percentile sketches (t-digest `compression` up to [`MAX_COMPRESSION`],
//! HDR digits up to [`MAX_HDR_DIGITS`]: a 403 above, as their memory per bucket escapes the
//! backends' circuit breakers), and `slice` (`0 <= id < max`, `2 <= max <= 1024`).
//!
//! Invariant: pure; reasons name keys, never values. Bucket counts that depend on the data
//! (a tiny interval without bounds) cannot be computed here; the backend's own bucket limit
//! answers those (a 4xx/5xx relayed as an Elasticsearch error).

use super::json::{Obj, J};

use crate::Rejection;

/// Most buckets one aggregation may ask for (`search.max_buckets`: 65535 on OpenSearch,
/// 65536 on Elasticsearch; the smaller of the two).
pub(crate) const MAX_BUCKETS: u64 = 65_535;

/// Most slices of one scroll (`index.max_slices_per_scroll`'s default).
const MAX_SLICES: u64 = 1024;

/// Most `compression` a t-digest (`percentiles`, `percentile_ranks` `tdigest`, `boxplot`,
/// `median_absolute_deviation`) may ask for: ten times the default 100. attack26 (M,
/// availability): Elasticsearch and OpenSearch take any value from 0 up, and the digest's
/// memory grows with it, one digest per bucket (and one for an empty result), outside the
/// circuit breakers in every version but Elasticsearch 8.15's and later. OpenSearch 3.4 and
/// later build each digest as a `MergingDigest`, whose arrays (about 232 bytes times the
/// compression) are allocated when it is made: `compression: 100000000`, about 23 GB, took a
/// node's heap with one request, whatever the data. Elasticsearch 8.9 to 8.14 keep up to 20
/// times the compression values of a bucket before merging (2,000 at the default), and older
/// versions a centroid per distinct value: bounded by the data only.
pub(crate) const MAX_COMPRESSION: f64 = 1000.0;

/// Most `number_of_significant_value_digits` an HDR histogram (`percentiles`,
/// `percentile_ranks` `hdr`) may ask for: the default. Each bucket's histogram is allocated
/// outside the circuit breakers (`new DoubleHistogram(digits)`, both backends, every
/// version) with 2^(log2(2 x 10^digits) + 1) counters at least: 32 KiB at 3 digits, 512 KiB at
/// 4, 4 MiB at 5 (attack26: 128 times the default's memory, per bucket, for every distinct
/// term a parent `terms` collects).
pub(crate) const MAX_HDR_DIGITS: u64 = 3;

/// The parameters of an aggregation as the checks read them (`fields::check_agg_in`,
/// [`check_agg_in`], `aggs`' `min_doc_count` rule): the object itself, or what one pass over it
/// gathered ([`Gathered`]), read alike (`gathered_parameters_read_as_the_object`, tests).
pub(crate) trait Params<'a>: Copy {
    /// The value of the first entry named `key`, one of [`READ`].
    fn get(self, key: &str) -> Option<J<'a>>;
    /// How many entries name one of `calendar_interval`, `fixed_interval`, `interval`, and
    /// the last of them.
    fn intervals(self) -> (usize, Option<(&'a str, J<'a>)>);
}

impl<'a> Params<'a> for Obj<'a> {
    #[inline]
    fn get(self, key: &str) -> Option<J<'a>> {
        Obj::get(self, key)
    }

    fn intervals(self) -> (usize, Option<(&'a str, J<'a>)>) {
        let mut given = None;
        let mut count = 0;
        for (k, v) in self {
            if matches!(k, "calendar_interval" | "fixed_interval" | "interval") {
                count += 1;
                given = Some((k, v));
            }
        }
        (count, given)
    }
}

/// Every parameter the aggregation checks read, in [`read_index`]'s order.
pub(crate) const READ: [&str; 24] = [
    "field",
    "path",
    "terms",
    "value",
    "weight",
    "metrics",
    "sources",
    "size",
    "shard_size",
    "shard_min_doc_count",
    "min_doc_count",
    "order",
    "interval",
    "calendar_interval",
    "fixed_interval",
    "extended_bounds",
    "hard_bounds",
    "buckets",
    "minimum_interval",
    "max_doc_count",
    "precision",
    "compression",
    "tdigest",
    "hdr",
];

/// The place of `key` in [`READ`] (`read_index_is_the_place_in_read`, tests).
#[inline(always)]
fn read_index(key: &str) -> Option<usize> {
    Some(match key {
        "field" => 0,
        "path" => 1,
        "terms" => 2,
        "value" => 3,
        "weight" => 4,
        "metrics" => 5,
        "sources" => 6,
        "size" => 7,
        "shard_size" => 8,
        "shard_min_doc_count" => 9,
        "min_doc_count" => 10,
        "order" => 11,
        "interval" => 12,
        "calendar_interval" => 13,
        "fixed_interval" => 14,
        "extended_bounds" => 15,
        "hard_bounds" => 16,
        "buckets" => 17,
        "minimum_interval" => 18,
        "max_doc_count" => 19,
        "precision" => 20,
        "compression" => 21,
        "tdigest" => 22,
        "hdr" => 23,
        _ => return None,
    })
}

/// What one pass over an aggregation's parameters gathered for the checks: the first value of
/// each [`READ`] key, and the interval keys as [`Params::intervals`] counts them. Issue 10: the
/// checks read a dozen parameters by name, each a scan of the object.
#[derive(Default)]
pub(crate) struct Gathered<'a> {
    values: [Option<J<'a>>; READ.len()],
    intervals: usize,
    last_interval: Option<(&'a str, J<'a>)>,
}

impl<'a> Gathered<'a> {
    /// Takes one entry, in body order.
    #[inline]
    pub(crate) fn put(&mut self, key: &'a str, value: J<'a>) {
        let Some(i) = read_index(key) else { return };
        if let Some(slot) = self.values.get_mut(i) {
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        if matches!(i, 12..=14) {
            self.intervals += 1;
            self.last_interval = Some((key, value));
        }
    }
}

impl<'a> Params<'a> for &Gathered<'a> {
    #[inline(always)]
    fn get(self, key: &str) -> Option<J<'a>> {
        // A check reading a key not gathered would see it absent: every read is of a constant
        // in `READ`, which the differential tests (debug builds) hold to this.
        debug_assert!(read_index(key).is_some(), "[{key}] is not in READ");
        let i = read_index(key)?;
        self.values.get(i).copied().flatten()
    }

    fn intervals(self) -> (usize, Option<(&'a str, J<'a>)>) {
        (self.intervals, self.last_interval)
    }
}

/// Checks the values of aggregation `ty` with parameters `body`; `def` is the aggregation's
/// definition (for its sub-aggregations).
pub(crate) fn check_agg(ty: &str, body: J<'_>, def: Obj<'_>) -> Result<(), Rejection> {
    let J::Object(m) = body else {
        return Ok(());
    };
    check_agg_in(ty, m, sub_aggs(def))
}

/// [`check_agg`] of an object's parameters `m` read through [`Params`]; `subs` the
/// aggregation's sub-aggregations.
pub(crate) fn check_agg_in<'a>(
    ty: &str,
    m: impl Params<'a>,
    subs: Option<Obj<'_>>,
) -> Result<(), Rejection> {
    match ty {
        "terms" | "multi_terms" => {
            sizes(m, &["size", "shard_size"])?;
            optional_uint(m, "shard_min_doc_count")?;
            check_order(m, subs, &["_count", "_key", "_term"])?;
        }
        "histogram" => {
            let interval = positive_number(m.get("interval"), "interval")?;
            for bounds in ["extended_bounds", "hard_bounds"] {
                bucket_count(m.get(bounds), bounds, interval)?;
            }
            check_order(m, subs, &["_count", "_key"])?;
        }
        "date_histogram" => {
            let interval_ms = date_interval(m)?;
            for bounds in ["extended_bounds", "hard_bounds"] {
                bucket_count(m.get(bounds), bounds, interval_ms)?;
            }
            check_order(m, subs, &["_count", "_key"])?;
        }
        "auto_date_histogram" => {
            sizes(m, &["buckets"])?;
            if let Some(v) = m.get("minimum_interval") {
                let ok = v.as_str().is_some_and(|s| {
                    ["second", "minute", "hour", "day", "month", "year"].contains(&s)
                });
                if !ok {
                    return Err(bad(
                        "[minimum_interval] must be one of second, minute, hour, day, month, year",
                    ));
                }
            }
        }
        "composite" => {
            sizes(m, &["size"])?;
            match m.get("sources") {
                Some(J::Array(sources)) if !sources.is_empty() => {
                    sources.iter().try_for_each(composite_source)?
                }
                _ => return Err(bad("[composite] needs a non-empty [sources] list")),
            }
        }
        "rare_terms" => {
            if let Some(v) = m.get("max_doc_count") {
                match uint_of(v) {
                    Some(n) if (1..=100).contains(&n) => {}
                    _ => return Err(bad("[max_doc_count] must be between 1 and 100")),
                }
            }
        }
        "percentiles" | "percentile_ranks" => {
            if let Some(v) = m.get("tdigest") {
                sketch(v, "tdigest", |k, v| match k {
                    "compression" => compression(v, "tdigest.compression"),
                    _ => Ok(()),
                })?;
            }
            if let Some(v) = m.get("hdr") {
                sketch(v, "hdr", |k, v| match k {
                    "number_of_significant_value_digits" => hdr_digits(v),
                    _ => Ok(()),
                })?;
            }
        }
        "boxplot" | "median_absolute_deviation" => {
            if let Some(v) = m.get("compression") {
                compression(v, "compression")?;
            }
        }
        "geohash_grid" | "geotile_grid" => {
            sizes(m, &["size", "shard_size"])?;
            let max = if ty == "geohash_grid" { 12 } else { 29 };
            if let Some(v @ J::Number(_)) = m.get("precision") {
                let min = if ty == "geohash_grid" { 1 } else { 0 };
                if !uint_of(v).is_some_and(|p| (min..=max).contains(&p)) {
                    return Err(bad("[precision] is out of range"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A percentiles method's options (`tdigest`, `hdr`): an object, each entry checked by `each`.
fn sketch(
    v: J<'_>,
    key: &str,
    each: impl FnMut(&str, J<'_>) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    match v {
        J::Object(m) => m.try_each(each),
        _ => Err(bad(&format!("[{key}] must be an object"))),
    }
}

/// A t-digest's `compression`: a number from 0 to [`MAX_COMPRESSION`].
fn compression(v: J<'_>, key: &str) -> Result<(), Rejection> {
    match number_of(v) {
        Some(c) if (0.0..=MAX_COMPRESSION).contains(&c) => Ok(()),
        Some(c) if c > MAX_COMPRESSION => Err(Rejection::forbidden(format!(
            "[{key}] above {MAX_COMPRESSION} is not allowed for this token: the backend \
             allocates memory for each bucket in proportion to it"
        ))),
        _ => Err(bad(&format!(
            "[{key}] must be a number between 0 and {MAX_COMPRESSION}"
        ))),
    }
}

/// An HDR histogram's `number_of_significant_value_digits`: an integer up to
/// [`MAX_HDR_DIGITS`].
fn hdr_digits(v: J<'_>) -> Result<(), Rejection> {
    const KEY: &str = "hdr.number_of_significant_value_digits";
    match uint_of(v) {
        Some(n) if n <= MAX_HDR_DIGITS => Ok(()),
        Some(_) => Err(Rejection::forbidden(format!(
            "[{KEY}] above {MAX_HDR_DIGITS} is not allowed for this token: the backend \
             allocates memory for each bucket in proportion to 10 to its power"
        ))),
        None => Err(bad(&format!(
            "[{KEY}] must be an integer between 0 and {MAX_HDR_DIGITS}"
        ))),
    }
}

/// `slice`: `id` and `max` present, `0 <= id < max`, `2 <= max <= 1024`.
pub(crate) fn check_slice(v: J<'_>) -> Result<(), Rejection> {
    let id = v.get("id").and_then(J::as_u64);
    let max = v.get("max").and_then(J::as_u64);
    match (id, max) {
        (Some(id), Some(max)) if (2..=MAX_SLICES).contains(&max) && id < max => Ok(()),
        _ => Err(bad(
            "[slice] needs [id] and [max] with 0 <= id < max and 2 <= max <= 1024",
        )),
    }
}

fn sub_aggs(def: Obj<'_>) -> Option<Obj<'_>> {
    def.get("aggs")
        .or_else(|| def.get("aggregations"))
        .and_then(J::as_object)
}

/// A non-negative integer, also as a numeric string (Grafana sends some numbers as strings).
pub(crate) fn uint_of(v: J<'_>) -> Option<u64> {
    match v {
        J::Number(n) => n.as_u64(),
        J::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn number_of(v: J<'_>) -> Option<f64> {
    match v {
        J::Number(n) => n.as_f64(),
        J::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

fn bad(reason: &str) -> Rejection {
    Rejection::bad_request(reason.to_string())
}

/// Each of `keys` that is present: an integer in 1..=MAX_BUCKETS.
fn sizes<'a>(m: impl Params<'a>, keys: &[&str]) -> Result<(), Rejection> {
    for key in keys {
        if let Some(v) = m.get(key) {
            if !uint_of(v).is_some_and(|n| (1..=MAX_BUCKETS).contains(&n)) {
                return Err(bad(&format!(
                    "[{key}] must be an integer between 1 and {MAX_BUCKETS}"
                )));
            }
        }
    }
    Ok(())
}

fn optional_uint<'a>(m: impl Params<'a>, key: &str) -> Result<(), Rejection> {
    match m.get(key) {
        Some(v) if uint_of(v).is_none() => {
            Err(bad(&format!("[{key}] must be a non-negative integer")))
        }
        _ => Ok(()),
    }
}

fn positive_number(v: Option<J<'_>>, key: &str) -> Result<f64, Rejection> {
    match v.and_then(number_of) {
        Some(f) if f > 0.0 => Ok(f),
        _ => Err(bad(&format!("[{key}] must be a number greater than 0"))),
    }
}

/// The shortest length in milliseconds of one interval of a date histogram (exactly one of
/// `calendar_interval`, `fixed_interval`, `interval`), or a 400.
pub(crate) fn date_interval<'a>(m: impl Params<'a>) -> Result<f64, Rejection> {
    // Exactly one given, found in one pass over the parameters (issue 10: a scan for each of
    // the three, then a fourth for the value).
    let (1, Some((key, v))) = m.intervals() else {
        return Err(bad(
            "a date histogram needs exactly one of [calendar_interval], [fixed_interval], [interval]",
        ));
    };
    date_interval_of(key, v)
}

/// [`date_interval`] of the one interval key given (`calendar_interval`, `fixed_interval` or
/// `interval`) and its value.
pub(crate) fn date_interval_of(key: &str, v: J<'_>) -> Result<f64, Rejection> {
    let parsed = match key {
        "calendar_interval" => v.as_str().and_then(calendar_ms),
        "fixed_interval" => v.as_str().and_then(fixed_ms),
        _ => match v {
            // The deprecated `interval` also takes milliseconds without a unit.
            J::String(s) => calendar_ms(s)
                .or_else(|| fixed_ms(s))
                .or_else(|| s.parse::<u64>().ok().filter(|n| *n >= 1).map(|n| n as f64)),
            // A number is read as a long (`longValue()` truncates a fraction).
            other => number_of(other).map(f64::trunc).filter(|f| *f >= 1.0),
        },
    };
    parsed.ok_or_else(|| {
        bad(&format!(
            "[{key}] must be a calendar unit or a positive time value of at least 1ms"
        ))
    })
}

/// The longest length in milliseconds of one interval of a date histogram whose interval
/// (`key` the one of `calendar_interval`, `fixed_interval`, `interval` given, `v` its value) is
/// a calendar unit, without its daylight-saving hour (`fill`'s widening of the query's range
/// adds it); `None` for any other interval, whose length [`date_interval_of`] gives.
pub(crate) fn calendar_longest_of(key: &str, v: J<'_>) -> Option<f64> {
    match key {
        "fixed_interval" => None,
        _ => v.as_str().and_then(calendar_longest_ms),
    }
}

/// A calendar interval's longest length, leaving out a daylight-saving hour.
fn calendar_longest_ms(s: &str) -> Option<f64> {
    Some(match s {
        "minute" | "1m" => 60_000.0,
        "hour" | "1h" => HOUR_MS,
        "day" | "1d" => DAY_MS,
        "week" | "1w" => 7.0 * DAY_MS,
        "month" | "1M" => 31.0 * DAY_MS,
        "quarter" | "1q" => 92.0 * DAY_MS,
        "year" | "1y" => 366.0 * DAY_MS,
        _ => return None,
    })
}

pub(crate) const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: f64 = 24.0 * HOUR_MS;

/// A calendar interval's shortest length (a day can have 23 hours).
fn calendar_ms(s: &str) -> Option<f64> {
    Some(match s {
        "minute" | "1m" => 60_000.0,
        "hour" | "1h" => HOUR_MS,
        "day" | "1d" => DAY_MS - HOUR_MS,
        "week" | "1w" => 7.0 * DAY_MS - HOUR_MS,
        "month" | "1M" => 28.0 * DAY_MS - HOUR_MS,
        "quarter" | "1q" => 89.0 * DAY_MS - HOUR_MS,
        "year" | "1y" => 365.0 * DAY_MS - HOUR_MS,
        _ => return None,
    })
}

/// A fixed interval (`<integer><unit>`, units `nanos` to `d`) in whole milliseconds, at least
/// 1: the backend's `Rounding` takes `TimeValue.millis()`, which drops a fraction of a
/// millisecond (`1999999nanos` is 1 ms there, not 1.999999: counted with the fraction, a fill
/// had twice the buckets counted, attack27d).
fn fixed_ms(s: &str) -> Option<f64> {
    let digits = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(digits);
    let n = u128::from(n.parse::<u64>().ok()?);
    let nanos_per_unit: u128 = match unit {
        "nanos" => 1,
        "micros" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    let ms = (n * nanos_per_unit / 1_000_000) as f64;
    (ms >= 1.0).then_some(ms)
}

/// `{"min": a, "max": b}`: when both are numbers, `a <= b` and at most MAX_BUCKETS intervals.
/// Date strings (`now-1d`) cannot be computed here and pass.
fn bucket_count(bounds: Option<J<'_>>, key: &str, interval: f64) -> Result<(), Rejection> {
    let Some(bounds) = bounds else {
        return Ok(());
    };
    let J::Object(b) = bounds else {
        return Err(bad(&format!("[{key}] must be an object")));
    };
    let (Some(min), Some(max)) = (
        b.get("min").and_then(number_of),
        b.get("max").and_then(number_of),
    ) else {
        return Ok(());
    };
    if min > max {
        return Err(bad(&format!("[{key}.min] must not be above [{key}.max]")));
    }
    if (max - min) / interval + 1.0 > MAX_BUCKETS as f64 {
        return Err(bad(&format!(
            "[{key}] with this interval asks for more than {MAX_BUCKETS} buckets"
        )));
    }
    Ok(())
}

/// How many buckets a `histogram` or `date_histogram` returns when its bounds make that
/// computable: `hard_bounds` cap the count, `extended_bounds` force at least that many (the
/// shortest calendar units, so never fewer than the backend makes). `None`: it depends on the
/// data (no numeric bounds), or the aggregation is not one of the two.
pub(crate) fn histogram_buckets(ty: &str, m: Obj<'_>) -> Option<u64> {
    let interval = match ty {
        "histogram" => m.get("interval").and_then(number_of).filter(|i| *i > 0.0)?,
        "date_histogram" => date_interval(m).ok()?,
        _ => return None,
    };
    let count = |key: &str| -> Option<u64> {
        let b = m.get(key)?.as_object()?;
        let (min, max) = (number_of(b.get("min")?)?, number_of(b.get("max")?)?);
        if min > max {
            return None;
        }
        let n = ((max - min) / interval).floor() + 1.0;
        Some(if n >= u64::MAX as f64 {
            u64::MAX
        } else {
            n as u64
        })
    };
    count("hard_bounds").or_else(|| count("extended_bounds"))
}

fn composite_source(v: J<'_>) -> Result<(), Rejection> {
    for def in v.as_object().into_iter().flat_map(|s| s.values()) {
        for (ty, body) in def.as_object().into_iter().flatten() {
            let J::Object(m) = body else { continue };
            match ty {
                "histogram" => {
                    positive_number(m.get("interval"), "interval")?;
                }
                "date_histogram" => {
                    date_interval(m)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Single-bucket aggregations: a sort path may go through them.
const SINGLE_BUCKET: &[&str] = &["filter", "nested", "reverse_nested", "missing"];
/// Metric aggregations with one value (`name` or `name.value`).
const SINGLE_VALUE: &[&str] = &[
    "avg",
    "sum",
    "min",
    "max",
    "value_count",
    "cardinality",
    "median_absolute_deviation",
    "weighted_avg",
];
/// Metric aggregations with several values (`name.key` or `name[key]`), and their keys
/// (`None`: a percentile, any number).
const MULTI_VALUE: &[(&str, Option<&[&str]>)] = &[
    ("stats", Some(&["count", "min", "max", "avg", "sum"])),
    (
        "extended_stats",
        Some(&[
            "count",
            "min",
            "max",
            "avg",
            "sum",
            "sum_of_squares",
            "variance",
            "variance_population",
            "variance_sampling",
            "std_deviation",
            "std_deviation_population",
            "std_deviation_sampling",
            "std_upper",
            "std_lower",
            "std_upper_population",
            "std_lower_population",
            "std_upper_sampling",
            "std_lower_sampling",
        ]),
    ),
    ("percentiles", None),
    ("percentile_ranks", None),
    (
        "boxplot",
        Some(&["min", "max", "q1", "q2", "q3", "lower", "upper"]),
    ),
];

/// `order` of a bucketing aggregation: an object or a list of objects, each key one of
/// `special` or a path to a sub-aggregation, each value `asc` or `desc`.
fn check_order<'a>(
    m: impl Params<'a>,
    subs: Option<Obj<'_>>,
    special: &[&str],
) -> Result<(), Rejection> {
    let Some(order) = m.get("order") else {
        return Ok(());
    };
    // Each item in turn, without collecting them into a list first (issue 10: an allocation
    // per terms aggregation).
    let check_item = |item: J<'_>| -> Result<(), Rejection> {
        let J::Object(entries) = item else {
            return Err(bad("[order] must be an object or a list of objects"));
        };
        for (path, dir) in entries {
            let dir_ok = dir
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case("asc") || d.eq_ignore_ascii_case("desc"));
            if !dir_ok {
                return Err(bad("[order] directions must be [asc] or [desc]"));
            }
            if special.contains(&path) {
                continue;
            }
            if path.starts_with('_') {
                return Err(bad(
                    "[order] sorts by [_count], [_key] or a sub-aggregation path",
                ));
            }
            order_path(path, subs)?;
        }
        Ok(())
    };
    match order {
        J::Array(items) => items.iter().try_for_each(check_item),
        one => check_item(one),
    }
}

/// A path `a>b>c.key` (or `c[key]`): every element but the last a single-bucket
/// sub-aggregation, the last a metric (with a valid key) or a single-bucket one.
fn order_path(path: &str, subs: Option<Obj<'_>>) -> Result<(), Rejection> {
    let unknown =
        || bad("[order] names a path that is not a metric or single-bucket sub-aggregation");
    let elements: Vec<&str> = path.split('>').collect();
    let mut current = subs;
    for (i, element) in elements.iter().enumerate() {
        let last = i + 1 == elements.len();
        let aggs = current.ok_or_else(unknown)?;
        // `name[key]`, `name.key` (names may hold dots: the whole element is tried first).
        let (name, key) = if let Some(stripped) = element.strip_suffix(']') {
            let (n, k) = stripped.split_once('[').ok_or_else(unknown)?;
            (n, Some(k))
        } else if aggs.contains_key(element) {
            (*element, None)
        } else {
            match element.rsplit_once('.') {
                Some((n, k)) => (n, Some(k)),
                None => (*element, None),
            }
        };
        let def = aggs.get(name).and_then(J::as_object).ok_or_else(unknown)?;
        let ty = def
            .keys()
            .find(|k| !matches!(*k, "aggs" | "aggregations" | "meta"))
            .ok_or_else(unknown)?;
        if SINGLE_BUCKET.contains(&ty) {
            if key.is_some_and(|k| !matches!(k, "_count" | "doc_count")) {
                return Err(unknown());
            }
            current = sub_aggs(def);
            continue;
        }
        if !last {
            return Err(unknown());
        }
        if SINGLE_VALUE.contains(&ty) {
            if key.is_some_and(|k| k != "value") {
                return Err(unknown());
            }
        } else if ty == "top_metrics" {
            // `tm[field]` names one of its metrics; `tm` alone when it has just one.
            let metrics: Vec<&str> = match def.get(ty).and_then(|b| b.get("metrics")) {
                Some(J::Array(items)) => items
                    .iter()
                    .filter_map(|m| m.get("field").and_then(J::as_str))
                    .collect(),
                Some(one) => one.get("field").and_then(J::as_str).into_iter().collect(),
                None => Vec::new(),
            };
            let ok = match key {
                Some(k) => metrics.contains(&k),
                None => metrics.len() == 1,
            };
            if !ok {
                return Err(unknown());
            }
        } else if let Some((_, keys)) = MULTI_VALUE.iter().find(|(t, _)| *t == ty) {
            let ok = match (key, keys) {
                (Some(k), Some(keys)) => keys.contains(&k),
                (Some(k), None) => k.parse::<f64>().is_ok_and(f64::is_finite),
                (None, _) => false,
            };
            if !ok {
                return Err(unknown());
            }
        } else {
            return Err(unknown());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::RejectKind;

    #[test]
    fn read_index_is_the_place_in_read() {
        for (i, key) in READ.iter().enumerate() {
            assert_eq!(read_index(key), Some(i), "{key}");
        }
        for key in ["", "fields", "Field", "size ", "script", "format", "_name"] {
            assert_eq!(read_index(key), None, "{key}");
        }
    }

    /// What [`Gathered`] answers is what the object answers: the first value of each key the
    /// checks read, and the interval keys' count and last one, for objects of up to three
    /// entries of those keys and others.
    #[test]
    fn gathered_parameters_read_as_the_object() {
        let mut keys: Vec<&str> = READ.to_vec();
        keys.extend(["format", "script", "x"]);
        let values = [json!(1), json!("a"), json!({"min": 1}), json!(null)];
        let mut objects: Vec<Map<String, Value>> = vec![Map::new()];
        for a in &keys {
            for b in &keys {
                for c in [
                    "interval",
                    "fixed_interval",
                    "calendar_interval",
                    "field",
                    "x",
                ] {
                    for (i, v) in values.iter().enumerate() {
                        let mut m = Map::new();
                        m.insert(a.to_string(), v.clone());
                        m.insert(b.to_string(), values[(i + 1) % values.len()].clone());
                        m.insert(c.to_string(), values[(i + 2) % values.len()].clone());
                        objects.push(m);
                    }
                }
            }
        }
        for m in &objects {
            let obj = Obj::V(m);
            let mut gathered = Gathered::default();
            for (k, v) in obj {
                gathered.put(k, v);
            }
            for key in READ {
                assert_eq!(
                    Params::get(&gathered, key).map(J::to_value),
                    Params::get(obj, key).map(J::to_value),
                    "{key} {m:?}"
                );
            }
            let (n, last) = obj.intervals();
            let (gn, glast) = (&gathered).intervals();
            assert_eq!(n, gn, "{m:?}");
            assert_eq!(
                last.map(|(k, v)| (k, v.to_value())),
                glast.map(|(k, v)| (k, v.to_value())),
                "{m:?}"
            );
        }
    }

    /// Checks `{"a": {<ty>: body, "aggs": subs}}`'s values.
    fn check(ty: &str, body: Value, subs: Option<Value>) -> Result<(), Rejection> {
        let mut def = Map::new();
        def.insert(ty.to_string(), body.clone());
        if let Some(s) = subs {
            def.insert("aggs".into(), s);
        }
        check_agg(ty, J::from(&body), Obj::V(&def))
    }

    #[test]
    fn intervals_must_be_present_parseable_and_positive() {
        let cases = [
            ("histogram", json!({"field": "n", "interval": 4}), true),
            ("histogram", json!({"field": "n", "interval": "2.5"}), true),
            ("histogram", json!({"field": "n", "interval": 0}), false),
            ("histogram", json!({"field": "n", "interval": -1}), false),
            ("histogram", json!({"field": "n", "interval": "x"}), false),
            ("histogram", json!({"field": "n"}), false),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "86400000ms"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "30s"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "calendar_interval": "1M"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "calendar_interval": "week"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": "1d"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": "45m"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": 60000}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": "60000"}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "0ms"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "0s"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "10nanos"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "1M"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "-1d"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "calendar_interval": "2d"}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": 0}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "interval": "0"}),
                false,
            ),
            ("date_histogram", json!({"field": "t"}), false),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "1d", "calendar_interval": "1d"}),
                false,
            ),
            (
                "auto_date_histogram",
                json!({"field": "t", "buckets": 10}),
                true,
            ),
            (
                "auto_date_histogram",
                json!({"field": "t", "buckets": 0}),
                false,
            ),
            (
                "auto_date_histogram",
                json!({"field": "t", "minimum_interval": "week"}),
                false,
            ),
        ];
        for (ty, body, ok) in cases {
            let got = check(ty, body.clone(), None);
            assert_eq!(got.is_ok(), ok, "{ty} {body}");
            if let Err(e) = got {
                assert_eq!(e.kind, RejectKind::BadRequest, "{ty} {body}");
            }
        }
    }

    #[test]
    fn bucket_explosions_from_bounds_are_refused() {
        let cases = [
            // Grafana's dashboards: 10 days in 1-day or 1-hour buckets.
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "3600000ms", "min_doc_count": 0,
                    "extended_bounds": {"min": 1704067200000u64, "max": 1704931199999u64}}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "1ms",
                    "extended_bounds": {"min": 0, "max": 1704931199999u64}}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "calendar_interval": "minute",
                    "extended_bounds": {"min": 0, "max": 1704931199999u64}}),
                false,
            ),
            (
                "date_histogram",
                json!({"field": "t", "calendar_interval": "year",
                    "extended_bounds": {"min": 0, "max": 1704931199999u64}}),
                true,
            ),
            (
                "date_histogram",
                json!({"field": "t", "fixed_interval": "1s",
                    "extended_bounds": {"min": "now-1y", "max": "now"}}),
                true,
            ),
            (
                "histogram",
                json!({"field": "n", "interval": 1, "extended_bounds": {"min": 0, "max": 100000000}}),
                false,
            ),
            (
                "histogram",
                json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 100000000}}),
                false,
            ),
            (
                "histogram",
                json!({"field": "n", "interval": 1, "extended_bounds": {"min": 0, "max": 65534}}),
                true,
            ),
            (
                "histogram",
                json!({"field": "n", "interval": 1, "extended_bounds": {"min": 10, "max": 0}}),
                false,
            ),
        ];
        for (ty, body, ok) in cases {
            assert_eq!(check(ty, body.clone(), None).is_ok(), ok, "{ty} {body}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let cases = [
            ("terms", json!({"field": "u", "size": 500}), true),
            ("terms", json!({"field": "u", "size": "10"}), true),
            ("terms", json!({"field": "u", "size": 0}), false),
            ("terms", json!({"field": "u", "size": 100000000}), false),
            ("terms", json!({"field": "u", "shard_size": 0}), false),
            ("terms", json!({"field": "u", "shard_size": 1000000}), false),
            ("terms", json!({"field": "u", "shard_size": 100}), true),
            (
                "terms",
                json!({"field": "u", "shard_min_doc_count": -1}),
                false,
            ),
            ("multi_terms", json!({"terms": [], "size": 0}), false),
            (
                "composite",
                json!({"size": 0, "sources": [{"u": {"terms": {"field": "u"}}}]}),
                false,
            ),
            (
                "composite",
                json!({"size": 10, "sources": [{"u": {"terms": {"field": "u"}}}]}),
                true,
            ),
            ("composite", json!({"size": 10, "sources": []}), false),
            ("composite", json!({"size": 10}), false),
            (
                "composite",
                json!({"sources": [{"h": {"histogram": {"field": "n", "interval": 0}}}]}),
                false,
            ),
            (
                "composite",
                json!({"sources": [{"d": {"date_histogram": {"field": "t", "fixed_interval": "0s"}}}]}),
                false,
            ),
            (
                "rare_terms",
                json!({"field": "u", "max_doc_count": 1}),
                true,
            ),
            (
                "rare_terms",
                json!({"field": "u", "max_doc_count": 0}),
                false,
            ),
            (
                "rare_terms",
                json!({"field": "u", "max_doc_count": 1000}),
                false,
            ),
            (
                "geotile_grid",
                json!({"field": "g", "precision": 30}),
                false,
            ),
            (
                "geohash_grid",
                json!({"field": "g", "precision": 5, "size": 10}),
                true,
            ),
        ];
        for (ty, body, ok) in cases {
            assert_eq!(check(ty, body.clone(), None).is_ok(), ok, "{ty} {body}");
        }
    }

    /// attack26 (M, availability): a percentile sketch's size is bounded, as each bucket's
    /// sketch is allocated outside the backends' circuit breakers (OpenSearch 3.4+ allocates a
    /// t-digest's arrays, about 232 bytes times `compression`, when it is made; an HDR
    /// histogram's counters grow tenfold with each significant digit). Up to the bound, as
    /// clients send them (Elastic APM: HDR with 2 digits); above it 403, nonsense 400.
    #[test]
    fn percentile_sketches_are_bounded() {
        use RejectKind::{BadRequest, Forbidden};
        let cases: &[(&str, Value, Option<RejectKind>)] = &[
            ("percentiles", json!({"field": "n"}), None),
            ("percentiles", json!({"field": "n", "tdigest": {}}), None),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": 200}}),
                None,
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": 1000.0, "execution_hint": "high_accuracy"}}),
                None,
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": "50"}}),
                None,
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": 0}}),
                None,
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": 100000000}}),
                Some(Forbidden),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": 1000.5}}),
                Some(Forbidden),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": "1e8"}}),
                Some(Forbidden),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": -1}}),
                Some(BadRequest),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": "NaN"}}),
                Some(BadRequest),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": {"compression": [1]}}),
                Some(BadRequest),
            ),
            (
                "percentiles",
                json!({"field": "n", "tdigest": 100}),
                Some(BadRequest),
            ),
            (
                "percentile_ranks",
                json!({"field": "n", "values": [1], "tdigest": {"compression": 100000}}),
                Some(Forbidden),
            ),
            (
                "percentiles",
                json!({"field": "n", "hdr": {"number_of_significant_value_digits": 2}}),
                None,
            ),
            (
                "percentiles",
                json!({"field": "n", "hdr": {"number_of_significant_value_digits": "3"}}),
                None,
            ),
            ("percentiles", json!({"field": "n", "hdr": {}}), None),
            (
                "percentiles",
                json!({"field": "n", "hdr": {"number_of_significant_value_digits": 5}}),
                Some(Forbidden),
            ),
            (
                "percentile_ranks",
                json!({"field": "n", "values": [1], "hdr": {"number_of_significant_value_digits": 4}}),
                Some(Forbidden),
            ),
            (
                "percentiles",
                json!({"field": "n", "hdr": {"number_of_significant_value_digits": 2.5}}),
                Some(BadRequest),
            ),
            (
                "percentiles",
                json!({"field": "n", "hdr": [3]}),
                Some(BadRequest),
            ),
            ("boxplot", json!({"field": "n", "compression": 500}), None),
            (
                "boxplot",
                json!({"field": "n", "compression": 10000000}),
                Some(Forbidden),
            ),
            (
                "median_absolute_deviation",
                json!({"field": "n", "compression": 1e9}),
                Some(Forbidden),
            ),
            (
                "median_absolute_deviation",
                json!({"field": "n", "compression": true}),
                Some(BadRequest),
            ),
        ];
        for (ty, body, want) in cases {
            let got = check(ty, body.clone(), None);
            assert_eq!(got.as_ref().err().map(|e| e.kind), *want, "{ty} {body}");
            if let Err(e) = got {
                let named = ["tdigest", "hdr", "compression"];
                assert!(named.iter().any(|k| e.reason.contains(k)), "{e:?}");
            }
        }
    }

    #[test]
    fn order_paths_name_existing_metric_or_single_bucket_sub_aggregations() {
        let subs = json!({
            "m": {"max": {"field": "n"}},
            "s": {"stats": {"field": "n"}},
            "p": {"percentiles": {"field": "n"}},
            "f": {"filter": {"term": {"u": "x"}}, "aggs": {"a": {"avg": {"field": "n"}}}},
            "t": {"terms": {"field": "u"}},
            "d": {"derivative": {"buckets_path": "m"}},
            "tm": {"top_metrics": {"metrics": [{"field": "n"}, {"field": "x"}], "sort": ["n"]}},
            "one": {"top_metrics": {"metrics": {"field": "n"}, "sort": ["n"]}},
            "b": {"boxplot": {"field": "n"}},
        });
        let cases = [
            (json!({"_count": "desc"}), true),
            (json!({"_key": "asc"}), true),
            (json!({"_term": "asc"}), true),
            (json!([{"m": "desc"}, {"_key": "asc"}]), true),
            (json!({"m.value": "desc"}), true),
            (json!({"s.avg": "asc"}), true),
            (json!({"s[max]": "asc"}), true),
            (json!({"p.99": "asc"}), true),
            (json!({"f>a": "asc"}), true),
            (json!({"f": "asc"}), true),
            (json!({"f._count": "asc"}), true),
            (json!({"tm[x]": "asc"}), true),
            (json!({"one": "asc"}), true),
            (json!({"b.q3": "asc"}), true),
            (json!({"tm": "asc"}), false),
            (json!({"tm[y]": "asc"}), false),
            (json!({"b": "asc"}), false),
            (json!({"nope": "asc"}), false),
            (json!({"s": "asc"}), false),
            (json!({"s.nope": "asc"}), false),
            (json!({"m.nope": "asc"}), false),
            (json!({"t": "asc"}), false),
            (json!({"t>m": "asc"}), false),
            (json!({"d": "asc"}), false),
            (json!({"f>nope": "asc"}), false),
            (json!({"_seq_no": "asc"}), false),
            (json!({"_doc": "asc"}), false),
            (json!({"m": "sideways"}), false),
            (json!("m"), false),
        ];
        for (order, ok) in cases {
            let body = json!({"field": "u", "order": order.clone()});
            assert_eq!(
                check("terms", body, Some(subs.clone())).is_ok(),
                ok,
                "{order}"
            );
        }
        // Without sub-aggregations only the special keys remain; histograms have no `_term`.
        assert!(check("terms", json!({"field": "u", "order": {"m": "asc"}}), None).is_err());
        let h = json!({"field": "n", "interval": 1, "order": {"_term": "asc"}});
        assert!(check("histogram", h, None).is_err());
    }

    #[test]
    fn slices_are_well_formed() {
        for (v, ok) in [
            (json!({"id": 0, "max": 2}), true),
            (json!({"id": 1, "max": 2, "field": "n"}), true),
            (json!({"id": 2, "max": 2}), false),
            (json!({"id": 0, "max": 1}), false),
            (json!({"id": 0, "max": 0}), false),
            (json!({"id": 0, "max": 5000}), false),
            (json!({"max": 2}), false),
            (json!({"id": -1, "max": 2}), false),
        ] {
            assert_eq!(check_slice(J::from(&v)).is_ok(), ok, "{v}");
        }
    }
}

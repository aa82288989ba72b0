//! Histograms that step through a range field's values (attack27d, range28: M, availability).
//!
//! On a range field (`integer_range`, `long_range`, `float_range`, `double_range`, `date_range`)
//! a `histogram` (`RangeHistogramAggregator`) and a `date_histogram`
//! (`DateRangeHistogramAggregator`) collect each document into every bucket its range touches:
//! they step from the key of the range's start to the key of its end, one interval at a time,
//! with no cancellation or timeout check inside one document. A tiny `interval` over a wide range
//! keeps a search thread busy for as long as the range is wide, and where the key (a `double`
//! counted in intervals) passes 2^53 it never advances: the thread spins for good. Every
//! version of both backends, any `min_doc_count`. The loop steps from `max(from, hard_bounds.min)`
//! to `min(to, hard_bounds.max)`, so `hard_bounds` with both bounds clamp it.
//!
//! Read in both backends' code: only these two aggregations register a range values source
//! (`HistogramAggregatorFactory`, `DateHistogramAggregatorFactory`; a non-numeric range, `ip_range`,
//! and a `date_histogram` on a numeric range throw instead of stepping). `composite`'s
//! `histogram` and `date_histogram` sources register `DATE` and `NUMERIC` only,
//! `auto_date_histogram` `DATE`, `NUMERIC` and `BOOLEAN`, `variable_width_histogram` `NUMERIC`
//! (and esgate refuses it): on a range field they fail, one bucket per value at most, no loop.
//!
//! So every `histogram` and `date_histogram` (anywhere in the aggregation tree, every search of
//! every route) is either
//! 1. **bounded** by its own `hard_bounds`: `min` and `max` both read exactly (numbers; for a
//!    `date_histogram` epoch milliseconds, or strings in its `format` when that is
//!    `epoch_millis` or `strict_date_optional_time` as `YYYY-MM-DDTHH:MM:SS.sssZ`), at most
//!    65,535 (`MAX_BUCKETS`) and the token's `max_buckets` intervals apart (the shortest a calendar
//!    unit can be), and for a `histogram` within `fill`'s 2^40 intervals of 0 (bounds and
//!    offset) — on a backend that makes empty buckets first `fill` may have added them; or
//! 2. its `field` is looked up: `fill`'s walk over the aggregations (the one that adds bounds,
//!    run on every backend and for every token through the cost guard: `add`) names it
//!    ([`HistogramField`], each once per index expression, at most [`MAX_FIELDS`]), the proxy asks
//!    the backend's `_field_caps` about it on the search's index expression and passes the
//!    answer as data ([`FieldTypes`], `Resolution::field_types`), and `authorize` (`decide`)
//!    lets the search through only when the field's type in **every** allowed concrete index
//!    the search reaches is one that never steps ([`NEVER_STEPS`]). A range type, an alias
//!    (`_field_caps` may report the alias rather than its target), any other type, an index the
//!    answer does not describe or reports a failure for: refused (403), the reason naming the
//!    key and the way out (`hard_bounds` `min` and `max`), never a value.
//!
//! A search with no index expression (a point in time) cannot be looked up: such a histogram
//! is refused there (`routes::search`). A `field` naming a wildcard or a comma cannot be asked
//! about (`_field_caps` would expand or split it, where the histogram reads the name as it is),
//! nor one longer than [`MAX_FIELD_LEN`] (the lookup's request line): refused too. A histogram without a `field` string steps through nothing (the backend
//! refuses it; esgate refuses scripts).
//!
//! Invariant: pure; a body without histograms, or whose histograms are bounded, needs nothing
//! looked up; reasons name keys, never values.

use std::sync::Arc;

#[cfg(test)]
use super::json::Obj;
use smallvec::SmallVec;

use super::fill::{epoch_millis, iso_utc, key_steps_hold, HistParams};
use super::json::J;
use super::values::{self, number_of, MAX_BUCKETS};
use crate::Rejection;

/// The mapped types on which neither histogram steps through a range: both backends' `NUMERIC`
/// (`byte` to `double`, `half_float`, `scaled_float`, `unsigned_long`), `DATE` (`date`,
/// `date_nanos`) and `BOOLEAN` values sources take one key per value (`NumericHistogramAggregator`,
/// `DateHistogramAggregator`), and an unmapped field none (`createUnmapped`).
pub const NEVER_STEPS: &[&str] = &[
    "byte",
    "short",
    "integer",
    "long",
    "unsigned_long",
    "float",
    "half_float",
    "double",
    "scaled_float",
    "date",
    "date_nanos",
    "boolean",
    "unmapped",
];

/// A histogram whose field's type `authorize` must know (it is not bounded by its own
/// `hard_bounds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramField {
    /// The field, as the histogram names it.
    pub field: String,
    /// `histogram` or `date_histogram` (for the refusal's reason).
    pub aggregation: &'static str,
}

/// Most distinct fields looked up for the searches of one index expression (each a
/// `_field_caps` field, cached per expression: `upstream::field_types`); more are refused.
pub const MAX_FIELDS: usize = 32;

/// Longest field name looked up (it goes into the lookup's request line); longer is refused.
pub const MAX_FIELD_LEN: usize = 1024;

/// The fields of the histograms of one index expression's searches that are not bounded
/// (`needing_types`), each once, at most [`MAX_FIELDS`]. Must be passed on to `authorize`
/// (through `Upstream::typed_fields`), or the search refused.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramFields {
    /// One in place (a dashboard's searches histogram one time field): no allocation.
    pub(crate) fields: SmallVec<[HistogramField; 1]>,
}

impl HistogramFields {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.field.as_str())
    }

    /// Whether `field` is one of the fields.
    fn contains(&self, field: &str) -> bool {
        self.fields.iter().any(|g| g.field == field)
    }

    /// `field` of histogram `aggregation` added unless there (copied only then); `false` when
    /// it would be one more than [`MAX_FIELDS`].
    fn push(&mut self, field: &str, aggregation: &'static str) -> bool {
        if self.contains(field) {
            return true;
        }
        if self.fields.len() >= MAX_FIELDS {
            return false;
        }
        self.fields.push(HistogramField {
            field: field.to_string(),
            aggregation,
        });
        true
    }

    /// Refused where no lookup is possible (a search on a point in time): `where_` says where.
    pub(crate) fn refuse_unless_empty(self, where_: &str) -> Result<(), Rejection> {
        match self.fields.first() {
            None => Ok(()),
            Some(f) => Err(Rejection::forbidden(format!(
                "[{}] {where_} needs [hard_bounds] with [min] and [max]: esgate cannot look up \
                 the type of its [field], and on a range field the backend would step through \
                 every interval of each document's range ({})",
                f.aggregation,
                way_out()
            ))),
        }
    }
}

/// The fields of `body`'s histograms (a search body's top level) that are not bounded by their
/// own `hard_bounds` within [`MAX_BUCKETS`] and `max_buckets` (the token's, `None`: not
/// limited): `fill`'s walk on a backend that counts empty buckets (adds no bounds).
#[cfg(test)]
pub(crate) fn needing_types(
    body: Obj<'_>,
    max_buckets: Option<u64>,
) -> Result<HistogramFields, Rejection> {
    let how = crate::request::dialect::EmptyBuckets::Counted;
    let mut fields = HistogramFields::default();
    super::fill::plan(body, how, max_buckets, &mut fields)?;
    Ok(fields)
}

/// Histogram `ty` with parameters `p` (which `fill` did not bound) added to `out` unless its
/// own `hard_bounds` bound it; a `field` that cannot be looked up, or one past [`MAX_FIELDS`]
/// (the searches of one expression add to one `out`), refused.
pub(crate) fn add(
    ty: &'static str,
    p: &HistParams<'_>,
    max_buckets: Option<u64>,
    out: &mut HistogramFields,
) -> Result<(), Rejection> {
    if bounded(ty, p, max_buckets) {
        return Ok(());
    }
    add_unbounded(ty, p.field, out)
}

/// Histogram `ty` on `field` (its `field` parameter), which no bounds bound, added to `out`.
pub(crate) fn add_unbounded(
    ty: &'static str,
    field: Option<J<'_>>,
    out: &mut HistogramFields,
) -> Result<(), Rejection> {
    // No field: nothing to step through (the backend refuses it).
    let Some(field) = field.and_then(J::as_str) else {
        return Ok(());
    };
    // Already named (an `_msearch`'s searches of one expression histogram one field): it
    // passed the checks below when it was added (perf28c: the scan was a tenth of the walk).
    if out.contains(field) {
        return Ok(());
    }
    let unaskable = field.bytes().any(|b| b == b'*' || b == b',');
    if unaskable || field.len() > MAX_FIELD_LEN {
        return Err(Rejection::forbidden(format!(
            "[{ty}] [field] with a wildcard or a comma, or longer than {MAX_FIELD_LEN} bytes, \
             needs [hard_bounds] with [min] and [max]: esgate cannot look up its type ({})",
            way_out()
        )));
    }
    if !out.push(field, ty) {
        return Err(too_many());
    }
    Ok(())
}

/// Whether the histogram's own `hard_bounds` bound its steps (see the module).
fn bounded(ty: &str, p: &HistParams<'_>, max_buckets: Option<u64>) -> bool {
    let Some(J::Object(hard)) = p.hard_bounds else {
        return false;
    };
    let most = max_buckets.map_or(MAX_BUCKETS, |m| m.min(MAX_BUCKETS)) as f64;
    let within =
        |min: f64, max: f64, interval: f64| min <= max && (max - min) / interval + 1.0 <= most;
    if ty == "date_histogram" {
        let (1, Some((key, v))) = (p.intervals, p.last_interval) else {
            return false;
        };
        let Ok(interval) = values::date_interval_of(key, v) else {
            return false;
        };
        let format = p.format.and_then(J::as_str);
        let read = |v: J<'_>| match v {
            J::Number(_) => v.as_f64(),
            J::String(_) => match format {
                Some("epoch_millis") => epoch_millis(v),
                Some("strict_date_optional_time") => iso_utc(v),
                _ => None,
            },
            _ => None,
        };
        match (
            hard.get("min").and_then(read),
            hard.get("max").and_then(read),
        ) {
            (Some(min), Some(max)) => within(min, max, interval),
            _ => false,
        }
    } else {
        let Some(interval) = p.interval.and_then(number_of).filter(|i| *i > 0.0) else {
            return false;
        };
        let offset = p.offset.and_then(number_of).unwrap_or(0.0);
        match (
            hard.get("min").and_then(number_of),
            hard.get("max").and_then(number_of),
        ) {
            (Some(min), Some(max)) => {
                within(min, max, interval) && key_steps_hold(min, max, interval, offset)
            }
            _ => false,
        }
    }
}

/// One field's mapped type in each concrete index a `_field_caps` lookup described: the
/// backend's answer as data (the proxy builds it, `upstream::field_types`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldTypes {
    field: String,
    /// (index, its type; `None` when the backend reported a failure for the index, or
    /// described it unclearly), sorted by index, each once.
    by_index: Vec<(String, Option<String>)>,
}

impl FieldTypes {
    /// `field`'s types: `(index, type)` pairs in any order. An index given twice with two
    /// different types (or once without one) is unknown.
    pub fn new(field: impl Into<String>, mut pairs: Vec<(String, Option<String>)>) -> FieldTypes {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut by_index: Vec<(String, Option<String>)> = Vec::with_capacity(pairs.len());
        for (index, ty) in pairs {
            match by_index.last_mut() {
                Some(last) if last.0 == index => {
                    if last.1 != ty {
                        last.1 = None;
                    }
                }
                _ => by_index.push((index, ty)),
            }
        }
        FieldTypes {
            field: field.into(),
            by_index,
        }
    }

    /// The field these types are of.
    pub fn field(&self) -> &str {
        &self.field
    }

    fn entry(&self, index: &str) -> Option<&Option<String>> {
        self.by_index
            .binary_search_by(|(i, _)| i.as_str().cmp(index))
            .ok()
            .map(|at| &self.by_index[at].1)
    }

    /// Whether the lookup described `index` (with a type or a failure).
    pub fn covers(&self, index: &str) -> bool {
        self.entry(index).is_some()
    }

    /// The field's type in `index`, when the lookup gave one.
    pub fn type_in(&self, index: &str) -> Option<&str> {
        self.entry(index)?.as_deref()
    }
}

/// Whether a histogram on a field of type `ty` never steps through a range ([`NEVER_STEPS`]).
pub fn never_steps(ty: &str) -> bool {
    NEVER_STEPS.contains(&ty)
}

/// The decision for one index expression's searches: every field of `fields` must have, in
/// every allowed concrete index of `indices` (what the expression reaches), a type that never
/// steps, as `types` (the lookup's answer for the expression) says.
pub(crate) fn decide(
    fields: &HistogramFields,
    indices: &[String],
    types: Option<&[Arc<FieldTypes>]>,
) -> Result<(), Rejection> {
    for f in &fields.fields {
        let known = types.and_then(|t| t.iter().find(|t| t.field == f.field));
        for index in indices {
            match known.and_then(|t| t.type_in(index)) {
                Some(ty) if never_steps(ty) => {}
                Some(ty) => {
                    return Err(Rejection::forbidden(format!(
                        "[{}] on a [field] of type [{}] in an index this search reaches: the \
                         backend would step through every interval of each document's range \
                         ({})",
                        f.aggregation,
                        crate::error::printable(ty),
                        way_out()
                    )))
                }
                None => {
                    return Err(Rejection::forbidden(format!(
                        "[{}] on a [field] whose type esgate could not learn in an index this \
                         search reaches: on a range field the backend would step through every \
                         interval of each document's range ({})",
                        f.aggregation,
                        way_out()
                    )))
                }
            }
        }
    }
    Ok(())
}

fn too_many() -> Rejection {
    Rejection::forbidden(format!(
        "histograms on more than {MAX_FIELDS} fields of one index expression need their types \
         looked up: {}",
        way_out()
    ))
}

fn way_out() -> String {
    format!(
        "give [hard_bounds] with [min] and [max], numbers (epoch milliseconds for dates) at \
         most {MAX_BUCKETS} intervals apart and within this token's max_buckets"
    )
}

#[cfg(test)]
mod tests;

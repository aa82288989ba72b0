//! Admin API input handling: strict JSON bodies, query strings, field extraction, durations,
//! timestamps and the admin error type.
//!
//! Invariant: everything here is pure (no store, no clock) and turns bad input into an
//! [`AdminError`] that names the offending field but never echoes a submitted value (a value
//! could be a pasted secret). Field names are echoed only when they look like field names.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::store::model::UnixTime;
use crate::store::StoreError;

use super::AdminResponse;

/// The latest instant we accept or print: 9999-12-31T23:59:59Z.
pub(crate) const MAX_TIME: UnixTime = 253_402_300_799;

// === impl AdminError ===

/// A refused admin request: the status, the error `type` and a `reason` safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

impl AdminError {
    pub(crate) fn bad_request(reason: impl Into<String>) -> AdminError {
        AdminError {
            status: 400,
            kind: "illegal_argument_exception",
            reason: reason.into(),
        }
    }

    /// A field-specific 400: `field [filters[1]] ...`.
    pub(crate) fn field(field: &str, problem: &str) -> AdminError {
        AdminError::bad_request(format!("field [{}] {problem}", display_field(field)))
    }

    /// [`AdminError::field`] for a field esgate names itself, its path and key both esgate's
    /// own text (never a client's): shown whatever its length (`limits.max_running_async_searches`
    /// is past [`display_field`]'s 32 characters).
    pub(crate) fn own_field(path: &'static str, key: &'static str, problem: &str) -> AdminError {
        AdminError::bad_request(format!("field [{path}.{key}] {problem}"))
    }

    pub(crate) fn parse(reason: impl Into<String>) -> AdminError {
        AdminError {
            status: 400,
            kind: "parsing_exception",
            reason: reason.into(),
        }
    }

    /// A policy refusal on create or update (400), naming the policy.
    pub(crate) fn policy(policy: &str, reason: &str) -> AdminError {
        AdminError::bad_request(format!("policy {policy}: {reason}"))
    }

    pub(crate) fn not_found(what: &str) -> AdminError {
        AdminError {
            status: 404,
            kind: "resource_not_found_exception",
            reason: format!("{what} not found"),
        }
    }

    pub(crate) fn already_exists(reason: impl Into<String>) -> AdminError {
        AdminError {
            status: 409,
            kind: "resource_already_exists_exception",
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> AdminError {
        AdminError {
            status: 409,
            kind: "illegal_state_exception",
            reason: reason.into(),
        }
    }

    pub(crate) fn method_not_allowed() -> AdminError {
        AdminError {
            status: 405,
            kind: "method_not_allowed_exception",
            reason: "this method is not allowed on this admin endpoint".into(),
        }
    }

    /// `audit.on_failure = "closed"` and the audit log cannot be written: nothing was changed
    /// (503; the admin listener adds `Retry-After`).
    pub(crate) fn audit_unavailable() -> AdminError {
        AdminError {
            status: 503,
            kind: "unavailable_exception",
            reason: crate::audit::UNWRITABLE.into(),
        }
    }

    pub(crate) fn internal(reason: &str) -> AdminError {
        AdminError {
            status: 500,
            kind: "store_exception",
            reason: reason.into(),
        }
    }

    pub(crate) fn into_response(self) -> AdminResponse {
        AdminResponse {
            status: self.status,
            body: Some(crate::es::error::value(
                self.status,
                self.kind,
                &self.reason,
            )),
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.kind, self.reason)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match e {
            // The cluster store cannot be reached: the change was not made (503, retry later).
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "Admin change refused: the token store is unavailable");
                AdminError {
                    status: 503,
                    kind: "unavailable_exception",
                    reason: "the token store cluster is unavailable; nothing was changed, retry later"
                        .into(),
                }
            }
            // Other replicas kept changing the same records: retried, then given up.
            StoreError::Conflict => AdminError::conflict(
                "the record was changed concurrently through another replica; nothing was changed, retry",
            ),
            _ => {
                // The store error names files; it goes to the log, the client gets a fixed phrase.
                tracing::error!(error = %e, "Admin change could not be persisted");
                AdminError::internal("the change could not be made durable; nothing was changed")
            }
        }
    }
}

/// A field name as we may show it: only when it looks like one (letters, digits, `_.-[]`, at
/// most 32 characters, not starting with the secret prefix `esg_`). Token secrets are 53
/// characters with that prefix, so a secret pasted as a field name or query parameter is never
/// echoed back.
pub(crate) fn display_field(name: &str) -> &str {
    let plausible = !name.is_empty()
        && name.len() <= 32
        && !name.to_ascii_lowercase().starts_with("esg_")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'));
    if plausible {
        name
    } else {
        "<unprintable>"
    }
}

// === strict JSON ===

/// A JSON value parsed with duplicate keys rejected at every level (serde_json would keep the
/// last one silently, so `{"ip_filter":"a","ip_filter":null}` would be ambiguous).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// Parses a request body that must be one JSON object (duplicate keys rejected).
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AdminError::parse(
            "request body is required (a JSON object)",
        ));
    }
    match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(AdminError::parse("request body must be a JSON object")),
        Err(_) => Err(AdminError::parse(
            "request body must be valid JSON (UTF-8, no duplicate keys)",
        )),
    }
}

/// For requests that take no body: empty, whitespace or `{}` are accepted.
pub(crate) fn expect_no_body(body: &[u8]) -> Result<(), AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let map = parse_object(body)?;
    match map.keys().next() {
        None => Ok(()),
        Some(k) => Err(AdminError::field(
            k,
            "is not accepted: this request takes no body",
        )),
    }
}

/// Rejects fields not in `allowed` (400 naming the first one in key order).
pub(crate) fn reject_unknown(
    map: &Map<String, Value>,
    allowed: &[&str],
    read_only: &[&str],
) -> Result<(), AdminError> {
    for key in map.keys() {
        if read_only.contains(&key.as_str()) {
            return Err(AdminError::field(key, "cannot be changed"));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(AdminError::field(key, "is unknown"));
        }
    }
    Ok(())
}

/// An optional string field: `Ok(None)` when absent; `null` or another type is an error.
pub(crate) fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, AdminError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AdminError::field(key, "must be a string")),
    }
}

/// A string field that may also be `null`: absent → `None`, null → `Some(None)`.
pub(crate) fn nullable_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<Option<&'a str>>, AdminError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s))),
        Some(_) => Err(AdminError::field(key, "must be a string or null")),
    }
}

/// An array field's items.
pub(crate) fn opt_array<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Vec<Value>>, AdminError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(AdminError::field(key, "must be an array")),
    }
}

/// The names of the fields an update changed, from `(name, differs)` pairs, in order (for the
/// audit record of a PATCH).
pub(crate) fn changed_fields(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

/// What [`printable`] refuses, for error messages.
pub(crate) const NOT_PRINTABLE: &str = "must not contain control, bidi or zero-width characters";

/// True when the text has no control characters (C0, DEL, C1: NUL, ESC, newlines), no bidi
/// controls (which make a name read differently from what it is: `U+202A..U+202E`,
/// `U+2066..U+2069`, `U+200E`, `U+200F`, `U+061C`) and no invisible characters (zero-width
/// spaces and joiners, word joiner and invisible operators, BOM, soft hyphen, line and
/// paragraph separators). Names and filter values are shown in listings, logs and terminals,
/// and compared by eye: two that look the same must be the same.
pub(crate) fn printable(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || is_invisible_or_bidi(c))
}

/// Refuses a text of more than `max` characters, then one that is not [`printable`], naming
/// it `field` (names, descriptions and filter fields and values all answer alike).
pub(crate) fn check_text(field: &str, text: &str, max: usize) -> Result<(), AdminError> {
    if text.chars().count() > max {
        return Err(AdminError::field(
            field,
            &format!("must be at most {max} characters"),
        ));
    }
    if !printable(text) {
        return Err(AdminError::field(field, NOT_PRINTABLE));
    }
    Ok(())
}

fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

// === durations and timestamps ===

/// Why an API duration was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadDuration {
    Malformed,
    TooLarge,
}

/// Parses `90s`, `15m`, `24h`, `7d` into seconds. Positive only; no overflow.
pub(crate) fn parse_duration(s: &str) -> Result<i64, BadDuration> {
    // One grammar for config and API (`crate::duration`); the API adds: no surrounding
    // whitespace, whole seconds, more than zero.
    if s.trim() != s {
        return Err(BadDuration::Malformed);
    }
    let d = crate::duration::parse(s).map_err(|e| match e {
        crate::duration::DurationError::TooLarge => BadDuration::TooLarge,
        crate::duration::DurationError::Malformed(_) => BadDuration::Malformed,
    })?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(BadDuration::Malformed);
    }
    i64::try_from(d.as_secs()).map_err(|_| BadDuration::TooLarge)
}

/// Formats seconds as the largest exact unit (`7d`, `24h`, `90s`).
pub(crate) fn format_duration(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Parses an RFC 3339 timestamp whose offset is UTC (`Z` or `+00:00`).
pub(crate) fn parse_rfc3339_utc(s: &str) -> Option<UnixTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    (t.offset() == UtcOffset::UTC).then(|| t.unix_timestamp())
}

/// Formats a Unix time as RFC 3339 UTC (`2026-01-31T12:00:00Z`).
pub(crate) fn format_time(t: UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// `format_time` as JSON, `null` for `None`.
pub(crate) fn time_value(t: Option<UnixTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_time(t)))
}

// === query strings ===

/// Decodes a query string (`&`-separated, percent-decoded, `+` as space). Unknown or repeated
/// parameters are refused: nothing is silently ignored.
pub(crate) fn parse_query(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut out = BTreeMap::new();
    let Some(q) = query else { return Ok(out) };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode_component(k)
            .ok_or_else(|| AdminError::bad_request("query string is not valid UTF-8"))?;
        let v = decode_component(v)
            .ok_or_else(|| AdminError::bad_request("query string is not valid UTF-8"))?;
        if !allowed.contains(&k.as_str()) {
            return Err(AdminError::bad_request(format!(
                "unknown query parameter [{}]",
                display_field(&k)
            )));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(AdminError::bad_request(format!(
                "query parameter [{}] is repeated",
                display_field(&k)
            )));
        }
    }
    Ok(out)
}

fn decode_component(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A boolean query flag: `true`, `false`, or empty (= true, as in ES).
pub(crate) fn query_bool(q: &BTreeMap<String, String>, key: &str) -> Result<bool, AdminError> {
    match q.get(key).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(_) => Err(AdminError::bad_request(format!(
            "query parameter [{key}] must be true or false"
        ))),
    }
}

/// A non-negative integer query parameter with a maximum.
pub(crate) fn query_usize(
    q: &BTreeMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, AdminError> {
    let Some(v) = q.get(key) else {
        return Ok(default);
    };
    let ok = !v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit());
    match v.parse::<usize>() {
        Ok(n) if ok && n <= max => Ok(n),
        _ => Err(AdminError::bad_request(format!(
            "query parameter [{key}] must be an integer from 0 to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_object_accepts_objects_and_rejects_everything_else() {
        assert_eq!(
            Value::Object(parse_object(br#"{"a":1,"b":{"c":[1,"x",null]}}"#).unwrap()),
            json!({"a":1,"b":{"c":[1,"x",null]}})
        );
        for bad in [
            &b""[..],
            b"  ",
            b"[]",
            b"\"x\"",
            b"12",
            b"null",
            b"{",
            b"{\"a\":1}x",
            b"\xff",
            br#"{"a":1,"a":2}"#,
            br#"{"a":{"b":1,"b":1}}"#,
            br#"{"a":[{"b":1,"b":1}]}"#,
        ] {
            let e = parse_object(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad:?}");
            assert_eq!(e.kind, "parsing_exception");
        }
    }

    #[test]
    fn printable_refuses_control_bidi_and_invisible_characters() {
        for good in [
            "tenant a",
            "Équipe",
            "日本語",
            "a-b_c.d",
            "x\u{00A0}y",
            "שלום",
        ] {
            assert!(printable(good), "{good:?}");
        }
        for bad in [
            "a\u{0}b",       // NUL
            "a\u{1b}[31m",   // ESC
            "a\nb",          // newline
            "a\u{7f}",       // DEL
            "a\u{85}",       // C1 next line
            "a\u{202E}gpj",  // right-to-left override
            "a\u{2066}b",    // left-to-right isolate
            "a\u{200F}",     // right-to-left mark
            "a\u{061C}",     // Arabic letter mark
            "ad\u{200B}min", // zero-width space
            "a\u{200D}b",    // zero-width joiner
            "a\u{2060}b",    // word joiner
            "\u{FEFF}a",     // BOM
            "a\u{00AD}b",    // soft hyphen
            "a\u{2028}b",    // line separator
        ] {
            assert!(!printable(bad), "{bad:?}");
        }
    }

    #[test]
    fn check_text_counts_characters_and_refuses_length_before_printability() {
        assert!(
            check_text("name", "日本", 2).is_ok(),
            "two characters, six bytes"
        );
        assert!(check_text("name", "", 2).is_ok());
        let reason = |r: Result<(), AdminError>| r.unwrap_err().reason;
        assert_eq!(
            reason(check_text("name", "日本語", 2)),
            "field [name] must be at most 2 characters"
        );
        assert_eq!(
            reason(check_text("filters[0].value", "a\u{202E}", 2)),
            format!("field [filters[0].value] {NOT_PRINTABLE}")
        );
        assert_eq!(
            reason(check_text("name", "a\nbc", 2)),
            "field [name] must be at most 2 characters"
        );
    }

    #[test]
    fn errors_have_the_elasticsearch_shape() {
        let r = AdminError::field("filters[1]", "is unknown").into_response();
        assert_eq!(r.status, 400);
        let reason = "field [filters[1]] is unknown";
        assert_eq!(
            r.body.unwrap(),
            json!({"error":{"root_cause":[{"type":"illegal_argument_exception","reason":reason}],
                "type":"illegal_argument_exception","reason":reason},"status":400})
        );
    }

    #[test]
    fn display_field_hides_values_that_do_not_look_like_field_names() {
        assert_eq!(display_field("expires_in"), "expires_in");
        assert_eq!(display_field("filters[2]"), "filters[2]");
        assert_eq!(display_field("a b"), "<unprintable>");
        assert_eq!(display_field(&"x".repeat(32)), "x".repeat(32));
        assert_eq!(display_field(&"x".repeat(33)), "<unprintable>");
        assert_eq!(display_field("esg_abc"), "<unprintable>");
        assert_eq!(display_field("ESG_abc"), "<unprintable>");
        assert_eq!(display_field("esg_abc/def+=="), "<unprintable>");
        assert_eq!(display_field(""), "<unprintable>");
    }

    #[test]
    fn expect_no_body_accepts_empty_and_empty_object_only() {
        assert!(expect_no_body(b"").is_ok());
        assert!(expect_no_body(b" \n").is_ok());
        assert!(expect_no_body(b"{}").is_ok());
        assert_eq!(expect_no_body(b"{\"a\":1}").unwrap_err().status, 400);
        assert_eq!(expect_no_body(b"[]").unwrap_err().status, 400);
    }

    #[test]
    fn durations_parse_in_each_unit_and_reject_the_rest() {
        let cases: &[(&str, Option<i64>)] = &[
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("24h", Some(86_400)),
            ("7d", Some(604_800)),
            ("0s", None),
            ("0d", None),
            ("-5m", None),
            ("+5m", None),
            ("5", None),
            ("m", None),
            ("", None),
            ("5w", None),
            ("1.5h", None),
            (" 5m", None),
            ("5M", None),
            ("36500d", Some(36_500 * 86_400)),
            ("36501d", None),
            ("9999999999999d", None),
            ("99999999999999999999d", None),
            ("1500ms", None),
            ("2000ms", Some(2)),
            ("5é", None),
        ];
        assert_eq!(parse_duration("36501d"), Err(BadDuration::TooLarge));
        assert_eq!(parse_duration("5w"), Err(BadDuration::Malformed));
        for (input, want) in cases {
            assert_eq!(parse_duration(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn format_duration_uses_the_largest_exact_unit() {
        assert_eq!(format_duration(604_800), "7d");
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(900), "15m");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn timestamps_round_trip_in_utc_and_other_offsets_are_rejected() {
        assert_eq!(
            parse_rfc3339_utc("2026-01-31T12:00:00Z"),
            Some(1_769_860_800)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-01-31T12:00:00+00:00"),
            Some(1_769_860_800)
        );
        assert_eq!(parse_rfc3339_utc("2026-01-31T12:00:00+01:00"), None);
        assert_eq!(parse_rfc3339_utc("2026-01-31"), None);
        assert_eq!(parse_rfc3339_utc("yesterday"), None);
        assert_eq!(format_time(1_769_860_800), "2026-01-31T12:00:00Z");
        assert_eq!(format_time(MAX_TIME), "9999-12-31T23:59:59Z");
        assert_eq!(time_value(None), Value::Null);
    }

    #[test]
    fn query_strings_decode_and_refuse_unknown_or_repeated_parameters() {
        let q = parse_query(Some("name=acme+dash%2Fb&from=2&"), &["name", "from"]).unwrap();
        assert_eq!(q.get("name").unwrap(), "acme dash/b");
        assert_eq!(q.get("from").unwrap(), "2");
        assert!(parse_query(None, &[]).unwrap().is_empty());
        assert_eq!(
            parse_query(Some("nope=1"), &["name"]).unwrap_err().reason,
            "unknown query parameter [nope]"
        );
        assert_eq!(
            parse_query(Some("name=a&name=b"), &["name"])
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_query(Some("name=%ff"), &["name"]).unwrap_err().status,
            400
        );
    }

    #[test]
    fn query_numbers_and_flags_are_checked() {
        let q = parse_query(
            Some("size=10000&from=0&x=true&y=&z=no"),
            &["size", "from", "x", "y", "z"],
        )
        .unwrap();
        assert_eq!(query_usize(&q, "size", 100, 10_000).unwrap(), 10_000);
        assert_eq!(query_usize(&q, "from", 5, usize::MAX).unwrap(), 0);
        assert_eq!(query_usize(&q, "absent", 100, 10_000).unwrap(), 100);
        assert!(query_bool(&q, "x").unwrap());
        assert!(query_bool(&q, "y").unwrap());
        assert!(!query_bool(&q, "absent").unwrap());
        assert!(query_bool(&q, "z").is_err());
        for bad in [
            "size=10001",
            "size=-1",
            "size=",
            "size=1e3",
            "size=99999999999999999999",
        ] {
            let q = parse_query(Some(bad), &["size"]).unwrap();
            assert!(query_usize(&q, "size", 100, 10_000).is_err(), "{bad}");
        }
    }

    #[test]
    fn reject_unknown_names_the_field_and_read_only_fields_differently() {
        let map = parse_object(br#"{"name":"a","colour":"red"}"#).unwrap();
        assert_eq!(
            reject_unknown(&map, &["name"], &[]).unwrap_err().reason,
            "field [colour] is unknown"
        );
        let map = parse_object(br#"{"id":"x"}"#).unwrap();
        assert_eq!(
            reject_unknown(&map, &["name"], &["id"]).unwrap_err().reason,
            "field [id] cannot be changed"
        );
        let map = parse_object(br#"{"name":"a"}"#).unwrap();
        assert!(reject_unknown(&map, &["name"], &[]).is_ok());
    }

    #[test]
    fn typed_getters_reject_wrong_types() {
        let map = parse_object(br#"{"s":"x","n":1,"z":null,"a":[1]}"#).unwrap();
        assert_eq!(opt_str(&map, "s").unwrap(), Some("x"));
        assert_eq!(opt_str(&map, "missing").unwrap(), None);
        assert!(opt_str(&map, "n").is_err());
        assert!(opt_str(&map, "z").is_err());
        assert_eq!(nullable_str(&map, "z").unwrap(), Some(None));
        assert_eq!(nullable_str(&map, "s").unwrap(), Some(Some("x")));
        assert!(nullable_str(&map, "n").is_err());
        assert_eq!(opt_array(&map, "a").unwrap().map(Vec::len), Some(1));
        assert!(opt_array(&map, "s").is_err());
    }
}

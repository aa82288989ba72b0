//! Per-token limits as the admin API and the config write them (`limits` in token bodies,
//! `[policies.limits]` for the defaults): one parser and one view, so both accept exactly the
//! same keys and ranges.
//!
//! ```json
//! {"requests_per_second": 50, "burst": 100, "max_concurrent": 10, "max_open_scrolls": 20,
//!  "max_open_pits": 10, "max_running_async_searches": 30, "max_msearch_searches": 100,
//!  "max_size": 1000,
//!  "max_buckets": 10000, "search_timeout": "30s"}
//! ```
//! Every key is optional; `null` is the same as absent (the `[policies]` default applies).

use serde_json::Value;

use crate::store::model::TokenLimits;

use super::api::Limits;
use super::input::AdminError;

/// The keys of a `limits` object, in the order the view shows them.
pub const KEYS: &[&str] = &[
    "requests_per_second",
    "burst",
    "max_concurrent",
    "max_open_scrolls",
    "max_open_pits",
    "max_running_async_searches",
    "max_msearch_searches",
    "max_size",
    "max_buckets",
    "search_timeout",
];

/// Largest accepted value of each numeric limit (far above anything useful; keeps the
/// arithmetic of the limiter and the cost guards in range).
const MAX_RATE: u64 = 1_000_000;
const MAX_CONCURRENT: u64 = 1_000_000;
/// Scrolls or points in time held open at once.
const MAX_OPEN_CONTEXTS: u64 = 1_000_000;
/// Searches in one `_msearch`.
const MAX_MSEARCH_SEARCHES: u64 = 1_000_000;
const MAX_HITS: u64 = 1_000_000_000;
/// Longest `search_timeout`: one day.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// Parses a `limits` value (`null`: none). `path` prefixes field names in errors
/// (`limits` in the API, `policies.limits` in the config).
pub fn parse(v: &Value, path: &'static str) -> Result<TokenLimits, AdminError> {
    let map = match v {
        Value::Null => return Ok(TokenLimits::default()),
        Value::Object(m) => m,
        _ => return Err(AdminError::field(path, "must be an object")),
    };
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(AdminError::field(&format!("{path}.{k}"), "is unknown"));
    }
    // Named whole (`own_field`): `policies.limits.max_running_async_searches` is longer than
    // a client's field name may be to be shown.
    let int = |key: &'static str, max: u64| -> Result<Option<u64>, AdminError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(AdminError::own_field(
                    path,
                    key,
                    &format!("must be an integer between 1 and {max}"),
                )),
            },
        }
    };
    let small = |key: &'static str, max: u64| -> Result<Option<u32>, AdminError> {
        Ok(int(key, max)?.and_then(|n| u32::try_from(n).ok()))
    };
    let search_timeout_ms = match map.get("search_timeout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(timeout(v).ok_or_else(|| {
            AdminError::field(
                &format!("{path}.search_timeout"),
                "must be a duration between 1ms and 1d, such as 500ms, 30s or 2m",
            )
        })?),
    };
    Ok(TokenLimits {
        requests_per_second: small("requests_per_second", MAX_RATE)?,
        burst: small("burst", MAX_RATE)?,
        max_concurrent: small("max_concurrent", MAX_CONCURRENT)?,
        max_open_scrolls: small("max_open_scrolls", MAX_OPEN_CONTEXTS)?,
        max_open_pits: small("max_open_pits", MAX_OPEN_CONTEXTS)?,
        max_running_async_searches: small("max_running_async_searches", MAX_OPEN_CONTEXTS)?,
        max_msearch_searches: small("max_msearch_searches", MAX_MSEARCH_SEARCHES)?,
        max_size: int("max_size", MAX_HITS)?,
        max_buckets: int("max_buckets", MAX_HITS)?,
        search_timeout_ms,
    })
}

fn timeout(v: &Value) -> Option<u64> {
    let text = v.as_str()?;
    if text.trim() != text {
        return None;
    }
    let d = crate::duration::parse(text).ok()?;
    let ms = u64::try_from(d.as_millis()).ok()?;
    (1..=MAX_TIMEOUT_MS).contains(&ms).then_some(ms)
}

/// A timeout in milliseconds as the API writes it (`30s`, `1500ms`).
pub fn format_timeout(ms: u64) -> String {
    if !ms.is_multiple_of(1_000) {
        format!("{ms}ms")
    } else {
        super::input::format_duration(ms / 1_000)
    }
}

/// The limits as the API shows them: only the ones set.
pub fn view(l: &TokenLimits) -> Limits {
    Limits {
        requests_per_second: l.requests_per_second,
        burst: l.burst,
        max_concurrent: l.max_concurrent,
        max_open_scrolls: l.max_open_scrolls,
        max_open_pits: l.max_open_pits,
        max_running_async_searches: l.max_running_async_searches,
        max_msearch_searches: l.max_msearch_searches,
        max_size: l.max_size,
        max_buckets: l.max_buckets,
        search_timeout: l.search_timeout_ms.map(format_timeout),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_key_parses_and_views_back() {
        let body = json!({"requests_per_second": 50, "burst": 100, "max_concurrent": 10,
                          "max_open_scrolls": 20, "max_open_pits": 10, "max_running_async_searches": 30,
                          "max_msearch_searches": 100, "max_size": 1000, "max_buckets": 10000, "search_timeout": "30s"});
        let l = parse(&body, "limits").unwrap();
        assert_eq!(
            l,
            TokenLimits {
                requests_per_second: Some(50),
                burst: Some(100),
                max_concurrent: Some(10),
                max_open_scrolls: Some(20),
                max_open_pits: Some(10),
                max_running_async_searches: Some(30),
                max_msearch_searches: Some(100),
                max_size: Some(1000),
                max_buckets: Some(10000),
                search_timeout_ms: Some(30_000),
            }
        );
        assert_eq!(serde_json::to_value(view(&l)).unwrap(), body);
        assert_eq!(
            parse(&Value::Null, "limits").unwrap(),
            TokenLimits::default()
        );
        assert_eq!(parse(&json!({}), "limits").unwrap(), TokenLimits::default());
        assert_eq!(
            serde_json::to_value(view(
                &parse(&json!({"search_timeout": "1500ms", "max_size": null}), "l").unwrap()
            ))
            .unwrap(),
            json!({"search_timeout": "1500ms"})
        );
    }

    #[test]
    fn bad_limits_name_the_field() {
        for (body, field) in [
            (json!([]), "limits"),
            (json!({"rate": 1}), "limits.rate"),
            (
                json!({"requests_per_second": 0}),
                "limits.requests_per_second",
            ),
            (
                json!({"requests_per_second": -1}),
                "limits.requests_per_second",
            ),
            (json!({"burst": 1.5}), "limits.burst"),
            (json!({"max_concurrent": "3"}), "limits.max_concurrent"),
            (json!({"max_open_scrolls": 0}), "limits.max_open_scrolls"),
            (
                json!({"max_open_scrolls": 1_000_001}),
                "limits.max_open_scrolls",
            ),
            (json!({"max_open_scrolls": -5}), "limits.max_open_scrolls"),
            (json!({"max_open_pits": 0}), "limits.max_open_pits"),
            (json!({"max_open_pits": 1_000_001}), "limits.max_open_pits"),
            (json!({"max_open_pits": "3"}), "limits.max_open_pits"),
            (
                json!({"max_running_async_searches": 0}),
                "limits.max_running_async_searches",
            ),
            (
                json!({"max_running_async_searches": 1_000_001}),
                "limits.max_running_async_searches",
            ),
            (
                json!({"max_running_async_searches": -1}),
                "limits.max_running_async_searches",
            ),
            (
                json!({"max_msearch_searches": 0}),
                "limits.max_msearch_searches",
            ),
            (
                json!({"max_msearch_searches": 1_000_001}),
                "limits.max_msearch_searches",
            ),
            (
                json!({"max_msearch_searches": "20"}),
                "limits.max_msearch_searches",
            ),
            (json!({"max_size": 0}), "limits.max_size"),
            (
                json!({"max_buckets": 10_000_000_000u64}),
                "limits.max_buckets",
            ),
            (json!({"search_timeout": "0s"}), "limits.search_timeout"),
            (json!({"search_timeout": "2d"}), "limits.search_timeout"),
            (json!({"search_timeout": 30}), "limits.search_timeout"),
            (json!({"search_timeout": " 30s"}), "limits.search_timeout"),
        ] {
            let e = parse(&body, "limits").unwrap_err();
            let text = format!("{:?}", e.into_response());
            assert!(text.contains(field), "{body}: {text}");
        }
    }
}

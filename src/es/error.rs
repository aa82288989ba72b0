//! The only writer of Elasticsearch-style error bodies:
//! `{"error":{"root_cause":[{"type":T,"reason":R}],"type":T,"reason":R},"status":N}`, and of
//! the one sanitiser for request-derived names (keys, parameter names) shown in reasons.

use serde_json::json;

/// Serialises an Elasticsearch-style error body. `reason` must not echo request content.
pub fn body(status: u16, es_type: &str, reason: &str) -> Vec<u8> {
    let v = json!({
        "error": {
            "root_cause": [{ "type": es_type, "reason": reason }],
            "type": es_type,
            "reason": reason,
        },
        "status": status,
    });
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

/// A request-derived name (body key, parameter name) made safe to show in a reason: printable
/// ASCII only (anything else becomes `?`), at most 64 characters. Values are never shown.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_elasticsearch_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&body(403, "security_exception", "no")).unwrap();
        assert_eq!(v["status"], 403);
        assert_eq!(v["error"]["type"], "security_exception");
        assert_eq!(v["error"]["root_cause"][0]["reason"], "no");
    }

    #[test]
    fn printable_keeps_short_ascii_and_masks_the_rest() {
        assert_eq!(printable("aggs"), "aggs");
        assert_eq!(printable("a b\u{0}\u{e9}"), "a?b??");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}

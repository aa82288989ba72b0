//! The only writer of Elasticsearch-style error bodies, for the data listener and the admin
//! listener alike:
//! `{"error":{"root_cause":[{"type":T,"reason":R}],"type":T,"reason":R},"status":N}`, and of
//! the one sanitiser for request-derived names (keys, parameter names) shown in reasons.

use serde_json::json;

/// An Elasticsearch-style error body. `reason` must not echo request content.
pub fn value(status: u16, es_type: &str, reason: &str) -> serde_json::Value {
    json!({
        "error": {
            "root_cause": [{ "type": es_type, "reason": reason }],
            "type": es_type,
            "reason": reason,
        },
        "status": status,
    })
}

/// [`value`], serialised.
pub fn body(status: u16, es_type: &str, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&value(status, es_type, reason)).expect("a JSON value serialises")
}

/// A request-derived name (body key, parameter name) made safe to show in a reason: printable
/// ASCII only (anything else becomes `?`), at most 64 characters. Values are never shown.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// What a backend's failure answer (5xx) is: `None` when the body is not an Elasticsearch error
/// (an HTML page from a load balancer, plain text, truncated JSON); otherwise the error's
/// `type`, kept only when it is a plain identifier (`[a-z_][a-z0-9_.]*`, at most 64 bytes) so
/// that nothing else of the backend's answer (its reason may quote documents, scripts or other
/// tenants' index names) reaches a client.
pub fn backend_error_type(body: &[u8]) -> Option<Option<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let error = obj.get("error")?;
    obj.get("status")?.as_u64()?;
    let kind = match error {
        serde_json::Value::Object(e) => e.get("type").and_then(|t| t.as_str()),
        serde_json::Value::String(_) => None,
        _ => return None,
    };
    Some(kind.filter(|k| is_plain_identifier(k)).map(str::to_owned))
}

pub(crate) fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && s.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_failures_are_recognised_and_only_plain_types_kept() {
        let cases: [(&[u8], Option<Option<&str>>); 9] = [
            (
                br#"{"error":{"type":"search_phase_execution_exception","reason":"x"},"status":503}"#,
                Some(Some("search_phase_execution_exception")),
            ),
            (
                br#"{"error":{"type":"Secret <b>doc</b>","reason":"x"},"status":500}"#,
                Some(None),
            ),
            (br#"{"error":{"reason":"x"},"status":500}"#, Some(None)),
            (br#"{"error":"plain text error","status":500}"#, Some(None)),
            (b"<html><body><h1>502 Bad Gateway</h1></body></html>", None),
            (b"", None),
            (br#"{"error":{"type":"x"}}"#, None),
            (br#"{"status":500}"#, None),
            (br#"{"error":{"type":"x"},"status":500"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                backend_error_type(body),
                expected.map(|k| k.map(str::to_owned)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(!is_plain_identifier(&"a".repeat(65)));
        assert!(!is_plain_identifier("Exception"));
    }

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

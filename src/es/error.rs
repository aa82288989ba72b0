//! The only writer of Elasticsearch-style error bodies:
//! `{"error":{"root_cause":[{"type":T,"reason":R}],"type":T,"reason":R},"status":N}`.

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
}

//! Wall-clock helpers. The request path reads the clock here and passes `now` down.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::model::UnixTime;

pub fn now() -> UnixTime {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 in UTC, e.g. `2026-11-24T09:00:00Z`.
pub fn rfc3339(t: UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

//! Wall-clock helpers. The request path reads the clock here and passes `now` down.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::model::UnixTime;

/// The Unix time in whole seconds (floored), as `OffsetDateTime::now_utc().unix_timestamp()`
/// gives it, read without building a calendar date (issue 10: the date `time` builds and takes
/// apart again was most of the clock read's cost, twice per request).
pub fn now() -> UnixTime {
    unix_seconds(std::time::SystemTime::now())
}

/// Whole seconds since the Unix epoch, floored (a time before it is negative).
fn unix_seconds(t: std::time::SystemTime) -> UnixTime {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as UnixTime,
        Err(e) => {
            let before = e.duration();
            -(before.as_secs() as UnixTime) - UnixTime::from(before.subsec_nanos() > 0)
        }
    }
}

/// RFC 3339 in UTC, e.g. `2026-11-24T09:00:00Z`.
pub fn rfc3339(t: UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn seconds_are_what_time_gave() {
        let offsets = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_700_000_000_123_456_789,
            4_102_444_800_000_000_000,
        ];
        for nanos in offsets {
            for t in [
                UNIX_EPOCH + Duration::from_nanos(nanos),
                UNIX_EPOCH - Duration::from_nanos(nanos),
            ] {
                assert_eq!(
                    unix_seconds(t),
                    OffsetDateTime::from(t).unix_timestamp(),
                    "{t:?}"
                );
            }
        }
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let now = now();
        let after = OffsetDateTime::from(SystemTime::now()).unix_timestamp();
        assert!(before <= now && now <= after);
    }
}

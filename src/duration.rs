//! Human durations as used in the config and the admin API: `500ms`, `90s`, `15m`, `24h`, `7d`.

use std::time::Duration;

/// Why a duration was refused; `Display` is the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("the duration is too large (at most 100 years)")]
    TooLarge,
}

/// Parses `<positive integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed(
            "a duration needs a unit: ms, s, m, h or d (e.g. 90s, 15m, 24h, 7d)",
        ))?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::Malformed(
            "a duration starts with a whole number (e.g. 90s, 15m, 24h, 7d)",
        ));
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(DurationError::Malformed(
                "unknown duration unit: use ms, s, m, h or d",
            ))
        }
    };
    let ms = n
        .checked_mul(per_unit_ms)
        .filter(|ms| *ms <= 100 * 365 * 86_400_000)
        .ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "-5s",
            "1.5h",
            "99999999999999999999d",
            "1 h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

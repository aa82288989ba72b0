//! An `all` token's request body is read for esgate's token store index
//! (`indices::store_guard::request_reaches`) one value at a time (session 11 review: every
//! line of an NDJSON body was parsed before any was checked, so a `_bulk` of 4 MB held some
//! 160 MB of trees at once, and one of 100 MB gigabytes).
//!
//! Its own test binary: it reads the process's peak resident memory (`VmHWM`, Linux), which
//! another test running beside it would raise.

use esgate_es::indices::store_guard::request_reaches;
use esgate_es::memory::{Meter, Refused};

/// The process's peak resident memory so far, in KiB (`None` where `/proc` has no such line).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_bulk_body_is_checked_a_line_at_a_time() {
    let doc = format!(r#"{{"n":[{}]}}"#, vec!["1"; 1000].join(","));
    let body = format!("{{\"index\":{{\"_index\":\"logs\"}}}}\n{doc}\n").repeat(2000);
    let Some(before) = peak_kib() else {
        return;
    };
    // A budget that holds one line's tree, not two: each line's claim is returned once it is
    // checked.
    let one_line = |total: usize| {
        if total <= 1 << 20 {
            Ok(())
        } else {
            Err(Refused::TooLarge)
        }
    };
    let meter = Meter::new(&one_line);
    assert_eq!(
        request_reaches(".esgate", "/_bulk", None, body.as_bytes(), &meter),
        Ok(None)
    );
    assert_eq!(meter.used(), 0);
    let grown = peak_kib().unwrap_or(before) - before;
    assert!(
        grown < 32 * 1024,
        "checking a {} KB body raised the peak by {grown} KB",
        body.len() / 1024
    );
}

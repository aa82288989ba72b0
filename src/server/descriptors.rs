//! The open-files limit (issue #9 item 1): every connection holds a descriptor, so the limit
//! must cover both listeners' `max_connections` plus what esgate needs besides (backend
//! connections, the store, the audit log). At start the soft limit is raised to the hard limit
//! when that helps, and a configuration that cannot fit is refused with a clear message instead
//! of failing later with "Too many open files" on both listeners.

use crate::config::Limits;

/// Descriptors esgate needs besides client connections: backend connections, the store, the
/// audit log, the runtime.
pub const RESERVED_DESCRIPTORS: u64 = 1024;
/// Descriptors each worker thread holds besides its connections: its runtime's event queue
/// and wake-up descriptor, its handle of the data listener, a spare.
pub const PER_WORKER_DESCRIPTORS: u64 = 4;

/// Descriptors the configuration needs.
pub fn needed(limits: &Limits) -> u64 {
    (limits.max_connections as u64)
        .saturating_add(limits.admin_max_connections as u64)
        .saturating_add(reserved(limits))
}

/// Descriptors needed besides client connections.
fn reserved(limits: &Limits) -> u64 {
    let workers = crate::server::workers::count(limits.workers) as u64;
    RESERVED_DESCRIPTORS.saturating_add(workers.saturating_mul(PER_WORKER_DESCRIPTORS))
}

/// Raises the open-files soft limit as far as needed (up to the hard limit) and checks that the
/// configuration fits. Returns the limit in force, or why esgate must not start.
pub fn prepare(limits: &Limits) -> Result<Option<u64>, String> {
    let needed = needed(limits);
    let (soft, hard) = current();
    let fits = |limit: Option<u64>| limit.is_none_or(|l| l >= needed);
    if fits(soft) {
        return Ok(soft);
    }
    // Raise to the hard limit (not just to `needed`: the margin is an estimate).
    if let Err(e) = raise(hard) {
        tracing::debug!(error = %e, "Cannot raise the open-files limit");
    }
    let (soft, _) = current();
    if fits(soft) {
        return Ok(soft);
    }
    Err(format!(
        "the open-files limit ({}) is too low for listen.max_connections ({}) + \
         listen.admin_max_connections ({}) + {} reserved descriptors ({RESERVED_DESCRIPTORS}, \
         and {PER_WORKER_DESCRIPTORS} per worker) = {needed}; raise the limit (ulimit -n, \
         LimitNOFILE=) or lower listen.max_connections",
        soft.map_or_else(|| "unlimited".to_owned(), |s| s.to_string()),
        limits.max_connections,
        limits.admin_max_connections,
        reserved(limits),
    ))
}

/// The soft and hard limits; `None` = unlimited.
#[cfg(unix)]
fn current() -> (Option<u64>, Option<u64>) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current, l.maximum)
}

#[cfg(unix)]
fn raise(hard: Option<u64>) -> std::io::Result<()> {
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn current() -> (Option<u64>, Option<u64>) {
    (None, None)
}

#[cfg(not(unix))]
fn raise(_hard: Option<u64>) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_listeners_and_the_reserve_are_counted() {
        let limits = Limits {
            max_connections: 10_000,
            admin_max_connections: 256,
            max_connections_per_ip: 0,
            workers: 3,
            header_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            h2_keep_alive_interval: std::time::Duration::from_secs(1),
            h2_keep_alive_timeout: std::time::Duration::from_secs(1),
            h2_max_concurrent_streams: 100,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1,
            max_buffered_bytes: 1,
            buffered_wait: std::time::Duration::from_secs(30),
            drain_timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(
            needed(&limits),
            10_000 + 256 + RESERVED_DESCRIPTORS + 3 * PER_WORKER_DESCRIPTORS
        );
        let huge = Limits {
            max_connections: usize::MAX,
            ..limits
        };
        assert_eq!(needed(&huge), u64::MAX);
    }
}

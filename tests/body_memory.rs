//! What reading a client's body holds of the heap is covered by its share of
//! `listen.max_buffered_bytes` (rel21b): the blocks it copies the body into, and the transport's
//! read buffers its first chunks are slices of. Before, the budget counted the bytes read: a
//! slow body's blocks (each opened as large as the body so far) held up to twice that, and a
//! chunk kept early up to four times its bytes of the read buffer it was cut from, so a flood
//! of uploads under a 1 GiB budget held some 2 GiB of bodies (benches/load/h1_memory.sh,
//! BENCHMARKS.md "Session 21: HTTP/1 memory").
//!
//! Its own test binary: it counts the heap through its global allocator. The cases run in one
//! test, one after the other.

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use esgate::body::{read_budgeted, BodyBudget, BoxError, BudgetHold};
use http_body::Frame;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KIB: usize = 1024;

fn live(region: &Region<'_, System>) -> usize {
    let c = region.change();
    c.bytes_allocated.saturating_sub(c.bytes_deallocated)
}

/// A client's body as a transport hands it over: `count` chunks of `len` bytes, each a slice
/// of an allocation of `buffer` bytes (hyper's read buffer: a chunk it splits off keeps the
/// whole buffer), made as they are polled; then nothing more (the sender stalls).
struct Stalling {
    left: usize,
    len: usize,
    buffer: usize,
    announced: Option<u64>,
}

impl http_body::Body for Stalling {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Pending;
        }
        self.left -= 1;
        let mut buffer = BytesMut::with_capacity(self.buffer);
        buffer.resize(self.len, b' ');
        Poll::Ready(Some(Ok(Frame::data(buffer.split().freeze()))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.announced {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// The KiB of `budget` free now (of `total_kib`).
fn free_kib(budget: &BodyBudget, total_kib: usize) -> usize {
    let (mut low, mut high) = (0, total_kib);
    while low < high {
        let mid = (low + high).div_ceil(2);
        let mut probe = BudgetHold::default();
        if budget.try_cover(&mut probe, mid * KIB).is_ok() {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

#[test]
fn a_stalled_body_holds_no_more_of_the_heap_than_its_budget_share() {
    // A read's own state (its future, the hold, the block list) beside its body's memory.
    const SLACK_KIB: usize = 32;
    let total_kib = 64 * KIB;
    let cases = [
        // No length announced (chunked), 8 KiB at a time: the blocks double.
        ("chunked, 128 x 8 KiB", 128, 8 * KIB, 8 * KIB, None),
        // Announced 10 MB, 8 KiB at a time: under a quarter, blocks of its own.
        (
            "announced, 128 x 8 KiB",
            128,
            8 * KIB,
            8 * KIB,
            Some(10_000_000),
        ),
        (
            "announced, 100 x 9 KiB",
            100,
            9 * KIB,
            9 * KIB,
            Some(10_000_000),
        ),
        // Announced 10 MB, 32 KiB chunks of 128 KiB read buffers: kept as received.
        (
            "announced, 16 x 32 KiB of 128 KiB buffers",
            16,
            32 * KIB,
            128 * KIB,
            Some(10_000_000),
        ),
        // The same in full 64 KiB reads, then blocks after the first sixteen.
        (
            "announced, 40 x 64 KiB",
            40,
            64 * KIB,
            64 * KIB,
            Some(10_000_000),
        ),
    ];
    let mut failures = Vec::new();
    for (name, count, len, buffer, announced) in cases {
        let budget = BodyBudget::new(total_kib * KIB);
        let body = Stalling {
            left: count,
            len,
            buffer,
            announced,
        };
        let region = Region::new(GLOBAL);
        let mut read = Box::pin(read_budgeted(body, 100 << 20, &budget));
        // Every chunk is ready and the budget has room: one poll reads them all, and the read
        // then waits for the stalled sender, holding what it read.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(read.as_mut().poll(&mut cx).is_pending(), "{name}: ended");
        let held_kib = live(&region) / KIB;
        let charged_kib = total_kib - free_kib(&budget, total_kib);
        if held_kib > charged_kib + SLACK_KIB {
            failures.push(format!(
                "{name}: the read holds {held_kib} KiB of the heap, its budget share is {charged_kib} KiB"
            ));
        }
        drop(read);
        assert_eq!(free_kib(&budget, total_kib), total_kib, "{name}: returned");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

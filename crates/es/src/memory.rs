//! What checking one request may hold in memory beyond its raw body: the decompressed body,
//! the parsed trees (the request tree's tape, serde_json's values) (session 11).
//!
//! Invariant: a body's parse and decompression claim their memory from the request's [`Meter`]
//! before they allocate it, and the meter asks the proxy's shared body budget for it. A body's
//! parsed form can be many times its size (a `[1,1,...]` body is one value per two bytes: 12
//! bytes of tape or 144 of serde_json values per body byte), and a gzip body can inflate a
//! thousand times; counting only the raw bytes let one crafted request hold gigabytes. Over
//! the budget, the request is refused (429 while others hold it, 413 when it could never fit);
//! nothing is allocated first.
//!
//! The claims are upper bounds of what is allocated (within the allocators' rounding), added
//! up and lowered only where the memory is freed first: an [`crate::request::tree::Arena`]'s
//! claims when it drops, the store guard's for each value it has checked.

use std::cell::Cell;

use crate::{RejectKind, Rejection};

/// The least a meter asks for: a 2 KB search body's checks fit in one ask. Kept small: what is
/// granted stays held until the upstream request is sent, through the backend's whole search.
const FIRST_ASK: usize = 16 * 1024;

/// Why the proxy would not grant more memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Other requests hold the budget now: retry later (429).
    Busy,
    /// More than the whole budget: it could never fit (413).
    TooLarge,
}

/// The proxy's side of a [`Meter`]: asked to let the request's checks hold `total` bytes in
/// all (a growing figure).
pub type Grant<'g> = &'g dyn Fn(usize) -> Result<(), Refused>;

/// One request's claims on memory (see the module invariant). Not shared between threads: a
/// request is checked on one.
pub struct Meter<'g> {
    grant: Option<Grant<'g>>,
    /// Bytes claimed and not returned.
    used: Cell<usize>,
    /// Bytes the proxy granted so far.
    granted: Cell<usize>,
    /// The last refusal, for a parse that can carry only text out of its failure (serde's).
    refused: Cell<Option<Refused>>,
}

impl Meter<'static> {
    /// A meter that grants everything: for tests and tools, never for a client's request.
    pub fn unlimited() -> Meter<'static> {
        Meter {
            grant: None,
            used: Cell::new(0),
            granted: Cell::new(0),
            refused: Cell::new(None),
        }
    }
}

impl<'g> Meter<'g> {
    /// A meter that asks `grant` whenever the claims pass what it granted before.
    pub fn new(grant: Grant<'g>) -> Meter<'g> {
        Meter {
            grant: Some(grant),
            used: Cell::new(0),
            granted: Cell::new(0),
            refused: Cell::new(None),
        }
    }

    /// Claims `bytes` more. The proxy is asked for twice what it granted before (or the claims,
    /// if more), so a request asks a few times however its parse grows; if that much is not
    /// free, for the claims alone.
    pub fn take(&self, bytes: usize) -> Result<(), Rejection> {
        let used = self.used.get().saturating_add(bytes);
        if used <= self.granted.get() {
            self.used.set(used);
            return Ok(());
        }
        let Some(grant) = self.grant else {
            self.used.set(used);
            return Ok(());
        };
        let ask = used
            .max(self.granted.get().saturating_mul(2))
            .max(FIRST_ASK);
        let got = match grant(ask) {
            Ok(()) => Ok(ask),
            Err(_) if ask > used => grant(used).map(|()| used),
            Err(why) => Err(why),
        };
        let got = got.map_err(|why| {
            self.refused.set(Some(why));
            refusal(why)
        })?;
        self.granted.set(got);
        self.used.set(used);
        Ok(())
    }

    /// Returns `bytes` claimed before (memory freed); what was granted stays granted.
    pub fn give(&self, bytes: usize) {
        self.used.set(self.used.get().saturating_sub(bytes));
    }

    /// Makes room in a full `v` for more, claimed first: as much again as it holds (a vector's
    /// own growth), at least `first` elements.
    pub fn grow<T>(&self, v: &mut Vec<T>, first: usize) -> Result<(), Rejection> {
        if v.len() == v.capacity() {
            let more = v.capacity().max(first);
            self.take(more.saturating_mul(std::mem::size_of::<T>()))?;
            v.reserve_exact(more);
        }
        Ok(())
    }

    /// The text `write` writes, measured first and written into room of that length claimed
    /// before it is made (serde_json's own vector would grow by doubling, past any claim);
    /// `Ok(None)` when it cannot be written.
    pub(crate) fn write(
        &self,
        write: impl Fn(&mut dyn std::io::Write) -> serde_json::Result<()>,
    ) -> Result<Option<Vec<u8>>, Rejection> {
        let mut length = Length(0);
        if write(&mut length).is_err() {
            return Ok(None);
        }
        self.take(length.0)?;
        let mut out = Vec::with_capacity(length.0);
        Ok(write(&mut out).ok().map(|()| out))
    }

    /// Bytes claimed and not returned.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// The rejection of the last claim refused, if one was.
    pub fn refusal(&self) -> Option<Rejection> {
        self.refused.get().map(refusal)
    }
}

/// A writer that only counts what it is given: the length of a text to claim before it is
/// written.
struct Length(usize);

impl std::io::Write for Length {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A grant of at most `bytes` in all, refused with `why` beyond: the proxy's budget, in tests.
#[cfg(test)]
pub(crate) fn budget(bytes: usize, why: Refused) -> impl Fn(usize) -> Result<(), Refused> {
    move |total| if total <= bytes { Ok(()) } else { Err(why) }
}

fn refusal(why: Refused) -> Rejection {
    match why {
        Refused::Busy => Rejection {
            kind: RejectKind::Busy,
            reason: "esgate has no memory free to check this request body now; retry later"
                .to_string(),
        },
        Refused::TooLarge => Rejection {
            kind: RejectKind::TooLarge,
            reason: "request body needs more memory to check than esgate's body budget holds"
                .to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn claims_ask_in_doubling_steps_and_stop_at_the_budget() {
        let asked = RefCell::new(Vec::new());
        let budget = 700_000;
        let grant = |total: usize| {
            asked.borrow_mut().push(total);
            if total <= budget {
                Ok(())
            } else {
                Err(Refused::Busy)
            }
        };
        let meter = Meter::new(&grant);
        meter.take(100).unwrap(); // the first ask: FIRST_ASK (16 KiB)
        meter.take(20_000).unwrap(); // 20_100 > 16_384: twice that
        meter.take(10_000).unwrap(); // 30_100 <= 32_768: not asked
        assert_eq!(*asked.borrow(), [FIRST_ASK, 2 * FIRST_ASK]);
        meter.give(10_100);
        assert_eq!(meter.used(), 20_000);
        meter.take(580_000).unwrap(); // 600_000: more than twice, so the claims
        assert_eq!(asked.borrow()[2..], [600_000]);
        // Doubling past the budget falls back to the claims alone.
        meter.take(100_000).unwrap();
        assert_eq!(asked.borrow()[3..], [1_200_000, 700_000]);
        assert_eq!(meter.refusal(), None);
        let err = meter.take(1).unwrap_err();
        assert_eq!(err.kind, RejectKind::Busy);
        assert_eq!(meter.refusal(), Some(err));
        assert_eq!(meter.used(), 700_000, "a refused claim is not counted");
    }

    #[test]
    fn refusals_say_busy_or_too_large() {
        let never = |_: usize| Err(Refused::TooLarge);
        assert_eq!(
            Meter::new(&never).take(1).unwrap_err().kind,
            RejectKind::TooLarge
        );
        let busy = |_: usize| Err(Refused::Busy);
        assert_eq!(
            Meter::new(&busy).take(1).unwrap_err().kind,
            RejectKind::Busy
        );
        assert!(Meter::unlimited().take(usize::MAX).is_ok());
    }
}

//! A compressed answer's bytes decoded for the failures judge (`failures::Encoding`): gzip
//! (RFC 1952: members, each a header, a deflate stream and a CRC-32 and size trailer) and zlib
//! (RFC 1950, what HTTP calls `deflate`), as flate2's `bufread::MultiGzDecoder` and
//! `bufread::ZlibDecoder` decode them, without a decoder made for each answer (perf24d).
//!
//! flate2's decoders make a miniz_oxide `InflateState` for each answer: its 32 KiB window and
//! tables zeroed, about 97k instructions (perf23c), and the window filled whatever the caller
//! asks (a 1 KiB step decoded up to 32 KiB). Reusing one through `Decompress::reset` zeroes the
//! window again (miniz_oxide's `FullReset`); not zeroing it (`MinReset`) would let a stream
//! whose back-reference reaches before its start copy the previous answer's bytes, another
//! user's, out of the window. Here miniz_oxide's core decoder writes into the caller's output
//! itself (`TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF`): no window, a back-reference reads only
//! what this member decoded, and decoding stops when the output asked for is there. The core's
//! state (its Huffman tables, about 11 KB, rebuilt for every block) is kept per thread and
//! restarted (`init`) for every member; the gzip header and trailer are read here.
//!
//! Same bytes or the same refusal as flate2's decoders (the differential below), but one: a
//! back-reference to before its member's start is refused (RFC 1951; zlib and Go's decoder,
//! Grafana's, refuse it), where miniz_oxide's window mode reads zeros there.

use std::cell::RefCell;

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// The two formats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Format {
    Gzip,
    Zlib,
}

/// What [`Inflate::fill`] came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Filled {
    /// The output holds as much as was asked; more may follow.
    Full,
    /// The stream ended whole and sound (every member's checksum and size right): the output
    /// holds all of it.
    End,
    /// Cut short or corrupt: the output holds what was decoded before that.
    Refused,
}

/// Where a stream's decoding stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Next {
    /// A member's beginning: a gzip header (none for zlib, whose header the core reads).
    Member,
    /// Inside a member's deflate stream.
    Body,
    /// A gzip member's trailer.
    Trailer,
    End,
    Refused,
}

// The gzip header's flags (RFC 1952 2.3.1); the three others are reserved, refused when set.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0b1110_0000;
/// The longest file name or comment flate2 reads (`MAX_HEADER_BUF`): a longer one is refused.
const MAX_FIELD: usize = 65_535;

/// The output's growth when no limit is near: the first step, then doubling.
const FIRST_ROOM: usize = 16 * 1024;

thread_local! {
    /// The core decoder this thread reuses (its tables are rebuilt for each block, its state
    /// restarted for each member: nothing of one answer is read while decoding another).
    static CORE: RefCell<Box<DecompressorOxide>> = RefCell::new(Box::default());
}

/// A compressed stream being decoded (`raw`: all of it that is held) with this thread's core.
pub(super) struct Inflate<'a> {
    core: &'a mut DecompressorOxide,
    format: Format,
    raw: &'a [u8],
    /// The next byte of `raw` to read.
    at: usize,
    /// Where the current member's output starts in the output.
    start: usize,
    next: Next,
}

/// Runs `f` with a decoder of `raw` (this thread's core, or a new one if it is in use).
pub(super) fn inflating<R>(format: Format, raw: &[u8], f: impl FnOnce(&mut Inflate<'_>) -> R) -> R {
    let run = |core: &mut DecompressorOxide| {
        f(&mut Inflate {
            core,
            format,
            raw,
            at: 0,
            start: 0,
            next: Next::Member,
        })
    };
    CORE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut core) => run(&mut core),
        // Never nested today; a second decoder rather than a panic if it ever is.
        Err(_) => run(&mut Box::default()),
    })
}

impl Inflate<'_> {
    /// Decodes more of the stream onto `out` until it is `want` bytes long, the stream ends or
    /// it is refused. Called again with a larger `want` it goes on where it stopped, with the
    /// same `out` (a back-reference may read any of the member's output held there).
    pub(super) fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> Filled {
        loop {
            if self.next == Next::Refused {
                return Filled::Refused;
            }
            // As flate2's decoders read through `take`: what was asked is there, nothing more is
            // read (not even a trailer right after it).
            if out.len() >= want {
                return Filled::Full;
            }
            match self.next {
                Next::Member => {
                    if self.format == Format::Gzip {
                        match gzip_header(&self.raw[self.at..]) {
                            Some(len) => self.at += len,
                            None => return self.refuse(),
                        }
                    }
                    self.core.init();
                    self.start = out.len();
                    self.next = Next::Body;
                }
                Next::Body => self.body(out, want),
                Next::Trailer => {
                    let Some(trailer) = self.raw.get(self.at..self.at + 8) else {
                        return self.refuse();
                    };
                    let member = &out[self.start..];
                    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                    // ISIZE: the member's length modulo 2^32.
                    if crc != crc32fast::hash(member) || size != member.len() as u32 {
                        return self.refuse();
                    }
                    self.at += 8;
                    // Another member follows unless the bytes end here.
                    self.next = if self.at == self.raw.len() {
                        Next::End
                    } else {
                        Next::Member
                    };
                }
                Next::End => return Filled::End,
                Next::Refused => return Filled::Refused,
            }
        }
    }

    /// One call of the core on the current member, into room grown towards `want`.
    fn body(&mut self, out: &mut Vec<u8>, want: usize) {
        let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
            | match self.format {
                // flate2's flags for each (miniz_oxide's `inflate` for `DataFormat::Zlib` and
                // `Raw`); never `HAS_MORE_INPUT`: all of the stream held is given.
                Format::Zlib => {
                    inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
                        | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
                }
                Format::Gzip => inflate_flags::TINFL_FLAG_IGNORE_ADLER32,
            };
        let filled = out.len();
        let room = want.min(filled.saturating_mul(2).max(filled + FIRST_ROOM));
        out.resize(room, 0);
        let (status, read, wrote) = decompress(
            self.core,
            &self.raw[self.at..],
            &mut out[self.start..],
            filled - self.start,
            flags,
        );
        out.truncate(filled + wrote);
        self.at += read;
        self.next = match status {
            TINFLStatus::Done => match self.format {
                Format::Gzip => Next::Trailer,
                // flate2's `ZlibDecoder` ends with the stream: what follows is not read.
                Format::Zlib => Next::End,
            },
            // The room is full: more room, or `want` is reached.
            TINFLStatus::HasMoreOutput if out.len() == room => Next::Body,
            // Cut short (`FailedCannotMakeProgress`), corrupt, or a checksum wrong.
            _ => Next::Refused,
        };
    }

    fn refuse(&mut self) -> Filled {
        self.next = Next::Refused;
        Filled::Refused
    }
}

/// The length of the gzip member header `raw` begins with, as flate2's `GzHeaderParser` reads
/// it; `None` when it is not one or is cut short.
fn gzip_header(raw: &[u8]) -> Option<usize> {
    let fixed = raw.get(..10)?;
    let flags = fixed[3];
    // The magic, deflate (the only method), no reserved flag.
    if fixed[..3] != [0x1f, 0x8b, 8] || flags & FRESERVED != 0 {
        return None;
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = raw.get(at..at + 2)?;
        at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
        if at > raw.len() {
            return None;
        }
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let nul = memchr::memchr(0, &raw[at..])?;
            if nul > MAX_FIELD {
                return None;
            }
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = raw.get(at..at + 2)?;
        // The low 16 bits of the CRC-32 of the header's bytes before it.
        if crc32fast::hash(&raw[..at]) as u16 != u16::from_le_bytes([stored[0], stored[1]]) {
            return None;
        }
        at += 2;
    }
    Some(at)
}

/// `raw` decoded whole, at most `limit` bytes; `None` when it is not a whole, sound stream or
/// decodes to more.
pub(super) fn whole(format: Format, raw: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let filled = inflating(format, raw, |d| d.fill(&mut out, limit.saturating_add(1)));
    (filled == Filled::End).then_some(out)
}

#[cfg(test)]
mod tests;

use std::io::{Read, Write};

use proptest::prelude::*;

use super::*;

/// flate2's decoders, the ones `failures` used before (perf24d's differential).
fn flate2_reader(format: Format, raw: &[u8]) -> Box<dyn Read + '_> {
    match format {
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Format::Zlib => Box::new(flate2::bufread::ZlibDecoder::new(raw)),
    }
}

/// flate2's beginning of `raw`, at most `limit` bytes, and whether it failed (as
/// `failures::Encoding::judge_beginning` read it).
fn flate2_prefix(format: Format, raw: &[u8], limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let failed = flate2_reader(format, raw)
        .take(limit as u64)
        .read_to_end(&mut out)
        .is_err();
    (out, failed)
}

/// flate2's whole decoding, as `failures::Encoding::decode` read it.
fn flate2_whole(format: Format, raw: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2_reader(format, raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() <= limit).then_some(out)
}

fn mine(format: Format, raw: &[u8], want: usize) -> (Vec<u8>, Filled) {
    let mut out = Vec::new();
    let filled = inflating(format, raw, |d| d.fill(&mut out, want));
    (out, filled)
}

/// The one difference allowed: flate2 decoded on where this decoder refused a back-reference
/// to before its member's start, which miniz_oxide's window mode reads as zeros.
fn reached_before_start(flate2: &[u8], refused_at: &[u8]) -> bool {
    flate2.starts_with(refused_at) && flate2.get(refused_at.len()) == Some(&0)
}

/// Same bytes or the same refusal as flate2, whole and for a beginning of `limit` bytes, and
/// the beginning decoded in steps the same as at once.
fn same_as_flate2(format: Format, raw: &[u8], limit: usize) -> Result<(), TestCaseError> {
    // Whole.
    let theirs = flate2_whole(format, raw, limit);
    let ours = whole(format, raw, limit);
    if ours != theirs {
        let (refused_at, filled) = mine(format, raw, limit + 1);
        prop_assert_eq!(filled, Filled::Refused);
        let theirs = theirs.unwrap_or_default();
        prop_assert!(
            reached_before_start(&theirs, &refused_at),
            "whole: ours {:?}, theirs {} bytes",
            ours.map(|o| o.len()),
            theirs.len()
        );
    }
    // A beginning.
    let (theirs, failed) = flate2_prefix(format, raw, limit);
    let (ours, filled) = mine(format, raw, limit);
    if failed {
        // flate2 fails on a corrupt stream as soon as its 32 KiB window reaches the fault (the
        // bytes of the failing read dropped); this decoder at the fault.
        prop_assert!(
            ours.starts_with(&theirs)
                || (filled == Filled::Refused && reached_before_start(&theirs, &ours))
        );
        prop_assert_ne!(filled, Filled::End);
    } else if filled == Filled::Refused {
        // flate2's reads stop at `limit` bytes (`take`): a stream cut or corrupt right after
        // them fails only on a read past them, where this decoder saw it in the same call (the
        // same bytes, judged as a refused stream's beginning; attack24b, found at 20,000 cases).
        prop_assert!(
            reached_before_start(&theirs, &ours) || (ours == theirs && ours.len() == limit),
            "ours {} bytes, theirs {}",
            ours.len(),
            theirs.len()
        );
    } else {
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(filled == Filled::Full, ours.len() == limit);
    }
    // In steps, as `failures::Encoding::judge_beginning` asks.
    let mut stepped = Vec::new();
    let steps = inflating(format, raw, |d| {
        [1, 1024.min(limit), limit].map(|want| d.fill(&mut stepped, want))
    });
    prop_assert_eq!(&stepped, &ours);
    prop_assert_eq!(steps[2], filled);
    Ok(())
}

/// A gzip member's header, its optional fields as given; `hcrc`: `Some(true)` a right header
/// CRC, `Some(false)` a wrong one.
#[derive(Clone, Debug)]
struct Header {
    text: bool,
    extra: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    comment: Option<Vec<u8>>,
    hcrc: Option<bool>,
    mtime: u32,
    os: u8,
    /// The reserved flags set (bits 5 to 7): refused.
    reserved: u8,
}

impl Header {
    /// No optional field, no header CRC: what most servers write.
    fn plain() -> Header {
        Header {
            text: false,
            extra: None,
            name: None,
            comment: None,
            hcrc: None,
            mtime: 0,
            os: 3,
            reserved: 0,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut flags = self.reserved;
        for (set, flag) in [
            (self.text, 1),
            (self.hcrc.is_some(), FHCRC),
            (self.extra.is_some(), FEXTRA),
            (self.name.is_some(), FNAME),
            (self.comment.is_some(), FCOMMENT),
        ] {
            if set {
                flags |= flag;
            }
        }
        let mut h = vec![0x1f, 0x8b, 8, flags];
        h.extend_from_slice(&self.mtime.to_le_bytes());
        h.extend_from_slice(&[0, self.os]);
        if let Some(extra) = &self.extra {
            h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            h.extend_from_slice(extra);
        }
        for field in [&self.name, &self.comment].into_iter().flatten() {
            h.extend_from_slice(field);
            h.push(0);
        }
        if let Some(right) = self.hcrc {
            let crc = crc32fast::hash(&h) as u16 ^ u16::from(!right);
            h.extend_from_slice(&crc.to_le_bytes());
        }
        h
    }
}

fn deflated(text: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

fn gzip_member(header: &Header, text: &[u8], level: u32) -> Vec<u8> {
    let mut m = header.bytes();
    m.extend_from_slice(&deflated(text, level));
    m.extend_from_slice(&crc32fast::hash(text).to_le_bytes());
    m.extend_from_slice(&(text.len() as u32).to_le_bytes());
    m
}

fn zlib(text: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

fn header() -> impl Strategy<Value = Header> {
    let field = || proptest::option::of(proptest::collection::vec(1..=255u8, 0..40));
    (
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        field(),
        field(),
        proptest::option::weighted(0.3, proptest::bool::weighted(0.8)),
        any::<u32>(),
        any::<u8>(),
        prop_oneof![8 => Just(0u8), 1 => (1u8..8).prop_map(|r| r << 5)],
    )
        .prop_map(
            |(text, extra, name, comment, hcrc, mtime, os, reserved)| Header {
                text,
                extra,
                name,
                comment,
                hcrc,
                mtime,
                os,
                reserved,
            },
        )
}

/// An answer's text: JSON-like (compresses into back-references, long ones past 32 KiB) or
/// random bytes (stored or literal blocks).
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..600, any::<u16>()).prop_map(|(n, seed)| {
            let mut t = String::from(r#"{"took":1,"_shards":{"total":1,"failed":0},"hits":["#);
            for i in 0..n {
                t.push_str(&format!(
                    r#"{{"_id":"{}","message":"line {} of {}"}},"#,
                    i,
                    i * usize::from(seed) % 977,
                    seed
                ));
            }
            t.push_str("{}]}");
            t.into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..2000),
    ]
}

/// What is done to a well-formed stream.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Cut at a fraction (per mille) of its length.
    Cut(u16),
    /// One byte's bit flipped, the byte at a fraction of its length.
    Flip(u16, u8),
    /// Bytes after it.
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        2 => (0u16..1000).prop_map(Damage::Cut),
        3 => (0u16..1000, 0u8..8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
        1 => proptest::collection::vec(any::<u8>(), 1..30).prop_map(Damage::Append),
    ]
}

fn damaged(mut raw: Vec<u8>, damage: &Damage) -> Vec<u8> {
    let at = |per_mille: u16, len: usize| len * usize::from(per_mille) / 1000;
    match damage {
        Damage::None => {}
        Damage::Cut(p) => raw.truncate(at(*p, raw.len())),
        Damage::Flip(p, bit) => {
            let i = at(*p, raw.len());
            if let Some(b) = raw.get_mut(i) {
                *b ^= 1 << bit;
            }
        }
        Damage::Append(more) => raw.extend_from_slice(more),
    }
    raw
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1),
        Just(100),
        Just(1024),
        Just(4096),
        Just(65_536),
        Just(1 << 20)
    ]
}

proptest! {
    #![proptest_config(crate::proptest_cases(400))]

    /// gzip: one to three members, their headers' optional fields (FTEXT, FEXTRA, FNAME,
    /// FCOMMENT, FHCRC right or wrong), any level (0: stored blocks), whole, cut, a bit
    /// flipped anywhere (header, deflate data, trailer), or bytes after.
    #[test]
    fn gzip_decodes_as_flate2_multigzdecoder(
        members in proptest::collection::vec((header(), text(), 0u32..=9), 1..=3),
        damage in damage(),
        limit in limit(),
    ) {
        let raw: Vec<u8> = members
            .iter()
            .flat_map(|(h, t, level)| gzip_member(h, t, *level))
            .collect();
        same_as_flate2(Format::Gzip, &damaged(raw, &damage), limit)?;
    }

    #[test]
    fn zlib_decodes_as_flate2_zlibdecoder(
        text in text(),
        level in 0u32..=9,
        damage in damage(),
        limit in limit(),
    ) {
        same_as_flate2(Format::Zlib, &damaged(zlib(&text, level), &damage), limit)?;
    }

    /// Arbitrary bytes behind a gzip header's fixed part (any flags) or none: never a panic,
    /// and refused as flate2 refuses them.
    #[test]
    fn arbitrary_bytes_are_refused_as_flate2_refuses_them(
        mut raw in proptest::collection::vec(any::<u8>(), 0..200),
        gzip in any::<bool>(),
        headed in any::<bool>(),
        flags in any::<u8>(),
    ) {
        if headed && gzip {
            raw.splice(0..0, [0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3]);
        }
        let format = if gzip { Format::Gzip } else { Format::Zlib };
        same_as_flate2(format, &raw, 1 << 16)?;
    }
}

/// A bit writer for hand-made deflate streams (LSB first; Huffman codes are given as their
/// bits in order).
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    len: usize,
}

impl Bits {
    fn bit(&mut self, b: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().unwrap() |= 1 << (self.len % 8);
        }
        self.len += 1;
    }
    /// `n` bits of `v`, least significant first (header fields, extra bits).
    fn value(&mut self, v: u32, n: usize) {
        (0..n).for_each(|i| self.bit(v >> i & 1 == 1));
    }
    /// A Huffman code of `n` bits, most significant first.
    fn code(&mut self, v: u32, n: usize) {
        (0..n).rev().for_each(|i| self.bit(v >> i & 1 == 1));
    }
}

/// The allowed difference: a back-reference to before the stream's start (a fixed-Huffman
/// block: 'a', then three bytes from two back, one before the start). flate2 (miniz_oxide's
/// window, zeroed) decodes it to "a\0a\0"; this decoder refuses it, as zlib and Go's decoder
/// do. With the window kept from a previous answer (`MinReset`), those bytes would be its.
#[test]
fn a_back_reference_before_the_start_is_refused() {
    let mut bits = Bits::default();
    bits.value(1, 1); // BFINAL
    bits.value(1, 2); // fixed Huffman
    bits.code(0x30 + u32::from(b'a'), 8);
    bits.code(1, 7); // length code 257: 3
    bits.code(1, 5); // distance code 1: 2
    bits.code(0, 7); // end of block
    let deflate = bits.bytes;
    let mut theirs = Vec::new();
    flate2::read::DeflateDecoder::new(&deflate[..])
        .read_to_end(&mut theirs)
        .unwrap();
    assert_eq!(theirs, b"a\0a\0");
    let mut raw = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    raw.extend_from_slice(&deflate);
    raw.extend_from_slice(&crc32fast::hash(&theirs).to_le_bytes());
    raw.extend_from_slice(&(theirs.len() as u32).to_le_bytes());
    assert_eq!(flate2_whole(Format::Gzip, &raw, 100), Some(theirs.clone()));
    assert_eq!(whole(Format::Gzip, &raw, 100), None);
    assert_eq!(
        mine(Format::Gzip, &raw, 100),
        (b"a".to_vec(), Filled::Refused)
    );
    // In a second member, it does not read the first's bytes either.
    let mut two = gzip_member(&Header::plain(), b"secret", 6);
    two.extend_from_slice(&raw);
    assert_eq!(whole(Format::Gzip, &two, 100), None);
    assert_eq!(
        mine(Format::Gzip, &two, 100),
        (b"secreta".to_vec(), Filled::Refused)
    );
}

/// A file name or comment of 65,535 bytes is read, one longer refused (flate2's
/// `MAX_HEADER_BUF`); an extra field of 65,535 bytes is read.
#[test]
fn header_fields_are_read_to_flate2s_limits() {
    let text = br#"{"took":1}"#;
    let plain = Header {
        text: false,
        extra: None,
        name: None,
        comment: None,
        hcrc: Some(true),
        mtime: 7,
        os: 255,
        reserved: 0,
    };
    let long = |n: usize| Some(vec![b'n'; n]);
    for (header, read) in [
        (
            Header {
                name: long(MAX_FIELD),
                ..plain.clone()
            },
            true,
        ),
        (
            Header {
                name: long(MAX_FIELD + 1),
                ..plain.clone()
            },
            false,
        ),
        (
            Header {
                comment: long(MAX_FIELD),
                ..plain.clone()
            },
            true,
        ),
        (
            Header {
                comment: long(MAX_FIELD + 1),
                ..plain.clone()
            },
            false,
        ),
        (
            Header {
                extra: long(65_535),
                name: long(10),
                comment: long(10),
                ..plain.clone()
            },
            true,
        ),
    ] {
        let raw = gzip_member(&header, text, 6);
        assert_eq!(flate2_whole(Format::Gzip, &raw, 100).is_some(), read);
        assert_eq!(
            whole(Format::Gzip, &raw, 100).as_deref(),
            read.then_some(&text[..])
        );
    }
}

/// The thread's core is reused: an answer decoded after a refused one, cut inside a block,
/// and after one of another format, decodes as alone.
#[test]
fn a_decoder_refused_midway_leaves_nothing_to_the_next() {
    let text: Vec<u8> = (0..3000u32)
        .flat_map(|i| format!(r#"{{"n":{}}},"#, i * 7919 % 1000).into_bytes())
        .collect();
    let gz = gzip_member(&Header::plain(), &text, 6);
    let zl = zlib(&text, 9);
    for cut in [20, gz.len() / 3, gz.len() - 9] {
        assert_eq!(mine(Format::Gzip, &gz[..cut], 1 << 20).1, Filled::Refused);
        assert_eq!(
            whole(Format::Gzip, &gz, 1 << 20).as_deref(),
            Some(&text[..])
        );
        assert_eq!(
            mine(Format::Zlib, &zl[..cut.min(zl.len() - 1)], 1 << 20).1,
            Filled::Refused
        );
        assert_eq!(
            whole(Format::Zlib, &zl, 1 << 20).as_deref(),
            Some(&text[..])
        );
    }
    // Over the limit: refused whole, its beginning full.
    assert_eq!(whole(Format::Gzip, &gz, text.len() - 1), None);
    assert_eq!(
        whole(Format::Gzip, &gz, text.len()).as_deref(),
        Some(&text[..])
    );
    assert_eq!(
        mine(Format::Gzip, &gz, 1000),
        (text[..1000].to_vec(), Filled::Full)
    );
}

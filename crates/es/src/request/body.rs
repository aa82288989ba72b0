//! Strict request-body decoding (security.md I-2, E5–E7).
//!
//! Invariant: a body reaches the rewriter only as a `serde_json::Value` that came from bytes
//! that were declared `application/json` (or NDJSON for `_msearch`, including the
//! `vnd.elasticsearch` compatible forms for versions 7, 8 and 9), UTF-8 (no BOM, no other charset),
//! optionally gzip/deflate-compressed with the decoded size capped, and parsed without comments,
//! duplicate keys (at any depth), trailing data or nesting deeper than [`MAX_DEPTH`]. Anything
//! else is 415/413/400; nothing is guessed.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::memory::Meter;
use crate::{RejectKind, Rejection};

/// Default cap on the decoded (decompressed) body size.
pub const MAX_DECODED_BODY: usize = 100 * 1024 * 1024;

/// Maximum nesting depth of a JSON value (objects and arrays).
pub const MAX_DEPTH: usize = 64;

/// Which media type a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Json,
    Ndjson,
}

/// Checks the declared `Content-Type` for a non-empty body.
pub fn check_content_type(content_type: Option<&str>, media: Media) -> Result<(), Rejection> {
    let Some(ct) = content_type else {
        return Err(unsupported("a request body needs a Content-Type"));
    };
    let (plain, vnd) = match media {
        Media::Json => ("application/json", "application/vnd.elasticsearch+json"),
        Media::Ndjson => (
            "application/x-ndjson",
            "application/vnd.elasticsearch+x-ndjson",
        ),
    };
    // The plain type alone (what dashboards send): what the reading below accepts, without the
    // split (no `;`, nothing to trim, not the vendor type).
    if ct.eq_ignore_ascii_case(plain) {
        return Ok(());
    }
    let mut parts = ct.split(';');
    // Compared without case, not lowercased into a `String`: the same test (the names are
    // lowercase ASCII) without an allocation per request body (issue 10).
    let essence = parts.next().unwrap_or("").trim();
    let is_vnd = essence.eq_ignore_ascii_case(vnd);
    if !essence.eq_ignore_ascii_case(plain) && !is_vnd {
        return Err(unsupported("this Content-Type is not supported"));
    }
    let mut compat_seen = false;
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return Err(unsupported("this Content-Type is not supported"));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"').to_ascii_lowercase();
        match name.as_str() {
            "charset" if value == "utf-8" || value == "utf8" => {}
            "compatible-with"
                if is_vnd
                    && crate::request::media::COMPAT_VERSIONS
                        .iter()
                        .any(|v| v.to_string() == value) =>
            {
                compat_seen = true
            }
            _ => return Err(unsupported("this Content-Type is not supported")),
        }
    }
    if is_vnd && !compat_seen {
        return Err(unsupported("this Content-Type is not supported"));
    }
    Ok(())
}

/// Undoes `Content-Encoding` (identity, gzip or deflate) with the decoded size capped at `max`
/// and claimed from `meter` as it grows.
pub fn decode_content<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max: usize,
    meter: &Meter<'_>,
) -> Result<std::borrow::Cow<'a, [u8]>, Rejection> {
    let encoding = content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let decoded = match encoding.as_str() {
        "" | "identity" => {
            if body.len() > max {
                return Err(too_large());
            }
            // Not encoded: read in place, not copied.
            return Ok(std::borrow::Cow::Borrowed(body));
        }
        "gzip" | "x-gzip" => read_capped(flate2::read::GzDecoder::new(body), max, meter)?,
        "deflate" => match read_capped(flate2::read::ZlibDecoder::new(body), max, meter) {
            Ok(v) => v,
            Err(e) if matches!(e.kind, RejectKind::TooLarge | RejectKind::Busy) => return Err(e),
            // Some clients send raw deflate without the zlib wrapper.
            Err(_) => read_capped(flate2::read::DeflateDecoder::new(body), max, meter)?,
        },
        _ => return Err(unsupported("this Content-Encoding is not supported")),
    };
    Ok(std::borrow::Cow::Owned(decoded))
}

/// Decodes the declared encoding, checks the content type and parses one strict JSON value,
/// its memory claimed from `meter`. `Ok(None)` for a missing or empty body.
pub fn decode_json(
    body: Option<&[u8]>,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    max: usize,
    meter: &Meter<'_>,
) -> Result<Option<Value>, Rejection> {
    let Some(raw) = body.filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    check_content_type(content_type, Media::Json)?;
    let bytes = decode_content(raw, content_encoding, max, meter)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    parse_strict_within(&bytes, meter).map(Some)
}

/// [`parse_strict_within`] without a limit on its memory: for tests and tools, never for a
/// client's body.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, Rejection> {
    parse_strict_within(bytes, &Meter::unlimited())
}

/// A serde_json value's memory as claimed from a [`Meter`]: twice the value, for an array's
/// slot and its growth, or an object's entry with its key and index slot. A string's text (a
/// key's too) is claimed as it is copied.
const VALUE_BYTES: usize = 2 * std::mem::size_of::<Value>();

/// An object's entry beside its value's [`VALUE_BYTES`] (session 11 review: an order-keeping
/// map's vector of entries, each a hash, a key and a value, grows to twice their number, and
/// its index table holds about 20 bytes an entry).
const ENTRY_BYTES: usize = 2 * (8 + std::mem::size_of::<String>()) + 32;

/// A container's first room beyond its first element's claims: a vector's first room is four
/// values, an object's three entries and its index table.
const FIRST_ROOM_BYTES: usize = 2 * std::mem::size_of::<Value>() + 64;

/// Parses one JSON value strictly: UTF-8 without BOM, no comments, no duplicate keys at any
/// depth, depth at most [`MAX_DEPTH`], nothing but whitespace after the value; its memory
/// claimed from `meter` before each value is built.
pub fn parse_strict_within(bytes: &[u8], meter: &Meter<'_>) -> Result<Value, Rejection> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(Rejection::bad_request(
            "request body starts with a byte order mark",
        ));
    }
    // One UTF-8 check over the whole body, then serde_json's `str` reader, which checks no
    // string again: the byte-slice reader validated every string on its own, a call per string
    // that cost more than the whole-body check (issue 10). What is refused and why is
    // unchanged: a body that is not UTF-8 never parses (the slice reader refused it too), and
    // its reason is the UTF-8 one whatever else is wrong.
    let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
        return Err(Rejection::bad_request("request body is not valid UTF-8"));
    };
    let (value, end) = read_seeded(text, meter, true).map_err(|e| json_error(&e, meter))?;
    if end.is_err() {
        return Err(Rejection::bad_request(
            "request body has trailing data after the JSON value",
        ));
    }
    Ok(value)
}

/// One value of `text` read by a [`StrictSeed`] (`strict` or serde_json's reading), and
/// whether nothing but whitespace follows it.
fn read_seeded(
    text: &str,
    meter: &Meter<'_>,
    strict: bool,
) -> Result<(Value, serde_json::Result<()>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = StrictSeed {
        depth: 0,
        meter,
        strict,
    };
    let value = seed.deserialize(&mut de)?;
    Ok((value, de.end()))
}

/// Reads JSON into a `Value` as `serde_json::from_slice` does (the same values and the same
/// failures), its memory claimed from `meter` as it is built: a backend's answer esgate
/// reshapes or transforms (`answers::shaping`, `routes::apply`), an `all` token's body checked
/// for the store index (`indices::store_guard`); either can parse into many times its size.
/// `Ok(None)`: the text is not JSON; `Err`: the meter's refusal. One difference,
/// on purpose: an object whose first key is serde_json's private raw-value token
/// (`$serde_json::private::RawValue`, with the `raw_value` feature) is read as the object it
/// is, as Elasticsearch reads it; serde_json's `Value` reads its string as JSON text instead
/// (or fails).
pub fn parse_value_within(bytes: &[u8], meter: &Meter<'_>) -> Result<Option<Value>, Rejection> {
    let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
        return Ok(None);
    };
    match read_seeded(text, meter, false) {
        Ok((value, Ok(()))) => Ok(Some(value)),
        Ok((_, Err(_))) => Ok(None),
        Err(e) => no_memory(&e, meter).map_or(Ok(None), Err),
    }
}

/// The meter's refusal, when it is what stopped the parse.
fn no_memory(e: &serde_json::Error, meter: &Meter<'_>) -> Option<Rejection> {
    meter
        .refusal()
        .filter(|_| e.to_string().starts_with(NO_MEMORY))
}

fn json_error(e: &serde_json::Error, meter: &Meter<'_>) -> Rejection {
    let msg = e.to_string();
    if let Some(refused) = no_memory(e, meter) {
        refused
    } else if msg.starts_with(DUPLICATE) {
        Rejection::bad_request("request body has a duplicate key")
    } else if msg.starts_with(TOO_DEEP) || msg.contains("recursion limit") {
        Rejection::bad_request("request body is nested too deeply")
    } else {
        Rejection::bad_request(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    }
}

const DUPLICATE: &str = "esgate: duplicate key";
const TOO_DEEP: &str = "esgate: too deep";
const NO_MEMORY: &str = "esgate: no memory";

/// Decompressed bytes are read in steps of this size, each claimed before it is read.
const DECODE_STEP: usize = 64 * 1024;

fn read_capped<R: Read>(reader: R, max: usize, meter: &Meter<'_>) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = reader.take(limit);
    loop {
        // Room for the next step, claimed first.
        meter.grow(&mut out, DECODE_STEP)?;
        let room = (out.capacity() - out.len()) as u64;
        match (&mut reader).take(room).read_to_end(&mut out) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                return Err(Rejection::bad_request(
                    "request body could not be decompressed",
                ))
            }
        }
    }
    if out.len() > max {
        return Err(too_large());
    }
    Ok(out)
}

fn too_large() -> Rejection {
    Rejection {
        kind: RejectKind::TooLarge,
        reason: "request body is too large".to_string(),
    }
}

fn unsupported(reason: &str) -> Rejection {
    Rejection {
        kind: RejectKind::UnsupportedMediaType,
        reason: reason.to_string(),
    }
}

/// Builds a `Value` like serde_json does, but rejects duplicate keys and deep nesting, and
/// claims each value's memory first.
#[derive(Clone, Copy)]
struct StrictSeed<'m, 'g> {
    depth: usize,
    meter: &'m Meter<'g>,
    /// A client's body (duplicate keys and nesting past [`MAX_DEPTH`] refused); otherwise a
    /// backend's answer, read as serde_json reads a `Value` (a repeated key's last value wins,
    /// nesting up to serde_json's own limit).
    strict: bool,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        claim(self.meter, VALUE_BYTES)?;
        deserializer.deserialize_any(StrictVisitor { seed: self })
    }
}

/// `len` bytes claimed from the meter (serde's error says when it was refused).
fn claim<E: serde::de::Error>(meter: &Meter<'_>, len: usize) -> Result<(), E> {
    meter
        .take(len)
        .map_err(|_| serde::de::Error::custom(NO_MEMORY))
}

/// An object's key, its text claimed from the meter.
struct KeySeed<'m, 'g>(&'m Meter<'g>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        let key = <String as serde::Deserialize>::deserialize(deserializer)?;
        claim(self.0, key.capacity())?;
        Ok(key)
    }
}

struct StrictVisitor<'m, 'g> {
    seed: StrictSeed<'m, 'g>,
}

impl<'de> Visitor<'de> for StrictVisitor<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        claim(self.seed.meter, v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        claim(self.seed.meter, v.capacity())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.seed.depth + 1;
        if self.seed.strict && depth > MAX_DEPTH {
            return Err(serde::de::Error::custom(TOO_DEEP));
        }
        let seed = StrictSeed { depth, ..self.seed };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(seed)? {
            if out.is_empty() {
                // A vector's first room is four values: more than one element's claim.
                claim(self.seed.meter, FIRST_ROOM_BYTES)?;
            }
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.seed.depth + 1;
        if self.seed.strict && depth > MAX_DEPTH {
            return Err(serde::de::Error::custom(TOO_DEEP));
        }
        let seed = StrictSeed { depth, ..self.seed };
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.seed.meter))? {
            let value = map.next_value_seed(seed)?;
            // The entry beside its value: its hash and key in the entries' vector (which grows
            // to twice the entries), its index slot; a map's first room holds three.
            let first = if out.is_empty() { FIRST_ROOM_BYTES } else { 0 };
            claim(self.seed.meter, ENTRY_BYTES + first)?;
            // One lookup both finds a duplicate and inserts (no second set of cloned keys).
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(mut slot) if !self.seed.strict => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(_) => {
                    return Err(serde::de::Error::custom(DUPLICATE));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Issue 10: the UTF-8 check runs only after a failed parse; the reason must be the one
    /// the check gave when it ran first, and nothing that is not UTF-8 may parse.
    #[test]
    fn invalid_utf8_is_named_whatever_else_is_wrong_and_never_parses() {
        let cases: [&[u8]; 8] = [
            b"{\"a\":\"\xff\"}",
            b"{\"\xc3\":1}",
            b"{\"a\":1}\xff",
            b"{\"a\":1,\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":1,\"a\":2,\"b\":\"\xff\"}",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\xff",
            b"\xff",
            b"{\"a\": tru\xe9}",
        ];
        for c in cases {
            assert_eq!(
                parse_strict(c).unwrap_err().reason,
                "request body is not valid UTF-8",
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        // Valid UTF-8 everywhere, escapes and multi-byte characters included, still parses.
        let ok = "{\"\u{e9}t\u{e9}\":\"caf\u{e9} \\u00e9 \u{1F600}\",\"n\":[1,2.5,null,true]}";
        assert!(parse_strict(ok.as_bytes()).is_ok());
        // Random bytes: whatever parses is UTF-8.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"{}[]:,\"\\ 0123456789aeflnrstu\x80\xbf\xc3\xe2\xed\xf0\xff";
        for _ in 0..20_000 {
            let len = (state % 12) as usize;
            let mut input = vec![b'"'];
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            input.push(b'"');
            if parse_strict(&input).is_ok() {
                assert!(std::str::from_utf8(&input).is_ok(), "{input:?}");
            }
        }
    }

    #[test]
    fn accepts_json_content_types() {
        for ct in [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/JSON;charset=utf-8",
            "application/vnd.elasticsearch+json; compatible-with=8",
            "application/vnd.elasticsearch+json;compatible-with=9",
            // REST compatibility with 7 is passed through too: routes and bodies are rebuilt
            // by esgate, so typed routes (ENC-29, ENC-30) stay unknown and refused.
            "application/vnd.elasticsearch+json; compatible-with=7",
        ] {
            assert_eq!(check_content_type(Some(ct), Media::Json), Ok(()), "{ct}");
        }
        assert_eq!(
            check_content_type(Some("application/x-ndjson"), Media::Ndjson),
            Ok(())
        );
        assert_eq!(
            check_content_type(
                Some("application/vnd.elasticsearch+x-ndjson; compatible-with=9"),
                Media::Ndjson
            ),
            Ok(())
        );
    }

    /// The media type's essence is compared without case (`eq_ignore_ascii_case`), as it was
    /// once lowercased into a `String` and compared (issue 10): the two agree on every
    /// variant of the four names (each byte's case flipped, a byte dropped, doubled or put
    /// out of ASCII, non-ASCII look-alikes), so the same types are accepted.
    #[test]
    fn essences_compare_as_when_lowercased() {
        let names = [
            "application/json",
            "application/vnd.elasticsearch+json",
            "application/x-ndjson",
            "application/vnd.elasticsearch+x-ndjson",
        ];
        let mut probes: Vec<String> = Vec::new();
        for name in names {
            let bytes = name.as_bytes();
            probes.push(name.to_string());
            probes.push(name.to_ascii_uppercase());
            for i in 0..bytes.len() {
                let mut flipped = bytes.to_vec();
                flipped[i] ^= 0x20;
                probes.push(String::from_utf8_lossy(&flipped).into_owned());
                let mut dropped = bytes.to_vec();
                dropped.remove(i);
                probes.push(String::from_utf8_lossy(&dropped).into_owned());
                let mut doubled = bytes.to_vec();
                doubled.insert(i, bytes[i]);
                probes.push(String::from_utf8_lossy(&doubled).into_owned());
                let mut high = bytes.to_vec();
                high[i] |= 0x80;
                probes.push(String::from_utf8_lossy(&high).into_owned());
            }
            // The Kelvin sign and the dotted capital I lowercase to ASCII outside ASCII rules.
            probes.push(name.replace('i', "\u{130}"));
            probes.push(name.replace('n', "\u{212a}"));
        }
        for probe in &probes {
            for media in [Media::Json, Media::Ndjson] {
                let (plain, vnd) = match media {
                    Media::Json => (names[0], names[1]),
                    Media::Ndjson => (names[2], names[3]),
                };
                let lowered = probe.to_ascii_lowercase();
                let before = lowered == plain || lowered == vnd;
                let now = check_content_type(Some(probe), media).is_ok()
                    // A bare vendor type wants `compatible-with`: the essence passed.
                    || check_content_type(Some(&format!("{probe};compatible-with=8")), media)
                        .is_ok();
                assert_eq!(now, before, "{probe:?} {media:?}");
            }
        }
    }

    #[test]
    fn rejects_other_content_types_with_415() {
        let cases = [
            (Some("application/yaml"), Media::Json),  // ENC-09
            (Some("application/cbor"), Media::Json),  // ENC-10
            (Some("application/smile"), Media::Json), // ENC-11
            (Some("application/json; charset=utf-16"), Media::Json), // ENC-12
            (
                Some("application/vnd.elasticsearch+json; compatible-with=6"),
                Media::Json,
            ),
            (Some("application/vnd.elasticsearch+json"), Media::Json),
            (Some("text/plain"), Media::Json),
            (Some("application/x-ndjson"), Media::Json),
            (Some("application/json"), Media::Ndjson),
            (Some("application/json; boundary=x"), Media::Json),
            (None, Media::Json),
        ];
        for (ct, media) in cases {
            let err = check_content_type(ct, media).unwrap_err();
            assert_eq!(err.kind, RejectKind::UnsupportedMediaType, "{ct:?}");
        }
    }

    #[test]
    fn decodes_gzip_and_deflate_bodies() {
        let body = br#"{"query":{"match_all":{}}}"#;
        let want = json!({"query":{"match_all":{}}});
        for (enc, bytes) in [
            ("gzip", gzip(body)),
            ("deflate", zlib(body)),
            ("identity", body.to_vec()),
        ] {
            let got = decode_json(
                Some(&bytes),
                Some("application/json"),
                Some(enc),
                1024,
                &Meter::unlimited(),
            )
            .unwrap();
            assert_eq!(got, Some(want.clone()), "{enc}");
        }
    }

    #[test]
    fn caps_the_decoded_size_with_413() {
        let big = vec![b' '; 10_000];
        let err = decode_content(&gzip(&big), Some("gzip"), 1000, &Meter::unlimited()).unwrap_err();
        assert_eq!(err.kind, RejectKind::TooLarge);
        let err = decode_content(&big, None, 1000, &Meter::unlimited()).unwrap_err();
        assert_eq!(err.kind, RejectKind::TooLarge);
    }

    #[test]
    fn rejects_unknown_encodings_with_415_and_garbage_with_400() {
        for enc in ["br", "zstd", "gzip, gzip", "compress"] {
            assert_eq!(
                decode_content(b"{}", Some(enc), 100, &Meter::unlimited())
                    .unwrap_err()
                    .kind,
                RejectKind::UnsupportedMediaType,
                "{enc}"
            );
        }
        assert_eq!(
            decode_content(b"not gzip", Some("gzip"), 100, &Meter::unlimited())
                .unwrap_err()
                .kind,
            RejectKind::BadRequest
        );
    }

    #[test]
    fn strict_parse_rejects_dialect_differences() {
        let cases: &[&[u8]] = &[
            br#"{"a":1,"a":2}"#,              // ENC-18
            br#"{"aggs":{},"aggs":{}}"#,      // ENC-19
            br#"{"x":{"y":{"b":1,"b":1}}}"#,  // nested duplicate
            br#"{"a\u0067gs":{},"aggs":{}}"#, // escaped duplicate (ENC-17)
            br#"{"a":1 /* c */}"#,            // ENC-15
            b"{\"a\":1} // c",                // ENC-16
            br#"{"a":1e400}"#,                // ENC-21
            br#"{"a":1} {"b":2}"#,            // ENC-22
            b"\xEF\xBB\xBF{}",                // ENC-23
            b"{\"a\":\"\xff\"}",
            b"\xff\xfe{\x00}\x00", // UTF-16
            br#"{'a':1}"#,
            b"",
        ];
        for c in cases {
            let err = parse_strict(c).unwrap_err();
            assert_eq!(
                err.kind,
                RejectKind::BadRequest,
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn strict_parse_limits_depth_without_overflowing() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            parse_strict(deep.as_bytes()).unwrap_err().reason,
            "request body is nested too deeply"
        );
        let very_deep = format!("{}{}", "{\"a\":".repeat(3000), "}".repeat(3000)); // ENC-20
        assert_eq!(
            parse_strict(very_deep.as_bytes()).unwrap_err().kind,
            RejectKind::BadRequest
        );
    }

    #[test]
    fn strict_parse_keeps_values_and_unescapes_keys() {
        let v = parse_strict(br#" {"\u0061ggs":{"x":[1,-2,3.5,true,null,"s"]}} "#).unwrap();
        assert_eq!(v, json!({"aggs":{"x":[1,-2,3.5,true,null,"s"]}}));
    }

    #[test]
    fn empty_body_means_no_body_and_needs_no_content_type() {
        assert_eq!(
            decode_json(None, None, None, 10, &Meter::unlimited()),
            Ok(None)
        );
        assert_eq!(
            decode_json(Some(b""), None, None, 10, &Meter::unlimited()),
            Ok(None)
        );
    }

    #[test]
    fn duplicate_error_does_not_echo_the_key() {
        let err = parse_strict(br#"{"LEAKMARKER":1,"LEAKMARKER":2}"#).unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"));
    }

    /// Session 11: serde_json's values are claimed from the meter as they are built, so a body
    /// of small numbers (144 bytes of values per two body bytes) stops at the budget with the
    /// meter's reason; the same budget takes a body of the same length that is one string.
    #[test]
    fn the_serde_parse_claims_its_values() {
        use crate::memory::Refused;
        let dense = format!("[{}]", vec!["1"; 20_000].join(","));
        let sparse = format!("[\"{}\"]", "x".repeat(dense.len() - 4));
        let budget = 1 << 20;
        let grant = crate::memory::budget(budget, Refused::Busy);
        let meter = Meter::new(&grant);
        assert!(parse_strict_within(sparse.as_bytes(), &meter).is_ok());
        let meter = Meter::new(&grant);
        let err = parse_strict_within(dense.as_bytes(), &meter).unwrap_err();
        assert_eq!(err.kind, RejectKind::Busy, "{err:?}");
        assert!(err.reason.contains("memory"), "{err:?}");
        let meter = Meter::new(&|_| Ok(()));
        parse_strict_within(dense.as_bytes(), &meter).unwrap();
        assert!(meter.used() >= 20_001 * std::mem::size_of::<Value>());
    }

    /// A gzip body's decoded bytes are claimed before they are read: a body inflating past the
    /// budget stops there (the cap on the decoded size is far above it).
    #[test]
    fn decoded_bytes_are_claimed_before_they_are_read() {
        use crate::memory::Refused;
        let big = vec![b' '; 4 << 20];
        let packed = gzip(&big);
        assert!(packed.len() < 64 * 1024);
        let budget = 1 << 20;
        let grant = crate::memory::budget(budget, Refused::TooLarge);
        let meter = Meter::new(&grant);
        let err = decode_content(&packed, Some("gzip"), 100 << 20, &meter).unwrap_err();
        assert_eq!(err.kind, RejectKind::TooLarge, "{err:?}");
        assert!(meter.used() <= budget);
        let meter = Meter::new(&|_| Ok(()));
        let out = decode_content(&packed, Some("gzip"), 100 << 20, &meter).unwrap();
        assert_eq!(out.len(), big.len());
        assert!(meter.used() >= big.len());
    }

    /// An answer is read as `serde_json::from_slice` reads it: the same value or a failure on
    /// the same inputs (repeated keys, deep nesting on both sides of serde_json's limit, escapes,
    /// numbers, trailing data, a byte order mark, bad UTF-8).
    #[test]
    fn answers_read_as_serde_json_reads_them() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut cases: Vec<Vec<u8>> = [
            r#"{"a":1,"a":2,"b":{"c":[1,2.5,-3e2,true,null,"x\u00e9\n"]}}"#,
            r#"{"took":1,"hits":{"total":{"value":2},"hits":[]}}  "#,
            r#"{"a":1} x"#,
            r#"{"a":1,}"#,
            "\u{feff}{}",
            r#"[18446744073709551616, 1e400, 0.1]"#,
            "",
            "green logs-a\n",
        ]
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
        cases.extend(
            [deep(100), deep(127), deep(128), deep(129), deep(200)].map(String::into_bytes),
        );
        cases.push(b"{\"a\":\"\xff\"}".to_vec());
        for c in &cases {
            let ours = parse_value_within(c, &Meter::unlimited()).unwrap();
            let theirs = serde_json::from_slice::<Value>(c).ok();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(c));
        }
        // The one difference (review11b): serde_json's raw-value token as a first key is a key
        // here, as it is to Elasticsearch; serde_json's tree reads its string as JSON text.
        let token = br#"{"$serde_json::private::RawValue":"[1]"}"#;
        let ours = parse_value_within(token, &Meter::unlimited())
            .unwrap()
            .unwrap();
        assert_eq!(
            ours,
            serde_json::json!({"$serde_json::private::RawValue": "[1]"})
        );
        assert_eq!(
            serde_json::from_slice::<Value>(token).unwrap(),
            serde_json::json!([1])
        );
        let bad = br#"{"$serde_json::private::RawValue":1}"#;
        assert!(parse_value_within(bad, &Meter::unlimited())
            .unwrap()
            .is_some());
        assert!(serde_json::from_slice::<Value>(bad).is_err());
    }
}

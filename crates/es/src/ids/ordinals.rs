//! Lucene doc ids in top-level sort values (issue 8 item 2, issue 17 item 4).
//!
//! A hit's `sort` value for `_doc`, for `_shard_doc` under a point in time, and for the
//! `_shard_doc` tiebreaker Elasticsearch adds to every sorted search with a point in time is the
//! document's Lucene doc id (plus its shard's place in the point in time). Doc ids count every
//! document of the shard, other tenants' included: a client that sees them learns how many
//! foreign documents sit before each of its own, and one that sends a chosen number back in
//! `search_after` can bisect for the same count. `_seq_no` and `_primary_term` count
//! operations on the shard the same way.
//!
//! esgate therefore finds the *ordinal positions* of a search's sort (`prepare`), replaces the
//! value at each of them in every answer's `hits.hits[].sort` with an opaque sealed string
//! ([`seal_answer`]), and takes back in `search_after`, at those positions, only such sealed
//! values (opened again before forwarding) or extreme sentinels that reveal nothing (below or
//! above every doc id: Grafana's log context sends 2147483647). Paging keeps working because the
//! backend sees its own values again; the client sees only random-looking strings.
//!
//! A sealed value is `esgo1_` + base64url(nonce ‖ ciphertext ‖ tag): the value's JSON text,
//! padded to a fixed length (so its length says nothing about its size), encrypted with a
//! keystream of HMAC-SHA256 blocks over a random nonce, and authenticated (encrypt-then-MAC)
//! with an HMAC over the token binding (token id and scope digest, as continuation ids), the
//! search's context (the index expression as written, or the point in time's backend id),
//! the sort key the value belongs to (a `_shard_doc` long opened where `_doc` expects an int
//! would come back in the backend's parse error) and the ciphertext. Both keys are derived
//! from the id-sealing key. A value is therefore unlinkable between answers, opens only for the
//! token that received it, and only in a search over the same indices or point in time: a doc
//! id from one index used as a bound in another (say, an index holding only the token's own
//! documents) would turn it back into a count. For the same reason a `search_after` on a sort
//! that *starts* with a doc id is refused: each shard compares the bound with its own doc ids.
//!
//! Under scroll the answers of later pages come from `_search/scroll`, which does not repeat the
//! sort: a lone ascending `_doc` sort (what the Python clients' `scan` helpers send) is dropped
//! (every hit is still returned once; a constant-score query keeps its doc-id order, a scoring
//! one comes by score), any other ordinal sort is refused. A `slice` over a point in time without a
//! `field` splits by doc-id ranges of the whole shard and is refused; a `slice` without scroll
//! or point in time is malformed.
//!
//! Invariant: pure (the key and binding are arguments, the nonce comes from the CSPRNG). No
//! answer of a search with ordinal positions reaches the client with an unsealed value at one of
//! them; a `search_after` value at an ordinal position is forwarded only if esgate sealed it for
//! this token and this context, or if it is a listed sentinel.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::dsl::json::{Obj, J};
use crate::error::printable;
use crate::ids::continuation::Binding;
use crate::memory::Meter;
use crate::request::params::Param;
use crate::Rejection;

/// Sort keys whose values are shard-wide counters.
const ORDINAL_FIELDS: &[&str] = &["_doc", "_shard_doc", "_seq_no", "_primary_term"];
/// `_shard_doc` in `ORDINAL_FIELDS`: the point-in-time tiebreaker.
const SHARD_DOC: u8 = 1;

/// `search_after` numbers that lie below or above every doc id, sequence number and
/// `_shard_doc` value, so that paging from them reveals nothing. `0` is not one of them: it is
/// a doc id, and "after doc 0" tells whether a document is the first of its shard.
const SENTINELS: &[i64] = &[-1, i32::MIN as i64, i32::MAX as i64, i64::MIN, i64::MAX];

const PREFIX: &str = "esgo1_";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Values are padded to a multiple of this (every number fits one block).
const PAD_BLOCK: usize = 32;
/// A sort value longer than this is not a counter: refused rather than sealed.
const MAX_VALUE_LEN: usize = 256;
/// Most sort keys one search may have (Kibana and Grafana send two).
const MAX_SORT_KEYS: usize = 64;

/// Where a search's ordinal sort values sit, and the context their sealed forms are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Positions {
    /// Indices into a hit's `sort` array of explicit ordinal keys, ascending, each with its
    /// key (an index into `ORDINAL_FIELDS`).
    explicit: Vec<(usize, u8)>,
    /// With a point in time: every value from this index on (the implicit tiebreaker).
    tail_from: Option<usize>,
    /// Digest of the index expression or the point in time the search runs on.
    context: [u8; 16],
}

impl Positions {
    /// The key whose value sits at `i` when it is an ordinal (the implicit tiebreaker is
    /// `_shard_doc`). A sealed value is bound to it: a `_shard_doc` value (shard and doc id in
    /// one long) opened at a `_doc` position would not even parse, and the backend's error
    /// would show it.
    fn label(&self, i: usize) -> Option<u8> {
        match self.explicit.binary_search_by_key(&i, |e| e.0) {
            Ok(at) => Some(self.explicit[at].1),
            Err(_) => self.tail_from.filter(|t| i >= *t).map(|_| SHARD_DOC),
        }
    }

    /// A compact text form, carried inside a sealed async search id (which authenticates it).
    pub(crate) fn encode(&self) -> String {
        let hex: String = self.context.iter().map(|b| format!("{b:02x}")).collect();
        let explicit: Vec<String> = self
            .explicit
            .iter()
            .map(|(i, k)| format!("{i}:{k}"))
            .collect();
        let tail = self.tail_from.map(|t| t.to_string()).unwrap_or_default();
        format!("{hex},{},{tail}", explicit.join("."))
    }

    /// The inverse of [`Positions::encode`]; `None` for anything it did not write.
    pub(crate) fn decode(s: &str) -> Option<Positions> {
        let mut parts = s.split(',');
        let (hex, explicit, tail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut context = [0u8; 16];
        for (i, byte) in context.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        let explicit = if explicit.is_empty() {
            Vec::new()
        } else {
            explicit
                .split('.')
                .map(|p| {
                    let (i, k) = p.split_once(':')?;
                    let i = i.parse::<usize>().ok().filter(|n| *n < MAX_SORT_KEYS)?;
                    let k = k
                        .parse::<u8>()
                        .ok()
                        .filter(|k| usize::from(*k) < ORDINAL_FIELDS.len())?;
                    Some((i, k))
                })
                .collect::<Option<Vec<_>>>()?
        };
        let tail_from = if tail.is_empty() {
            None
        } else {
            Some(tail.parse::<usize>().ok().filter(|n| *n <= MAX_SORT_KEYS)?)
        };
        Some(Positions {
            explicit,
            tail_from,
            context,
        })
    }
}

/// Which answer shape carries the sort values to seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortSeal {
    /// `hits.hits[].sort` of a search.
    Search(Positions),
    /// `responses[i].hits.hits[].sort`: one entry per search of the msearch.
    Msearch(Vec<Option<Positions>>),
    /// `response.hits.hits[].sort` of an async search submit or poll.
    Async(Positions),
}

impl SortSeal {
    /// The positions an async search id must carry to its polls.
    pub fn async_positions(&self) -> Option<&Positions> {
        match self {
            SortSeal::Async(p) => Some(p),
            _ => None,
        }
    }
}

/// How the search is continued, which decides what its ordinal sorts may be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode<'a> {
    /// A plain search (or msearch item, async search) over this index expression.
    Plain { expression: &'a str },
    /// A search that opens a scroll.
    Scroll,
    /// A search on the point in time with this backend id.
    Pit { backend_id: &'a str },
}

/// Moves a `?sort=` parameter into the body (`field` or `field:asc|desc`, comma separated, as
/// Elasticsearch reads it), so that the sort positions are known exactly; a sort in both places
/// is a 400 (backends disagree on which wins).
pub(crate) fn take_uri_sort(
    params: &mut Vec<Param>,
    body: Option<Value>,
) -> Result<Option<Value>, Rejection> {
    let Some(i) = params.iter().position(|(k, _)| k == "sort") else {
        return Ok(body);
    };
    let (_, raw) = params.remove(i);
    let mut list = Vec::new();
    for part in raw.split(',') {
        let item = match part.rfind(':') {
            Some(d) => {
                let (field, order) = (&part[..d], &part[d + 1..]);
                if field.is_empty() || !matches!(order, "asc" | "desc") {
                    return Err(Rejection::bad_request(
                        "the [sort] parameter takes field or field:asc|desc, comma separated",
                    ));
                }
                json!({ field: { "order": order } })
            }
            None if !part.is_empty() => Value::String(part.to_string()),
            None => {
                return Err(Rejection::bad_request(
                    "the [sort] parameter has an empty field",
                ))
            }
        };
        list.push(item);
    }
    let mut obj = match body {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        // Not an object: `rewrite` refuses it.
        Some(other) => return Ok(Some(other)),
    };
    if obj.contains_key("sort") {
        return Err(Rejection::bad_request(
            "a sort is given both as the [sort] parameter and in the body",
        ));
    }
    obj.insert("sort".to_string(), Value::Array(list));
    Ok(Some(Value::Object(obj)))
}

/// Checks a rewritten search body's sort, `slice` and `search_after` for the way it is
/// continued, opens the sealed `search_after` values at ordinal positions, and returns where the
/// answer's ordinal sort values will be (`None`: nowhere).
pub(crate) fn prepare(
    body: &mut Value,
    mode: Mode<'_>,
    binding: &Binding,
) -> Result<Option<Positions>, Rejection> {
    let Value::Object(m) = body else {
        return Ok(None);
    };
    check_slice(m.get("slice"), mode)?;
    let keys = sort_keys(m.get("sort"));
    if keys.len() > MAX_SORT_KEYS {
        return Err(Rejection::bad_request(format!(
            "a sort may have at most {MAX_SORT_KEYS} keys"
        )));
    }
    let explicit: Vec<(usize, u8)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let at = ORDINAL_FIELDS.iter().position(|f| f == k)?;
            Some((i, u8::try_from(at).ok()?))
        })
        .collect();
    // What the sealed values are bound to, computed only once a position needs sealing: a
    // digest per request was a thirtieth of a small search's instructions (issue 10).
    let context = match mode {
        Mode::Scroll => {
            if explicit.is_empty() {
                return Ok(None);
            }
            if is_lone_ascending_doc(m.get("sort")) {
                m.remove("sort");
                return Ok(None);
            }
            return Err(Rejection::forbidden(format!(
                "sorting on [{}] is not allowed with scroll for this token (its values count other tenants' documents); use a point in time",
                keys[explicit[0].0]
            )));
        }
        Mode::Plain { expression } => {
            if keys.contains(&"_shard_doc") {
                return Err(Rejection::bad_request(
                    "[_shard_doc] sorts only a search with a point in time",
                ));
            }
            (b"indices".as_slice(), expression)
        }
        Mode::Pit { backend_id } => (b"pit".as_slice(), backend_id),
    };
    // Each shard compares a `search_after` doc id with its own doc ids (`_shard_doc` compares
    // the shard first): a doc id first in the sort would be a bound on every shard, other
    // indices' included, and the hits past it a count.
    let leading_counter = keys
        .first()
        .filter(|k| **k != "_shard_doc" && ORDINAL_FIELDS.contains(k))
        .map(|k| k.to_string());
    let tail_from = matches!(mode, Mode::Pit { .. }).then_some(keys.len());
    if explicit.is_empty() && tail_from.is_none() {
        return Ok(None);
    }
    let positions = Positions {
        explicit,
        tail_from,
        context: context_digest(context.0, context.1),
    };
    if let Some(Value::Array(after)) = m.get_mut("search_after") {
        let keys = Keys::of(binding);
        if let Some(first) = leading_counter {
            return Err(Rejection::forbidden(format!(
                "search_after on a sort that starts with [{first}] is not allowed for this token; sort on a field first, or page a point in time"
            )));
        }
        for (i, v) in after.iter_mut().enumerate() {
            if let Some(label) = positions.label(i) {
                *v = open_search_after(&keys, v, &positions.context, label, binding)?;
            }
        }
    }
    Ok(Some(positions))
}

/// Whether [`prepare`] in [`Mode::Plain`] returns `Ok(None)` for `body` and leaves it as it
/// is: no `slice`, at most [`MAX_SORT_KEYS`] sort keys and none of them a doc-id field. The
/// request tree's path (`routes::search`) takes only such bodies and leaves the rest to
/// `prepare`.
pub(crate) fn plain_is_noop(body: J<'_>) -> bool {
    let Some(m) = body.as_object() else {
        return true;
    };
    // A built object (the request tree's rewritten search, every body the tree path takes):
    // its keys read as they stand, the value of `sort` alone viewed (issue 10, goal 6: a `J`
    // made of each entry's value, to be dropped, about 30 instructions an entry).
    if let Obj::N(entries) = m {
        let mut sort = None;
        for (k, v) in entries.iter() {
            match &**k {
                "slice" => return false,
                "sort" => sort = sort.or(Some(v)),
                _ => {}
            }
        }
        return sort_is_plain(sort.map(J::from));
    }
    // `slice` and `sort` in one pass over the keys (issue 10, goal 6: a walk for each; the
    // keys are unique, so the first `sort` is the one).
    let mut sort = None;
    let sliced = m.try_each(|k, v| match k {
        "slice" => Err(()),
        "sort" => {
            sort = sort.or(Some(v));
            Ok(())
        }
        _ => Ok(()),
    });
    sliced.is_ok() && sort_is_plain(sort)
}

/// Whether a body's `sort` (`None`: it has none) leaves [`plain_is_noop`]'s body as it is: at
/// most [`MAX_SORT_KEYS`] sort keys and none of them a doc-id field.
fn sort_is_plain(sort: Option<J<'_>>) -> bool {
    let mut keys = 0usize;
    let mut ordinal = false;
    let mut item = |v: J<'_>| match v {
        J::String(s) => {
            keys += 1;
            ordinal |= ORDINAL_FIELDS.contains(&s);
        }
        J::Object(o) => {
            for k in o.keys() {
                keys += 1;
                ordinal |= ORDINAL_FIELDS.contains(&k);
            }
        }
        _ => {}
    };
    match sort {
        Some(J::Array(items)) => items.iter().for_each(&mut item),
        Some(one) => item(one),
        None => {}
    }
    !ordinal && keys <= MAX_SORT_KEYS
}

/// Replaces every ordinal sort value of the answer with its sealed form; the rest of the body
/// keeps its bytes. An answer whose shape cannot be read is an error (the proxy answers 502),
/// except an error answer that carries no sort values at all. The edits and the sealed copy are
/// claimed from `meter` before they are made (the outer `Err` is its refusal); the read of the
/// hits' sort values (a reference per value) is not: the backend caps a page's hits
/// (`index.max_result_window`) and the checks cap a search's sort keys.
pub fn seal_answer(
    binding: &Binding,
    spec: &SortSeal,
    success: bool,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Result<Vec<u8>, AnswerError>, Rejection> {
    match spans(binding, spec, body, meter) {
        Ok(edits) => splice(body, edits, meter).map(Ok),
        Err(Failed::Memory(refused)) => Err(refused),
        Err(Failed::Shape) if !success && !contains(body, b"\"sort\"") => {
            meter.take(body.len())?;
            Ok(Ok(body.to_vec()))
        }
        Err(Failed::Shape) => Ok(Err(AnswerError)),
    }
}

/// Why an answer's sort values were not all sealed.
enum Failed {
    /// Its shape cannot be read.
    Shape,
    /// The meter refused the memory.
    Memory(Rejection),
}

impl From<AnswerError> for Failed {
    fn from(_: AnswerError) -> Failed {
        Failed::Shape
    }
}

impl From<Rejection> for Failed {
    fn from(refused: Rejection) -> Failed {
        Failed::Memory(refused)
    }
}

/// The backend's answer to a search with ordinal positions does not have a readable shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the backend's answer to a search sorted on doc ids cannot be read")]
pub struct AnswerError;

/// The two keys of sealed sort values, derived from the id key (once per request or answer).
struct Keys {
    enc: [u8; 32],
    mac: [u8; 32],
}

impl Keys {
    fn of(binding: &Binding) -> Keys {
        Keys {
            enc: binding.key.derive("ordinal sort values: encryption"),
            mac: binding.key.derive("ordinal sort values: authentication"),
        }
    }
}

/// Seals one sort value (its JSON text) for `binding` in `context`.
#[cfg(test)]
fn seal_value(
    binding: &Binding,
    context: &[u8; 16],
    label: u8,
    raw: &str,
) -> Result<String, AnswerError> {
    seal_with(&Keys::of(binding), binding, context, label, raw)
}

fn seal_with(
    keys: &Keys,
    binding: &Binding,
    context: &[u8; 16],
    label: u8,
    raw: &str,
) -> Result<String, AnswerError> {
    if raw.len() > MAX_VALUE_LEN {
        return Err(AnswerError);
    }
    let padded_len = raw.len().div_ceil(PAD_BLOCK).max(1) * PAD_BLOCK;
    let mut data = raw.as_bytes().to_vec();
    data.resize(padded_len, b' ');
    let nonce: [u8; NONCE_LEN] = rand::random();
    xor_keystream(&keys.enc, &nonce, &mut data);
    let tag = tag(&keys.mac, binding, context, label, &nonce, &data);
    let mut out = Vec::with_capacity(NONCE_LEN + data.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&data);
    out.extend_from_slice(&tag);
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// Opens a sealed value presented by `binding` in `context`.
#[cfg(test)]
fn open_value(
    binding: &Binding,
    context: &[u8; 16],
    label: u8,
    sealed: &str,
) -> Result<Value, Rejection> {
    open_with(&Keys::of(binding), binding, context, label, sealed)
}

fn open_with(
    keys: &Keys,
    binding: &Binding,
    context: &[u8; 16],
    label: u8,
    sealed: &str,
) -> Result<Value, Rejection> {
    let refused = || {
        Rejection::forbidden(
            "a search_after value at a doc id sort position was not issued to this token for these indices",
        )
    };
    if sealed.len() > 2 * MAX_VALUE_LEN {
        return Err(refused());
    }
    let body = sealed.strip_prefix(PREFIX).ok_or_else(refused)?;
    let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| refused())?;
    if raw.len() < NONCE_LEN + PAD_BLOCK + TAG_LEN
        || !(raw.len() - NONCE_LEN - TAG_LEN).is_multiple_of(PAD_BLOCK)
    {
        return Err(refused());
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (data, given) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| refused())?;
    let expected = tag(&keys.mac, binding, context, label, &nonce, data);
    if !bool::from(expected.ct_eq(given)) {
        return Err(refused());
    }
    let mut plain = data.to_vec();
    xor_keystream(&keys.enc, &nonce, &mut plain);
    serde_json::from_slice(&plain).map_err(|_| refused())
}

fn xor_keystream(key: &[u8; 32], nonce: &[u8; NONCE_LEN], data: &mut [u8]) {
    for (block, chunk) in data.chunks_mut(32).enumerate() {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(nonce);
        m.update(&(block as u32).to_be_bytes());
        let stream = m.finalize().into_bytes();
        for (b, s) in chunk.iter_mut().zip(stream.iter()) {
            *b ^= s;
        }
    }
}

fn tag(
    key: &[u8; 32],
    binding: &Binding,
    context: &[u8; 16],
    label: u8,
    nonce: &[u8; NONCE_LEN],
    data: &[u8],
) -> [u8; TAG_LEN] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(&(binding.token_id.len() as u32).to_be_bytes());
    m.update(binding.token_id.as_bytes());
    m.update(context);
    m.update(&[label]);
    m.update(nonce);
    m.update(data);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

fn context_digest(kind: &[u8], what: &str) -> [u8; 16] {
    let mut d = Sha256::new();
    d.update((kind.len() as u64).to_be_bytes());
    d.update(kind);
    d.update(what.as_bytes());
    let full = d.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A `search_after` value at an ordinal position: a sealed value (opened) or a sentinel.
fn open_search_after(
    keys: &Keys,
    v: &Value,
    context: &[u8; 16],
    label: u8,
    binding: &Binding,
) -> Result<Value, Rejection> {
    match v {
        Value::String(s) => open_with(keys, binding, context, label, s),
        Value::Number(n) if n.as_i64().is_some_and(|n| SENTINELS.contains(&n)) => Ok(v.clone()),
        _ => Err(Rejection::forbidden(
            "search_after at a doc id sort position ([_doc], [_shard_doc], the point-in-time tiebreaker) takes only the values esgate returned",
        )),
    }
}

/// The field of each sort position, in order (`rewrite` has checked the shape: strings and
/// objects, an object's keys in their order).
fn sort_keys(sort: Option<&Value>) -> Vec<&str> {
    fn item<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Object(m) => out.extend(m.keys().map(String::as_str)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match sort {
        Some(Value::Array(items)) => items.iter().for_each(|i| item(i, &mut out)),
        Some(one) => item(one, &mut out),
        None => {}
    }
    out
}

/// `_doc`, `["_doc"]`, `{"_doc": "asc"}` or `{"_doc": {"order": "asc"}}`: the scan helpers' sort.
fn is_lone_ascending_doc(sort: Option<&Value>) -> bool {
    let one = match sort {
        Some(Value::Array(items)) if items.len() == 1 => &items[0],
        Some(Value::Array(_)) | None => return false,
        Some(one) => one,
    };
    match one {
        Value::String(s) => s == "_doc",
        Value::Object(m) if m.len() == 1 => match m.get("_doc") {
            Some(Value::String(o)) => o == "asc",
            Some(Value::Object(spec)) => spec.iter().all(|(k, v)| k == "order" && v == "asc"),
            _ => false,
        },
        _ => false,
    }
}

/// `slice` splits a scroll or a point in time; over a point in time it must name a field of
/// the documents (without one, Elasticsearch splits by doc-id ranges of the whole shard).
fn check_slice(slice: Option<&Value>, mode: Mode<'_>) -> Result<(), Rejection> {
    let Some(slice) = slice else {
        return Ok(());
    };
    let counter = |f: &str| ORDINAL_FIELDS.contains(&f) || f == "_version";
    match (mode, slice.get("field")) {
        (Mode::Plain { .. }, _) => Err(Rejection::bad_request(
            "[slice] can only be used with scroll or a point in time",
        )),
        // A slice is the hash of the field's value modulo `max`: over a counter, many slicings
        // would rebuild the counter.
        (_, Some(Value::String(f))) if counter(f) => Err(Rejection::forbidden(format!(
            "[slice] over [{}] is not allowed for this token",
            printable(f)
        ))),
        // Without a field a scroll slices by shard or by `_id` hash.
        (Mode::Scroll, _) => Ok(()),
        (Mode::Pit { .. }, Some(Value::String(f))) if !f.is_empty() => Ok(()),
        (Mode::Pit { .. }, _) => Err(Rejection::forbidden(
            "[slice] with a point in time needs a [field] for this token (without one it splits by doc ids that count other tenants' documents)",
        )),
    }
}

// === answers ===

#[derive(Deserialize)]
struct SearchAnswer<'a> {
    #[serde(borrow, default)]
    hits: Option<HitList<'a>>,
}

#[derive(Deserialize)]
struct HitList<'a> {
    #[serde(borrow, default)]
    hits: Option<Vec<Hit<'a>>>,
}

#[derive(Deserialize)]
struct Hit<'a> {
    #[serde(borrow, default)]
    sort: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct MsearchAnswer<'a> {
    #[serde(borrow, default)]
    responses: Option<Vec<SearchAnswer<'a>>>,
}

#[derive(Deserialize)]
struct AsyncAnswer<'a> {
    #[serde(borrow, default)]
    response: Option<SearchAnswer<'a>>,
}

/// (start, end, replacement) byte ranges of the answer, in any order.
type Edit = (usize, usize, String);

fn spans(
    binding: &Binding,
    spec: &SortSeal,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Vec<Edit>, Failed> {
    let text = std::str::from_utf8(body).map_err(|_| Failed::Shape)?;
    let mut edits = Vec::new();
    let keys = Keys::of(binding);
    let mut seal_hits = |answer: &SearchAnswer<'_>, p: &Positions| {
        collect(&keys, binding, text, answer, p, &mut edits, meter)
    };
    match spec {
        SortSeal::Search(p) => {
            let a: SearchAnswer = serde_json::from_str(text).map_err(|_| AnswerError)?;
            seal_hits(&a, p)?;
        }
        SortSeal::Async(p) => {
            let a: AsyncAnswer = serde_json::from_str(text).map_err(|_| AnswerError)?;
            if let Some(r) = &a.response {
                seal_hits(r, p)?;
            }
        }
        SortSeal::Msearch(items) => {
            let a: MsearchAnswer = serde_json::from_str(text).map_err(|_| AnswerError)?;
            let responses = a.responses.unwrap_or_default();
            if responses.len() > items.len() {
                return Err(Failed::Shape);
            }
            for (r, p) in responses.iter().zip(items) {
                if let Some(p) = p {
                    seal_hits(r, p)?;
                }
            }
        }
    }
    Ok(edits)
}

fn collect(
    keys: &Keys,
    binding: &Binding,
    text: &str,
    answer: &SearchAnswer<'_>,
    p: &Positions,
    edits: &mut Vec<Edit>,
    meter: &Meter<'_>,
) -> Result<(), Failed> {
    let hits = answer.hits.as_ref().and_then(|h| h.hits.as_ref());
    for hit in hits.into_iter().flatten() {
        for (i, raw) in hit.sort.iter().flatten().enumerate() {
            let Some(label) = p.label(i) else {
                continue;
            };
            let value = raw.get();
            // The raw value borrows from `text`: its place is its address relative to it.
            let start = (value.as_ptr() as usize)
                .checked_sub(text.as_ptr() as usize)
                .ok_or(AnswerError)?;
            let end = start + value.len();
            if text.get(start..end) != Some(value) {
                return Err(Failed::Shape);
            }
            let sealed = format!(
                "\"{}\"",
                seal_with(keys, binding, &p.context, label, value)?
            );
            meter.grow(edits, 64)?;
            meter.take(sealed.len())?;
            edits.push((start, end, sealed));
        }
    }
    Ok(())
}

/// `body` with the edits made, in a vector of its length claimed from `meter` first; the edits
/// (their room and their text) are returned to it as they are dropped.
fn splice(body: &[u8], mut edits: Vec<Edit>, meter: &Meter<'_>) -> Result<Vec<u8>, Rejection> {
    edits.sort_unstable_by_key(|e| e.0);
    let mut len = body.len();
    let mut at = 0;
    for (start, end, with) in &edits {
        if *start >= at {
            len = len - (end - start) + with.len();
            at = *end;
        }
    }
    meter.take(len)?;
    let mut out = Vec::with_capacity(len);
    let mut at = 0;
    meter.give(edits.capacity() * std::mem::size_of::<Edit>());
    for (start, end, with) in edits {
        meter.give(with.len());
        if start < at {
            continue;
        }
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(with.as_bytes());
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::continuation::IdKey;
    use crate::RejectKind;

    fn sealed(
        b: &Binding,
        spec: &SortSeal,
        success: bool,
        body: &[u8],
    ) -> Result<Vec<u8>, AnswerError> {
        seal_answer(b, spec, success, body, &Meter::unlimited()).unwrap()
    }

    fn binding(token: &str) -> Binding {
        Binding {
            token_id: token.into(),
            key: Arc::new(IdKey::new([5; 32])),
        }
    }

    const PLAIN: Mode<'static> = Mode::Plain {
        expression: "logs-*",
    };

    fn prepared(body: Value, mode: Mode<'_>) -> Result<(Value, Option<Positions>), Rejection> {
        let mut body = body;
        let p = prepare(&mut body, mode, &binding("tok_a"))?;
        Ok((body, p))
    }

    fn explicit_and_tail(body: Value, mode: Mode<'_>) -> (Vec<usize>, Option<usize>) {
        let p = prepared(body, mode).unwrap().1.expect("positions");
        (p.explicit.iter().map(|e| e.0).collect(), p.tail_from)
    }

    #[test]
    fn ordinal_positions_are_found_in_every_sort_shape() {
        let cases = [
            (json!({"sort": "_doc"}), vec![0]),
            (json!({"sort": ["_doc"]}), vec![0]),
            (json!({"sort": {"_doc": {"order": "desc"}}}), vec![0]),
            // Grafana's one object with two keys (rewrite turns a top-level one into a list).
            (
                json!({"sort": [{"@timestamp": {"order": "desc"}, "_doc": {"order": "desc"}}]}),
                vec![1],
            ),
            (
                json!({"sort": [{"@timestamp": "desc"}, {"_doc": {"order": "desc", "unmapped_type": "boolean"}}]}),
                vec![1],
            ),
            (
                json!({"sort": ["_score", "_seq_no", "n", "_primary_term"]}),
                vec![1, 3],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                explicit_and_tail(body.clone(), PLAIN),
                (want, None),
                "{body}"
            );
        }
        for body in [json!({}), json!({"sort": ["n", "_score", "_id"]})] {
            assert_eq!(prepared(body.clone(), PLAIN).unwrap().1, None, "{body}");
        }
    }

    #[test]
    fn a_point_in_time_makes_every_value_past_the_explicit_keys_an_ordinal() {
        let pit = Mode::Pit { backend_id: "p1" };
        assert_eq!(
            explicit_and_tail(json!({"sort": [{"@timestamp": "desc"}]}), pit),
            (vec![], Some(1))
        );
        assert_eq!(
            explicit_and_tail(json!({"sort": ["n", "_shard_doc"]}), pit),
            (vec![1], Some(2))
        );
        assert_eq!(explicit_and_tail(json!({}), pit), (vec![], Some(0)));
        let err = prepared(json!({"sort": ["_shard_doc"]}), PLAIN).unwrap_err();
        assert_eq!(err.kind, RejectKind::BadRequest);
    }

    #[test]
    fn scroll_drops_the_scan_sort_and_refuses_other_ordinal_sorts() {
        for sort in [
            json!("_doc"),
            json!(["_doc"]),
            json!({"_doc": "asc"}),
            json!([{"_doc": {"order": "asc"}}]),
            json!({"_doc": {}}),
        ] {
            let (body, p) = prepared(json!({"sort": sort, "size": 5}), Mode::Scroll).unwrap();
            assert_eq!(body, json!({"size": 5}), "{sort}");
            assert_eq!(p, None);
        }
        for sort in [
            json!({"_doc": "desc"}),
            json!(["@timestamp", "_doc"]),
            json!([{"_doc": {"order": "asc", "missing": "_last"}}]),
            json!(["_seq_no"]),
        ] {
            let err = prepared(json!({ "sort": sort }), Mode::Scroll).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{sort}");
        }
        let (body, p) = prepared(json!({"sort": ["n"]}), Mode::Scroll).unwrap();
        assert_eq!((body, p), (json!({"sort": ["n"]}), None));
    }

    #[test]
    fn slices_need_scroll_or_a_point_in_time_with_a_document_field() {
        let pit = Mode::Pit { backend_id: "p1" };
        let ok = [
            (json!({"slice": {"id": 0, "max": 2}}), Mode::Scroll),
            (json!({"slice": {"id": 0, "max": 2, "field": "n"}}), pit),
            (json!({"slice": {"id": 0, "max": 2, "field": "_id"}}), pit),
        ];
        for (body, mode) in ok {
            assert!(prepared(body.clone(), mode).is_ok(), "{body}");
        }
        let refused = [
            (
                json!({"slice": {"id": 0, "max": 2}}),
                pit,
                RejectKind::Forbidden,
            ),
            (
                json!({"slice": {"id": 0, "max": 2, "field": "_doc"}}),
                pit,
                RejectKind::Forbidden,
            ),
            (
                json!({"slice": {"id": 0, "max": 2, "field": "_seq_no"}}),
                pit,
                RejectKind::Forbidden,
            ),
            (
                json!({"slice": {"id": 0, "max": 2, "field": "n"}}),
                PLAIN,
                RejectKind::BadRequest,
            ),
            (
                json!({"slice": {"id": 0, "max": 7, "field": "_seq_no"}}),
                Mode::Scroll,
                RejectKind::Forbidden,
            ),
            (
                json!({"slice": {"id": 0, "max": 7, "field": "_doc"}}),
                Mode::Scroll,
                RejectKind::Forbidden,
            ),
        ];
        for (body, mode, kind) in refused {
            assert_eq!(
                prepared(body.clone(), mode).unwrap_err().kind,
                kind,
                "{body}"
            );
        }
    }

    #[test]
    fn uri_sort_moves_into_the_body() {
        let mut params =
            crate::testing::pairs(&[("size", "2"), ("sort", "n:desc,_doc,@timestamp:asc")]);
        let out = take_uri_sort(&mut params, None).unwrap().unwrap();
        assert_eq!(
            out,
            json!({"sort": [{"n": {"order": "desc"}}, "_doc", {"@timestamp": {"order": "asc"}}]})
        );
        assert_eq!(params, crate::testing::pairs(&[("size", "2")]));
        for bad in ["", "a,,b", "n:up", ":asc"] {
            let mut params = crate::testing::pairs(&[("sort", bad)]);
            assert_eq!(
                take_uri_sort(&mut params, None).unwrap_err().kind,
                RejectKind::BadRequest,
                "{bad}"
            );
        }
        let mut params = crate::testing::pairs(&[("sort", "_doc")]);
        let err = take_uri_sort(&mut params, Some(json!({"sort": "n"}))).unwrap_err();
        assert_eq!(err.kind, RejectKind::BadRequest);
        let mut none = Vec::new();
        assert_eq!(
            take_uri_sort(&mut none, Some(json!({"size": 1}))).unwrap(),
            Some(json!({"size": 1}))
        );
    }

    /// A search answer with the given sort arrays, as a backend writes it.
    fn answer(sorts: &[&str]) -> String {
        let hits: Vec<String> = sorts
            .iter()
            .enumerate()
            .map(|(i, s)| format!(r#"{{"_id":"a{i}","_score":null,"sort":{s}}}"#))
            .collect();
        format!(
            r#"{{"took":1,"hits":{{"total":{{"value":12345678901234567890,"relation":"eq"}},"hits":[{}]}}}}"#,
            hits.join(",")
        )
    }

    /// Session 12: the sealed values and the sealed copy of the answer are claimed before they
    /// are made, the values returned once written into the copy: what stays claimed is the
    /// copy. A budget short of them refuses.
    #[test]
    fn sealing_sort_values_claims_its_copy_first() {
        let b = binding("tok_a");
        let (_, p) = prepared(json!({"sort": [{"_doc": "desc"}]}), PLAIN).unwrap();
        let spec = SortSeal::Search(p.unwrap());
        let sorts: Vec<String> = (0..2000).map(|i| format!("[{i}]")).collect();
        let body = answer(&sorts.iter().map(String::as_str).collect::<Vec<_>>());
        let meter = Meter::unlimited();
        let out = seal_answer(&b, &spec, true, body.as_bytes(), &meter)
            .unwrap()
            .unwrap();
        assert!(
            out.len() > 2 * body.len(),
            "every value became a longer sealed one"
        );
        assert_eq!(meter.used(), out.len());
        let grant = crate::memory::budget(out.len(), crate::memory::Refused::Busy);
        let meter = Meter::new(&grant);
        let refused = seal_answer(&b, &spec, true, body.as_bytes(), &meter).unwrap_err();
        assert_eq!(refused.kind, RejectKind::Busy);
    }

    #[test]
    fn answers_get_ordinal_values_sealed_and_keep_every_other_byte() {
        let b = binding("tok_a");
        let (_, p) = prepared(
            json!({"sort": [{"@timestamp": "desc"}, {"_doc": "desc"}]}),
            PLAIN,
        )
        .unwrap();
        let p = p.unwrap();
        let body = answer(&["[1704412800000,17]", r#"[1.5e3, 4]"#, "[null,2147483648]"]);
        let out = sealed(&b, &SortSeal::Search(p.clone()), true, body.as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("12345678901234567890"), "{text}");
        assert!(text.contains("[1704412800000,\"esgo1_"), "{text}");
        assert!(text.contains("[1.5e3, \"esgo1_"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let sealed: Vec<&str> = v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["sort"][1].as_str().unwrap())
            .collect();
        // Every sealed value has the same length, whatever the doc id.
        assert!(sealed.iter().all(|s| s.len() == sealed[0].len()));
        // Each opens for this token and context to the backend's value.
        let want = [json!(17), json!(4), json!(2147483648_u64)];
        for (s, want) in sealed.iter().zip(want) {
            assert_eq!(open_value(&b, &p.context, 0, s).unwrap(), want);
        }
        // Sealing the same value twice gives unlinkable strings.
        let again = seal_value(&b, &p.context, 0, "17").unwrap();
        assert_ne!(again, sealed[0]);
    }

    #[test]
    fn search_after_takes_sealed_values_and_sentinels_only() {
        let b = binding("tok_a");
        let sort = json!([{"@timestamp": "asc"}, {"_doc": "asc"}]);
        let (_, p) = prepared(json!({ "sort": sort }), PLAIN).unwrap();
        let ctx = p.unwrap().context;
        let sealed = seal_value(&b, &ctx, 0, "42").unwrap();
        let (body, _) = prepared(
            json!({"sort": sort, "search_after": [1704412800000_u64, sealed]}),
            PLAIN,
        )
        .unwrap();
        assert_eq!(body["search_after"], json!([1704412800000_u64, 42]));
        for s in SENTINELS {
            let (body, _) = prepared(json!({"sort": sort, "search_after": [1, s]}), PLAIN).unwrap();
            assert_eq!(body["search_after"][1], json!(s));
        }
        let other_token = seal_value(&binding("tok_b"), &ctx, 0, "42").unwrap();
        // A `_shard_doc` value at a `_doc` position (the backend would echo it in an error).
        let other_key = seal_value(&b, &ctx, SHARD_DOC, "42").unwrap();
        let other_context = seal_value(&b, &context_digest(b"indices", "logs-a"), 0, "42").unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            json!(42),
            json!(0),
            json!(2147483646),
            json!("42"),
            json!(1.5),
            json!(null),
            json!(other_token),
            json!(other_context),
            json!(other_key),
            json!(tampered),
            json!("esgo1_"),
        ] {
            let err = prepared(json!({"sort": sort, "search_after": [1, bad]}), PLAIN).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{bad}");
            assert!(!err.reason.contains("42"), "{}", err.reason);
        }
        // A point in time's tiebreaker position.
        let pit = Mode::Pit { backend_id: "p1" };
        let (_, p) = prepared(json!({"sort": ["n"]}), pit).unwrap();
        let sealed = seal_value(&b, &p.unwrap().context, SHARD_DOC, "8589934593").unwrap();
        let (body, _) = prepared(json!({"sort": ["n"], "search_after": [3, sealed]}), pit).unwrap();
        assert_eq!(body["search_after"], json!([3, 8589934593_u64]));
        let err = prepared(json!({"sort": ["n"], "search_after": [3, 7]}), pit).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        // A doc id first in the sort cannot bound a search_after (it would bound every shard).
        let sealed = seal_value(&b, &ctx, 0, "3").unwrap();
        for sort in [json!(["_doc"]), json!([{"_seq_no": "asc"}, "n"])] {
            let err =
                prepared(json!({"sort": sort, "search_after": [sealed, 1]}), PLAIN).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{sort}");
        }
        let (_, p) = prepared(json!({"sort": ["_shard_doc"]}), pit).unwrap();
        let sealed = seal_value(&b, &p.unwrap().context, SHARD_DOC, "5").unwrap();
        assert!(prepared(
            json!({"sort": ["_shard_doc"], "search_after": [sealed]}),
            pit
        )
        .is_ok());
        // A value sealed under another point in time does not open.
        let other_pit = Mode::Pit { backend_id: "p2" };
        let sealed = seal_value(&b, &context_digest(b"pit", "p1"), SHARD_DOC, "1").unwrap();
        assert!(prepared(
            json!({"sort": ["n"], "search_after": [3, sealed]}),
            other_pit
        )
        .is_err());
    }

    #[test]
    fn msearch_and_async_answers_are_sealed_where_their_searches_sort_on_ordinals() {
        let b = binding("tok_a");
        let p = |e| {
            prepared(
                json!({"sort": ["n", "_doc"]}),
                Mode::Plain { expression: e },
            )
            .unwrap()
            .1
        };
        let item = answer(&["[1,5]"]);
        let body =
            format!(r#"{{"responses":[{item},{item},{{"error":{{"type":"x"}},"status":400}}]}}"#);
        let spec = SortSeal::Msearch(vec![p("logs-*"), None, p("logs-a")]);
        let v: Value =
            serde_json::from_slice(&sealed(&b, &spec, true, body.as_bytes()).unwrap()).unwrap();
        assert!(v["responses"][0]["hits"]["hits"][0]["sort"][1]
            .as_str()
            .unwrap()
            .starts_with(PREFIX));
        assert_eq!(v["responses"][1]["hits"]["hits"][0]["sort"], json!([1, 5]));
        // More answers than searches: not ours to guess.
        let spec = SortSeal::Msearch(vec![p("logs-*")]);
        assert!(sealed(&b, &spec, true, body.as_bytes()).is_err());
        let body = format!(r#"{{"id":"x","is_running":true,"response":{item}}}"#);
        let spec = SortSeal::Async(p("logs-*").unwrap());
        let v: Value =
            serde_json::from_slice(&sealed(&b, &spec, true, body.as_bytes()).unwrap()).unwrap();
        assert!(v["response"]["hits"]["hits"][0]["sort"][1]
            .as_str()
            .unwrap()
            .starts_with(PREFIX));
    }

    #[test]
    fn unreadable_answers_are_errors_unless_they_are_errors_without_sort_values() {
        let b = binding("tok_a");
        let spec = SortSeal::Search(Positions {
            explicit: vec![(0, 0)],
            tail_from: None,
            context: [0; 16],
        });
        for body in [
            &b"not json"[..],
            b"[1]",
            br#"{"hits":{"hits":[{"sort":1}]}}"#,
        ] {
            assert!(sealed(&b, &spec, true, body).is_err());
        }
        let err = br#"{"error":{"type":"x"},"status":400}"#;
        assert_eq!(sealed(&b, &spec, false, err).unwrap(), err.to_vec());
        assert_eq!(
            sealed(&b, &spec, false, b"Bad Gateway").unwrap(),
            b"Bad Gateway".to_vec()
        );
    }

    /// [`plain_is_noop`] as it was written before its one pass: a walk for `slice`, one for
    /// `sort` (the sort keys are counted as there, by `sort_is_plain`).
    fn plain_is_noop_two_walks(body: J<'_>) -> bool {
        let Some(m) = body.as_object() else {
            return true;
        };
        !m.contains_key("slice") && sort_is_plain(m.get("sort"))
    }

    /// The one-pass [`plain_is_noop`] decides as the two walks did, on serde_json's tree, the
    /// parsed tree and the built one, for the corpus and for bodies with `slice` and `sort`
    /// anywhere among their keys; and a body it passes is one `prepare` leaves as it is.
    #[test]
    fn plain_is_noop_decides_as_two_walks() {
        use crate::request::tree::{self, Node};
        let mut bodies: Vec<Value> = crate::testing::corpus_texts()
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect();
        let sorts = [
            json!("a"),
            json!("_doc"),
            json!({"_seq_no": "asc"}),
            json!({"a": "asc", "b": "desc"}),
            json!([{"a": "asc"}, "b", {"_shard_doc": "desc"}]),
            json!(vec!["a"; 64]),
            json!(vec!["a"; 65]),
            json!([1, null, []]),
            json!(7),
        ];
        for (i, sort) in sorts.iter().enumerate() {
            for extra in [
                json!({}),
                json!({"slice": {"id": 0, "max": 2}}),
                json!({"size": 1, "query": {"match_all": {}}}),
            ] {
                let Value::Object(extra) = extra else {
                    unreachable!()
                };
                // `sort` before the other keys and after them.
                for first in [true, false] {
                    let mut m = Map::new();
                    if first {
                        m.insert("sort".into(), sort.clone());
                    }
                    m.extend(extra.clone());
                    if !first {
                        m.insert("sort".into(), sort.clone());
                    }
                    if i % 2 == 1 {
                        m.insert("track_total_hits".into(), json!(true));
                    }
                    bodies.push(Value::Object(m));
                }
            }
        }
        bodies.push(json!({"slice": 1}));
        bodies.push(json!([{"slice": 1}]));
        let (mut plain, mut not) = (0, 0);
        for body in bodies {
            let expected = plain_is_noop_two_walks(J::from(&body));
            assert_eq!(plain_is_noop(J::from(&body)), expected, "{body}");
            let text = serde_json::to_vec(&body).unwrap();
            let arena = tree::Arena::for_body(text.len());
            // (A body the tree refuses, too deep, is serde_json's only.)
            let Ok(parsed) = tree::parse(&text, &arena) else {
                continue;
            };
            assert_eq!(plain_is_noop(J::from(&parsed)), expected, "{body}");
            // Opened: the top level built (a parsed container's items as they are).
            let mut built = parsed.clone();
            built.open();
            assert!(!matches!(built, Node::Parsed(_)));
            assert_eq!(plain_is_noop(J::from(&built)), expected, "{body}");
            if expected {
                plain += 1;
                if body.is_object() {
                    let (out, p) = prepared(body.clone(), PLAIN).unwrap();
                    assert!(p.is_none() && out == body, "{body}");
                }
            } else {
                not += 1;
            }
        }
        assert!(plain > 500 && not > 10, "{plain} {not}");
    }

    #[test]
    fn positions_survive_their_text_form_and_nothing_else_decodes() {
        let p = Positions {
            explicit: vec![(1, 0), (3, 2)],
            tail_from: Some(4),
            context: [0xab; 16],
        };
        assert_eq!(Positions::decode(&p.encode()), Some(p));
        let q = Positions {
            explicit: vec![],
            tail_from: None,
            context: [1; 16],
        };
        assert_eq!(Positions::decode(&q.encode()), Some(q));
        for bad in ["", "x,,", "00,1,", &format!("{},1,2,3", "0".repeat(32))] {
            assert_eq!(Positions::decode(bad), None, "{bad}");
        }
    }
}

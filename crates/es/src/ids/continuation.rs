//! Continuation ids (scroll ids, point-in-time ids, async search ids) bound to the token that
//! created them.
//!
//! The backend's id never reaches the client as it is: esgate hands out
//! `esgc1_<base64url(kind | mac | encrypted padded backend id)>`, where `mac` is an
//! HMAC-SHA256 (truncated to 128 bits) over a domain label (`PADDED_DOMAIN`: no id sealed in
//! the clear opens under it), the kind, the token id (with [`Binding::scoped`], also a digest
//! of the token's filters and index patterns) and the padded backend id, under a key only
//! esgate knows, and the padded backend id is encrypted with a keystream over the MAC
//! (`encrypt`, attack26c: it names search contexts and tasks by node-wide counters of every
//! tenant's work; padded to `PAD_BLOCK`, attack27c: its length told the counters' digits).
//! A continuation presents the sealed id; esgate recomputes the MAC with the id of the token
//! that presents it, so another token's id, a forged one or a raw backend id is refused. No
//! session state is kept, so several replicas sharing the key accept each other's ids.
//!
//! Invariant: pure (the key and the token id are arguments).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::memory::Meter;
use crate::Rejection;

const PREFIX: &str = "esgc1_";
const MAC_LEN: usize = 16;
/// The longest sealed id esgate hands out and opens. A backend id names every shard its
/// context holds and a sealed id is about 4/3 of it (rel26: Elasticsearch's scroll ids take 72
/// bytes a shard, its point-in-time ids 220 to 280 by the length of the index names, from
/// their encoding; osmem's 81 and 113, measured), so this holds an Elasticsearch point in
/// time over about 700 shards and a scroll over about 2,700; an answer whose id would be
/// longer is refused as it opens the context ([`within_cap`], the context freed), never on its
/// next page. It was 64 KiB until rel26: a point in time over about 180 shards got an id
/// refused on its next page as not issued to the token (403). Such ids travel in request bodies (a scroll's
/// `scroll_id`, a search's `pit.id`), under `listen.max_body_bytes`; in a URL
/// (`?scroll_id=`) `listen.max_header_bytes` and Elasticsearch's own 4 KB request line
/// (`http.max_initial_line_length`) cap them far below this.
pub const MAX_SEALED_LEN: usize = 256 * 1024;

// The proxy's count of open scrolls and points in time knows an open's context by the id at
// its answer's beginning, read within [`LEADING_ID_PREFIX`], and its later pages, searches and
// closes by the ids clients present: every id a client can present must be found there, or an
// open would be counted apart from its searches (never kept alive in the count by them, while
// the backend keeps it alive) and its close (attack25c, latent: raising one raises the other).
// A sealed id is longer than the backend id it carries (base64 of it and 17 bytes or more), so
// the backend's id and the key before it fit in the prefix.
const _: () = assert!(MAX_SEALED_LEN <= LEADING_ID_PREFIX);

/// The secret key ids are sealed with. `Debug` is redacted.
#[derive(Clone)]
pub struct IdKey([u8; 32]);

impl IdKey {
    pub fn new(bytes: [u8; 32]) -> IdKey {
        IdKey(bytes)
    }

    /// A key for another purpose (`label` names it), derived so that no two uses of the id key
    /// share a key: HMAC-SHA256 of the label under this key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"esgate derived key\x00");
        m.update(label.as_bytes());
        m.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(<redacted>)")
    }
}

/// What an id stands for; part of the MAC so one kind cannot be replayed as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Scroll,
    /// Elasticsearch `_pit` and OpenSearch `_search/point_in_time` ids.
    Pit,
    /// Elasticsearch `_async_search` ids (see `async_search`).
    AsyncSearch,
    /// Elasticsearch SQL cursors (they embed the next page's query: never accept a foreign one).
    SqlCursor,
}

impl IdKind {
    fn byte(self) -> u8 {
        match self {
            IdKind::Scroll => b's',
            IdKind::Pit => b'p',
            IdKind::AsyncSearch => b'a',
            IdKind::SqlCursor => b'c',
        }
    }
}

/// The token a request is made with, and the key: what binding needs.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The token's id; with [`Binding::scoped`], followed by a digest of its scope. Shared:
    /// the proxy binds every request of a token to the same id (issue 10: no copy per request).
    pub token_id: std::sync::Arc<str>,
    pub key: std::sync::Arc<IdKey>,
}

impl Binding {
    /// Binds ids to the token *as it is now*: its id and a digest of its filters and index
    /// patterns. An id minted before an administrator changed the token's filters or indices
    /// (or a library filter it uses) no longer opens, so results computed under the old scope
    /// (a stored async search, an open scroll) cannot be read under the new one.
    pub fn scoped(
        token_id: &str,
        key: std::sync::Arc<IdKey>,
        filters: &crate::FilterSet,
        indices: &[String],
    ) -> Binding {
        Binding {
            token_id: scoped_id(token_id, filters, indices).into(),
            key,
        }
    }
}

/// The token id a [`Binding::scoped`] binds to: the id, then a digest of the token's filters and
/// index patterns. Pure and deterministic, so the proxy may keep it with the state it was
/// computed from (one per token and store snapshot) instead of hashing on every request.
pub fn scoped_id(token_id: &str, filters: &crate::FilterSet, indices: &[String]) -> String {
    use sha2::Digest;
    let mut d = Sha256::new();
    let mut part = |bytes: &[u8]| {
        d.update((bytes.len() as u64).to_be_bytes());
        d.update(bytes);
    };
    // A value spelled like one of the markers (`f`, `c`, `i`) made two scopes write the same
    // parts: `tenant: {a, c}` with relevance scores and `tenant: a` with constant ones,
    // `tenant: {a, f, user, z}` and `tenant: a, user: z` (attack17b, L): an id opened under the
    // wider scope opened under the narrower one. Such scopes are written in a form of their own
    // (a leading `v2`, each field's value count); every other scope as before, so the ids
    // clients hold stay valid (`marker_values_do_not_merge_scopes`).
    let marker_values = filters
        .by_field
        .values()
        .flatten()
        .any(|v| matches!(v.as_str(), "f" | "c" | "i"));
    if marker_values {
        part(b"v2");
    }
    for (field, values) in &filters.by_field {
        part(b"f");
        part(field.as_bytes());
        if marker_values {
            part(&(values.len() as u64).to_be_bytes());
        }
        for v in values {
            part(v.as_bytes());
        }
    }
    // Constant scores bind too (review 15): a scroll or async search opened with relevance
    // scores would otherwise keep its backend query, and its scores, after the token's
    // `scores` became `constant`. Relevance binds as before, so its ids stay valid.
    if filters.constant_scores() {
        part(b"c");
    }
    let mut patterns: Vec<&String> = indices.iter().collect();
    patterns.sort();
    patterns.dedup();
    for p in patterns {
        part(b"i");
        part(p.as_bytes());
    }
    let digest = d.finalize();
    // Built by hand: a `format!` per byte was a tenth of a small search's instructions
    // (issue 10).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bound = String::with_capacity(token_id.len() + 1 + 32);
    bound.push_str(token_id);
    bound.push('\u{1f}');
    for b in &digest[..16] {
        bound.push(char::from(HEX[usize::from(b >> 4)]));
        bound.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    bound
}

/// Which field of a successful response carries an id to seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    pub field: &'static str,
    pub kind: IdKind,
    /// The response is only acceptable with this field (opening a point in time): a backend
    /// that answered something else, such as a search for an unknown route, is not relayed.
    pub required: bool,
    /// How the context the id names is freed on the backend, when the request that gets the
    /// answer created it (a scrolling search, opening a point in time, an async search submit):
    /// an answer esgate refuses never gives the client its id, so nobody else can free it.
    /// `None` for answers on a context the client already holds (a scroll's next page, a
    /// search on a point in time, an async search poll): the client still has its id.
    pub release: Option<Release>,
}

/// The backend request that frees a context a refused answer named ([`Seal::release`]); see
/// `routes::release_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// `DELETE /_search/scroll`.
    Scroll,
    /// Elasticsearch's `DELETE /_pit`.
    Pit,
    /// OpenSearch's `DELETE /_search/point_in_time`.
    OpenSearchPit,
    /// `DELETE /_async_search/<id>`.
    AsyncSearch,
    /// `POST /_sql/close` with the cursor.
    SqlCursor,
}

/// How much of an answer's beginning [`leading_id`] is given: Elasticsearch and OpenSearch
/// write a scroll, point-in-time or async search id before anything else, and an id names a
/// context per shard (about a hundred bytes each). A SQL answer writes its cursor after the
/// page's rows: found when the page fits in it.
pub const LEADING_ID_PREFIX: usize = 256 * 1024;

/// The value of the top-level key `field` in an answer of which `prefix` is the beginning
/// (cut anywhere): the first such value when it is a whole, non-empty string before the
/// prefix ends; `None` when the prefix is not the start of a JSON object, the key comes too
/// late, or its value is not a string. Only a real beginning may be given: read from the
/// middle of an answer, a document's text could name another client's id.
pub fn leading_id(field: &str, prefix: &[u8]) -> Option<String> {
    leading_id_within(field, prefix, LEADING_ID_PREFIX)
}

/// [`leading_id`] within the first `cap` bytes of `prefix`: for an answer read whole whose
/// context esgate frees because it refused the answer, an id too long to hand out included
/// ([`within_cap`]).
pub fn leading_id_within(field: &str, prefix: &[u8], cap: usize) -> Option<String> {
    use serde::de::Error as _;
    struct Seek<'a> {
        field: &'a str,
        found: &'a mut Option<String>,
    }
    impl<'de> serde::de::Visitor<'de> for Seek<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an answer object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.field {
                    *self.found = map.next_value::<StringOrNone>()?.0;
                    // Stop here: the rest of the answer may be cut off.
                    return Err(A::Error::custom("found"));
                }
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let prefix = &prefix[..prefix.len().min(cap)];
    let mut found = None;
    let mut d = serde_json::Deserializer::from_slice(prefix);
    let _ = serde::Deserializer::deserialize_map(
        &mut d,
        Seek {
            field,
            found: &mut found,
        },
    );
    found.filter(|id| !id.is_empty())
}

/// What the top-level key `field` of a whole answer names, read to the answer's end: for the
/// proxy's count of open SQL cursors, whose answer writes its `cursor` after the page's rows
/// (past any prefix [`leading_id`] reads) and names none on the last page, when Elasticsearch
/// has closed the point in time the cursor paged through. Only a whole answer may be given
/// (as for [`leading_id`], only its real beginning): the key is found at the top level only,
/// never in the rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    /// The key once, a non-empty string.
    Id(String),
    /// The answer was read to its end and names nothing: no such key, or an empty string.
    Nothing,
    /// Not a JSON object read to its end, or the key holds another value, or comes more than
    /// once: what the backend keeps is not known.
    Unknown,
}

/// [`Named`] for the top-level key `field` of the whole answer `body`.
pub fn named_id(field: &'static str, body: &[u8]) -> Named {
    named(read_field(field, body).as_ref().ok())
}

/// [`Named`] from a key's values as [`read_field`] found them (`None`: it could not read the
/// answer to its end).
fn named(found: Option<&FieldValues>) -> Named {
    let Some(found) = found else {
        return Named::Unknown;
    };
    match (found.keys, &found.last) {
        (0, _) => Named::Nothing,
        (1, Some(id)) if id.is_empty() => Named::Nothing,
        (1, Some(id)) => Named::Id(id.clone()),
        _ => Named::Unknown,
    }
}

/// Which MAC a sealed id is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MacOf {
    /// Ids sealed now, their payload padded ([`PAD_BLOCK`]): the MAC's input starts with
    /// [`PADDED_DOMAIN`].
    Padded,
    /// Ids sealed before session 27 (in the clear before attack26c, encrypted since): the
    /// input starts with the form. Still opened, never made.
    Before,
}

/// The start of the MAC's input of an id sealed now, its payload padded to [`PAD_BLOCK`]
/// (attack27c): no input of [`MacOf::Before`] starts so (they start with a form's byte, never
/// `e`), nor [`IdKey::derive`]'s, so an id opens under the MAC it was made with only and the
/// padding is esgate's own. attack27a (L): a sealed id shows its MAC, and the form sealed in
/// the clear opens when its MAC is the MAC of the payload after it: under one MAC for both, a
/// token put a guessed backend id in the clear after its own encrypted id's MAC and learnt
/// from the answer whether the guess was right (a search-context counter, once a node's ids
/// are known), undoing attack26c's encryption. A MAC of this domain makes no payload in the
/// clear open; the ids sealed before open under the MAC of then.
const PADDED_DOMAIN: &[u8] = b"esgc padded\x00";

/// The block a sealed payload is padded to (attack27c, L; attack26c noticed): the payload is
/// encrypted, but its length showed through, and a backend id's length moves with the counters
/// it carries (an async search id's task number, a scroll's context numbers: one byte more a
/// digit, or a varint byte more). Padded with `0x80` and then zeros to a multiple of this
/// (ISO/IEC 7816-4, read back from its end whatever the id holds), the length tells only which
/// block the payload ends in: Elasticsearch's async search id (its document id, 22 characters,
/// then the task id `node:number`, base64 of both: 64 to 88 bytes for numbers of 1 to 19
/// digits, from `AsyncExecutionId::encode`) always seals to the same length.
const PAD_BLOCK: usize = 32;

/// The MAC (`of` which kind) of a sealed id of form `form` (an [`IdKind`]'s byte, or
/// [`SCROLL_PAGED`]) over `payload` (the backend id, after a scroll page's length for
/// [`SCROLL_PAGED`]).
fn mac(binding: &Binding, of: MacOf, form: u8, payload: &[u8]) -> [u8; MAC_LEN] {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(&binding.key.0).expect("HMAC takes any key length");
    match of {
        MacOf::Padded => m.update(PADDED_DOMAIN),
        MacOf::Before => {}
    }
    m.update(&[form]);
    m.update(&(binding.token_id.len() as u32).to_be_bytes());
    m.update(binding.token_id.as_bytes());
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// The forms of a scroll id and of a SQL cursor that also carry the length of the page they
/// came with (in KiB, 4 bytes, under the MAC): both move the backend's context on with every
/// page, the next page is about as large, and esgate makes room for it before it asks the
/// backend for it ([`open_paged`]). Ids of the plain forms (`s`, `c`) still open.
const SCROLL_PAGED: u8 = b'S';
const SQL_CURSOR_PAGED: u8 = b'C';

/// The paged form of `kind`, for the kinds whose context moves on with every page.
fn paged_form(kind: IdKind) -> Option<u8> {
    match kind {
        IdKind::Scroll => Some(SCROLL_PAGED),
        IdKind::SqlCursor => Some(SQL_CURSOR_PAGED),
        IdKind::Pit | IdKind::AsyncSearch => None,
    }
}

/// Seals a backend id for the token in `binding`.
pub fn seal(binding: &Binding, kind: IdKind, backend_id: &str) -> String {
    sealed(binding, kind.byte(), &[], backend_id)
}

/// Seals an id of `answer`, a page of `page_len` bytes, for the token in `binding`: with that
/// length when `kind`'s context moves on with every page (a scroll, a SQL cursor).
pub fn seal_page(binding: &Binding, kind: IdKind, backend_id: &str, page_len: usize) -> String {
    match paged_form(kind) {
        Some(form) => {
            let kib = u32::try_from(page_len.div_ceil(1024)).unwrap_or(u32::MAX);
            sealed(binding, form, &kib.to_be_bytes(), backend_id)
        }
        None => seal(binding, kind, backend_id),
    }
}

fn sealed(binding: &Binding, form: u8, extra: &[u8], backend_id: &str) -> String {
    let padded = (extra.len() + backend_id.len() + 1).next_multiple_of(PAD_BLOCK);
    let mut payload = Vec::with_capacity(padded);
    payload.extend_from_slice(extra);
    payload.extend_from_slice(backend_id.as_bytes());
    payload.push(0x80);
    payload.resize(padded, 0);
    let tag = mac(binding, MacOf::Padded, form, &payload);
    encrypt(binding, &tag, &mut payload);
    let mut raw = Vec::with_capacity(1 + MAC_LEN + payload.len());
    raw.push(form);
    raw.extend_from_slice(&tag);
    raw.extend_from_slice(&payload);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// `sealed`, an id of `kind` about to be handed out, when esgate will open it
/// ([`MAX_SEALED_LEN`]); else the answer that carries it is refused (400
/// `illegal_argument_exception`, as Elasticsearch refuses a search over
/// `action.search.shard_count.limit`) saying which limit it met, and the proxy frees the
/// context the answer opened (`Seal::release`). Before rel26 such an id was handed out and
/// refused on its next page as not issued to the token (403).
pub fn within_cap(kind: IdKind, sealed: String) -> Result<String, Rejection> {
    if sealed.len() <= MAX_SEALED_LEN {
        return Ok(sealed);
    }
    let (what, narrower) = match kind {
        IdKind::Scroll => ("scroll", "scroll fewer indices or shards at once"),
        IdKind::Pit => ("point-in-time", "open it on fewer indices or shards"),
        IdKind::AsyncSearch => ("async search", "search fewer indices or shards"),
        IdKind::SqlCursor => ("SQL cursor", "query fewer indices, columns or rows at once"),
    };
    Err(Rejection::over_limit(format!(
        "the {what} id the backend answered is {} bytes sealed, over esgate's limit of \
         {MAX_SEALED_LEN} bytes for a continuation id (an id names every shard it holds a \
         context on): {narrower}",
        sealed.len()
    )))
}

/// Encrypts (or decrypts: the same) a sealed id's payload in place, with a keystream of
/// HMAC-SHA256 blocks under a key derived for it, over the id's MAC as a synthetic IV (the MAC
/// is of the plain payload, so two payloads never share a keystream unless they are equal).
/// attack26c: the payload was sealed under the MAC alone and read in the clear by whoever held
/// the id: a backend scroll or point-in-time id names each shard's search context by a
/// node-wide counter of every tenant's searches (the number review 16 withheld from the
/// "No search context found for id [N]" error), an async search id the task's number, a
/// counter of every request of the node.
fn encrypt(binding: &Binding, iv: &[u8; MAC_LEN], payload: &mut [u8]) {
    let key = binding.key.derive("continuation ids: encryption");
    // Keyed once: each block's HMAC starts from a copy of the keyed state.
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
    for (block, chunk) in payload.chunks_mut(32).enumerate() {
        let mut m = keyed.clone();
        m.update(iv);
        m.update(&(block as u32).to_be_bytes());
        let stream = m.finalize().into_bytes();
        for (b, k) in chunk.iter_mut().zip(stream.iter()) {
            *b ^= k;
        }
    }
}

/// Opens a sealed id presented by the token in `binding`; refuses ids of other tokens, of
/// another kind, forged or raw backend ids.
pub fn open(binding: &Binding, kind: IdKind, sealed: &str) -> Result<String, Rejection> {
    opened(binding, kind, sealed).map(|(id, _)| id)
}

/// [`open`], with the length (bytes, rounded up to KiB) of the page the id came with when it
/// carries one ([`seal_page`]).
pub fn open_paged(
    binding: &Binding,
    kind: IdKind,
    sealed: &str,
) -> Result<(String, Option<usize>), Rejection> {
    opened(binding, kind, sealed)
}

fn opened(
    binding: &Binding,
    kind: IdKind,
    sealed: &str,
) -> Result<(String, Option<usize>), Rejection> {
    let refused = || {
        Rejection::forbidden(match kind {
            IdKind::Scroll => "this scroll id was not issued to this token",
            IdKind::Pit => "this point-in-time id was not issued to this token",
            IdKind::AsyncSearch => "this async search id was not issued to this token",
            IdKind::SqlCursor => "this SQL cursor was not issued to this token",
        })
    };
    if sealed.len() > MAX_SEALED_LEN {
        return Err(too_long(kind));
    }
    let body = sealed.strip_prefix(PREFIX).ok_or_else(refused)?;
    let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| refused())?;
    let (form, extra) = match raw.first() {
        Some(&b) if b == kind.byte() => (b, 0),
        Some(&b) if Some(b) == paged_form(kind) => (b, 4),
        _ => return Err(refused()),
    };
    if raw.len() <= 1 + MAC_LEN + extra {
        return Err(refused());
    }
    let (given, sealed_payload) = raw[1..].split_at(MAC_LEN);
    let iv: [u8; MAC_LEN] = given.try_into().map_err(|_| refused())?;
    let mut payload = sealed_payload.to_vec();
    encrypt(binding, &iv, &mut payload);
    let opens =
        |of: MacOf, payload: &[u8]| bool::from(mac(binding, of, form, payload).ct_eq(given));
    if opens(MacOf::Padded, &payload) {
        // The padding: zeros after a last `0x80` (esgate's own, under the MAC).
        let end = payload.iter().rposition(|&b| b != 0);
        match end {
            Some(end) if payload[end] == 0x80 => payload.truncate(end),
            _ => return Err(refused()),
        }
    } else if !opens(MacOf::Before, &payload) {
        // An id sealed before session 27, encrypted under the MAC of then, opens as it did.
        // So does one sealed before attack26c, its payload in the clear (still under the MAC
        // of then): scrolls, points in time and async searches open across the upgrade.
        // Never under a MAC of [`PADDED_DOMAIN`]. (attack27a's unpadded form under a domain of
        // its own was never in a release: not opened.)
        if !opens(MacOf::Before, sealed_payload) {
            return Err(refused());
        }
        payload = sealed_payload.to_vec();
    }
    if payload.len() < extra {
        return Err(refused());
    }
    let (page, backend_id) = payload.split_at(extra);
    let page = <[u8; 4]>::try_from(page)
        .ok()
        .map(|kib| (u32::from_be_bytes(kib) as usize).saturating_mul(1024));
    let backend_id = String::from_utf8(backend_id.to_vec()).map_err(|_| refused())?;
    Ok((backend_id, page))
}

/// The refusal of an id longer than [`MAX_SEALED_LEN`]: whatever it is, esgate does not open
/// it. Since rel26 esgate refuses the answer that would hand out such an id, but an id can be
/// that long for reasons of its own (a cursor carries its query, a scroll or point-in-time id
/// a context per shard), and "not issued to this token" sent its client looking for the wrong
/// cause (sql26). Says only what the client sent was too long.
fn too_long(kind: IdKind) -> Rejection {
    let (what, why) = match kind {
        IdKind::Scroll => (
            "scroll id",
            "it names a context on every shard the scroll searched: scroll fewer indices at once",
        ),
        IdKind::Pit => (
            "point-in-time id",
            "it names a context on every shard it covers: open it on fewer indices",
        ),
        IdKind::AsyncSearch => ("async search id", "search fewer indices at once"),
        IdKind::SqlCursor => (
            "SQL cursor",
            "a cursor carries its query: page a shorter query (fewer literal values)",
        ),
    };
    Rejection::forbidden(format!(
        "this {what} is longer than esgate takes ({} KiB): {why}",
        MAX_SEALED_LEN / 1024
    ))
}

/// Replaces the backend id in a successful response body with its sealed form. The body is
/// otherwise left byte for byte as the backend sent it (numbers keep their precision) when the
/// id is found verbatim; an id the backend escaped, or a repeated id key whose values the text
/// cannot all have replaced, is sealed by rebuilding the body (the tree keeps a repeated key's
/// last value), and a body the tree cannot read is then refused (`None`) rather than sent with
/// a backend id (review 12). A body without the field is returned unchanged (`None` when the
/// seal requires it). An async search answer is sealed by `routes::async_search` (through
/// `routes::seal_answer`), never here: asked to, this refuses it. Every copy, and a rebuild's
/// tree, is claimed from `meter` before it is made (an answer can be 256 MiB): the outer `Err`
/// is the meter's refusal.
pub fn seal_response(
    binding: &Binding,
    seal_spec: Seal,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    seal_response_named(binding, seal_spec, body, meter).map(|(sealed, _)| sealed)
}

/// [`seal_response`], and what the key it seals names in `body` as [`named_id`] reads it,
/// found by the same pass over the answer (perf27b: a SQL answer was read whole twice, for
/// the seal and for the count of open cursors; 23.5k instructions a 2.5 KB answer). An async
/// search's answer, which this does not seal, is not read: [`Named::Unknown`].
pub fn seal_response_named(
    binding: &Binding,
    seal_spec: Seal,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<(Option<Vec<u8>>, Named), Rejection> {
    // An async search answer carries more than one id (and its id the ordinal positions of
    // its search): `routes::async_search` seals it. Refused here rather than half sealed.
    if seal_spec.kind == IdKind::AsyncSearch {
        return Ok((None, Named::Unknown));
    }
    let found = read_field(seal_spec.field, body);
    let named = named(found.as_ref().ok());
    sealed_response(binding, seal_spec, body, found, meter).map(|sealed| (sealed, named))
}

/// [`seal_response`] of an answer whose key [`read_field`] has read.
fn sealed_response(
    binding: &Binding,
    seal_spec: Seal,
    body: &[u8],
    found: Result<FieldValues, serde_json::Error>,
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    let unsealed = || -> Result<Option<Vec<u8>>, Rejection> {
        if seal_spec.required {
            return Ok(None);
        }
        meter.take(body.len())?;
        Ok(Some(body.to_vec()))
    };
    let Ok(found) = found else {
        return unreadable(binding, seal_spec, body, meter);
    };
    let Some(backend_id) = found.last.filter(|i| !i.is_empty()) else {
        // No id to seal as the tree reads the answer; an earlier value of a repeated key is
        // not sent either.
        if found.every.is_empty() || seal_spec.required {
            return unsealed();
        }
        return rebuilt(body, seal_spec, None, meter);
    };
    // The id is base64-like text: as a JSON string it has no escapes, so its quoted form is
    // found verbatim. Replacing every occurrence is safe: it is a random, unguessable value.
    let sealed = found
        .every
        .iter()
        .map(|id| {
            let sealed = seal_page(binding, seal_spec.kind, id, body.len());
            Ok((id.as_str(), within_cap(seal_spec.kind, sealed)?))
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    let text = replace_ids(body, sealed, meter)?;
    let replaced_all = read_field(seal_spec.field, &text).is_ok_and(|f| {
        f.every
            .iter()
            .all(|id| open(binding, seal_spec.kind, id).is_ok())
    });
    if replaced_all {
        return Ok(Some(text));
    }
    meter.give(text.len());
    drop(text);
    let sealed = seal_page(binding, seal_spec.kind, &backend_id, body.len());
    rebuilt(
        body,
        seal_spec,
        Some(within_cap(seal_spec.kind, sealed)?),
        meter,
    )
}

/// [`seal_response`] for an answer serde_json cannot read to its end. Elasticsearch writes a
/// document's `_source` as it was indexed, and its parser takes comments (`/* */`, `//`) that
/// serde_json refuses: a scroll page holding such a document was sent with its backend id
/// (attack17b, L). The id Elasticsearch writes first is found in the answer's beginning and
/// replaced wherever it stands; an answer that names the field but not at its beginning is
/// refused (`None`), one that does not name it is sent as it is (an error page).
fn unreadable(
    binding: &Binding,
    seal_spec: Seal,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    let key = format!("\"{}\"", seal_spec.field);
    let keys = memchr::memmem::find_iter(body, key.as_bytes()).count();
    if keys == 0 {
        if seal_spec.required {
            return Ok(None);
        }
        meter.take(body.len())?;
        return Ok(Some(body.to_vec()));
    }
    // One key, holding the id at the beginning as written (no escape): anything else is not
    // an answer whose every id this text replacement is sure to reach.
    let Some(id) = leading_id(seal_spec.field, body).filter(|_| keys == 1) else {
        return Ok(None);
    };
    if memchr::memmem::find(body, format!("\"{id}\"").as_bytes()).is_none() {
        return Ok(None);
    }
    let sealed = within_cap(
        seal_spec.kind,
        seal_page(binding, seal_spec.kind, &id, body.len()),
    )?;
    replace_ids(body, [(id.as_str(), sealed)], meter).map(Some)
}

/// The body rebuilt from its tree (a repeated key keeps its last value only), with the id's
/// place set to `sealed` when there is one; `None` when the tree cannot be built. The tree and
/// the text are claimed from `meter`.
fn rebuilt(
    body: &[u8],
    seal_spec: Seal,
    sealed: Option<String>,
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    let Some(mut v) = crate::request::body::parse_value_within(body, meter)? else {
        return Ok(None);
    };
    let Some(obj) = v.as_object_mut() else {
        return Ok(None);
    };
    if let Some(sealed) = sealed {
        obj.insert(
            seal_spec.field.to_owned(),
            serde_json::Value::String(sealed),
        );
    }
    meter.write(|w| serde_json::to_writer(w, &v))
}

/// `body` with every string of each `(id, sealed)` pair, quoted, replaced by its quoted sealed
/// form: a copy per id, each claimed from `meter` before it is made and returned once the next
/// replaces it.
pub(crate) fn replace_ids<'a>(
    body: &[u8],
    ids: impl IntoIterator<Item = (&'a str, String)>,
    meter: &Meter<'_>,
) -> Result<Vec<u8>, Rejection> {
    let mut text: Option<Vec<u8>> = None;
    for (id, sealed) in ids {
        let needle = format!("\"{id}\"");
        let sealed = format!("\"{sealed}\"");
        let from = text.as_deref().unwrap_or(body);
        let next = replace_all(from, needle.as_bytes(), sealed.as_bytes(), meter)?;
        if let Some(before) = text.replace(next) {
            meter.give(before.len());
        }
    }
    Ok(text.unwrap_or_default())
}

/// `text` with every `needle` (left to right, not overlapping, as `str::replace`) replaced by
/// `with`, in a vector of its exact length claimed from `meter` before it is made.
pub(crate) fn replace_all(
    text: &[u8],
    needle: &[u8],
    with: &[u8],
    meter: &Meter<'_>,
) -> Result<Vec<u8>, Rejection> {
    let finder = memchr::memmem::Finder::new(needle);
    let found = finder.find_iter(text).count();
    let len = (text.len() - found * needle.len()).saturating_add(found.saturating_mul(with.len()));
    meter.take(len)?;
    let mut out = Vec::with_capacity(len);
    let mut at = 0;
    for start in finder.find_iter(text) {
        out.extend_from_slice(&text[at..start]);
        out.extend_from_slice(with);
        at = start + needle.len();
    }
    out.extend_from_slice(&text[at..]);
    Ok(out)
}

/// The values at a top-level key of an answer, read as it streams by (nothing else is built
/// or checked as a tree would check it).
#[derive(Default)]
struct FieldValues {
    /// The key's last value when it is a string (as serde_json's tree reads it).
    last: Option<String>,
    /// Every non-empty string value the key had, each once.
    every: Vec<String>,
    /// How many times the key came.
    keys: usize,
}

/// [`FieldValues`] of `field` in `body`; an error when `body` is not a JSON object.
fn read_field(field: &'static str, body: &[u8]) -> Result<FieldValues, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut d = serde_json::Deserializer::from_slice(body);
    let found = FieldSeed(field).deserialize(&mut d)?;
    d.end()?;
    Ok(found)
}

struct FieldSeed(&'static str);

impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed {
    type Value = FieldValues;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<FieldValues, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldSeed {
    type Value = FieldValues;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an answer object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FieldValues, A::Error> {
        let mut found = FieldValues::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                found.keys += 1;
                found.last = map.next_value::<StringOrNone>()?.0;
                if let Some(id) = found.last.as_ref().filter(|id| !id.is_empty()) {
                    if !found.every.contains(id) {
                        found.every.push(id.clone());
                    }
                }
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A value read as its string, or `None` for any other value (skipped).
struct StringOrNone(Option<String>);

impl<'de> Deserialize<'de> for StringOrNone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StringOrNone, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringOrNone;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E>(self, v: &str) -> Result<StringOrNone, E> {
                Ok(StringOrNone(Some(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StringOrNone, E> {
                Ok(StringOrNone(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<StringOrNone, E> {
                Ok(StringOrNone(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<StringOrNone, E> {
                Ok(StringOrNone(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<StringOrNone, E> {
                Ok(StringOrNone(None))
            }
            fn visit_unit<E>(self) -> Result<StringOrNone, E> {
                Ok(StringOrNone(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringOrNone, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(StringOrNone(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StringOrNone, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(StringOrNone(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn binding(token: &str) -> Binding {
        Binding {
            token_id: token.into(),
            key: Arc::new(IdKey::new([7; 32])),
        }
    }

    #[test]
    fn a_sealed_id_opens_for_its_token_only() {
        let a = binding("tok_a");
        let sealed = seal(&a, IdKind::Scroll, "FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5");
        assert!(sealed.starts_with("esgc1_"));
        assert_eq!(
            open(&a, IdKind::Scroll, &sealed).unwrap(),
            "FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5"
        );
        assert!(open(&binding("tok_b"), IdKind::Scroll, &sealed).is_err());
        assert!(
            open(&a, IdKind::Pit, &sealed).is_err(),
            "a scroll id is not a PIT id"
        );
        let other_key = Binding {
            token_id: "tok_a".into(),
            key: Arc::new(IdKey::new([8; 32])),
        };
        assert!(open(&other_key, IdKind::Scroll, &sealed).is_err());
    }

    /// attack26c: the backend id was sealed under the MAC only and read in the clear by
    /// whoever held the sealed id (base64url-decode it): a scroll or point-in-time id's
    /// search-context numbers (a node-wide counter of every tenant's searches), an async
    /// search id's task number. Now no 8 bytes of the backend id are found in the sealed one,
    /// in any form; an id sealed in the clear before opens as it did, for its token only; a
    /// changed byte of the encrypted payload is refused.
    #[test]
    fn a_sealed_id_does_not_carry_the_backend_id_in_the_clear() {
        let a = binding("tok_a");
        let backend = "FGluY2x1ZGVfY29udGV4dF91dWlkDnF1ZXJ5VGhlbkZldGNoAxZvc21lbVJlYWRlckNvbnRleHRVVUlEAAAAAAAAAAQKb3NtZW0tbm9kZQ==";
        let raw = |sealed: &str| URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap();
        let pieces: Vec<&[u8]> = backend.as_bytes().windows(8).collect();
        for (kind, sealed) in [
            (IdKind::Scroll, seal(&a, IdKind::Scroll, backend)),
            (IdKind::Scroll, seal_page(&a, IdKind::Scroll, backend, 5000)),
            (IdKind::Pit, seal(&a, IdKind::Pit, backend)),
            (IdKind::AsyncSearch, seal(&a, IdKind::AsyncSearch, backend)),
            (
                IdKind::SqlCursor,
                seal_page(&a, IdKind::SqlCursor, backend, 10),
            ),
        ] {
            let bytes = raw(&sealed);
            assert!(
                !bytes.windows(8).any(|w| pieces.contains(&w)),
                "{kind:?}: the backend id shows in {sealed}"
            );
            assert_eq!(open(&a, kind, &sealed).unwrap(), backend);
            let mut changed = bytes.clone();
            *changed.last_mut().unwrap() ^= 1;
            let changed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(changed));
            assert!(open(&a, kind, &changed).is_err(), "{kind:?}");
        }
        // The form sealed before: the payload in the clear after its MAC.
        let mut legacy = vec![IdKind::Scroll.byte()];
        legacy.extend_from_slice(&mac(
            &a,
            MacOf::Before,
            IdKind::Scroll.byte(),
            backend.as_bytes(),
        ));
        legacy.extend_from_slice(backend.as_bytes());
        let legacy = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(legacy));
        assert_eq!(open(&a, IdKind::Scroll, &legacy).unwrap(), backend);
        assert!(open(&binding("tok_b"), IdKind::Scroll, &legacy).is_err());
        assert!(open(&a, IdKind::Pit, &legacy).is_err());
    }

    /// attack27a (L): an id sealed now shows its MAC (the synthetic IV) in the clear, and the
    /// form sealed in the clear before attack26c opens when its MAC is the MAC of the payload
    /// after it. Were both one MAC, the MAC of a new id with a guessed backend id after it
    /// would open exactly when the guess was right: an oracle that confirms a guessed search
    /// context counter (the backend id's only unknown part once a node's ids are known, on
    /// osmem always), undoing the encryption. A new id's MAC is of its own domain, so no
    /// payload in the clear opens under it; ids of both earlier forms still open, for their
    /// token only.
    #[test]
    fn a_new_ids_mac_opens_no_payload_in_the_clear() {
        let a = binding("tok_a");
        let backend = "FGluY2x1ZGVfY29udGV4dF91dWlkDnF1ZXJ5VGhlbkZldGNoAxZvc21lbVJlYWRlckNvbnRleHRVVUlEAAAAAAAAAAQKb3NtZW0tbm9kZQ==";
        let raw = |sealed: &str| URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap();
        let forge = |form: u8, tag: &[u8], payload: &[u8]| {
            let mut forged = vec![form];
            forged.extend_from_slice(tag);
            forged.extend_from_slice(payload);
            format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(forged))
        };
        for (kind, sealed, page) in [
            (IdKind::Scroll, seal(&a, IdKind::Scroll, backend), None),
            (
                IdKind::Scroll,
                seal_page(&a, IdKind::Scroll, backend, 5000),
                Some(5u32),
            ),
            (IdKind::Pit, seal(&a, IdKind::Pit, backend), None),
            (
                IdKind::AsyncSearch,
                seal(&a, IdKind::AsyncSearch, backend),
                None,
            ),
            (
                IdKind::SqlCursor,
                seal_page(&a, IdKind::SqlCursor, backend, 10),
                Some(1),
            ),
        ] {
            let bytes = raw(&sealed);
            let (form, tag) = (bytes[0], &bytes[1..1 + MAC_LEN]);
            let mut guessed: Vec<u8> = page.map(u32::to_be_bytes).unwrap_or_default().to_vec();
            guessed.extend_from_slice(backend.as_bytes());
            let right = forge(form, tag, &guessed);
            assert!(
                open(&a, kind, &right).is_err(),
                "{kind:?}: a right guess in the clear under a new id's MAC opened"
            );
            // Padded as esgate pads it (attack27c): still not in the clear.
            guessed.push(0x80);
            guessed.resize(guessed.len().next_multiple_of(PAD_BLOCK), 0);
            assert!(
                open(&a, kind, &forge(form, tag, &guessed)).is_err(),
                "{kind:?}"
            );
            assert_eq!(open(&a, kind, &sealed).unwrap(), backend, "{kind:?}");
        }
        // Ids sealed before still open: in the clear (before attack26c) and encrypted under
        // the MAC of that time (attack26c to attack27a).
        let before = |payload: &[u8]| {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&a.key.0).unwrap();
            m.update(&[IdKind::Pit.byte()]);
            m.update(&(a.token_id.len() as u32).to_be_bytes());
            m.update(a.token_id.as_bytes());
            m.update(payload);
            let tag: [u8; MAC_LEN] = m.finalize().into_bytes()[..MAC_LEN].try_into().unwrap();
            tag
        };
        let tag = before(backend.as_bytes());
        let clear = forge(IdKind::Pit.byte(), &tag, backend.as_bytes());
        let mut encrypted = backend.as_bytes().to_vec();
        encrypt(&a, &tag, &mut encrypted);
        let encrypted = forge(IdKind::Pit.byte(), &tag, &encrypted);
        for id in [&clear, &encrypted] {
            assert_eq!(open(&a, IdKind::Pit, id).unwrap(), backend);
            assert!(open(&binding("tok_b"), IdKind::Pit, id).is_err());
            assert!(open(&a, IdKind::Scroll, id).is_err());
        }
    }

    /// attack27c (L; attack26c noticed): the payload is encrypted, but a sealed id was as long
    /// as the backend id plus a constant, and an async search id's length moves with its task
    /// number's digits (a counter of every request of the node). Elasticsearch's ids
    /// (`AsyncExecutionId::encode`: base64url of the document id and `node:number`, each
    /// after its length) with task numbers of 1 to 19 digits seal to one length, and open to
    /// what they were; other ids' lengths move by the block only.
    #[test]
    fn async_ids_whose_task_numbers_differ_in_digits_seal_to_one_length() {
        use base64::engine::general_purpose::URL_SAFE;
        let a = binding("tok_a");
        let async_id = |task: u64| {
            let (doc, node) = ("Fk5TSzR1dHJ0U2ZHWVNQd0", "0Ny1uT2xSQVdGM3BOa2Y3aA");
            let task = format!("{node}:{task}");
            let mut raw = vec![doc.len() as u8];
            raw.extend_from_slice(doc.as_bytes());
            raw.push(task.len() as u8);
            raw.extend_from_slice(task.as_bytes());
            URL_SAFE.encode(raw)
        };
        let (short, long) = (async_id(7), async_id(u64::MAX / 2));
        assert_ne!(short.len(), long.len());
        let sealed = |id: &str| seal(&a, IdKind::AsyncSearch, id);
        for task in [7, 4_711, 123_456_789, 98_765_432_101, u64::MAX / 2] {
            let id = async_id(task);
            assert_eq!(sealed(&id).len(), sealed(&short).len(), "{task}");
            assert_eq!(open(&a, IdKind::AsyncSearch, &sealed(&id)).unwrap(), id);
        }
        // Lengths within one block seal alike; the next block is one block longer.
        assert_eq!(sealed("x").len(), sealed(&"x".repeat(PAD_BLOCK - 1)).len());
        let raw_len = |id: &str| {
            URL_SAFE_NO_PAD
                .decode(&sealed(id)[PREFIX.len()..])
                .unwrap()
                .len()
        };
        assert_eq!(raw_len("x"), 1 + MAC_LEN + PAD_BLOCK);
        assert_eq!(raw_len(&"x".repeat(PAD_BLOCK)), 1 + MAC_LEN + 2 * PAD_BLOCK);
        // A page length before the id is padded with it.
        let paged = seal_page(&a, IdKind::Scroll, &"x".repeat(PAD_BLOCK - 5), 10);
        assert_eq!(paged.len(), sealed("x").len());
        assert_eq!(
            open_paged(&a, IdKind::Scroll, &paged).unwrap(),
            ("x".repeat(PAD_BLOCK - 5), Some(1024))
        );
    }

    /// A scroll id carries the length of the page it came with, under the MAC: the proxy makes
    /// room for the next page before it asks for it (a page refused after the backend moved
    /// the scroll was lost). Plain ids still open, with no length.
    #[test]
    fn a_scroll_id_carries_its_page_length_under_the_mac() {
        let a = binding("tok_a");
        let sealed = seal_page(&a, IdKind::Scroll, "DXF1ZXJ5", 12 * 1024 * 1024 + 1);
        assert!(sealed.starts_with("esgc1_"));
        assert_eq!(
            open_paged(&a, IdKind::Scroll, &sealed).unwrap(),
            ("DXF1ZXJ5".to_string(), Some(12 * 1024 * 1024 + 1024))
        );
        assert_eq!(open(&a, IdKind::Scroll, &sealed).unwrap(), "DXF1ZXJ5");
        assert!(open_paged(&binding("tok_b"), IdKind::Scroll, &sealed).is_err());
        assert!(
            open(&a, IdKind::Pit, &sealed).is_err(),
            "only scroll ids carry a length"
        );
        let plain = seal(&a, IdKind::Scroll, "DXF1ZXJ5");
        assert_eq!(
            open_paged(&a, IdKind::Scroll, &plain).unwrap(),
            ("DXF1ZXJ5".to_string(), None)
        );
        // A length changed in the id (or its form) breaks the MAC.
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(PREFIX).unwrap())
            .unwrap();
        for at in [0, 1 + MAC_LEN, 1 + MAC_LEN + 3] {
            let mut forged = raw.clone();
            forged[at] = if at == 0 { b's' } else { forged[at] ^ 1 };
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(forged));
            assert!(
                open_paged(&a, IdKind::Scroll, &forged).is_err(),
                "byte {at}"
            );
        }
        // A page's scroll id is sealed with that page's length.
        let spec = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        let body = format!(r#"{{"_scroll_id":"DXF1ZXJ5","m":"{}"}}"#, "x".repeat(5000));
        let text = seal_now(&a, spec, body.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let (_, page) = open_paged(&a, IdKind::Scroll, v["_scroll_id"].as_str().unwrap()).unwrap();
        assert_eq!(page, Some(body.len().div_ceil(1024) * 1024));
    }

    /// Review 15: a change of the token's scores to constant changes the binding (an id opened
    /// with relevance scores keeps its backend query); relevance binds as before the field.
    #[test]
    fn constant_scores_change_the_binding_relevance_does_not() {
        let indices = ["logs-*".to_string()];
        let set = crate::FilterSet::new([("tenant".to_string(), "a".to_string())]);
        let before = scoped_id("tok_a", &set, &indices);
        assert_eq!(
            scoped_id("tok_a", &set.clone().with_constant_scores(false), &indices),
            before
        );
        assert_ne!(
            scoped_id("tok_a", &set.with_constant_scores(true), &indices),
            before
        );
    }

    /// attack17b: a filter value spelled like a marker of the digest made two scopes bind
    /// alike, the narrower opening ids of the wider; scopes without such values bind exactly as
    /// before (the digest written the old way here).
    #[test]
    fn marker_values_do_not_merge_scopes() {
        let set = |pairs: &[(&str, &str)]| {
            crate::FilterSet::new(pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())))
        };
        let idx = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let pairs = [
            (
                scoped_id(
                    "t",
                    &set(&[("tenant", "a"), ("tenant", "c")]),
                    &idx(&["logs-*"]),
                ),
                scoped_id(
                    "t",
                    &set(&[("tenant", "a")]).with_constant_scores(true),
                    &idx(&["logs-*"]),
                ),
            ),
            (
                scoped_id(
                    "t",
                    &set(&[
                        ("tenant", "a"),
                        ("tenant", "f"),
                        ("tenant", "user"),
                        ("tenant", "z"),
                    ]),
                    &idx(&["logs-*"]),
                ),
                scoped_id(
                    "t",
                    &set(&[("tenant", "a"), ("user", "z")]),
                    &idx(&["logs-*"]),
                ),
            ),
            (
                scoped_id(
                    "t",
                    &set(&[("tenant", "a"), ("tenant", "i"), ("tenant", "logs-a")]),
                    &idx(&["logs-b"]),
                ),
                scoped_id("t", &set(&[("tenant", "a")]), &idx(&["logs-a", "logs-b"])),
            ),
        ];
        for (wide, narrow) in &pairs {
            assert_ne!(wide, narrow);
        }
        // The old form, for scopes without marker values.
        fn legacy(token: &str, filters: &crate::FilterSet, indices: &[String]) -> String {
            use sha2::Digest;
            let mut d = Sha256::new();
            let mut part = |bytes: &[u8]| {
                d.update((bytes.len() as u64).to_be_bytes());
                d.update(bytes);
            };
            for (field, values) in &filters.by_field {
                part(b"f");
                part(field.as_bytes());
                for v in values {
                    part(v.as_bytes());
                }
            }
            if filters.constant_scores() {
                part(b"c");
            }
            let mut patterns: Vec<&String> = indices.iter().collect();
            patterns.sort();
            patterns.dedup();
            for p in patterns {
                part(b"i");
                part(p.as_bytes());
            }
            let hex: String = d.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{token}\u{1f}{hex}")
        }
        for (filters, indices) in [
            (set(&[("tenant", "a")]), idx(&["logs-*"])),
            (
                set(&[("tenant", "a"), ("tenant", "b"), ("env", "prod")]),
                idx(&["a", "b*"]),
            ),
            (set(&[("f", "x"), ("i", "y")]), idx(&["c", "i"])),
            (set(&[]), idx(&["logs-*"])),
        ] {
            for constant in [false, true] {
                let f = filters.clone().with_constant_scores(constant);
                assert_eq!(scoped_id("tok", &f, &indices), legacy("tok", &f, &indices));
            }
        }
    }

    #[test]
    fn forged_and_raw_ids_are_refused() {
        let a = binding("tok_a");
        let sealed = seal(&a, IdKind::Pit, "abc");
        let mut chars: Vec<char> = sealed.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        for bad in [
            "abc",
            "",
            "esgc1_",
            "esgc1_!!!",
            tampered.as_str(),
            &"x".repeat(70_000),
        ] {
            assert!(open(&a, IdKind::Pit, bad).is_err(), "{bad:.40}");
        }
    }

    /// attack17b: Elasticsearch sends a document's `_source` as it was indexed, comments
    /// included (its parser takes them); serde_json cannot read such a page, which then went
    /// out with its backend scroll id. The leading id is sealed in the text; an answer whose
    /// id cannot be found so is refused; one without the field still passes.
    #[test]
    fn unreadable_answers_do_not_carry_a_backend_id() {
        let a = binding("tok_a");
        let spec = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        let page =
            br#"{"_scroll_id":"RkdsdVkyeDFaR1Zm","hits":{"hits":[{"_source":{"a":1 /* c */}}]}}"#;
        assert!(serde_json::from_slice::<serde_json::Value>(page).is_err());
        let out = seal_now(&a, spec, page).expect("sealed");
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("RkdsdVkyeDFaR1Zm"), "{text}");
        assert!(text.ends_with(r#""hits":{"hits":[{"_source":{"a":1 /* c */}}]}}"#));
        let sealed = leading_id("_scroll_id", text.as_bytes()).unwrap();
        assert_eq!(
            open(&a, IdKind::Scroll, &sealed).unwrap(),
            "RkdsdVkyeDFaR1Zm"
        );
        for refused in [
            // The id escaped, or a second key the beginning does not show.
            &br#"{"_scroll_id":"Rkds\u0064VkyeDFa","x":{"a":1 /* c */}}"#[..],
            br#"{"_scroll_id":"RkdsdVky","x":{"a":1 /* c */},"_scroll_id":"T3RoZXI"}"#,
            br#"{"x":{"a":1 /* c */},"_scroll_id":"RkdsdVky"}"#,
        ] {
            assert_eq!(
                seal_now(&a, spec, refused),
                None,
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        let error_page = b"<html>bad gateway</html>";
        assert_eq!(
            seal_now(&a, spec, error_page).as_deref(),
            Some(&error_page[..])
        );
    }

    /// rel26: an id names every shard its context holds, and a point in time over about 260
    /// shards (a scroll over about 650) got a sealed id over the 64 KiB esgate opened: handed
    /// out, then refused on its next page as not issued to the token (403). Ids up to 256 KiB
    /// sealed open now; a longer one is refused in the answer that opens it, saying which
    /// limit it met (the proxy frees its context), in every way an answer is sealed.
    #[test]
    fn long_ids_open_and_longer_ones_are_refused_as_they_are_opened() {
        let a = binding("tok_a");
        let pit = Seal {
            field: "id",
            kind: IdKind::Pit,
            required: true,
            release: Some(Release::Pit),
        };
        // A point in time over about 500 shards (100 KiB of base64); sealed about 133 KiB.
        let long = "cGl0".repeat(25 * 1024);
        let answer = format!(r#"{{"id":"{long}","_shards":{{"total":500}}}}"#);
        let out = seal_now(&a, pit, answer.as_bytes()).expect("sealed");
        let sealed = leading_id("id", &out).expect("an id");
        assert!(sealed.len() > 128 * 1024, "{}", sealed.len());
        assert_eq!(open(&a, IdKind::Pit, &sealed).unwrap(), long);
        // About 200 KiB of base64: sealed over 256 KiB, refused however the answer is read.
        let longer = "cGl0".repeat(50 * 1024);
        for answer in [
            format!(r#"{{"id":"{longer}","_shards":{{"total":1000}}}}"#),
            // Escaped (sealed by rebuilding the answer), or not JSON serde_json reads (sealed
            // in the text).
            format!(r#"{{"id":"\u0063{}","_shards":{{}}}}"#, &longer[1..]),
            format!(r#"{{"id":"{longer}","x":{{"a":1 /* c */}}}}"#),
        ] {
            let refused = seal_response(&a, pit, answer.as_bytes(), &Meter::unlimited())
                .expect_err("over the limit");
            assert_eq!(refused.kind, crate::RejectKind::OverLimit);
            assert!(
                refused.reason.contains("point-in-time id")
                    && refused.reason.contains(&MAX_SEALED_LEN.to_string())
                    && !refused.reason.contains("cGl0"),
                "{}",
                refused.reason
            );
        }
        // The same as an async search's point in time.
        let answer = format!(r#"{{"id":"YXN5bmM=","response":{{"pit_id":"{longer}"}}}}"#);
        let refused =
            crate::routes::async_search::seal_response(&a, answer.as_bytes(), &Meter::unlimited())
                .expect_err("over the limit");
        assert_eq!(refused.kind, crate::RejectKind::OverLimit);
    }

    fn seal_now(binding: &Binding, spec: Seal, body: &[u8]) -> Option<Vec<u8>> {
        seal_response(binding, spec, body, &Meter::unlimited()).unwrap()
    }

    /// The sealed copy is made by `replace_all`: what `str::replace` makes, in a vector of
    /// exactly the length claimed (session 12: the copies of an answer up to 256 MiB were not
    /// claimed).
    #[test]
    fn replace_all_is_str_replace_at_its_claimed_length() {
        let cases = [
            ("", "\"a\"", "x"),
            ("\"a\"", "\"a\"", "\"sealed\""),
            ("{\"id\":\"a\",\"x\":[\"a\",\"\"a\"\"]}", "\"a\"", "\"zz\""),
            ("\"a\"\"a\"\"a\"", "\"a\"", ""),
            ("aaaa", "aa", "b"),
            ("no match here", "\"id\"", "\"x\""),
        ];
        for (text, needle, with) in cases {
            let meter = Meter::unlimited();
            let out =
                replace_all(text.as_bytes(), needle.as_bytes(), with.as_bytes(), &meter).unwrap();
            assert_eq!(out, text.replace(needle, with).into_bytes(), "{text}");
            assert_eq!(meter.used(), out.len(), "{text}");
            assert_eq!(out.capacity(), out.len(), "{text}");
        }
    }

    /// A copy the budget cannot cover is refused before it is made.
    #[test]
    fn a_sealed_copy_is_claimed_before_it_is_made() {
        let a = binding("tok_a");
        let scroll = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        let body = format!(
            r#"{{"_scroll_id":"DXF1ZXJ5","hits":{{"hits":[{{"_source":{{"m":"{}"}}}}]}}}}"#,
            "x".repeat(100_000)
        );
        for plain in [body.as_str(), r#"{"took":1}"#] {
            let grant = crate::memory::budget(plain.len() / 2, crate::memory::Refused::Busy);
            let meter = Meter::new(&grant);
            let refused = seal_response(&a, scroll, plain.as_bytes(), &meter).unwrap_err();
            assert_eq!(refused.kind, crate::RejectKind::Busy);
            let grant = crate::memory::budget(plain.len() + 200, crate::memory::Refused::Busy);
            let meter = Meter::new(&grant);
            let out = seal_response(&a, scroll, plain.as_bytes(), &meter)
                .unwrap()
                .unwrap();
            assert!(meter.used() >= out.len());
        }
    }

    #[test]
    fn responses_keep_their_bytes_except_the_id() {
        let a = binding("tok_a");
        let body = br#"{"_scroll_id":"DXF1ZXJ5QW5kRmV0Y2g=","took":1,"hits":{"total":{"value":12345678901234567890,"relation":"eq"}}}"#;
        let scroll = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        let text = String::from_utf8(seal_now(&a, scroll, body).unwrap()).unwrap();
        assert!(!text.contains("DXF1ZXJ5QW5kRmV0Y2g="));
        assert!(
            text.contains("12345678901234567890"),
            "numbers are untouched"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let sealed = v["_scroll_id"].as_str().unwrap();
        assert_eq!(
            open(&a, IdKind::Scroll, sealed).unwrap(),
            "DXF1ZXJ5QW5kRmV0Y2g="
        );
        // No id, or not JSON: unchanged.
        let plain = br#"{"took":1}"#;
        assert_eq!(seal_now(&a, scroll, plain), Some(plain.to_vec()));
        // Opening a point in time must answer with its id, not with anything else.
        let pit = Seal {
            field: "pit_id",
            kind: IdKind::Pit,
            required: true,
            release: None,
        };
        assert_eq!(seal_now(&a, pit, br#"{"hits":{"hits":[]}}"#), None);
    }

    /// Review 12: the id was replaced in the text and the answer sent without a look at the
    /// result. An id the backend escaped (`\u005a` for `Z`) was not found and went out raw; a
    /// repeated id key failed the typed read and the answer went out unchanged, both ids raw;
    /// an unrelated top-level key of another type (`"id": 5` beside a `_scroll_id`) did too.
    /// Every value at the id's place is now sealed, and one the text cannot have replaced is
    /// sealed by rebuilding the answer (a repeated key keeps its last value, as the tree
    /// reads it), or the answer is refused.
    #[test]
    fn escaped_and_repeated_ids_never_leave_raw() {
        let a = binding("tok_a");
        let scroll = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        let pit = Seal {
            field: "pit_id",
            kind: IdKind::Pit,
            required: true,
            release: None,
        };
        let cases: [(Seal, &[u8], &[&str]); 6] = [
            (
                scroll,
                br#"{"_scroll_id":"DXF1\u005aXJ5","took":1}"#,
                &["DXF1ZXJ5"],
            ),
            (
                scroll,
                br#"{"_scroll_id":"RAWone","_scroll_id":"RAWtwo","took":1}"#,
                &["RAWone", "RAWtwo"],
            ),
            (scroll, br#"{"_scroll_id":"RAWone","id":5}"#, &["RAWone"]),
            (
                scroll,
                br#"{"_scroll_id":"RAW\u006fne","_scroll_id":"RAWtwo"}"#,
                &["RAWone", "RAWtwo"],
            ),
            (pit, br#"{"pit_id":"RAW\/one","_shards":{}}"#, &["RAW/one"]),
            (
                pit,
                br#"{"pit_id":"RAWone","pit_id":"RAWtwo"}"#,
                &["RAWone", "RAWtwo"],
            ),
        ];
        for (spec, body, raw) in cases {
            let shown = String::from_utf8_lossy(body);
            let out = seal_now(&a, spec, body).expect("sealed");
            let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
            let text = String::from_utf8(out).unwrap();
            let id = v[spec.field].as_str().unwrap_or_default();
            assert!(open(&a, spec.kind, id).is_ok(), "{shown} -> {text}");
            for r in raw {
                assert!(!text.contains(r), "{shown} -> {text}");
            }
            // No escaped spelling is left either: every value at the id's place is sealed.
            assert!(!text.contains("RAW"), "{shown} -> {text}");
        }
        // A repeated key whose last value is no id: nothing is sealed, and the earlier value
        // is not sent (an answer that must carry an id is refused).
        let body = br#"{"_scroll_id":"RAWone","_scroll_id":5,"took":1}"#;
        let out = String::from_utf8(seal_now(&a, scroll, body).unwrap()).unwrap();
        assert!(!out.contains("RAW"), "{out}");
        assert_eq!(
            seal_now(&a, pit, br#"{"pit_id":"RAWone","pit_id":null}"#),
            None
        );
        // An escaped id beside something the tree cannot read: refused, not sent raw.
        let body =
            br#"{"_scroll_id":"DXF1\u005aXJ5","hits":{"hits":[{"_source":{"s":"\ud800"}}]}}"#;
        assert_eq!(seal_now(&a, scroll, body), None);
    }

    /// Issue #11: the async search answer sealing lives above this module (no import cycle);
    /// asked to seal one here, the answer is refused, never half sealed.
    #[test]
    fn an_async_search_answer_is_not_sealed_here() {
        let a = binding("tok_a");
        let spec = Seal {
            field: "id",
            kind: IdKind::AsyncSearch,
            required: false,
            release: None,
        };
        let body = br#"{"id":"FmRpZ","response":{"pit_id":"cGl0"}}"#;
        assert_eq!(seal_now(&a, spec, body), None);
    }

    #[test]
    fn a_scoped_binding_changes_with_the_tokens_filters_and_indices_only() {
        use crate::FilterSet;
        let key = Arc::new(IdKey::new([7; 32]));
        let filters = |pairs: &[(&str, &str)]| {
            FilterSet::new(pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())))
        };
        let idx = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = Binding::scoped(
            "tok_a",
            key.clone(),
            &filters(&[("tenant", "a"), ("env", "prod")]),
            &idx(&["logs-*", "metrics-*"]),
        );
        let sealed = seal(&base, IdKind::AsyncSearch, "abc");
        // The same scope, written in another order: the id still opens.
        let same = Binding::scoped(
            "tok_a",
            key.clone(),
            &filters(&[("env", "prod"), ("tenant", "a")]),
            &idx(&["metrics-*", "logs-*", "logs-*"]),
        );
        assert_eq!(open(&same, IdKind::AsyncSearch, &sealed).unwrap(), "abc");
        let changed = [
            Binding::scoped(
                "tok_a",
                key.clone(),
                &filters(&[("tenant", "a")]),
                &idx(&["logs-*", "metrics-*"]),
            ),
            Binding::scoped(
                "tok_a",
                key.clone(),
                &filters(&[("tenant", "a"), ("tenant", "b"), ("env", "prod")]),
                &idx(&["logs-*", "metrics-*"]),
            ),
            Binding::scoped(
                "tok_a",
                key.clone(),
                &filters(&[("tenant", "a"), ("env", "prod")]),
                &idx(&["logs-*"]),
            ),
            Binding::scoped(
                "tok_b",
                key.clone(),
                &filters(&[("tenant", "a"), ("env", "prod")]),
                &idx(&["logs-*", "metrics-*"]),
            ),
            // No ambiguity between a field and a value.
            Binding::scoped(
                "tok_a",
                key,
                &filters(&[("tenanta", ""), ("env", "prod")]),
                &idx(&["logs-*", "metrics-*"]),
            ),
        ];
        for (i, b) in changed.iter().enumerate() {
            assert!(open(b, IdKind::AsyncSearch, &sealed).is_err(), "case {i}");
        }
    }

    #[test]
    fn the_leading_id_is_read_from_a_cut_answer() {
        let answer = br#"{"_scroll_id":"c2Nyb2xs","took":3,"hits":{"hits":[{"_source":{"_scroll_id":"other"}}]}}"#;
        // Cut anywhere after the id, the id is found; cut inside it, it is not.
        let end = answer.windows(9).position(|w| w == b"c2Nyb2xs\"").unwrap() + 9;
        for cut in end..=answer.len() {
            assert_eq!(
                leading_id("_scroll_id", &answer[..cut]).as_deref(),
                Some("c2Nyb2xs"),
                "cut at {cut}"
            );
        }
        for cut in 0..end {
            assert_eq!(
                leading_id("_scroll_id", &answer[..cut]),
                None,
                "cut at {cut}"
            );
        }
        // After other keys too (OpenSearch's point in time: `pit_id` first, but not always).
        let later = br#"{"took":1,"_shards":{"total":1},"pit_id":"cGl0","hits":{"#;
        assert_eq!(leading_id("pit_id", later).as_deref(), Some("cGl0"));
        // A SQL answer's cursor, after the page's rows (whose values may look like one).
        let sql = br#"{"columns":[{"name":"cursor"}],"rows":[["\"cursor\":\"other\""],[{"cursor":"x"}]],"cursor":"Y3Vyc29y"}"#;
        assert_eq!(leading_id("cursor", sql).as_deref(), Some("Y3Vyc29y"));
        assert_eq!(leading_id("cursor", &sql[..sql.len() - 3]), None);
        // A document's key deeper in the answer is never taken for the answer's.
        let nested = br#"{"took":1,"hits":{"hits":[{"_source":{"_scroll_id":"other"}}]}}"#;
        assert_eq!(leading_id("_scroll_id", nested), None);
        // Not a string, empty, not an object, or past the prefix looked at: none.
        assert_eq!(leading_id("id", br#"{"id":7}"#), None);
        assert_eq!(leading_id("id", br#"{"id":""}"#), None);
        assert_eq!(leading_id("id", br#"["id","x"]"#), None);
        assert_eq!(leading_id("id", b"not json"), None);
        let mut far = br#"{"pad":""#.to_vec();
        far.extend(std::iter::repeat_n(b'x', LEADING_ID_PREFIX));
        far.extend_from_slice(br#"","id":"x"}"#);
        assert_eq!(leading_id("id", &far), None);
        // The first value of a repeated key (the one a prefix can show).
        assert_eq!(
            leading_id("id", br#"{"id":"first","id":"second"}"#).as_deref(),
            Some("first")
        );
    }

    /// sql26 (carried "SQL cursors beyond 256 KiB"): an id longer than esgate takes back (a SQL
    /// cursor carries its query) is refused as too long, never as not issued to the token. At
    /// the cap it still opens.
    #[test]
    fn an_id_over_the_cap_is_refused_as_too_long() {
        let b = binding("tok_a");
        let fits = "c".repeat(MAX_SEALED_LEN * 3 / 4 - 64);
        let sealed = seal_page(&b, IdKind::SqlCursor, &fits, 10);
        assert!(sealed.len() <= MAX_SEALED_LEN, "{}", sealed.len());
        assert_eq!(open(&b, IdKind::SqlCursor, &sealed).unwrap(), fits);
        let long = "c".repeat(MAX_SEALED_LEN);
        let sealed = seal_page(&b, IdKind::SqlCursor, &long, 10);
        let e = open(&b, IdKind::SqlCursor, &sealed).unwrap_err();
        assert_eq!(e.kind, crate::RejectKind::Forbidden);
        assert!(
            e.reason
                .contains("this SQL cursor is longer than esgate takes (256 KiB)"),
            "{}",
            e.reason
        );
        assert!(!e.reason.contains("issued"), "{}", e.reason);
        let e = open(&b, IdKind::Scroll, &seal(&b, IdKind::Scroll, &long)).unwrap_err();
        assert!(
            e.reason.contains("this scroll id is longer"),
            "{}",
            e.reason
        );
    }

    /// sql26: a SQL answer's cursor is read from the whole answer (past any prefix: a page
    /// over 256 KiB still names its cursor), at the top level only; an answer read to its end
    /// without one (the last page) names nothing, and one that cannot be read, or holds the key
    /// other than once as a string, is unknown (its cursor stays counted).
    #[test]
    fn a_whole_answer_names_its_cursor_or_nothing_or_is_unknown() {
        let sql = br#"{"columns":[{"name":"cursor"}],"rows":[["\"cursor\":\"other\""],[{"cursor":"x"}]],"cursor":"Y3Vyc29y"}"#;
        assert_eq!(named_id("cursor", sql), Named::Id("Y3Vyc29y".into()));
        let mut far = br#"{"rows":[[""#.to_vec();
        far.extend(std::iter::repeat_n(b'x', LEADING_ID_PREFIX));
        far.extend_from_slice(br#""]],"cursor":"far"}"#);
        assert_eq!(named_id("cursor", &far), Named::Id("far".into()));
        let last = br#"{"columns":[],"rows":[[{"cursor":"in-a-row"}]]}"#;
        assert_eq!(named_id("cursor", last), Named::Nothing);
        assert_eq!(
            named_id("cursor", br#"{"rows":[],"cursor":""}"#),
            Named::Nothing
        );
        let unknowns: [&[u8]; 7] = [
            &sql[..sql.len() - 1],
            br#"{"rows":[],"cursor":7}"#,
            br#"{"cursor":null}"#,
            br#"{"cursor":"a","cursor":"b"}"#,
            br#"{"cursor":"a"} trailing"#,
            br#"["cursor","x"]"#,
            b"not json",
        ];
        for unknown in unknowns {
            assert_eq!(
                named_id("cursor", unknown),
                Named::Unknown,
                "{}",
                String::from_utf8_lossy(unknown)
            );
        }
    }

    /// perf27b: the seal reports what the key it seals names, from its own pass over the
    /// answer, as `named_id` reads it (the proxy's count of open SQL cursors takes it from
    /// there), and seals exactly as `seal_response` does; an async search's answer is not
    /// read.
    #[test]
    fn the_seal_names_what_named_id_names() {
        let a = binding("tok_a");
        let mut far = br#"{"rows":[[""#.to_vec();
        far.extend(std::iter::repeat_n(b'x', LEADING_ID_PREFIX));
        far.extend_from_slice(br#""]],"cursor":"far"}"#);
        let answers: [&[u8]; 13] = [
            br#"{"columns":[{"name":"cursor"}],"rows":[["\"cursor\":\"other\""],[{"cursor":"x"}]],"cursor":"Y3Vyc29y"}"#,
            &far,
            br#"{"columns":[],"rows":[[{"cursor":"in-a-row"}]]}"#,
            br#"{"rows":[],"cursor":""}"#,
            br#"{"rows":[],"cursor":"Y3Vyc29y"#,
            br#"{"rows":[],"cursor":7}"#,
            br#"{"cursor":null}"#,
            br#"{"cursor":"a","cursor":"b"}"#,
            br#"{"cursor":"a","cursor":"a"}"#,
            br#"{"cursor":"a"} trailing"#,
            br#"{"rows":[["/* a comment */"]],"cursor":"a"} /* x */"#,
            br#"["cursor","x"]"#,
            b"not json",
        ];
        let sql = Seal {
            field: "cursor",
            kind: IdKind::SqlCursor,
            required: false,
            release: None,
        };
        let scroll = Seal {
            field: "_scroll_id",
            kind: IdKind::Scroll,
            required: false,
            release: None,
        };
        for (spec, answers) in [
            (sql, answers.to_vec()),
            (
                scroll,
                vec![
                    &br#"{"_scroll_id":"c2Nyb2xs","hits":{"hits":[]}}"#[..],
                    br#"{"hits":{"hits":[]}}"#,
                    br#"{"_scroll_id":"a","_scroll_id":"b"}"#,
                ],
            ),
        ] {
            for answer in answers {
                let text = String::from_utf8_lossy(answer);
                let meter = Meter::unlimited();
                let (sealed, named) = seal_response_named(&a, spec, answer, &meter).unwrap();
                assert_eq!(named, named_id(spec.field, answer), "{text}");
                assert_eq!(
                    sealed,
                    seal_response(&a, spec, answer, &Meter::unlimited()).unwrap(),
                    "{text}"
                );
            }
        }
        let async_spec = Seal {
            field: "id",
            kind: IdKind::AsyncSearch,
            required: false,
            release: None,
        };
        assert_eq!(
            seal_response_named(&a, async_spec, br#"{"id":"x"}"#, &Meter::unlimited()).unwrap(),
            (None, Named::Unknown)
        );
    }
}

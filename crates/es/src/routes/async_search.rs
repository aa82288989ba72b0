//! Elasticsearch async search (`_async_search`) for `read` tokens, with ids bound to the token.
//!
//! A submit (`POST [/{index}]/_async_search`) is rewritten exactly like `_search` (the token's
//! filters injected, indices narrowed, the `pit` form without an index) by `search::rewrite`
//! in its own `Form`; this module owns what is particular to async search: its parameters,
//! the id routes (poll `GET /_async_search/{id}`, `GET /_async_search/status/{id}`, `DELETE
//! /_async_search/{id}`) and sealing the ids that answers carry (`id`, and the
//! `response.pit_id` of a search on a point in time; `routes::seal_answer` dispatches here).
//! Each route's permit says what it does to the token's running async searches
//! (`Permit::async_search`, counted by the proxy against `max_running_async_searches`): a
//! submit opens one, a poll or status names it, a delete ends it; [`is_running`] reads whether
//! an answer's search still runs.
//!
//! Invariant: pure. A poll, status or delete reaches the backend only with an id sealed for the
//! presenting token as an async search id (`continuation::open`); the forwarded path is built
//! from that opened id, percent-encoded so that it stays one path segment. Every answer's ids
//! are replaced with their sealed forms before the client sees them.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::{scroll_pit, search, Request, Spec, Upstream, MAX_FORWARDED_PATH};
use crate::ids::continuation::{self, Binding, IdKind, Release, Seal};
use crate::ids::ordinals::{Positions, SortSeal};
use crate::memory::Meter;
use crate::request::endpoint::AsyncOp;
use crate::request::params::{Kind, Param, ParamSet};
use crate::{Holding, Method, Rejection, Scope};

/// What a submit, poll or status answer carries: an async search id in `id` (only while the
/// search runs, or with `keep_on_completion=true`), sealed for the token.
pub const SEAL: Seal = Seal {
    field: "id",
    kind: IdKind::AsyncSearch,
    required: false,
    release: None,
};

/// A submit's answer: the id names a search this request started, freed when the answer is
/// refused (the client never got it).
pub const SUBMIT_SEAL: Seal = Seal {
    release: Some(Release::AsyncSearch),
    ..SEAL
};

/// A wait longer than this could outlast esgate's backend timeout (a 504 from client input).
const MAX_WAIT_MS: u64 = 30_000;

/// Kibana's default search session expiration (`data.search.sessions.defaultExpiration`); a
/// longer life would let a token keep results (and cluster storage) around indefinitely
/// (security.md A16).
const MAX_KEEP_ALIVE_MS: u64 = 7 * 24 * 3_600_000;

/// A submit takes the search parameters but `scroll` and `pre_filter_shard_size`, and these.
const SUBMIT_EXTRA: &[(&str, Kind)] = &[
    ("wait_for_completion_timeout", Kind::TimeAtMost(MAX_WAIT_MS)),
    ("keep_on_completion", Kind::Bool),
    ("keep_alive", Kind::TimeAtMost(MAX_KEEP_ALIVE_MS)),
    ("ccs_minimize_roundtrips", Kind::Bool),
];

const SUBMIT_REFUSED: &[(&str, &str)] = &[
    ("scroll", "async search cannot scroll"),
    (
        "pre_filter_shard_size",
        "async search fixes pre_filter_shard_size",
    ),
];

const GET_PARAMS: &[(&str, Kind)] = &[
    ("wait_for_completion_timeout", Kind::TimeAtMost(MAX_WAIT_MS)),
    ("keep_alive", Kind::TimeAtMost(MAX_KEEP_ALIVE_MS)),
    ("typed_keys", Kind::Bool),
    ("rest_total_hits_as_int", Kind::Bool),
];

pub(crate) const SUBMIT: Spec = Spec {
    action: "async_search_submit",
    params: ParamSet::own(search::SEARCH_PARAMS)
        .extra(SUBMIT_EXTRA)
        .refusing(SUBMIT_REFUSED)
        .indices_options(),
    index: true,
    body: true,
    dialect: None,
    prepare: submit,
};

pub(crate) const GET: Spec = Spec {
    action: "async_search_get",
    params: ParamSet::own(GET_PARAMS),
    index: false,
    body: false,
    dialect: None,
    prepare: |req| on_id(req, AsyncOp::Get),
};

pub(crate) const STATUS: Spec = Spec {
    action: "async_search_status",
    params: ParamSet::NONE,
    index: false,
    body: false,
    dialect: None,
    prepare: |req| on_id(req, AsyncOp::Status),
};

pub(crate) const DELETE: Spec = Spec {
    action: "async_search_delete",
    params: ParamSet::NONE,
    index: false,
    body: false,
    dialect: None,
    prepare: |req| on_id(req, AsyncOp::Delete),
};

/// A submit is rewritten like a search; only its path and the id its answers carry differ.
const SUBMIT_FORM: search::Form = search::Form {
    api: "/_async_search",
    id: Some(SUBMIT_SEAL),
    sort: SortSeal::Async,
};

/// Elasticsearch's default `keep_alive` of an async search (5 days): how long a submitted
/// search is counted when its submit sets none.
pub const DEFAULT_KEEP_ALIVE_MS: u64 = 5 * 24 * 3_600_000;

/// A submit starts a search that may run on in the background: it takes one of the token's
/// running async search places for its `keep_alive` (the proxy gives it back when the answer
/// says it no longer runs).
fn submit(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let mut up = search::rewrite(req, &SUBMIT_FORM)?;
    up.async_search = Some(Holding::Open {
        keep_alive_ms: param(&req.params, "keep_alive")
            .map_or(DEFAULT_KEEP_ALIVE_MS, scroll_pit::keep_alive_ms),
    });
    Ok(up)
}

/// Whether the async search answer `body` (a submit's, poll's or status's, read whole) says
/// its search still runs: its top-level `is_running`, the first one (Elasticsearch writes it
/// among the first keys, before the search's `response`: the scan stops there). `None`: the
/// body is not a JSON object, or has no boolean `is_running` at its top level.
pub fn is_running(body: &[u8]) -> Option<bool> {
    use serde::de::Error as _;
    struct Seek<'a>(&'a mut Option<bool>);
    impl<'de> serde::de::Visitor<'de> for Seek<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an async search answer")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "is_running" {
                    *self.0 = map.next_value::<Option<bool>>()?;
                    // Stop here: the rest (the search's response) need not be read.
                    return Err(A::Error::custom("found"));
                }
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut found = None;
    let mut d = serde_json::Deserializer::from_slice(body);
    let _ = serde::Deserializer::deserialize_map(&mut d, Seek(&mut found));
    found
}

/// A poll, status or delete on the id the path names ([`by_id`]). Each says what it does to
/// the token's count of running async searches: a poll (with its `keep_alive`, which extends
/// the search's life) or status names the search, whose answer says whether it still runs; a
/// delete ends it.
fn on_id(req: &mut Request<'_>, op: AsyncOp) -> Result<Upstream, Rejection> {
    let (positions, backend_id) = opened(req.path_id()?, req.scope)?;
    let (method, path, seal, positions) = route(op, positions, &backend_id)?;
    let mut up = Upstream::fixed(method, path);
    up.seal = seal;
    up.sort_seal = positions.map(SortSeal::Async);
    up.async_search = Some(match op {
        AsyncOp::Delete => Holding::Clear {
            backend_ids: vec![backend_id],
        },
        AsyncOp::Get => Holding::Next {
            backend_id,
            keep_alive_ms: param(&req.params, "keep_alive").map(scroll_pit::keep_alive_ms),
        },
        AsyncOp::Status => Holding::Next {
            backend_id,
            keep_alive_ms: None,
        },
    });
    Ok(up)
}

/// The value of the query parameter `key`, if given.
fn param<'p>(params: &'p [Param], key: &str) -> Option<&'p str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
}

/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded in a forwarded id, so
/// that a backend id can never be read as `/`, `.`/`..`, a query or a fragment.
const ID_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The upstream request for a poll, status or delete presenting `sealed` (the id as decoded
/// from the request path): its method, its path with the backend id, and the seal for its
/// answer. Another token's id, another kind of id, a forged or a raw backend id is refused.
#[cfg(test)]
pub(crate) fn by_id(
    op: AsyncOp,
    sealed: &str,
    scope: &Scope,
) -> Result<(Method, String, Option<Seal>, Option<Positions>), Rejection> {
    let (positions, backend_id) = opened(sealed, scope)?;
    route(op, positions, &backend_id)
}

/// The positions and backend id `sealed` carries, when it is an async search id sealed for
/// the token.
fn opened(sealed: &str, scope: &Scope) -> Result<(Option<Positions>, String), Rejection> {
    let opened = continuation::open(&scope.ids, IdKind::AsyncSearch, sealed)?;
    let (positions, backend_id) = split_payload(&opened)
        .ok_or_else(|| Rejection::forbidden("this async search id was not issued to this token"))?;
    if backend_id.is_empty() {
        return Err(Rejection::forbidden(
            "this async search id was not issued to this token",
        ));
    }
    Ok((positions, backend_id.to_owned()))
}

/// [`by_id`] for an opened id.
fn route(
    op: AsyncOp,
    positions: Option<Positions>,
    backend_id: &str,
) -> Result<(Method, String, Option<Seal>, Option<Positions>), Rejection> {
    let encoded = utf8_percent_encode(backend_id, ID_SEGMENT).to_string();
    let (method, path, seal) = match op {
        AsyncOp::Get => (Method::Get, format!("/_async_search/{encoded}"), Some(SEAL)),
        AsyncOp::Status => (
            Method::Get,
            format!("/_async_search/status/{encoded}"),
            Some(SEAL),
        ),
        AsyncOp::Delete => (Method::Delete, format!("/_async_search/{encoded}"), None),
    };
    if path.len() > MAX_FORWARDED_PATH {
        return Err(Rejection::forbidden("the async search id is too long"));
    }
    // Only a poll's answer carries hits whose ordinal sort values must be sealed.
    let positions = positions.filter(|_| op == AsyncOp::Get);
    Ok((method, path, seal, positions))
}

/// The path that deletes the async search `backend_id` (an id the backend gave, never a
/// client's), percent-encoded as a poll's.
pub fn delete_path(backend_id: &str) -> String {
    format!(
        "/_async_search/{}",
        utf8_percent_encode(backend_id, ID_SEGMENT)
    )
}

/// Marks a sealed async search payload that carries the ordinal sort positions of its search
/// (see `ordinals`) before the backend id: backend ids never contain this character.
const POSITIONS_MARK: char = '\u{1}';

/// The sealed form of an async search id, carrying `positions` to the polls of its search.
pub fn seal_id(binding: &Binding, backend_id: &str, positions: Option<&Positions>) -> String {
    let payload = match positions {
        None => backend_id.to_string(),
        Some(p) => format!("{POSITIONS_MARK}{}{POSITIONS_MARK}{backend_id}", p.encode()),
    };
    continuation::seal(binding, IdKind::AsyncSearch, &payload)
}

/// The point in time an async search answer names (its `response.pit_id`), for the count of
/// open points in time when the search ran on one: the key's one string value (`None` when
/// the answer is not JSON, names none, or a repeated key names two).
pub fn pit_id(body: &[u8]) -> Option<String> {
    let ids: Ids = serde_json::from_slice(body).ok()?;
    let mut pits = ids
        .seen
        .into_iter()
        .filter(|(kind, id)| *kind == IdKind::Pit && !id.is_empty())
        .map(|(_, id)| id);
    let first = pits.next()?;
    pits.all(|other| other == first).then_some(first)
}

/// An opened async search payload: the positions it carries, if any, and the backend id.
fn split_payload(opened: &str) -> Option<(Option<Positions>, &str)> {
    let Some(rest) = opened.strip_prefix(POSITIONS_MARK) else {
        return Some((None, opened));
    };
    let (encoded, backend_id) = rest.split_once(POSITIONS_MARK)?;
    Some((Some(Positions::decode(encoded)?), backend_id))
}

/// Seals the ids in an async search answer (any status: a failed search answers with its error
/// status and still carries its `id`): the top-level `id` as an async search id and
/// `response.pit_id` as a point-in-time id. The rest of the body keeps its bytes when the ids
/// can be replaced textually (numbers keep their precision); otherwise the body is
/// re-serialised with the sealed ids. A body that is not JSON is returned unchanged. `Ok(None)`:
/// the ids could be neither replaced nor rebuilt (the answer must not be sent: it would carry
/// a backend id). Every copy, and the rebuild's tree, is claimed from `meter` before it is
/// made (an answer can be 256 MiB): `Err` is the meter's refusal.
pub fn seal_response(
    binding: &Binding,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    seal_response_with(binding, body, None, meter)
}

/// [`seal_response`] for an async search whose answers carry ordinal sort values at
/// `positions`: its id carries them to the polls.
pub fn seal_response_with(
    binding: &Binding,
    body: &[u8],
    positions: Option<&Positions>,
    meter: &Meter<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    let seal_one = |kind: IdKind, id: &str| {
        let sealed = match kind {
            IdKind::AsyncSearch => seal_id(binding, id, positions),
            _ => continuation::seal(binding, kind, id),
        };
        continuation::within_cap(kind, sealed)
    };
    let unchanged = || -> Result<Option<Vec<u8>>, Rejection> {
        meter.take(body.len())?;
        Ok(Some(body.to_vec()))
    };
    // The ids are read without building the answer's tree (it can be a page of hits up to
    // 256 MiB, and a tree many times that): only the rebuild below needs one.
    // Skipped values are not checked as a tree reads them: an answer whose hits hold a
    // document serde_json's tree refuses (a lone surrogate, 1e400, nesting past 128) still has
    // its ids read and sealed (session 11 review: the tree reading sent them raw).
    let Ok(found) = serde_json::from_slice::<Ids>(body) else {
        return unchanged();
    };
    // Every string at an id's place, a repeated key's earlier values too (review 12: only
    // the last, the tree's, was sealed, and the others stayed in the text raw).
    let every = found.every();
    if every.is_empty() {
        return unchanged();
    }
    let ids = found.list();
    // An id without JSON escapes appears verbatim in quotes; it is a random, unguessable
    // value, so every occurrence is this id.
    let sealed = every
        .iter()
        .map(|(kind, id)| Ok((id.as_str(), seal_one(*kind, id)?)))
        .collect::<Result<Vec<_>, Rejection>>()?;
    let text = continuation::replace_ids(body, sealed, meter)?;
    let replaced_all = serde_json::from_slice::<Ids>(&text)
        .map(|f| f.every().iter().all(|(k, id)| is_sealed(binding, *k, id)))
        .unwrap_or(false);
    if replaced_all {
        return Ok(Some(text));
    }
    meter.give(text.len());
    drop(text);
    // The backend escaped something in an id: rebuild the body instead (its tree keeps one
    // value per key, the last: the others are gone with the text). A body the tree cannot
    // read is not sent with its backend ids (session 11 review: it was, unchanged).
    let Some(mut v) = crate::request::body::parse_value_within(body, meter)? else {
        return Ok(None);
    };
    for (kind, backend_id) in ids {
        let sealed = Value::String(seal_one(kind, &backend_id)?);
        match kind {
            IdKind::AsyncSearch => {
                if let Some(slot) = v.get_mut("id") {
                    *slot = sealed;
                }
            }
            _ => {
                if let Some(slot) = v.get_mut("response").and_then(|r| r.get_mut("pit_id")) {
                    *slot = sealed;
                }
            }
        }
    }
    meter.write(|w| serde_json::to_writer(w, &v))
}

/// The ids to seal in an async search answer: its `id` and its response's `pit_id`, when they
/// are non-empty strings (a repeated key's last value counts, as in serde_json's tree), and
/// every string found at those places (a repeated key's earlier values too). Read as the
/// answer streams by: everything else is skipped, not built.
#[derive(Default)]
struct Ids {
    id: Option<String>,
    pit_id: Option<String>,
    /// Every string at an id's place, in order, the last values' included.
    seen: Vec<(IdKind, String)>,
}

impl Ids {
    /// The ids with their kinds.
    fn list(self) -> Vec<(IdKind, String)> {
        let id = self.id.map(|id| (IdKind::AsyncSearch, id));
        let pit = self.pit_id.map(|pit| (IdKind::Pit, pit));
        [id, pit]
            .into_iter()
            .flatten()
            .filter(|(_, id)| !id.is_empty())
            .collect()
    }

    /// Every non-empty string found at an id's place, with its kind, each once: what must not
    /// be left in the answer's text raw.
    fn every(&self) -> Vec<(IdKind, String)> {
        let mut every: Vec<(IdKind, String)> = Vec::with_capacity(self.seen.len());
        for (kind, id) in &self.seen {
            if !id.is_empty() && !every.iter().any(|(k, i)| k == kind && i == id) {
                every.push((*kind, id.clone()));
            }
        }
        every
    }
}

impl<'de> serde::Deserialize<'de> for Ids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ids, D::Error> {
        d.deserialize_map(IdsVisitor)
    }
}

struct IdsVisitor;

impl<'de> serde::de::Visitor<'de> for IdsVisitor {
    type Value = Ids;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an async search answer")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ids, A::Error> {
        let mut ids = Ids::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "id" => {
                    ids.id = map.next_value_seed(Want::Text)?;
                    if let Some(id) = &ids.id {
                        ids.seen.push((IdKind::AsyncSearch, id.clone()));
                    }
                }
                "response" => {
                    let pits = map.next_value_seed(PitIds)?;
                    ids.pit_id = pits.last;
                    ids.seen
                        .extend(pits.every.into_iter().map(|pit| (IdKind::Pit, pit)));
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(ids)
    }
}

/// What a value is read for: itself when it is a string. Anything else is skipped: `None`.
#[derive(Clone, Copy)]
enum Want {
    Text,
}

/// A `response`'s `pit_id` strings: the last value of the key (the tree's: `None` when it is
/// not a string, or the value is not an object) and every string value the key had.
struct PitIds;

#[derive(Default)]
struct Pits {
    last: Option<String>,
    every: Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for PitIds {
    type Value = Pits;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Pits, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PitIds {
    type Value = Pits;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E>(self, _: &str) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_unit<E>(self) -> Result<Pits, E> {
        Ok(Pits::default())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Pits, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Pits::default())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Pits, A::Error> {
        let mut pits = Pits::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "pit_id" {
                pits.last = map.next_value_seed(Want::Text)?;
                pits.every.extend(pits.last.clone());
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(pits)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Want {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Want {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<Option<String>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Option<String>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

fn is_sealed(binding: &Binding, kind: IdKind, id: &str) -> bool {
    continuation::open(binding, kind, id).is_ok()
}

mod shards;
pub use shards::hide_shard_shortcuts;
#[cfg(test)]
pub use shards::{hide_reduce_progress, zero_skipped};

#[cfg(test)]
mod tests;

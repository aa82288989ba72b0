//! The token store's data model: tokens, the filter library and named IP filters.
//!
//! These are plain data. They are what the store persists and what the request path reads
//! through a [`crate::store::Snapshot`]. Nothing here holds a secret: a token carries only the
//! SHA-256 hash of its secret ([`SecretHash`]), whose `Debug` is redacted.

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, UTC. Every timestamp in the store uses this.
pub type UnixTime = i64;

/// SHA-256 of a token secret. The only form in which a secret is ever kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretHash(#[serde(with = "hex32")] pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// What a token may do. `Read` tokens go through enforcement; `All` tokens are authenticated,
/// IP-checked and audited, then passed through (for a client's own machinery, e.g. Kibana's
/// internal user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    All,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        match s {
            "read" => Some(Permission::Read),
            "all" => Some(Permission::All),
            _ => None,
        }
    }
}

/// One `field: value` exact-match filter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FieldValue {
    pub field: String,
    pub value: String,
}

/// A filter attached to a token: either its own, or a reference into the filter library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterRef {
    Inline(FieldValue),
    Library(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub secret_hash: SecretHash,
    pub filters: Vec<FilterRef>,
    /// Allowed index patterns (`logs-*`, `metrics-2024.*`, exact names). Empty is never stored:
    /// the admin API fills in the default (every non-hidden index, `*`).
    pub indices: Vec<String>,
    pub permissions: BTreeSet<Permission>,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    /// Name of a named IP filter.
    pub ip_filter: Option<String>,
    /// The secret before the last rotation, valid until its `expires_at` (a rotation with
    /// overlap). Records written before rotation existed have none. Boxed: most tokens have
    /// none, and every store change carries a whole token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<Box<PreviousSecret>>,
    /// The token's own limits (each unset one falls back to the `[policies]` default).
    /// Records written before limits existed have none.
    #[serde(default, skip_serializing_if = "TokenLimits::is_empty")]
    pub limits: TokenLimits,
    /// The Kibana spaces whose saved objects the token may read (`_has_privileges` grants
    /// Kibana application privileges only on `space:<id>` for these). Records written before
    /// the field existed load as `["default"]`.
    #[serde(default = "default_kibana_spaces")]
    pub kibana_spaces: Vec<String>,
    /// Whether the token's search scores are constant or relevance scores (review 15), when
    /// an admin chose; `None`: the default ([`Token::constant_scores`]). Records written
    /// before the field existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Scores>,
}

/// The scores a token's searches expose (the token field `scores`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scores {
    /// Every score is 1.0: the client's queries run under `constant_score`, and what exposes
    /// a score no wrap can make constant is refused. No score depends on the shard's term
    /// statistics, which count every tenant's documents.
    Constant,
    /// Elasticsearch's relevance scores, computed from shard-wide statistics: with filters, a
    /// token can recover from them how many documents of the shard (other tenants' included)
    /// hold a term its own documents hold (the documented residual).
    Relevance,
}

impl Scores {
    pub fn as_str(self) -> &'static str {
        match self {
            Scores::Constant => "constant",
            Scores::Relevance => "relevance",
        }
    }

    pub fn parse(text: &str) -> Option<Scores> {
        match text {
            "constant" => Some(Scores::Constant),
            "relevance" => Some(Scores::Relevance),
            _ => None,
        }
    }
}

#[cfg(test)]
impl Token {
    /// A `read` token on `logs-*` without filters, its secret hash `n` repeated (unit tests).
    pub(crate) fn sample(id: &str, n: u8) -> Token {
        Token {
            id: id.to_owned(),
            name: format!("token {id}"),
            secret_hash: SecretHash([n; 32]),
            filters: vec![],
            indices: vec!["logs-*".to_owned()],
            permissions: BTreeSet::from([Permission::Read]),
            created_at: 1_700_000_000,
            expires_at: None,
            ip_filter: None,
            previous_secret: None,
            limits: Default::default(),
            kibana_spaces: vec!["default".into()],
            scores: None,
        }
    }
}

/// A rotated-out secret that keeps working until `expires_at` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub hash: SecretHash,
    pub expires_at: UnixTime,
}

/// Per-token limits: request rate, concurrency, and the cost guards on every search. `None`:
/// not set on the token (the `[policies]` default applies, if any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Scrolls held open at once (`crate::scrolls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_scrolls: Option<u32>,
    /// Points in time held open at once (`crate::scrolls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_pits: Option<u32>,
    /// Async searches running at once (`crate::scrolls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running_async_searches: Option<u32>,
    /// Searches one `_msearch` may carry (`crate::throttle`, msearch27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msearch_searches: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buckets: Option<u64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_timeout_ms: Option<u64>,
}

impl TokenLimits {
    pub fn is_empty(&self) -> bool {
        *self == TokenLimits::default()
    }

    /// Each limit the token does not set, taken from `defaults`.
    pub fn or(&self, defaults: &TokenLimits) -> TokenLimits {
        TokenLimits {
            requests_per_second: self.requests_per_second.or(defaults.requests_per_second),
            burst: self.burst.or(defaults.burst),
            max_concurrent: self.max_concurrent.or(defaults.max_concurrent),
            max_open_scrolls: self.max_open_scrolls.or(defaults.max_open_scrolls),
            max_open_pits: self.max_open_pits.or(defaults.max_open_pits),
            max_running_async_searches: self
                .max_running_async_searches
                .or(defaults.max_running_async_searches),
            max_msearch_searches: self.max_msearch_searches.or(defaults.max_msearch_searches),
            max_size: self.max_size.or(defaults.max_size),
            max_buckets: self.max_buckets.or(defaults.max_buckets),
            search_timeout_ms: self.search_timeout_ms.or(defaults.search_timeout_ms),
        }
    }
}

/// The Kibana spaces of a token that names none.
pub fn default_kibana_spaces() -> Vec<String> {
    vec!["default".to_owned()]
}

impl Token {
    /// The scores the token's searches expose: as an admin chose, else constant for a token
    /// with filters (its documents share the shard with other tenants', whose statistics a
    /// relevance score counts) and relevance for one without (it reads whole indices: the
    /// statistics are of documents it may read).
    pub fn scores(&self) -> Scores {
        self.scores.unwrap_or(if self.filters.is_empty() {
            Scores::Relevance
        } else {
            Scores::Constant
        })
    }

    /// Whether [`Token::scores`] is constant.
    pub fn constant_scores(&self) -> bool {
        self.scores() == Scores::Constant
    }

    pub fn is_expired(&self, now: UnixTime) -> bool {
        matches!(self.expires_at, Some(exp) if now >= exp)
    }

    /// The previous secret, while its overlap lasts.
    pub fn previous_secret_at(&self, now: UnixTime) -> Option<&PreviousSecret> {
        self.previous_secret
            .as_deref()
            .filter(|p| now < p.expires_at)
    }

    /// Whether `hash` opens this token at `now`: the current secret, or the previous one
    /// during its overlap.
    pub fn accepts(&self, hash: &SecretHash, now: UnixTime) -> bool {
        self.secret_hash == *hash
            || self
                .previous_secret_at(now)
                .is_some_and(|p| p.hash == *hash)
    }

    /// The strongest permission the token holds.
    pub fn permission(&self) -> Permission {
        if self.permissions.contains(&Permission::All) {
            Permission::All
        } else {
            Permission::Read
        }
    }
}

/// The generation of a token's secret: a digest of its secret hash (never the hash itself), so
/// a share link made before a reset (a new secret, a new generation) stops working.
pub fn secret_generation(hash: &SecretHash) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"esgate secret generation\x00");
    h.update(hash.0);
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A share link: a random id that opens one Kibana path as its token (see `crate::kibana`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// `lnk_` + 32 lowercase hex digits (128 random bits); the whole credential of the URL.
    pub id: String,
    pub token_id: String,
    /// A Kibana app path (`/app/...` or `/s/<space>/app/...`), checked on create.
    pub path: String,
    /// A snapshot's fixed time range; `None` = live (the saved object's own range).
    pub time: Option<TimeRange>,
    pub created_at: UnixTime,
    /// Never past the token's expiry.
    pub expires_at: Option<UnixTime>,
    /// [`secret_generation`] of the token when the link was made.
    pub secret_generation: String,
}

impl Link {
    pub fn is_expired(&self, now: UnixTime) -> bool {
        matches!(self.expires_at, Some(exp) if now >= exp)
    }
}

/// An absolute time range (RFC 3339 UTC timestamps as given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

/// An entry of the filter library, shared by many tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryFilter {
    pub id: String,
    pub description: String,
    pub field: String,
    pub value: String,
    pub created_at: UnixTime,
}

/// A named list of CIDRs a token's client address must fall in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpFilter {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    pub created_at: UnixTime,
}

mod hex32 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(64);
        for b in v {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 64 || !s.is_ascii() {
            return Err(D::Error::custom("expected 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(D::Error::custom)?;
            out[i] = u8::from_str_radix(hex, 16).map_err(D::Error::custom)?;
        }
        Ok(out)
    }
}

//! What a share link's recipient carries, sealed with esgate's key: the session cookie the
//! front sets, and the short-lived link credential the front hands Kibana (which Kibana's
//! `http` provider forwards to esgate's data listener as `Authorization: Bearer`).
//!
//! Both are `<prefix><base64url(payload)>.<base64url(HMAC-SHA256)>` under keys derived from
//! the id key for these purposes only (so replicas sharing the key accept each other's). They
//! carry ids, the token's secret generation and an expiry, never a secret; a MAC failure, a
//! malformed value or a passed expiry is refused. Being valid here is not enough: the caller
//! then checks the link and its token in the store ([`check_link`]) on every request, so a
//! deleted link, a deleted, expired or reset token stops a session at its next request.
//!
//! Invariant: pure (keys, time and the snapshot are arguments).

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::policy::{self, Denied};
use crate::store::model::{secret_generation, Link, Permission, Token, UnixTime};
use crate::store::Snapshot;

/// The link credential's prefix (after `Bearer `).
pub const CREDENTIAL_PREFIX: &str = "esgl1_";
const COOKIE_PREFIX: &str = "esgs1_";
/// How long a minted link credential is valid: Kibana uses it only for the Elasticsearch
/// requests of the one recipient request it came with (checked when each starts), so a minute
/// is ample, and a leaked one dies soon.
pub const CREDENTIAL_TTL: i64 = 60;
/// A session lasts at most this long (then the recipient opens the link again).
pub const SESSION_TTL: i64 = 12 * 3600;
const MAX_SEALED_LEN: usize = 1024;

/// A sealing key (32 bytes, derived per purpose). `Debug` is redacted.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    pub fn new(bytes: [u8; 32]) -> SealKey {
        SealKey(bytes)
    }

    fn mac(&self, prefix: &str, payload: &[u8]) -> [u8; 32] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(prefix.as_bytes());
        m.update(payload);
        m.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// What a cookie or a credential says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub link_id: String,
    pub token_id: String,
    /// The token's secret generation when the session began.
    pub generation: String,
    /// The recipient's address (credentials only: the data listener sees Kibana's address).
    pub recipient: Option<IpAddr>,
    pub expires_at: UnixTime,
}

fn seal(key: &SealKey, prefix: &str, fields: &[&str]) -> String {
    let payload = fields.join("|");
    let mac = key.mac(prefix, payload.as_bytes());
    format!(
        "{prefix}{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(mac)
    )
}

fn open(key: &SealKey, prefix: &str, text: &str, fields: usize) -> Option<Vec<String>> {
    if text.len() > MAX_SEALED_LEN {
        return None;
    }
    let rest = text.strip_prefix(prefix)?;
    let (payload, mac) = rest.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let want = key.mac(prefix, &payload);
    if mac.len() != want.len() || !bool::from(want.ct_eq(&mac)) {
        return None;
    }
    let text = String::from_utf8(payload).ok()?;
    let parts: Vec<String> = text.split('|').map(str::to_owned).collect();
    (parts.len() == fields).then_some(parts)
}

/// The session cookie's value for a link just opened.
pub fn seal_cookie(key: &SealKey, link: &Link, token: &Token, expires_at: UnixTime) -> String {
    seal(
        key,
        COOKIE_PREFIX,
        &[
            &link.id,
            &token.id,
            &secret_generation(&token.secret_hash),
            &expires_at.to_string(),
        ],
    )
}

/// A cookie's claims, if it is one of ours and unexpired.
pub fn open_cookie(key: &SealKey, text: &str, now: UnixTime) -> Option<Claims> {
    let f = open(key, COOKIE_PREFIX, text, 4)?;
    let expires_at: UnixTime = f[3].parse().ok()?;
    (now < expires_at).then(|| Claims {
        link_id: f[0].clone(),
        token_id: f[1].clone(),
        generation: f[2].clone(),
        recipient: None,
        expires_at,
    })
}

/// A link credential for one proxied request.
pub fn mint_credential(
    key: &SealKey,
    session: &Claims,
    recipient: IpAddr,
    now: UnixTime,
) -> String {
    let expires_at = (now + CREDENTIAL_TTL).min(session.expires_at);
    seal(
        key,
        CREDENTIAL_PREFIX,
        &[
            &session.link_id,
            &session.token_id,
            &session.generation,
            &recipient.to_string(),
            &expires_at.to_string(),
        ],
    )
}

/// A credential's claims, if it is one of ours and unexpired.
pub fn open_credential(key: &SealKey, text: &str, now: UnixTime) -> Option<Claims> {
    let f = open(key, CREDENTIAL_PREFIX, text, 5)?;
    let recipient: IpAddr = f[3].parse().ok()?;
    let expires_at: UnixTime = f[4].parse().ok()?;
    (now < expires_at).then(|| Claims {
        link_id: f[0].clone(),
        token_id: f[1].clone(),
        generation: f[2].clone(),
        recipient: Some(recipient),
        expires_at,
    })
}

/// The link credential in an `Authorization` value (`Bearer esgl1_...`), if that is what it is.
pub fn credential_in(authorization: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, value) = text.split_once(' ')?;
    let value = value.trim();
    (scheme.eq_ignore_ascii_case("bearer") && value.starts_with(CREDENTIAL_PREFIX)).then_some(value)
}

/// Whether a link still opens, for `recipient`, now: the link exists and is unexpired; its
/// token exists, is a read token, is unexpired, and has the secret generation the link (and
/// `claims`, when given) was made with; the link's path lies in one of the token's spaces; the
/// token's IP filter allows the recipient. The reason names what failed (never a value).
pub fn check_link(
    snapshot: &Snapshot,
    link_id: &str,
    claims: Option<&Claims>,
    recipient: IpAddr,
    now: UnixTime,
) -> Result<(Arc<Link>, Arc<Token>), Denied> {
    let link = snapshot.link(link_id).ok_or(Denied::Link(
        "the link does not exist (deleted, or never made)",
    ))?;
    if link.is_expired(now) {
        return Err(Denied::Link("the link has expired"));
    }
    let token = snapshot
        .token(&link.token_id)
        .ok_or(Denied::Link("the link's token was deleted"))?;
    if token.is_expired(now) {
        return Err(Denied::Link("the link's token has expired"));
    }
    let generation = secret_generation(&token.secret_hash);
    if generation != link.secret_generation {
        return Err(Denied::Link(
            "the link's token was reset after the link was made",
        ));
    }
    if let Some(c) = claims {
        if c.token_id != token.id || c.generation != generation {
            return Err(Denied::Link(
                "the session belongs to an earlier secret of the token",
            ));
        }
    }
    if token.permission() != Permission::Read {
        return Err(Denied::Link("the link's token is not a read token"));
    }
    let space = super::path::space_of(&link.path).unwrap_or("");
    if !token.kibana_spaces.iter().any(|s| s == space) {
        return Err(Denied::Link(
            "the link's Kibana space is no longer among its token's spaces",
        ));
    }
    let ip_filter = token
        .ip_filter
        .as_deref()
        .and_then(|name| snapshot.ip_filter(name));
    policy::check(token, ip_filter, recipient, now)?;
    Ok((Arc::clone(link), Arc::clone(token)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::model::SecretHash;

    fn key(n: u8) -> SealKey {
        SealKey::new([n; 32])
    }

    fn claims() -> Claims {
        Claims {
            link_id: "lnk_00".into(),
            token_id: "tok_a".into(),
            generation: "0011".into(),
            recipient: None,
            expires_at: 1000,
        }
    }

    #[test]
    fn credentials_round_trip_and_refuse_tampering_expiry_and_other_keys() {
        let c = mint_credential(&key(1), &claims(), "192.0.2.9".parse().unwrap(), 100);
        assert!(c.starts_with(CREDENTIAL_PREFIX));
        let got = open_credential(&key(1), &c, 101).expect("valid");
        assert_eq!(got.link_id, "lnk_00");
        assert_eq!(got.recipient, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(got.expires_at, 100 + CREDENTIAL_TTL);
        assert!(open_credential(&key(2), &c, 101).is_none(), "other key");
        assert!(
            open_credential(&key(1), &c, 100 + CREDENTIAL_TTL).is_none(),
            "expired"
        );
        // Any changed character of the payload or the MAC.
        for i in CREDENTIAL_PREFIX.len()..c.len() {
            let mut b = c.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            if t != c {
                assert!(open_credential(&key(1), &t, 101).is_none(), "{t}");
            }
        }
        // A cookie is not a credential, and the reverse.
        assert!(open_cookie(&key(1), &c, 101).is_none());
        // Never past the session.
        let short = Claims {
            expires_at: 150,
            ..claims()
        };
        let c = mint_credential(&key(1), &short, "::1".parse().unwrap(), 100);
        assert!(open_credential(&key(1), &c, 150).is_none());
    }

    #[test]
    fn credential_in_recognises_only_bearer_link_credentials() {
        assert_eq!(credential_in(b"Bearer esgl1_x.y"), Some("esgl1_x.y"));
        assert_eq!(credential_in(b"bearer  esgl1_x.y "), Some("esgl1_x.y"));
        assert_eq!(credential_in(b"Basic esgl1_x.y"), None);
        assert_eq!(credential_in(b"Bearer esg_secret"), None);
        assert_eq!(credential_in(b"\xff"), None);
    }

    fn token() -> Token {
        Token {
            id: "tok_a".into(),
            name: "a".into(),
            secret_hash: SecretHash([3; 32]),
            filters: vec![],
            indices: vec!["*".into()],
            permissions: BTreeSet::from([Permission::Read]),
            created_at: 0,
            expires_at: Some(500),
            ip_filter: None,
            kibana_spaces: vec!["default".into()],
            scores: None,
            previous_secret: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn cookies_round_trip_and_expire() {
        let t = token();
        let l = Link {
            id: "lnk_1".into(),
            token_id: t.id.clone(),
            path: "/app/x".into(),
            time: None,
            created_at: 0,
            expires_at: None,
            secret_generation: secret_generation(&t.secret_hash),
        };
        let c = seal_cookie(&key(7), &l, &t, 50);
        let got = open_cookie(&key(7), &c, 49).expect("valid");
        assert_eq!(got.generation, l.secret_generation);
        assert!(open_cookie(&key(7), &c, 50).is_none());
        assert!(open_cookie(&key(8), &c, 1).is_none());
        assert!(open_cookie(&key(7), "esgs1_", 1).is_none());
        assert!(open_cookie(&key(7), &"x".repeat(5000), 1).is_none());
    }
}

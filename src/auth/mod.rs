//! Authentication: credential parsing, secrets, lookup, and the failure limiter.
//!
//! Invariant: never awaits the store (reads a `Snapshot`); secrets never logged; compares in
//! constant time where a comparison is needed.

pub mod credential;
pub mod limiter;
pub mod secret;

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::store::model::{Token, UnixTime};
use crate::store::Snapshot;
use credential::Credential;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing authentication credentials for REST request")]
    Missing,
    #[error("malformed authentication credentials: send an esgate token's secret (esg_...) as Bearer <secret>, Basic with the secret as user or password, or ApiKey base64(<token id>:<secret>)")]
    Malformed,
    #[error("unable to authenticate with the provided credentials")]
    Unknown,
}

/// Finds the token a credential names.
///
/// The lookup is by SHA-256 of the secret (256 random bits, so a hash-table probe leaks nothing
/// useful); for `ApiKey` the presented id must also equal the token's id, compared in constant
/// time. A token's previous secret opens it only until its rotation's overlap ends (`now`, Unix
/// seconds). Every failure is the same `Unknown`, so callers cannot tell which part was wrong.
pub fn authenticate(
    snapshot: &Snapshot,
    credential: &Credential,
    now: UnixTime,
) -> Result<Arc<Token>, AuthError> {
    let (secret, claimed_id) = match credential {
        Credential::Secret(secret) => (secret, None),
        Credential::ApiKey { id, secret } => (secret, Some(id)),
    };
    let token = snapshot
        .token_by_secret(&secret.hash(), now)
        .ok_or(AuthError::Unknown)?;
    if let Some(id) = claimed_id {
        if !bool::from(token.id.as_bytes().ct_eq(id.as_bytes())) {
            return Err(AuthError::Unknown);
        }
    }
    Ok(Arc::clone(token))
}

#[cfg(test)]
mod tests;

//! Parsing the `Authorization` header into a [`Credential`] (security.md G1).
//!
//! Pure and total: any byte input gives a `Credential` or an [`AuthError`], never a panic, so it
//! can be fuzzed directly. Invariant: exactly one header value, one known scheme
//! (case-insensitive), exactly one token after it, and a secret that passes [`Secret::parse`];
//! anything else is `Malformed` (or `Missing` when there is no header at all). Errors never carry
//! the header's content.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::secret::Secret;
use super::AuthError;

/// Longest `Authorization` value considered; longer ones are malformed.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Standard alphabet, canonical (no stray trailing bits), padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A well-formed credential naming a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Bearer, or Basic with the secret as user (password `token`) or as password.
    Secret(Secret),
    /// `ApiKey base64(id:secret)`: the id must be the token's id.
    ApiKey { id: String, secret: Secret },
}

/// Parses every `Authorization` header value of a request (more than one is malformed).
pub fn parse(values: &[&[u8]]) -> Result<Credential, AuthError> {
    let value = match values {
        [] => return Err(AuthError::Missing),
        [one] => *one,
        _ => return Err(AuthError::Malformed),
    };
    if value.len() > MAX_HEADER_LEN {
        return Err(AuthError::Malformed);
    }
    if !printable(value) {
        return Err(AuthError::Malformed);
    }
    let text = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let (scheme, token) = match (words.next(), words.next(), words.next()) {
        (Some(scheme), Some(token), None) => (scheme, token),
        _ => return Err(AuthError::Malformed),
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        secret(token).map(Credential::Secret)
    } else if scheme.eq_ignore_ascii_case("basic") {
        let (user, pass) = decode_pair(token)?;
        if let Ok(s) = Secret::parse(&pass) {
            Ok(Credential::Secret(s))
        } else if pass == "token" {
            secret(&user).map(Credential::Secret)
        } else {
            Err(AuthError::Malformed)
        }
    } else if scheme.eq_ignore_ascii_case("apikey") {
        let (id, key) = decode_pair(token)?;
        if id.is_empty() {
            return Err(AuthError::Malformed);
        }
        let secret = secret(&key)?;
        Ok(Credential::ApiKey { id, secret })
    } else {
        Err(AuthError::Malformed)
    }
}

/// Printable ASCII and spaces only: no NUL, tab, CR/LF, DEL or non-ASCII bytes. Every byte is
/// looked at, without stopping at the first bad one, so the loop runs a block of bytes at a time
/// (at most `MAX_HEADER_LEN` of them; `all`'s early exit kept it a byte at a time, on every
/// request).
fn printable(value: &[u8]) -> bool {
    value
        .iter()
        .fold(0u8, |bad, &b| bad | u8::from(!(0x20..0x7f).contains(&b)))
        == 0
}

fn secret(text: &str) -> Result<Secret, AuthError> {
    Secret::parse(text).map_err(|_| AuthError::Malformed)
}

/// Strict base64 of UTF-8 `left:right`, split at the first `:`.
fn decode_pair(token: &str) -> Result<(String, String), AuthError> {
    let bytes = BASE64.decode(token).map_err(|_| AuthError::Malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
    let (left, right) = text.split_once(':').ok_or(AuthError::Malformed)?;
    Ok((left.to_owned(), right.to_owned()))
}

#[cfg(test)]
mod tests;

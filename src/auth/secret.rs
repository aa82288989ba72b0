//! Token secrets: generation, format check, hashing.
//!
//! A secret is `esg_` + 43 base62 digits (256 random bits from the OS) + 6 base62 digits of the
//! CRC32 of those 43 digits, 53 characters in all. The fixed prefix and checksum let secret
//! scanners find leaked secrets and let [`Secret::parse`] reject typos without a lookup.
//!
//! Invariant: the secret text never appears in `Debug`/`Display` output; only [`Secret::expose`]
//! returns it, and only the SHA-256 hash ([`SecretHash`]) is ever stored.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::model::SecretHash;

/// The recognisable prefix of every secret.
pub const PREFIX: &str = "esg_";
/// Base62 digits of the 256-bit random body (62^43 > 2^256 > 62^42).
const BODY_LEN: usize = 43;
/// Base62 digits of the CRC32 checksum (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
/// Total length of a secret's text.
pub const SECRET_LEN: usize = PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token secret. `Debug` and `Display` are redacted; `expose` is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token secret")]
pub struct MalformedSecret;

impl Secret {
    /// A new secret from the OS random source.
    pub fn generate() -> Secret {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        Secret::from_random(random)
    }

    /// The secret text for 32 random bytes.
    fn from_random(random: [u8; 32]) -> Secret {
        let body = encode_base62(&random, BODY_LEN);
        let checksum = encode_base62(
            &crc32fast::hash(body.as_bytes()).to_be_bytes(),
            CHECKSUM_LEN,
        );
        let mut text = String::with_capacity(SECRET_LEN);
        text.push_str(PREFIX);
        text.push_str(&body);
        text.push_str(&checksum);
        Secret(text)
    }

    /// Checks the format (prefix, alphabet, length, checksum) without any lookup.
    pub fn parse(text: &str) -> Result<Secret, MalformedSecret> {
        if text.len() != SECRET_LEN {
            return Err(MalformedSecret);
        }
        let rest = text.strip_prefix(PREFIX).ok_or(MalformedSecret)?;
        // Split on bytes so a multi-byte character can never cause a panic; both checks
        // refuse anything outside the alphabet. The body must also encode at most 256 bits, so
        // each secret has exactly one spelling.
        let (body, checksum) = rest.as_bytes().split_at(BODY_LEN);
        if !body_fits(body) {
            return Err(MalformedSecret);
        }
        let checksum_value = decode_base62::<4>(checksum)?;
        if u32::from_be_bytes(checksum_value) != crc32fast::hash(body) {
            return Err(MalformedSecret);
        }
        Ok(Secret(text.to_owned()))
    }

    /// SHA-256 of the full secret text. Secrets carry 256 random bits, so a fast hash is enough.
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The secret's text: only for the one creation/reset answer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Big-endian `bytes` as exactly `len` base62 digits (left-padded with `0`). `len` must be large
/// enough for the value; the callers use fixed sizes for which it is.
fn encode_base62(bytes: &[u8], len: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; len];
    for slot in digits.iter_mut().rev() {
        // Divide `number` by 62 in place; the remainder is the next digit.
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    digits.into_iter().map(char::from).collect()
}

/// The largest body: 2^256 - 1 in `BODY_LEN` base62 digits (`encode_base62` of 32 `0xff`).
const MAX_BODY: &[u8; BODY_LEN] = b"yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1";

/// Whether `body` is `BODY_LEN` base62 digits encoding at most 256 bits: what
/// `decode_base62::<32>` accepts, without the arithmetic (issue 10: the decode was the larger
/// part of checking a secret on every request). `ALPHABET` is in byte order, so for digit
/// strings of one length the numeric order is the byte order, and "at most 2^256 - 1" is a
/// comparison with `MAX_BODY`.
///
/// Every byte is looked at, without stopping at the first outside the alphabet (the base62
/// digits are exactly the ASCII alphanumerics), so the loop runs a block of bytes at a time
/// (session 23: `all`'s early exit kept it a byte at a time, about 300 instructions of every
/// request with a secret), as `credential::printable` does.
fn body_fits(body: &[u8]) -> bool {
    body.len() == BODY_LEN
        && body
            .iter()
            .fold(0u8, |bad, &d| bad | u8::from(!d.is_ascii_alphanumeric()))
            == 0
        && body <= MAX_BODY.as_slice()
}

/// The value of one base62 digit (`0-9`, `A-Z`, `a-z`), or `None` for any other byte.
fn base62_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'Z' => Some(d - b'A' + 10),
        b'a'..=b'z' => Some(d - b'a' + 36),
        _ => None,
    }
}

/// Base62 digits to an `N`-byte big-endian number; refuses non-alphabet bytes and overflow.
/// Computed in 32-bit limbs (`N` is a multiple of 4), five digits per step (62^5 < 2^32): the
/// same result as digit by digit, with a fifth of the steps (this runs on every request that
/// carries a secret). The value only grows from step to step, so it overflows at some step
/// exactly when it overflows at the last one: checking at the end of each group of five
/// refuses exactly what checking after every digit refused.
fn decode_base62<const N: usize>(digits: &[u8]) -> Result<[u8; N], MalformedSecret> {
    const { assert!(N.is_multiple_of(4) && N <= 32) };
    // Little-endian limbs: limbs[0] holds the least significant 32 bits.
    let mut limbs = [0u32; 8];
    let used = N / 4;
    for group in digits.chunks(5) {
        let mut value: u32 = 0;
        let mut scale: u32 = 1;
        for &d in group {
            value = value * 62 + u32::from(base62_digit(d).ok_or(MalformedSecret)?);
            scale *= 62;
        }
        // limbs = limbs * 62^len + value
        let mut carry = u64::from(value);
        for limb in limbs[..used].iter_mut() {
            let acc = u64::from(*limb) * u64::from(scale) + carry;
            *limb = acc as u32;
            carry = acc >> 32;
        }
        if carry != 0 {
            return Err(MalformedSecret);
        }
    }
    let mut out = [0u8; N];
    for (chunk, limb) in out.rchunks_exact_mut(4).zip(&limbs[..used]) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    Ok(out)
}

/// `text` with anything that looks like a secret replaced by `esg_[redacted]`, for records
/// that echo client input such as paths: `esg_` followed by base62 digits, where any of those
/// characters may be percent-encoded (`%65sg_`, `esg%5F`, `esg_%41...`, either case of hex).
/// Over-redacts rather than under: any length counts, checksum or not.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    match redact_bytes(text.as_bytes()) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(text),
        // Every run replaced starts and ends at an ASCII byte (a letter, a digit or `%`), so
        // the text around it is cut at character boundaries and stays UTF-8.
        std::borrow::Cow::Owned(out) => std::borrow::Cow::Owned(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// [`redact`] over bytes (the audit line is written as bytes: perf24c, no UTF-8 check of the
/// whole line): the same runs replaced, the rest copied as it is.
pub fn redact_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // A text with neither `esg` nor a percent sign holds no secret in any form: one search
    // settles most texts (an audit line per request), a vectorised one (issue 10:
    // `str::contains` was a tenth of the line's cost).
    static ESG: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("esg"));
    if ESG.find(bytes).is_none() && memchr::memchr(b'%', bytes).is_none() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out: Option<Vec<u8>> = None;
    // Copied into `out` up to here.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some(end) = secret_like_at(bytes, at) else {
            at += 1;
            continue;
        };
        let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
        out.extend_from_slice(&bytes[copied..at]);
        out.extend_from_slice(b"esg_[redacted]");
        copied = end;
        at = end;
    }
    match out {
        None => std::borrow::Cow::Borrowed(bytes),
        Some(mut out) => {
            out.extend_from_slice(&bytes[copied..]);
            std::borrow::Cow::Owned(out)
        }
    }
}

/// Where a secret-like run starting at `at` ends: `esg_` and base62 digits and underscores, at
/// least one digit, each character as itself or percent-encoded. The underscores belong to
/// the run so that a secret right after a run that ends in `esg` (`esg_esg_<digits>`, two
/// secrets pasted together) is inside it: stopped at that `_`, the run left the secret's
/// digits after it in clear (review 12).
fn secret_like_at(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    for want in *b"esg_" {
        let (c, next) = decoded_at(bytes, i)?;
        if c != want {
            return None;
        }
        i = next;
    }
    let mut digits = 0;
    while let Some((c, next)) = decoded_at(bytes, i) {
        if c.is_ascii_alphanumeric() {
            digits += 1;
        } else if c != b'_' {
            break;
        }
        i = next;
    }
    (digits > 0).then_some(i)
}

/// The byte at `i` as URL decoders read it (`%XX` is one byte), and where the next starts. An
/// encoded percent sign followed by two hex digits is read as the byte they name, however many
/// times the text was encoded (`%2565` is `e`: session 11 review, a secret encoded twice by a
/// client or a proxy in front was written as sent, its digits in clear).
fn decoded_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    let hex = |d: Option<&u8>| d.and_then(|d| (*d as char).to_digit(16));
    match bytes.get(i..)? {
        [b'%', ..] => {
            let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Some((b'%', i + 1));
            };
            let (mut c, mut next) = ((h * 16 + l) as u8, i + 3);
            while c == b'%' {
                match (hex(bytes.get(next)), hex(bytes.get(next + 1))) {
                    (Some(h), Some(l)) => (c, next) = ((h * 16 + l) as u8, next + 2),
                    _ => break,
                }
            }
            Some((c, next))
        }
        [b, ..] => Some((*b, i + 1)),
        [] => None,
    }
}

#[cfg(test)]
mod tests;

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
        // Split on bytes so a multi-byte character can never cause a panic; `decode_base62`
        // refuses anything outside the alphabet. The body must also encode at most 256 bits
        // (`decode_base62` refuses overflow), so each secret has exactly one spelling.
        let (body, checksum) = rest.as_bytes().split_at(BODY_LEN);
        decode_base62::<32>(body)?;
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
/// Computed in 32-bit limbs (`N` is a multiple of 4): the same result as byte by byte, with a
/// quarter of the steps (this runs on every request that carries a secret).
fn decode_base62<const N: usize>(digits: &[u8]) -> Result<[u8; N], MalformedSecret> {
    const { assert!(N.is_multiple_of(4) && N <= 32) };
    // Little-endian limbs: limbs[0] holds the least significant 32 bits.
    let mut limbs = [0u32; 8];
    let used = N / 4;
    for &d in digits {
        let value = base62_digit(d).ok_or(MalformedSecret)?;
        // limbs = limbs * 62 + value
        let mut carry = u64::from(value);
        for limb in limbs[..used].iter_mut() {
            let acc = u64::from(*limb) * 62 + carry;
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

/// `text` with anything that looks like a secret (`esg_`, or its percent-encoded forms, followed
/// by base62 digits) replaced by `esg_[redacted]`, for records that echo client input such as
/// paths. Over-redacts rather than under: any length counts, checksum or not.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    const PREFIXES: [&str; 3] = ["esg_", "esg%5f", "esg%5F"];
    if !PREFIXES.iter().any(|p| text.contains(p)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = PREFIXES
        .iter()
        .filter_map(|p| rest.find(p).map(|i| (i, *p)))
        .min_by_key(|(i, _)| *i)
    {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let digits = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if digits == 0 {
            out.push_str(prefix);
        } else {
            out.push_str("esg_[redacted]");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_round_trips_through_parse() {
        for _ in 0..50 {
            let s = Secret::generate();
            assert_eq!(s.expose().len(), SECRET_LEN);
            assert!(s.expose().starts_with("esg_"));
            let parsed = Secret::parse(s.expose()).expect("generated secret parses");
            assert_eq!(parsed, s);
            assert_eq!(parsed.hash(), s.hash());
        }
    }

    #[test]
    fn extreme_random_values_round_trip() {
        for random in [[0u8; 32], [0xff; 32], [0x80; 32]] {
            let s = Secret::from_random(random);
            assert_eq!(s.expose().len(), SECRET_LEN);
            assert!(Secret::parse(s.expose()).is_ok(), "{random:?}");
            let body = &s.expose().as_bytes()[PREFIX.len()..PREFIX.len() + BODY_LEN];
            assert_eq!(decode_base62::<32>(body), Ok(random));
        }
    }

    #[test]
    fn two_generated_secrets_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn every_single_character_mutation_is_rejected() {
        let s = Secret::generate();
        let text = s.expose().as_bytes().to_vec();
        let mut replacements: Vec<u8> = ALPHABET.to_vec();
        replacements.extend_from_slice(b"_-+/=. \0\x7f~");
        let mut tried = 0;
        for i in 0..text.len() {
            for &r in &replacements {
                if r == text[i] {
                    continue;
                }
                let mut m = text.clone();
                m[i] = r;
                let m = String::from_utf8(m).expect("ascii");
                assert_eq!(
                    Secret::parse(&m),
                    Err(MalformedSecret),
                    "mutation at {i}: {m}"
                );
                tried += 1;
            }
        }
        assert!(tried > 3000);
    }

    #[test]
    fn wrong_prefix_is_rejected_even_with_valid_body() {
        let s = Secret::generate();
        let rest = &s.expose()[PREFIX.len()..];
        for prefix in ["ESG_", "esg-", "abc_", "esgx"] {
            assert_eq!(
                Secret::parse(&format!("{prefix}{rest}")),
                Err(MalformedSecret)
            );
        }
    }

    #[test]
    fn wrong_length_is_rejected() {
        let s = Secret::generate();
        let t = s.expose();
        let cases = [
            String::new(),
            "esg_".to_owned(),
            t[..t.len() - 1].to_owned(),
            format!("{t}0"),
            format!("0{t}"),
            format!("{t} "),
            format!(" {t}"),
            format!("{t}{t}"),
        ];
        for case in cases {
            assert_eq!(Secret::parse(&case), Err(MalformedSecret), "{case:?}");
        }
    }

    #[test]
    fn non_ascii_of_the_right_byte_length_is_rejected_without_panic() {
        let s = Secret::generate();
        let t = s.expose();
        // Replace two ASCII bytes at the body/checksum boundary by one two-byte character.
        let cut = PREFIX.len() + BODY_LEN - 1;
        let m = format!("{}é{}", &t[..cut], &t[cut + 2..]);
        assert_eq!(m.len(), SECRET_LEN);
        assert_eq!(Secret::parse(&m), Err(MalformedSecret));
    }

    #[test]
    fn body_above_256_bits_is_rejected() {
        // 43 'z' digits exceed 2^256 - 1; give it a correct checksum so only overflow rejects it.
        let body = "z".repeat(BODY_LEN);
        let checksum = encode_base62(&crc32fast::hash(body.as_bytes()).to_be_bytes(), 6);
        let text = format!("{PREFIX}{body}{checksum}");
        assert_eq!(text.len(), SECRET_LEN);
        assert_eq!(Secret::parse(&text), Err(MalformedSecret));
    }

    #[test]
    fn debug_and_display_do_not_show_the_secret() {
        let s = Secret::generate();
        let body = &s.expose()[PREFIX.len()..];
        for shown in [format!("{s:?}"), format!("{s}"), format!("{:?}", Some(&s))] {
            assert!(!shown.contains(body), "{shown}");
            assert!(shown.contains("redacted"));
        }
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let s = Secret::generate();
        let expected: [u8; 32] = Sha256::digest(s.expose().as_bytes()).into();
        assert_eq!(s.hash().0, expected);
    }

    #[test]
    fn base62_encoding_matches_known_values() {
        assert_eq!(encode_base62(&[0, 0, 0, 0], 6), "000000");
        assert_eq!(encode_base62(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(encode_base62(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(encode_base62(&u32::MAX.to_be_bytes(), 6), "4gfFC3");
        assert_eq!(decode_base62::<4>(b"4gfFC3"), Ok(u32::MAX.to_be_bytes()));
        assert_eq!(decode_base62::<4>(b"4gfFC4"), Err(MalformedSecret));
    }

    /// The byte-by-byte decoding the limb version replaced (issue 10): both must agree on
    /// every input, overflow and foreign bytes included.
    fn decode_bytewise<const N: usize>(digits: &[u8]) -> Result<[u8; N], MalformedSecret> {
        let mut out = [0u8; N];
        for &d in digits {
            let value = base62_digit(d).ok_or(MalformedSecret)?;
            let mut carry = u32::from(value);
            for byte in out.iter_mut().rev() {
                let acc = u32::from(*byte) * 62 + carry;
                *byte = (acc & 0xff) as u8;
                carry = acc >> 8;
            }
            if carry != 0 {
                return Err(MalformedSecret);
            }
        }
        Ok(out)
    }

    #[test]
    fn limb_decoding_agrees_with_bytewise_decoding() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"z".repeat(BODY_LEN),
            b"0".repeat(BODY_LEN),
            b"z".repeat(6),
            b"4gfFC3".to_vec(),
            b"4gfFC4".to_vec(),
            b"0000-0".to_vec(),
            Vec::new(),
        ];
        for _ in 0..2000 {
            let mut r = [0u8; 64];
            OsRng.fill_bytes(&mut r);
            let len = usize::from(r[0]) % 50;
            let text: Vec<u8> = r[1..=len]
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % 62])
                .collect();
            inputs.push(text);
        }
        for i in &inputs {
            assert_eq!(decode_base62::<32>(i), decode_bytewise::<32>(i), "{i:?}");
            assert_eq!(decode_base62::<4>(i), decode_bytewise::<4>(i), "{i:?}");
        }
    }

    #[test]
    fn redact_hides_every_secret_like_run_and_keeps_the_rest() {
        let secret = Secret::generate();
        let text = secret.expose();
        let cases = [
            (
                format!("/{text}/_search"),
                "/esg_[redacted]/_search".to_owned(),
            ),
            (
                format!("a esg%5F{} b", &text[4..]),
                "a esg_[redacted] b".to_owned(),
            ),
            (
                "esg_ plain esg_x".to_owned(),
                "esg_ plain esg_[redacted]".to_owned(),
            ),
            ("/logs-*/_search".to_owned(), "/logs-*/_search".to_owned()),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input), want);
            assert!(!redact(&input).contains(&text[4..]));
        }
    }
}

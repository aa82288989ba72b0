use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

use super::*;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn one(value: &str) -> Result<Credential, AuthError> {
    parse(&[value.as_bytes()])
}

#[test]
fn accepted_forms_name_the_secret() {
    let s = Secret::generate();
    let t = s.expose();
    let secret = Credential::Secret(s.clone());
    let api = |id: &str| Credential::ApiKey {
        id: id.to_owned(),
        secret: s.clone(),
    };
    let cases: Vec<(String, Credential)> = vec![
        (format!("Bearer {t}"), secret.clone()),
        (format!("bearer {t}"), secret.clone()),
        (format!("BEARER {t}"), secret.clone()),
        (format!("Bearer   {t}"), secret.clone()),
        (format!(" Bearer {t} "), secret.clone()),
        (
            format!("Basic {}", b64(&format!("{t}:token"))),
            secret.clone(),
        ),
        (
            format!("Basic {}", b64(&format!("anyone:{t}"))),
            secret.clone(),
        ),
        (format!("Basic {}", b64(&format!(":{t}"))), secret.clone()),
        (
            format!("basic {}", b64(&format!("{t}:{t}"))),
            secret.clone(),
        ),
        (
            format!("Basic {}", STANDARD_NO_PAD.encode(format!("u:{t}"))),
            secret.clone(),
        ),
        (format!("ApiKey {}", b64(&format!("tok1:{t}"))), api("tok1")),
        (
            format!("apikey {}", b64(&format!("my-id:{t}"))),
            api("my-id"),
        ),
        (format!("APIKEY {}", b64(&format!("x:{t}"))), api("x")),
    ];
    for (header, expected) in cases {
        assert_eq!(one(&header), Ok(expected), "{header}");
    }
}

#[test]
fn no_header_is_missing() {
    assert_eq!(parse(&[]), Err(AuthError::Missing));
}

#[test]
fn malformed_headers_are_rejected() {
    let s = Secret::generate();
    let t = s.expose();
    let other = Secret::generate();
    let o = other.expose();
    let mut truncated = t.to_owned();
    truncated.pop();
    let long_pad = format!("Bearer {t}{}", " ".repeat(MAX_HEADER_LEN));
    let cases: Vec<String> = vec![
        String::new(),
        " ".into(),
        "Bearer".into(),
        "Bearer ".into(),
        t.to_owned(),
        format!("Bearer {truncated}"),
        format!("Bearer {t}x"),
        format!("Bearer x{t}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t}, Bearer {o}"),
        format!("Bearer {t},Bearer {o}"),
        format!("Bearer {t},{o}"),
        format!("Bearer\t{t}"),
        format!("Bearer {t}\0"),
        format!("Bearer {t}\r\n"),
        format!("Bearer {t}\u{7f}"),
        format!("Bearer {t}é"),
        format!("Bearer:{t}"),
        format!("Token {t}"),
        format!("Digest {t}"),
        format!("Bearer{t}"),
        long_pad,
        // Basic: neither side a secret, wrong keyword, no colon, bad base64.
        format!("Basic {}", b64("user:password")),
        format!("Basic {}", b64(&format!("{t}:Token"))),
        format!("Basic {}", b64(&format!("{t}:tokens"))),
        format!("Basic {}", b64(&format!("{t}:"))),
        format!("Basic {}", b64(t)),
        format!("Basic {}", b64(&format!("u:{truncated}"))),
        format!("Basic {}", b64(&format!("u:{t} "))),
        format!("Basic {}=", b64(&format!("u:{t}"))),
        format!("Basic !{}", b64(&format!("u:{t}"))),
        format!("Basic {}", URL_SAFE.encode([0xfbu8, 0xff, b':'])),
        format!("Basic {}", STANDARD.encode([0xffu8, b':', 0xfe])),
        format!("Basic {} {}", b64(&format!("u:{t}")), b64("x")),
        "Basic".into(),
        "Basic =".into(),
        // ApiKey: empty id, bad secret, no colon.
        format!("ApiKey {}", b64(&format!(":{t}"))),
        format!("ApiKey {}", b64(&format!("id:{truncated}"))),
        format!("ApiKey {}", b64(&format!("id{t}"))),
        format!("ApiKey {}", b64(&format!("{t}:id"))),
        format!("ApiKey {t}"),
    ];
    for header in cases {
        assert_eq!(one(&header), Err(AuthError::Malformed), "{header:?}");
    }
}

#[test]
fn base64_with_stray_trailing_bits_is_rejected() {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let t = Secret::generate();
    // "u:" + 53 characters = 55 bytes: two padding characters, so the last significant
    // character carries 4 unused bits. Setting them keeps the decoded bytes identical.
    let raw = format!("u:{}", t.expose());
    let mut enc = STANDARD.encode(&raw).into_bytes();
    assert!(enc.ends_with(b"=="));
    let pos = enc.len() - 3;
    let idx = CHARS.iter().position(|&c| c == enc[pos]).unwrap_or(0);
    enc[pos] = CHARS[idx | 0x0f];
    let bad = String::from_utf8(enc).unwrap_or_default();
    let lenient = GeneralPurpose::new(
        &alphabet::STANDARD,
        PAD.with_decode_allow_trailing_bits(true),
    );
    assert_eq!(lenient.decode(&bad).ok(), Some(raw.into_bytes()));
    assert_eq!(one(&format!("Basic {bad}")), Err(AuthError::Malformed));
}

#[test]
fn more_than_one_header_is_malformed_even_if_each_is_valid() {
    let t = Secret::generate();
    let h = format!("Bearer {}", t.expose());
    assert_eq!(
        parse(&[h.as_bytes(), h.as_bytes()]),
        Err(AuthError::Malformed)
    );
    assert_eq!(parse(&[h.as_bytes(), b""]), Err(AuthError::Malformed));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 20], b"Basic \xff".to_vec()];
    for len in 0..64u8 {
        inputs.push(
            (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect(),
        );
        let mut v = b"Basic ".to_vec();
        v.extend((0..len).map(|i| b"A+/=:"[usize::from(i % 5)]));
        inputs.push(v);
    }
    for input in &inputs {
        let result = parse(&[input.as_slice()]);
        assert!(result.is_err(), "{input:?}");
    }
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = parse(&[bytes.as_slice()]);
    }

    /// Printable text after a scheme: arbitrary bytes are almost never all printable, so the
    /// property above stops at the printable check; these reach each scheme's reading (the
    /// split into words, base64, the `user:password` pair, the secret's length and checksum).
    #[test]
    fn printable_text_after_a_scheme_is_malformed_or_a_valid_secret(
        scheme in proptest::sample::select(vec!["Bearer ", "bearer  ", " Basic ", "ApiKey ", "apikey", ""]),
        rest in proptest::prop_oneof![
            "[ -~]{0,120}",
            // A secret's length (53), any printable character but a space after its prefix.
            "esg_[!-~]{49}",
            // Base62 about a secret's length: its checksum is read.
            "esg_[0-9A-Za-z]{47,51}",
        ],
    ) {
        let header = format!("{scheme}{rest}");
        match parse(&[header.as_bytes()]) {
            Ok(Credential::Secret(s)) | Ok(Credential::ApiKey { secret: s, .. }) => {
                proptest::prop_assert!(Secret::parse(s.expose()).is_ok());
            }
            Err(e) => proptest::prop_assert_eq!(e, AuthError::Malformed),
        }
    }

    #[test]
    fn basic_and_apikey_with_arbitrary_payloads_never_panic_and_only_yield_valid_secrets(
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        scheme in proptest::sample::select(vec!["Basic", "ApiKey", "bearer"]),
    ) {
        let header = format!("{scheme} {}", STANDARD.encode(&payload));
        match parse(&[header.as_bytes()]) {
            Ok(Credential::Secret(s)) | Ok(Credential::ApiKey { secret: s, .. }) => {
                proptest::prop_assert!(Secret::parse(s.expose()).is_ok());
            }
            Err(e) => proptest::prop_assert_eq!(e, AuthError::Malformed),
        }
    }
}

/// perf20b: the block-at-a-time printable check refuses exactly what the byte-at-a-time one
/// (`all`, stopping at the first bad byte) refused: every byte alone, and every byte at every
/// place of a secret's header.
#[test]
fn the_printable_check_refuses_exactly_what_the_early_exit_one_refused() {
    let before = |v: &[u8]| v.iter().all(|&b| (0x20..0x7f).contains(&b));
    let good = b"Bearer esg_0123456789012345678901234567890123456789012abcdef".to_vec();
    assert!(printable(&good) && before(&good));
    assert!(printable(b"") && before(b""));
    for byte in 0..=u8::MAX {
        assert_eq!(printable(&[byte]), before(&[byte]), "{byte}");
        for at in [0, 1, 15, 16, 17, 31, 32, good.len() - 1] {
            let mut v = good.clone();
            v[at] = byte;
            assert_eq!(printable(&v), before(&v), "{byte} at {at}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn the_printable_check_matches_the_early_exit_one(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        proptest::prop_assert_eq!(printable(&bytes), bytes.iter().all(|&b| (0x20..0x7f).contains(&b)));
    }
}

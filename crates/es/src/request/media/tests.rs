use super::*;

fn json(compat: Option<u8>) -> JsonMedia {
    JsonMedia {
        family: Family::Json,
        compat,
    }
}

#[test]
fn parse_understands_plain_and_compatible_json_family_types() {
    let cases = [
        ("application/json", Family::Json, None),
        ("Application/JSON; charset=UTF-8", Family::Json, None),
        ("application/x-ndjson", Family::Ndjson, None),
        (
            "application/vnd.elasticsearch+json; compatible-with=8",
            Family::Json,
            Some(8),
        ),
        (
            "application/vnd.elasticsearch+json;compatible-with=7",
            Family::Json,
            Some(7),
        ),
        (
            "application/vnd.elasticsearch+json; compatible-with=\"9\"; charset=utf-8",
            Family::Json,
            Some(9),
        ),
        (
            "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
            Family::Ndjson,
            Some(9),
        ),
    ];
    for (media, family, compat) in cases {
        assert_eq!(
            parse(media),
            Parsed::Json(JsonMedia { family, compat }),
            "{media}"
        );
    }
}

#[test]
fn parse_refuses_uninspectable_formats_and_unknown_vendor_forms() {
    for media in [
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "application/cbor",
        "application/smile",
        "application/x-jackson-smile",
        "application/vnd.elasticsearch+yaml; compatible-with=8",
        "application/vnd.elasticsearch+cbor; compatible-with=8",
        "application/vnd.elasticsearch+smile; compatible-with=8",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+json; compatible-with=6",
        "application/vnd.elasticsearch+json; compatible-with=10",
        "application/vnd.elasticsearch+json; compatible-with=8; compatible-with=7",
        "application/vnd.elasticsearch+text; compatible-with=8",
        "application/json; charset=utf-16",
        "application/json; compatible-with=8",
        "application/json; boundary",
    ] {
        assert!(
            matches!(parse(media), Parsed::Refused(_)),
            "{media}: {:?}",
            parse(media)
        );
    }
}

#[test]
fn upstream_accept_keeps_the_clients_json_type_and_version() {
    let cases: &[(Option<&str>, Option<&str>, JsonMedia)] = &[
            (None, None, JsonMedia::JSON),
            (Some("*/*"), None, JsonMedia::JSON),
            (Some("text/plain, */*;q=0.8"), None, JsonMedia::JSON),
            (Some("application/json"), None, JsonMedia::JSON),
            (
                Some("application/vnd.elasticsearch+json; compatible-with=8"),
                Some("application/vnd.elasticsearch+json; compatible-with=8"),
                json(Some(8)),
            ),
            (
                Some("application/vnd.elasticsearch+json;compatible-with=9"),
                None,
                json(Some(9)),
            ),
            // No Accept but a compatible body: Elasticsearch wants the version on both.
            (
                None,
                Some("application/vnd.elasticsearch+x-ndjson; compatible-with=7"),
                json(Some(7)),
            ),
            (
                Some("*/*"),
                Some("application/vnd.elasticsearch+json; compatible-with=8"),
                json(Some(8)),
            ),
            (
                Some("application/vnd.elasticsearch+x-ndjson; compatible-with=9"),
                None,
                json(Some(9)),
            ),
            // The first JSON element wins.
            (
                Some("text/html, application/vnd.elasticsearch+json; compatible-with=8, application/json"),
                None,
                json(Some(8)),
            ),
        ];
    for (accept, ct, want) in cases {
        assert_eq!(
            upstream_accept(*accept, *ct),
            Ok(*want),
            "{accept:?} {ct:?}"
        );
    }
}

#[test]
fn upstream_accept_refuses_formats_esgate_cannot_read_with_406() {
    for accept in [
        "application/yaml",
        "application/cbor",
        "application/smile",
        "application/json, application/yaml;q=0.1",
        "application/vnd.elasticsearch+json; compatible-with=5",
        "application/vnd.elasticsearch+smile; compatible-with=8",
    ] {
        let err = upstream_accept(Some(accept), None).unwrap_err();
        assert_eq!(err.kind, RejectKind::NotAcceptable, "{accept}");
        assert!(err.reason.contains("application/json"), "{}", err.reason);
    }
}

proptest::proptest! {
    #[test]
    fn upstream_media_is_always_a_header_esgate_can_read(
        accept in "[ -~]{0,80}",
        content_type in "[ -~]{0,80}",
    ) {
        if let Ok(m) = upstream_accept(Some(&accept), Some(&content_type)) {
            let value = m.header_value();
            proptest::prop_assert!(http::HeaderValue::from_str(&value).is_ok());
            proptest::prop_assert_eq!(m.family, Family::Json);
            proptest::prop_assert_eq!(parse(&value), Parsed::Json(m));
        }
        let ct = upstream_content_type(Some(&content_type), JsonMedia::JSON, Family::Ndjson);
        proptest::prop_assert_eq!(parse(&ct.header_value()), Parsed::Json(ct));
    }
}

#[test]
fn format_param_allows_only_json() {
    assert_eq!(check_format_param(None), Ok(()));
    assert_eq!(check_format_param(Some("json")), Ok(()));
    assert_eq!(check_format_param(Some("JSON")), Ok(()));
    for f in ["yaml", "cbor", "smile", "txt", "csv", ""] {
        assert_eq!(
            check_format_param(Some(f)).map_err(|e| e.kind),
            Err(RejectKind::NotAcceptable),
            "{f}"
        );
    }
}

#[test]
fn upstream_content_type_follows_the_clients_version_and_esgates_family() {
    let plain = JsonMedia::JSON;
    let cases = [
        (None, plain, Family::Json, "application/json"),
        (
            Some("application/json"),
            plain,
            Family::Ndjson,
            "application/x-ndjson",
        ),
        (
            Some("application/vnd.elasticsearch+x-ndjson; compatible-with=8"),
            json(Some(8)),
            Family::Ndjson,
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        ),
        // msearch sent as compatible JSON is forwarded as compatible NDJSON.
        (
            Some("application/vnd.elasticsearch+json; compatible-with=9"),
            plain,
            Family::Ndjson,
            "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
        ),
        // A bodiless compatible request that esgate gives a body: versioned like Accept.
        (
            None,
            json(Some(8)),
            Family::Json,
            "application/vnd.elasticsearch+json; compatible-with=8",
        ),
        (
            Some("application/yaml"),
            plain,
            Family::Json,
            "application/json",
        ),
    ];
    for (ct, accept, family, want) in cases {
        assert_eq!(
            upstream_content_type(ct, accept, family).header_value(),
            want,
            "{ct:?} {accept:?}"
        );
    }
}

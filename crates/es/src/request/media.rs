//! Media types an enforced request may use, and the ones esgate sends upstream in their place
//! (security.md E5, E9, E11): plain JSON/NDJSON and Elasticsearch's REST-compatibility forms
//! `application/vnd.elasticsearch+json; compatible-with=N` (and `+x-ndjson`) for N in 7..=9.
//!
//! Invariant: the upstream `Accept` and `Content-Type` of an enforced request are built here
//! from a parsed [`JsonMedia`] (never the client's header bytes), so the backend always answers
//! in JSON that esgate could read; an `Accept` naming a format esgate cannot inspect (YAML,
//! CBOR, Smile, or any other `vnd.elasticsearch+` form) or an unknown compatible version is
//! refused with 406 before anything is sent.

use crate::{RejectKind, Rejection};

/// REST-compatibility versions esgate passes through: what Elasticsearch 8 and 9 accept
/// (`compatible-with` their own major or the one before).
pub const COMPAT_VERSIONS: [u8; 3] = [7, 8, 9];

/// The two body families Elasticsearch speaks in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Json,
    Ndjson,
}

/// A JSON-family media type esgate understands: plain (`compat == None`) or the vendor form
/// with its `compatible-with` version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonMedia {
    pub family: Family,
    pub compat: Option<u8>,
}

// === impl JsonMedia ===

impl JsonMedia {
    pub const JSON: JsonMedia = JsonMedia {
        family: Family::Json,
        compat: None,
    };

    /// The canonical header value.
    pub fn header_value(self) -> String {
        match (self.family, self.compat) {
            (Family::Json, None) => "application/json".to_string(),
            (Family::Ndjson, None) => "application/x-ndjson".to_string(),
            (Family::Json, Some(v)) => {
                format!("application/vnd.elasticsearch+json; compatible-with={v}")
            }
            (Family::Ndjson, Some(v)) => {
                format!("application/vnd.elasticsearch+x-ndjson; compatible-with={v}")
            }
        }
    }
}

/// What one media type (one element of a header, parameters included) is to esgate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// JSON or NDJSON, plain or compatible-with a supported version.
    Json(JsonMedia),
    /// `*/*`, `application/*` or a type esgate neither needs nor fears (`text/plain`): the
    /// client takes whatever comes, and JSON is what esgate asks for.
    Anything,
    /// A format esgate cannot inspect, or a vendor form it does not know; the reason says why.
    Refused(&'static str),
}

/// Parses one media type such as `application/vnd.elasticsearch+json; compatible-with=8`.
pub fn parse(media: &str) -> Parsed {
    let mut parts = media.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let family = match essence.as_str() {
        "application/json" | "application/vnd.elasticsearch+json" => Family::Json,
        "application/x-ndjson" | "application/vnd.elasticsearch+x-ndjson" => Family::Ndjson,
        e if is_uninspectable(e) => {
            return Parsed::Refused("esgate can only check JSON: YAML, CBOR and Smile are refused")
        }
        e if e.starts_with("application/vnd.elasticsearch") => {
            return Parsed::Refused("this Elasticsearch media type is not supported by esgate")
        }
        _ => return Parsed::Anything,
    };
    let vendor = essence.starts_with("application/vnd.");
    let mut compat = None;
    for param in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = param.split_once('=') else {
            return Parsed::Refused("a media type parameter has no value");
        };
        let value = value.trim().trim_matches('"').to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "charset" if value == "utf-8" || value == "utf8" => {}
            "charset" => return Parsed::Refused("only the UTF-8 charset is supported"),
            "compatible-with" if vendor && compat.is_none() => {
                match COMPAT_VERSIONS.iter().find(|v| v.to_string() == value) {
                    Some(v) => compat = Some(*v),
                    None => return Parsed::Refused(
                        "compatible-with must be 7, 8 or 9 (the versions esgate passes through)",
                    ),
                }
            }
            // q-values only order alternatives; esgate picks the first JSON one anyway.
            "q" => {}
            _ => return Parsed::Refused("a media type parameter is not supported"),
        }
    }
    if vendor && compat.is_none() {
        return Parsed::Refused("a vnd.elasticsearch media type needs compatible-with=N");
    }
    Parsed::Json(JsonMedia { family, compat })
}

fn is_uninspectable(essence: &str) -> bool {
    let subtype = essence.rsplit(['/', '+']).next().unwrap_or("");
    matches!(
        subtype,
        "yaml" | "x-yaml" | "cbor" | "smile" | "x-jackson-smile"
    )
}

/// The compatible version a request's `Content-Type` asks for, if it is a vendor JSON form.
pub fn compat_of(content_type: Option<&str>) -> Option<u8> {
    match content_type.map(parse) {
        Some(Parsed::Json(m)) => m.compat,
        _ => None,
    }
}

/// The `Accept` to send upstream for an enforced request: the client's first JSON media type
/// (its compatible version kept), or when it names none, JSON in the compatible version of its
/// `Content-Type` (Elasticsearch wants both or neither), or plain JSON. 406 when any element of
/// `Accept` is a format esgate cannot read.
pub fn upstream_accept(
    accept: Option<&str>,
    content_type: Option<&str>,
) -> Result<JsonMedia, Rejection> {
    let mut chosen = None;
    for element in accept.unwrap_or("").split(',') {
        if element.trim().is_empty() {
            continue;
        }
        match parse(element) {
            // Elasticsearch answers NDJSON requests in JSON: an NDJSON Accept means JSON.
            Parsed::Json(m) => {
                chosen = chosen.or(Some(JsonMedia {
                    family: Family::Json,
                    compat: m.compat,
                }));
            }
            Parsed::Anything => {}
            Parsed::Refused(why) => return Err(not_acceptable(why)),
        }
    }
    Ok(chosen.unwrap_or(JsonMedia {
        family: Family::Json,
        compat: compat_of(content_type),
    }))
}

/// The `Content-Type` to send upstream with a body of `family` built by esgate: the client's
/// compatible version when it declared a Content-Type, or the version of the upstream `accept`
/// when it declared none (a body esgate built for a bodiless request: Elasticsearch wants both
/// headers versioned or neither).
pub fn upstream_content_type(
    client_content_type: Option<&str>,
    accept: JsonMedia,
    family: Family,
) -> JsonMedia {
    JsonMedia {
        family,
        compat: match client_content_type {
            Some(ct) => compat_of(Some(ct)),
            None => accept.compat,
        },
    }
}

/// The `format` URL parameter, for a route whose response esgate reads or shapes (`_cat/*` with
/// `format=json`): only JSON is allowed, anything else is 406 like an unreadable `Accept`.
/// Routes that do not list `format` in their parameter allow-list refuse it there.
pub fn check_format_param(format: Option<&str>) -> Result<(), Rejection> {
    match format {
        None => Ok(()),
        Some(f) if f.eq_ignore_ascii_case("json") => Ok(()),
        Some(_) => Err(not_acceptable("format must be json")),
    }
}

fn not_acceptable(why: &str) -> Rejection {
    Rejection {
        kind: RejectKind::NotAcceptable,
        reason: format!("{why}; ask for application/json or application/vnd.elasticsearch+json; compatible-with=8"),
    }
}

#[cfg(test)]
mod tests;

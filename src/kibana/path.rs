//! Share-link paths: what a link may open, and where opening it redirects.
//!
//! A link's path is a Kibana app path on Kibana's own origin, never a URL: it starts with
//! `/app/` (the default space) or `/s/<space>/app/`, and has nothing a browser could read as
//! another origin or another path (`//`, backslashes, control characters, spaces, dot segments).
//! The redirect esgate answers with is this path plus `embed=true` and, for a snapshot, the
//! `_g` time, so no link can send a recipient anywhere but into Kibana (no open redirect).
//!
//! Invariant: pure.

use crate::store::model::TimeRange;

/// The longest link path accepted.
pub const MAX_PATH_LEN: usize = 2048;

/// Why a path is not a Kibana app path (for the admin API's 400, naming `path`).
pub fn check(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_PATH_LEN {
        return Err("must be at most 2048 bytes");
    }
    if !path.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err("must be printable ASCII without spaces or control characters");
    }
    if path.contains('\\') {
        return Err("must not contain backslashes");
    }
    if path.contains("//") {
        return Err("must not contain //");
    }
    let space = space_of(path)
        .ok_or("must be a Kibana app path: /app/... or /s/<space>/app/... (never a URL)")?;
    if !valid_space(space) {
        return Err("names a space that is not a Kibana space id ([a-z0-9_-])");
    }
    // The part a browser resolves as a path: before the query and the fragment.
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let route = &path[..end];
    if route
        .split('/')
        .any(|seg| seg == "." || seg == ".." || seg.eq_ignore_ascii_case("%2e%2e"))
        || route.to_ascii_lowercase().contains("%2f")
        || route.to_ascii_lowercase().contains("%5c")
        || route.contains("%2e")
        || route.contains("%2E")
    {
        return Err("must not contain dot segments or encoded slashes");
    }
    Ok(())
}

/// The Kibana space a path lies in (`default` for `/app/...`), if it is an app path.
pub fn space_of(path: &str) -> Option<&str> {
    if path.starts_with("/app/") {
        return Some("default");
    }
    let rest = path.strip_prefix("/s/")?;
    let (space, tail) = rest.split_once('/')?;
    if tail.starts_with("app/") && !space.is_empty() {
        Some(space)
    } else {
        None
    }
}

/// Kibana's space id rule: lowercase letters, digits, `_` and `-`.
pub fn valid_space(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Where opening a link sends the browser: the path with `embed=true` (Kibana's chromeless
/// mode: no top or side navigation) and, for a snapshot, `_g=(time:(from:'..',to:'..'))`.
/// Hash-routed apps (dashboards, visualize) read their state from the query in the fragment.
pub fn redirect_target(path: &str, time: Option<&TimeRange>) -> String {
    let mut params = String::from("embed=true");
    if let Some(t) = time {
        // Rison strings in single quotes; RFC 3339 timestamps hold no quote or `!`.
        params.push_str(&format!("&_g=(time:(from:'{}',to:'{}'))", t.from, t.to));
    }
    let section_has_query = match path.find('#') {
        Some(hash) => path[hash..].contains('?'),
        None => path.contains('?'),
    };
    let sep = if section_has_query { '&' } else { '?' };
    format!("{path}{sep}{params}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_are_accepted() {
        for p in [
            "/app/dashboards#/view/722b74f0-b882-11e8-a6d9-e546fe2bba5f",
            "/app/dashboards#/view/abc?_a=(viewMode:view)",
            "/app/visualize#/edit/abc",
            "/s/tenant-a/app/dashboards#/view/abc",
            "/app/lens#/edit/x",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    /// No open redirect: nothing that is a URL, leaves Kibana's app routes, or that a browser
    /// could read as another origin (issue #16).
    #[test]
    fn anything_but_an_app_path_is_refused() {
        for p in [
            "",
            "/",
            "https://evil.example/app/x",
            "//evil.example/app/x",
            "/\\evil.example",
            "/app\\..\\x",
            "/app//evil.example",
            "app/dashboards",
            "/apps/x",
            "/api/saved_objects/_find",
            "/app/../api/status",
            "/app/./x",
            "/app/%2e%2e/api",
            "/app/%2F%2Fevil",
            "/app/x\ny",
            "/app/x y",
            "/app/x\u{7f}",
            "/app/ünï",
            "/s//app/x",
            "/s/UPPER/app/x",
            "/s/a/b/app/x",
            "/s/a/api/x",
            "javascript:alert(1)",
        ] {
            assert!(check(p).is_err(), "{p:?} accepted");
        }
        assert!(check(&format!("/app/{}", "x".repeat(3000))).is_err());
    }

    #[test]
    fn spaces_of_paths() {
        assert_eq!(space_of("/app/dashboards"), Some("default"));
        assert_eq!(space_of("/s/acme/app/dashboards#/x"), Some("acme"));
        assert_eq!(space_of("/s/acme/api/x"), None);
    }

    #[test]
    fn redirects_add_embed_and_the_snapshot_time() {
        let t = TimeRange {
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-02T00:00:00Z".into(),
        };
        let cases = [
            ("/app/dashboards#/view/d1", None, "/app/dashboards#/view/d1?embed=true"),
            (
                "/app/dashboards#/view/d1",
                Some(&t),
                "/app/dashboards#/view/d1?embed=true&_g=(time:(from:'2026-11-01T00:00:00Z',to:'2026-11-02T00:00:00Z'))",
            ),
            ("/app/dashboards#/view/d1?_a=(x)", None, "/app/dashboards#/view/d1?_a=(x)&embed=true"),
            ("/app/lens?x=1", None, "/app/lens?x=1&embed=true"),
            ("/app/lens?x=1#/edit/a", None, "/app/lens?x=1#/edit/a?embed=true"),
        ];
        for (path, time, want) in cases {
            assert_eq!(redirect_target(path, time), want, "{path}");
        }
    }
}

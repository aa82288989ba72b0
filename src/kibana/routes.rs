//! What a share link's recipient may ask Kibana through the front: viewing, nothing else.
//!
//! Followed: Kibana 8.15 (the version of `tests/data/kibana/`; routes checked against
//! elastic/kibana's sources: core's `/api/core/capabilities` (POST, read-only), the data
//! plugin's `/internal/search/{strategy}` and `/internal/bsearch`, content management's
//! `/api/content_management/rpc/{name}` (of which `get`, `bulkGet`, `search` and `mSearch`
//! read; `create`, `update`, `delete` write), the saved objects read routes, data views' field
//! lists, value suggestions, Lens' existing fields and TSVB's data route). A dashboard opens
//! with: its app page, the bundles and translations, `/api/core/capabilities`,
//! `/internal/security/me`, `/internal/spaces/_active_space`, content management `get`/`bulkGet`
//! or saved objects `_bulk_resolve`/`_bulk_get`, data view fields, then `/internal/bsearch` or
//! `/internal/search/*` for every panel.
//!
//! Everything not listed is refused (403): other apps (management, dev tools, discover,
//! canvas, ...), every write (saved objects create/update/delete/import, content management
//! writes, settings, spaces, security, alerting, reporting, telemetry and usage counters).
//! State-changing methods are refused except the read-only POSTs below, and those must carry
//! Kibana's own `kbn-xsrf` or `x-elastic-internal-origin` header (checked by the front).
//!
//! Invariant: pure.

/// The apps a recipient may open (their pages; their data comes through the routes below).
const VIEW_APPS: &[&str] = &["dashboards", "visualize", "lens", "maps"];

/// The data plugin's search strategies (Kibana 8.15 `data/common/search/strategies`: `es`,
/// `ese`, `esql`, `esql_async`, `eql`, `sql`), which search with the current user's
/// credentials: the link credential here, so esgate filters what they read.
const DATA_STRATEGIES: &[&str] = &["ese", "es", "esql", "esql_async", "eql", "sql"];

/// What the front does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A page or asset, fetched with GET/HEAD.
    Read,
    /// An app page (framable by the same origin only: Kibana's embed mode).
    AppPage,
    /// A read-only POST (a search, a bulk read): passed with the CSRF checks.
    ReadPost,
    Refuse(&'static str),
}

/// Splits `/s/<space>/rest` into (`Some(space)`, `/rest`); other paths are in no space prefix.
pub fn split_space(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/s/") {
        if let Some((space, _)) = rest.split_once('/') {
            return (Some(space), &path[3 + space.len()..]);
        }
        return (Some(rest), "/");
    }
    (None, path)
}

/// Classifies `method path` (the path without its query) for a recipient whose token may read
/// `spaces`.
pub fn classify(method: &str, path: &str, spaces: &[String]) -> Verdict {
    if path.contains("//") || path.contains('\\') || path.split('/').any(|s| s == ".." || s == ".")
    {
        return Verdict::Refuse("the path is not a plain Kibana path");
    }
    if path.to_ascii_lowercase().contains("%2e") || path.to_ascii_lowercase().contains("%2f") {
        return Verdict::Refuse("the path is not a plain Kibana path");
    }
    let (space, rest) = split_space(path);
    let space = space.unwrap_or("default");
    if !spaces.iter().any(|s| s == space) {
        return Verdict::Refuse("the Kibana space is not one the link's token may read");
    }
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST";
    match segs.as_slice() {
        // Static assets: bundles (also under the build number), UI assets, translations.
        ["ui", ..]
        | ["bundles", ..]
        | ["translations", ..]
        | ["bootstrap.js"]
        | ["bootstrap-anonymous.js"]
        | ["node_modules", ..]
            if get =>
        {
            Verdict::Read
        }
        [build, "bundles", ..]
            if get && !build.is_empty() && build.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Verdict::Read
        }
        ["app", app, ..] if get && VIEW_APPS.contains(app) => Verdict::AppPage,
        ["app", ..] => Verdict::Refuse(
            "only dashboards, visualizations, Lens and maps open through a share link",
        ),
        // Read APIs.
        ["api", "status"]
        | ["api", "licensing", "info"]
        | ["internal", "security", "me"]
        | ["internal", "security", "session"]
        | ["internal", "spaces", "_active_space"]
        | ["api", "spaces", "space"]
        | ["api", "spaces", "space", _]
        | ["api", "saved_objects", "_find"]
        | ["api", "saved_objects", "resolve", _, _]
        | ["api", "saved_objects", _, _]
        | ["api", "data_views", "data_view", _]
        | ["api", "index_patterns", "index_pattern", _]
        | ["api", "index_patterns", "_fields_for_wildcard"]
        | ["internal", "data_views", "fields"]
        | ["internal", "data_views", "_fields_for_wildcard"]
        | ["api", "saved_objects_tagging", "tags"]
            if get =>
        {
            Verdict::Read
        }
        // Searches: the data plugin's own strategies only. Other plugins register theirs
        // under the same route, and some search as Kibana's own user (an `all` token here),
        // gated by Kibana privileges esgate answers but not only by them (attack22: the
        // osquery strategy of Kibana 8.x read `.fleet*` indices as Kibana's user without a
        // privilege check of its own; the rule registry's reads alerts as Kibana's user).
        ["internal", "search", strategy] | ["internal", "search", strategy, _]
            if post && DATA_STRATEGIES.contains(strategy) =>
        {
            Verdict::ReadPost
        }
        ["internal", "search", ..] => Verdict::Refuse(
            "only Kibana's data searches (es, ese, esql, esql_async, eql, sql) pass through a share link",
        ),
        // Read-only POSTs.
        ["api", "core", "capabilities"]
        | ["internal", "core", "capabilities"]
        | ["internal", "bsearch"]
        | ["api", "saved_objects", "_bulk_get"]
        | ["api", "saved_objects", "_bulk_resolve"]
        | ["api", "content_management", "rpc", "get" | "bulkGet" | "search" | "mSearch"]
        | ["internal", "data_views", "_fields_for_wildcard"]
        | ["api", "index_patterns", "_fields_for_wildcard"]
        | ["internal", "kibana", "suggestions", "values", _]
        | ["internal", "lens", "existing_fields", _]
        | ["api", "metrics", "vis", "data"]
        | ["internal", "metrics", "vis", "data"]
            if post =>
        {
            Verdict::ReadPost
        }
        _ if !get => Verdict::Refuse("viewers of a share link cannot change anything"),
        _ => Verdict::Refuse("not available through a share link"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spaces() -> Vec<String> {
        vec!["default".into(), "acme".into()]
    }

    /// What opening a dashboard asks Kibana 8.15 for passes; writes, management and other
    /// apps do not (issue #16).
    #[test]
    fn viewing_passes_and_everything_else_is_refused() {
        let s = spaces();
        let allowed: &[(&str, &str, Verdict)] = &[
            ("GET", "/app/dashboards", Verdict::AppPage),
            ("GET", "/s/acme/app/dashboards", Verdict::AppPage),
            ("GET", "/84785/bundles/core/core.entry.js", Verdict::Read),
            (
                "GET",
                "/XXXXXXXXXXXX/bundles/kbn-ui-shared-deps-npm/x.js",
                Verdict::Read,
            ),
            ("GET", "/bundles/x.js", Verdict::Read),
            ("GET", "/ui/favicons/favicon.svg", Verdict::Read),
            ("GET", "/translations/en.json", Verdict::Read),
            ("GET", "/bootstrap.js", Verdict::Read),
            ("GET", "/api/status", Verdict::Read),
            ("GET", "/internal/security/me", Verdict::Read),
            ("GET", "/internal/spaces/_active_space", Verdict::Read),
            ("GET", "/api/saved_objects/_find", Verdict::Read),
            ("GET", "/api/saved_objects/dashboard/d1", Verdict::Read),
            (
                "GET",
                "/api/saved_objects/resolve/dashboard/d1",
                Verdict::Read,
            ),
            ("GET", "/internal/data_views/fields", Verdict::Read),
            ("POST", "/api/core/capabilities", Verdict::ReadPost),
            ("POST", "/internal/bsearch", Verdict::ReadPost),
            ("POST", "/internal/search/ese", Verdict::ReadPost),
            ("POST", "/internal/search/ese/FmFzeW5j", Verdict::ReadPost),
            ("POST", "/internal/search/esql_async", Verdict::ReadPost),
            ("POST", "/s/acme/internal/search/es", Verdict::ReadPost),
            ("POST", "/s/acme/internal/bsearch", Verdict::ReadPost),
            ("POST", "/api/saved_objects/_bulk_get", Verdict::ReadPost),
            (
                "POST",
                "/api/saved_objects/_bulk_resolve",
                Verdict::ReadPost,
            ),
            ("POST", "/api/content_management/rpc/get", Verdict::ReadPost),
            (
                "POST",
                "/api/content_management/rpc/bulkGet",
                Verdict::ReadPost,
            ),
        ];
        for (m, p, want) in allowed {
            assert_eq!(classify(m, p, &s), *want, "{m} {p}");
        }
        let refused: &[(&str, &str)] = &[
            ("GET", "/"),
            ("GET", "/app/home"),
            ("GET", "/app/management/kibana/objects"),
            ("GET", "/app/dev_tools"),
            ("GET", "/app/discover"),
            ("GET", "/s/other/app/dashboards"),
            ("POST", "/s/other/internal/bsearch"),
            ("POST", "/api/saved_objects/dashboard/d1"),
            ("PUT", "/api/saved_objects/dashboard/d1"),
            ("DELETE", "/api/saved_objects/dashboard/d1"),
            ("POST", "/api/saved_objects/_import"),
            ("POST", "/api/saved_objects/_export"),
            ("POST", "/api/saved_objects/_bulk_create"),
            ("POST", "/api/saved_objects/_bulk_update"),
            ("POST", "/api/saved_objects/_bulk_delete"),
            ("POST", "/api/content_management/rpc/create"),
            ("POST", "/api/content_management/rpc/update"),
            ("POST", "/api/content_management/rpc/delete"),
            ("DELETE", "/internal/search/ese/FmFzeW5j"),
            // Other plugins' strategies, some of which search as Kibana's own user (attack22).
            ("POST", "/internal/search/osquerySearchStrategy"),
            (
                "POST",
                "/internal/search/privateRuleRegistryAlertsSearchStrategy",
            ),
            ("POST", "/internal/search/endpointSearchStrategy"),
            (
                "POST",
                "/s/acme/internal/search/securitySolutionSearchStrategy/FmFzeW5j",
            ),
            ("POST", "/internal/search/Ese"),
            ("POST", "/api/console/proxy"),
            ("POST", "/internal/kibana/settings"),
            ("POST", "/api/kibana/settings"),
            ("POST", "/api/spaces/space"),
            ("PUT", "/api/security/role/x"),
            ("POST", "/api/reporting/generate/csv_searchsource"),
            ("POST", "/api/ui_counters/_report"),
            ("POST", "/internal/telemetry/optIn"),
            ("POST", "/api/alerting/rule"),
            ("GET", "/api/security/role"),
            ("GET", "/api/features"),
            ("GET", "/internal/security/api_key"),
            ("GET", "/app/dashboards/../management"),
            ("GET", "/app/dashboards/%2e%2e/management"),
            ("GET", "//evil/app/dashboards"),
            ("POST", "/app/dashboards"),
            ("GET", "/s/acme"),
        ];
        for (m, p) in refused {
            assert!(
                matches!(classify(m, p, &s), Verdict::Refuse(_)),
                "{m} {p} passed"
            );
        }
    }

    #[test]
    fn space_prefixes_split() {
        assert_eq!(split_space("/s/acme/app/x"), (Some("acme"), "/app/x"));
        assert_eq!(split_space("/s/acme"), (Some("acme"), "/"));
        assert_eq!(split_space("/app/x"), (None, "/app/x"));
    }
}

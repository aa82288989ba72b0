//! What a share link's recipient may ask Kibana through the front: viewing, nothing else.
//!
//! Followed: Kibana 8.15 (the version of `tests/data/kibana/`; routes checked against
//! elastic/kibana's sources: core's `/api/core/capabilities` (POST, read-only), the data
//! plugin's `/internal/search/{strategy}` and `/internal/bsearch`, content management's
//! `/api/content_management/rpc/{name}` (of which `get`, `bulkGet`, `search` and `mSearch`
//! read; `create`, `update`, `delete` write), the saved objects read routes, data views' field
//! lists, value suggestions, Lens' existing fields, TSVB's data route, and the maps app's
//! glyphs, vector tiles and index settings, which read as the current user or from Kibana's
//! disk, never as Kibana's own user; its editor's routes are refused). A dashboard opens
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
//! `/internal/bsearch` (bfetch's batched search, which dashboards use) names each search's
//! strategy in its body: [`check_search_batch`] passes a body only when every item's strategy
//! is one of the data plugin's (`DATA_STRATEGIES`), as the URL form's.
//!
//! Invariant: pure.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The apps a recipient may open (their pages; their data comes through the routes below).
const VIEW_APPS: &[&str] = &["dashboards", "visualize", "lens", "maps"];

/// The data plugin's search strategies (Kibana 8.15 `data/common/search/strategies`: `es`,
/// `ese`, `esql`, `esql_async`, `eql`, `sql`), which search with the current user's
/// credentials: the link credential here, so esgate filters what they read.
/// Checked in the URL (`/internal/search/<strategy>`) and in each item of a batched search
/// (`/internal/bsearch`, [`check_search_batch`]): one list for both.
const DATA_STRATEGIES: &[&str] = &["ese", "es", "esql", "esql_async", "eql", "sql"];

/// The refusal of another strategy, in the URL or in a batch.
const DATA_SEARCHES_ONLY: &str =
    "only Kibana's data searches (es, ese, esql, esql_async, eql, sql) pass through a share link";

/// The refusal of a batched search whose body is not the JSON Kibana's bfetch sends.
const NOT_A_SEARCH_BATCH: &str = "the batched search is not Kibana's JSON \
     {\"batch\":[{\"request\":...,\"options\":{\"strategy\":...}},...]}";

/// What the front does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A page or the link's own data, fetched with GET/HEAD.
    Read,
    /// A static file, the same for every recipient (bundles, also under the build number, UI
    /// assets, translations, `node_modules`, the maps app's glyphs), fetched with GET/HEAD:
    /// passed as [`Verdict::Read`], and a shared cache may keep it as Kibana says. Every other
    /// answer is the link's own (its token's data, spaces and saved objects, and
    /// `bootstrap.js`, which carries the user's theme): the front keeps those private
    /// (`front::keep_private`, front23).
    Asset,
    /// An app page (framable by the same origin only: Kibana's embed mode).
    AppPage,
    /// A read-only POST (a search, a bulk read): passed with the CSRF checks.
    ReadPost,
    /// A batched search (`/internal/bsearch`): a read-only POST whose body names each search's
    /// strategy, passed only once [`check_search_batch`] passes its body.
    SearchBatch,
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
        ["ui", ..] | ["bundles", ..] | ["translations", ..] | ["node_modules", ..] if get => {
            Verdict::Asset
        }
        [build, "bundles", ..]
            if get && !build.is_empty() && build.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Verdict::Asset
        }
        // Kibana's bootstrap scripts: static in name, but carrying the user's theme.
        ["bootstrap.js"] | ["bootstrap-anonymous.js"] if get => Verdict::Read,
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
        // The maps app's own routes a map needs to draw (Kibana 8.15 `x-pack/plugins/maps/server`,
        // `routes.ts` and `mvt/mvt_routes.ts`): glyphs, files Kibana reads from its own disk
        // (no Elasticsearch); vector tiles, which Kibana asks Elasticsearch for as the current
        // user (`asCurrentUser`, `POST /<index>/_mvt/<field>/<z>/<x>/<y>`: the link credential,
        // so esgate's data listener judges them, and refuses `_mvt` to a `read` token, A29);
        // index settings, likewise as the current user (`GET /<index>/_settings`, refused as
        // index metadata: Kibana's maps app then warns and uses its defaults). The editor's
        // routes (`docSource`, `feature`, `getMatchingIndexes`, `checkIsDrawingIndex`) are not
        // here: they write, or serve only the editor (the viewer's maps app ignores their
        // failure).
        ["internal", "maps", "fonts", _, range] if get && is_glyph_range(range) => Verdict::Asset,
        ["internal", "maps", "mvt", "getTile" | "getGridTile", z, x, y]
            if get && is_tile(z, x, y) =>
        {
            Verdict::Read
        }
        ["internal", "maps", "indexSettings"] if get => Verdict::Read,
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
        ["internal", "search", ..] => Verdict::Refuse(DATA_SEARCHES_ONLY),
        // bfetch's batched search: each item names its strategy (front22b: passed with its body
        // unread, it took any plugin's strategy the URL form refuses).
        ["internal", "bsearch"] if post => Verdict::SearchBatch,
        // Read-only POSTs.
        ["api", "core", "capabilities"]
        | ["internal", "core", "capabilities"]
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

/// Whether `s` is a decimal number (ASCII digits, at least one).
fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A glyph range as maplibre asks for it (`0-255`): Kibana reads `<range>.pbf` of its fonts.
fn is_glyph_range(range: &str) -> bool {
    range
        .split_once('-')
        .is_some_and(|(from, to)| is_number(from) && is_number(to))
}

/// A tile's `{z}/{x}/{y}.pbf` (the last segment with its `.pbf`).
fn is_tile(z: &str, x: &str, y: &str) -> bool {
    is_number(z) && is_number(x) && y.strip_suffix(".pbf").is_some_and(is_number)
}

/// Whether a batched search's body (`/internal/bsearch`) may pass: the JSON Kibana's bfetch
/// sends, `{"batch":[{"request":...,"options":{"strategy":...}},...]}` (Kibana 8.15: bfetch's
/// `createStreamingBatchedFunction` posts `JSON.stringify({ batch })`, uncompressed: `compress`
/// only asks for a compressed answer), every item an object whose `options`, if present, is an
/// object whose `strategy`, if present, is a string on `DATA_STRATEGIES` (absent: Kibana's
/// default, `ese`). `Err` names why not.
///
/// Read as Kibana reads it (`JSON.parse`): keys and strings unescaped, so `"\u0073trategy"` is
/// `strategy`. Where `JSON.parse` keeps the last of a key given twice, the check refuses it
/// (`batch`, `options`, `strategy`): a check that read the first would pass what Kibana runs.
/// Nothing of the body is built (the requests are skipped, serde_json's `IgnoredAny`, without
/// recursion: a byte per nesting level at most). An empty batch (`{"batch":[]}`) passes,
/// harmless: Kibana's bfetch maps no item and ends its answer's stream at once, no search run
/// (front23; its client never sends one).
pub fn check_search_batch(body: &[u8]) -> Result<(), &'static str> {
    let why = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    match BatchSeed(&why).deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(()),
        Err(_) => Err(why.get().unwrap_or(NOT_A_SEARCH_BATCH)),
    }
}

/// The key a batch check looks for in an object (`Other`: any other key, skipped).
enum Key {
    Wanted,
    Other,
}

/// A key, compared with `name` once unescaped.
struct KeySeed(&'static str);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == self.0 { Key::Wanted } else { Key::Other })
    }
}

/// Reads an object, checking the value of its one key `key` (given twice: refused) with
/// `check`, skipping the others; `required`: the key must be there.
fn check_object<'de, A: MapAccess<'de>, S: DeserializeSeed<'de, Value = ()> + Copy>(
    mut map: A,
    key: &'static str,
    required: bool,
    check: S,
) -> Result<(), A::Error> {
    let mut seen = false;
    while let Some(k) = map.next_key_seed(KeySeed(key))? {
        match k {
            Key::Wanted if seen => return Err(de::Error::duplicate_field(key)),
            Key::Wanted => {
                seen = true;
                map.next_value_seed(check)?;
            }
            Key::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    if required && !seen {
        return Err(de::Error::missing_field(key));
    }
    Ok(())
}

/// The body: an object with a `batch` array.
#[derive(Clone, Copy)]
struct BatchSeed<'a>(&'a Cell<Option<&'static str>>);

/// The `batch` array: each item checked.
#[derive(Clone, Copy)]
struct ItemsSeed<'a>(&'a Cell<Option<&'static str>>);

/// One item: an object, its `options` checked when present.
#[derive(Clone, Copy)]
struct ItemSeed<'a>(&'a Cell<Option<&'static str>>);

/// An item's `options`: an object, its `strategy` checked when present.
#[derive(Clone, Copy)]
struct OptionsSeed<'a>(&'a Cell<Option<&'static str>>);

/// An item's `options.strategy`: a string on [`DATA_STRATEGIES`]; anything else says why in the
/// cell.
#[derive(Clone, Copy)]
struct StrategySeed<'a>(&'a Cell<Option<&'static str>>);

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        check_object(map, "batch", true, ItemsSeed(self.0))
    }
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of searches")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(ItemSeed(self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a search object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        check_object(map, "options", false, OptionsSeed(self.0))
    }
}

impl<'de> DeserializeSeed<'de> for OptionsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OptionsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a search's options object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        check_object(map, "strategy", false, StrategySeed(self.0))
    }
}

impl<'de> DeserializeSeed<'de> for StrategySeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let checked = d.deserialize_str(self);
        if checked.is_err() {
            self.0.set(Some(DATA_SEARCHES_ONLY));
        }
        checked
    }
}

impl Visitor<'_> for StrategySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a strategy's name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if DATA_STRATEGIES.contains(&v) {
            Ok(())
        } else {
            Err(E::custom("not a data search strategy"))
        }
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
            ("GET", "/84785/bundles/core/core.entry.js", Verdict::Asset),
            (
                "GET",
                "/XXXXXXXXXXXX/bundles/kbn-ui-shared-deps-npm/x.js",
                Verdict::Asset,
            ),
            ("GET", "/bundles/x.js", Verdict::Asset),
            ("GET", "/ui/favicons/favicon.svg", Verdict::Asset),
            ("GET", "/translations/en.json", Verdict::Asset),
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
            ("POST", "/internal/bsearch", Verdict::SearchBatch),
            ("POST", "/internal/search/ese", Verdict::ReadPost),
            ("POST", "/internal/search/ese/FmFzeW5j", Verdict::ReadPost),
            ("POST", "/internal/search/esql_async", Verdict::ReadPost),
            ("POST", "/s/acme/internal/search/es", Verdict::ReadPost),
            ("POST", "/s/acme/internal/bsearch", Verdict::SearchBatch),
            ("POST", "/api/saved_objects/_bulk_get", Verdict::ReadPost),
            (
                "POST",
                "/api/saved_objects/_bulk_resolve",
                Verdict::ReadPost,
            ),
            ("POST", "/api/content_management/rpc/get", Verdict::ReadPost),
            // The maps app: glyphs, vector tiles (as the current user), index settings.
            ("GET", "/app/maps/map/m1", Verdict::AppPage),
            (
                "GET",
                "/internal/maps/fonts/Open%20Sans%20Regular,Arial%20Unicode%20MS%20Regular/0-255",
                Verdict::Asset,
            ),
            ("GET", "/internal/maps/mvt/getTile/2/1/3.pbf", Verdict::Read),
            (
                "HEAD",
                "/internal/maps/mvt/getTile/0/0/0.pbf",
                Verdict::Read,
            ),
            (
                "GET",
                "/s/acme/internal/maps/mvt/getGridTile/12/2048/1361.pbf",
                Verdict::Read,
            ),
            ("GET", "/internal/maps/indexSettings", Verdict::Read),
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
            // The maps app's editor: writes, and reads only it makes (cat indices, mappings);
            // tiles and glyphs by another method or shape; the paths before 8.x's `internal`.
            ("POST", "/internal/maps/docSource"),
            ("POST", "/internal/maps/feature"),
            ("DELETE", "/internal/maps/feature/f1"),
            ("GET", "/internal/maps/getMatchingIndexes"),
            ("GET", "/internal/maps/checkIsDrawingIndex"),
            ("POST", "/internal/maps/mvt/getTile/0/0/0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0"),
            ("GET", "/internal/maps/mvt/getTile/0/0/x.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/-1/0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0.pbf/x"),
            ("GET", "/internal/maps/mvt/getTile"),
            ("GET", "/internal/maps/mvt/getOtherTile/0/0/0.pbf"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0-255.pbf"),
            ("GET", "/internal/maps/fonts/Open%20Sans/-255"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0-"),
            ("GET", "/internal/maps/fonts/Open%20Sans/x"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0-255/x"),
            ("GET", "/internal/maps/fonts/Open%20Sans/%2e%2e%2fsecret"),
            ("POST", "/internal/maps/indexSettings"),
            ("GET", "/api/maps/mvt/getTile/0/0/0.pbf"),
            ("GET", "/api/maps/indexSettings"),
            ("GET", "/s/other/internal/maps/mvt/getTile/0/0/0.pbf"),
            // attack23b: path tricks on the maps routes (Kibana's router, hapi, decodes
            // unreserved percent-escapes and resolves dot segments; the space prefix is the
            // first `/s/<id>` only): refused rather than read one way here and another there.
            ("GET", "/internal/maps/indexSettings/"),
            ("GET", "/internal/maps/indexSettings;x"),
            ("GET", "/internal/maps/indexSettings%3Bx"),
            ("GET", "/internal/maps/IndexSettings"),
            ("GET", "/internal/Maps/indexSettings"),
            ("GET", "/internal/maps/index%53ettings"),
            ("GET", "/internal/maps//indexSettings"),
            ("GET", "//internal/maps/indexSettings"),
            ("GET", "/internal/maps/./indexSettings"),
            ("GET", "/internal/maps/x/../indexSettings"),
            ("GET", "/internal/maps/x/%2e%2e/indexSettings"),
            ("GET", "/internal/maps%2findexSettings"),
            ("GET", "/ internal/maps/indexSettings"),
            ("GET", "/s/default/s/acme/internal/maps/indexSettings"),
            ("PUT", "/internal/maps/indexSettings"),
            ("DELETE", "/internal/maps/indexSettings"),
            ("OPTIONS", "/internal/maps/indexSettings"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0%2Epbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0.PBF"),
            ("GET", "/internal/maps/mvt/gettile/0/0/0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/+1/0/0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/1e3/0/0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/%30.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0.pbf;x"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0.pbf/"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0.pbf%00"),
            ("GET", "/internal/maps/mvt/getTile/0/0/../0.pbf"),
            ("GET", "/internal/maps/mvt/getTile/0/0/0/0.pbf"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0-255;x"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0-255/"),
            ("GET", "/internal/maps/fonts/Open%20Sans/0%2D255"),
            ("GET", "/internal/maps/fonts/%2E%2E/0-255"),
            ("GET", "/internal/maps/fonts/../0-255"),
            ("GET", "/internal/maps/fonts/./0-255"),
            ("GET", "/internal/maps/fonts//0-255"),
            ("GET", "/internal/maps/fonts/Open%20Sans/..%2F..%2F0-255"),
            ("GET", "/internal/maps/fonts/a\\b/0-255"),
        ];
        for (m, p) in refused {
            assert!(
                matches!(classify(m, p, &s), Verdict::Refuse(_)),
                "{m} {p} passed"
            );
        }
    }

    /// front22b: a batched search passes when each of its items is a data search (or names no
    /// strategy: Kibana's default, `ese`); a plugin's strategy, a body Kibana would read
    /// otherwise than the check does, and anything not bfetch's JSON are refused.
    #[test]
    fn batched_searches_pass_only_with_data_strategies() {
        let passed = [
            r#"{"batch":[]}"#,
            r#"{"batch":[{"request":{"params":{"index":"logs-*"}},"options":{"strategy":"ese","sessionId":"s1","isStored":false,"executionContext":{"type":"application"}}}]}"#,
            r#"{"batch":[{"request":{}},{"request":{},"options":{}},{"options":{"strategy":"esql_async"}},{"options":{"strategy":"es"}},{"options":{"strategy":"eql"}},{"options":{"strategy":"sql"}},{"options":{"strategy":"esql"}}]}"#,
            // Escaped as JSON allows: what Kibana reads once unescaped.
            r#"{"b\u0061tch":[{"options":{"\u0073trategy":"\u0065se"}}]}"#,
            " {\"batch\" : [ {\"options\":{\"strategy\":\"ese\"}} ] , \"x\": [1, {\"strategy\": \"osquerySearchStrategy\"}] }\n",
            // Another key named strategy, not the item's options': not what Kibana reads.
            r#"{"batch":[{"request":{"strategy":"osquerySearchStrategy"},"options":{"strategy":"ese"}}]}"#,
        ];
        for body in passed {
            assert_eq!(check_search_batch(body.as_bytes()), Ok(()), "{body}");
        }
        // A request nested deeper than any parser's recursion is skipped without recursion:
        // no stack overflow (Kibana's to refuse).
        let deep = format!(
            "{{\"batch\":[{{\"request\":{}{}}}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(check_search_batch(deep.as_bytes()), Ok(()));
        let strategies = [
            r#"{"batch":[{"request":{},"options":{"strategy":"osquerySearchStrategy"}}]}"#,
            r#"{"batch":[{"options":{"strategy":"ese"}},{"options":{"strategy":"privateRuleRegistryAlertsSearchStrategy"}}]}"#,
            r#"{"batch":[{"options":{"strategy":"Ese"}}]}"#,
            r#"{"batch":[{"options":{"strategy":""}}]}"#,
            r#"{"batch":[{"options":{"strategy":"\u006fsquerySearchStrategy"}}]}"#,
            r#"{"batch":[{"options":{"strategy":null}}]}"#,
            r#"{"batch":[{"options":{"strategy":["ese"]}}]}"#,
            r#"{"batch":[{"options":{"strategy":1}}]}"#,
        ];
        for body in strategies {
            assert_eq!(
                check_search_batch(body.as_bytes()),
                Err(DATA_SEARCHES_ONLY),
                "{body}"
            );
        }
        let malformed = [
            "",
            "null",
            "[]",
            r#"[{"options":{"strategy":"ese"}}]"#,
            r#"{}"#,
            r#"{"batch":{}}"#,
            r#"{"batch":null}"#,
            r#"{"batch":[1]}"#,
            r#"{"batch":[null]}"#,
            r#"{"batch":[[]]}"#,
            r#"{"batch":[{"options":null}]}"#,
            r#"{"batch":[{"options":"ese"}]}"#,
            r#"{"batch":[{"options":[]}]}"#,
            // Given twice, JSON.parse keeps the last.
            r#"{"batch":[],"batch":[{"options":{"strategy":"osquerySearchStrategy"}}]}"#,
            r#"{"batch":[{"options":{"strategy":"ese"},"options":{"strategy":"osquerySearchStrategy"}}]}"#,
            r#"{"batch":[]}{"batch":[]}"#,
            r#"{"batch":[]} x"#,
            r#"{"batch":[],}"#,
            r#"{"batch":[{"options":{"strategy":"ese"}}"#,
            "\u{feff}{\"batch\":[]}",
            r#"batch=[]"#,
        ];
        for body in malformed {
            assert_eq!(
                check_search_batch(body.as_bytes()),
                Err(NOT_A_SEARCH_BATCH),
                "{}",
                &body[..body.len().min(80)]
            );
        }
        // Given twice inside options: refused as a strategy (whichever Kibana would take).
        assert!(check_search_batch(
            br#"{"batch":[{"options":{"strategy":"ese","strategy":"osquerySearchStrategy"}}]}"#
        )
        .is_err());
        assert!(
            check_search_batch(b"{\"batch\":[{\"options\":{\"strategy\":\"\xff\"}}]}").is_err()
        );
    }

    /// front23: only Kibana's static files (and the maps app's glyphs) are the same for every
    /// recipient; tiles, searches, saved objects, pages are the link's own.
    #[test]
    fn only_static_files_are_shared_assets() {
        let s = spaces();
        let asset = |path: &str| classify("GET", path, &s) == Verdict::Asset;
        for path in [
            "/bundles/x.js",
            "/84785/bundles/core/core.entry.js",
            "/ui/favicons/favicon.svg",
            "/translations/en.json",
            "/node_modules/@kbn/ui-framework/dist/kui_light.css",
            "/internal/maps/fonts/Open%20Sans%20Regular/0-255",
            "/s/acme/internal/maps/fonts/Open%20Sans%20Regular/256-511",
        ] {
            assert!(asset(path), "{path}");
        }
        for path in [
            "/internal/maps/mvt/getTile/2/1/3.pbf",
            "/internal/maps/mvt/getGridTile/2/1/3.pbf",
            "/internal/maps/indexSettings",
            "/internal/maps/fonts/Open%20Sans%20Regular/x",
            "/internal/bsearch",
            "/api/status",
            "/app/maps/map/m1",
            "/bootstrap.js",
            "/x-y/bundles/x.js",
            "/",
        ] {
            assert!(!asset(path), "{path}");
        }
    }

    #[test]
    fn space_prefixes_split() {
        assert_eq!(split_space("/s/acme/app/x"), (Some("acme"), "/app/x"));
        assert_eq!(split_space("/s/acme"), (Some("acme"), "/"));
        assert_eq!(split_space("/app/x"), (None, "/app/x"));
    }
}

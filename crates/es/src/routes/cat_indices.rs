//! `_cat/indices` answered with the token's indices only and, for a filtered token, without the
//! columns that count or size other tenants' documents (security.md A12).
//!
//! The index expression is narrowed like `_search` (default: the token's patterns; a wildcard
//! reaches only allowed, non-hidden indices), so the backend is only ever asked about indices
//! the token may read. The backend is always asked for `format=json` with an explicit column
//! list (`h`) of known columns, and esgate renders the answer itself (JSON or the text table,
//! with `v`, `h`, `s` and `bytes`).
//!
//! Counting columns (`docs.count`, `docs.deleted`, `store.size`, `pri.store.size`,
//! `dataset.size`) are *removed* for a token with filters rather than replaced by filtered
//! counts: a filtered `docs.count` would need one more search per request (the transform is a
//! pure function of one backend answer), `docs.deleted` and the sizes have no filtered
//! equivalent at all, and the clients that list indices (Grafana) only read the names. Asking
//! for one of them explicitly (`h`, `s`) is refused with a reason; a token without filters sees
//! every document of its indices and gets them. Columns esgate does not know (the many
//! statistics columns: search, indexing, merges, memory...) are refused for every token.
//!
//! Invariant: a rendered row holds only the columns chosen in [`plan`] for this token, and the
//! rows are only those the backend returned for the narrowed expression.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{Request, Spec, Transform, Upstream};
use crate::error::printable;
use crate::request::params::{Kind, Param, ParamSet};
use crate::{Method, Rejection};

/// Rendering parameters, interpreted by [`plan`].
const PARAMS: &[(&str, Kind)] = &[
    ("format", Kind::Text),
    ("h", Kind::Text),
    ("s", Kind::Text),
    ("v", Kind::Bool),
    ("bytes", Kind::Text),
    ("local", Kind::Bool),
    ("master_timeout", Kind::Time),
];

pub(crate) const CAT_INDICES: Spec = Spec {
    action: "cat_indices",
    params: ParamSet::own(PARAMS),
    index: true,
    body: false,
    dialect: None,
    prepare,
};

/// Forwarded with the backend parameters of [`plan`], its answer rendered by [`render`].
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Get, req.index()?, "/_cat/indices/", "");
    let (forward, table) = plan(&req.params, !req.scope.filters.is_empty())?;
    req.params = forward;
    let mut up = up;
    up.transform = Some(Transform::CatIndices(table));
    Ok(up)
}

/// A known column: its canonical name, its aliases, whether it reveals document counts or
/// sizes, and whether it is right-aligned in the text table.
struct Column {
    name: &'static str,
    aliases: &'static [&'static str],
    counts: bool,
    numeric: bool,
}

const COLUMNS: &[Column] = &[
    col("health", &["h"], false, false),
    col("status", &["s"], false, false),
    col("index", &["i", "idx"], false, false),
    col("uuid", &["id"], false, false),
    col(
        "pri",
        &["p", "shards.primary", "shardsPrimary"],
        false,
        true,
    ),
    col(
        "rep",
        &["r", "shards.replica", "shardsReplica"],
        false,
        true,
    ),
    col("docs.count", &["dc", "docsCount"], true, true),
    col("docs.deleted", &["dd", "docsDeleted"], true, true),
    col("creation.date", &["cd"], false, true),
    col("creation.date.string", &["cds"], false, false),
    col("store.size", &["ss", "storeSize"], true, true),
    col("pri.store.size", &[], true, true),
    col("dataset.size", &[], true, true),
];

const fn col(
    name: &'static str,
    aliases: &'static [&'static str],
    counts: bool,
    numeric: bool,
) -> Column {
    Column {
        name,
        aliases,
        counts,
        numeric,
    }
}

/// Elasticsearch's default columns, in its order.
const DEFAULT: &[&str] = &[
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
    "dataset.size",
];

const BYTES: &[&str] = &["b", "k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// How to render the backend's rows for this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Columns to show, in order: the canonical name (the backend's key) and the name shown,
    /// the one `h` asked for (Elasticsearch's `DisplayHeader`: `h=i` answers `{"i": ...}`).
    columns: Vec<(&'static str, &'static str)>,
    /// Whether `h` was given (then every listed column is shown even when the backend lacks it).
    explicit: bool,
    /// Sort keys: column and descending.
    sort: Vec<(&'static str, bool)>,
    format: Format,
    header: bool,
}

impl Table {
    pub fn format(&self) -> Format {
        self.format
    }
}

/// Checks the client's parameters (already allow-listed by `params`) for a token with or
/// without filters; returns the parameters to forward and the rendering plan.
pub fn plan(params: &[Param], filtered: bool) -> Result<(Vec<Param>, Table), Rejection> {
    let mut columns: Option<Vec<(&'static str, &'static str)>> = None;
    let mut sort = Vec::new();
    let mut format = Format::Text;
    let mut header = false;
    let mut bytes = None;
    for (k, v) in params {
        match &**k {
            "h" => {
                let mut list = Vec::new();
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let c = column(name, filtered)?;
                    // The same name twice is shown once (a JSON row has one key of a name).
                    if !list.iter().any(|(_, shown)| *shown == c.1) {
                        list.push(c);
                    }
                }
                columns = Some(list);
            }
            "s" => {
                for key in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (name, desc) = match key.rsplit_once(':') {
                        Some((n, "asc")) => (n, false),
                        Some((n, "desc")) => (n, true),
                        Some(_) => {
                            return Err(Rejection::bad_request(
                                "a sort key of [s] must end in :asc or :desc",
                            ))
                        }
                        None => (key, false),
                    };
                    sort.push((column(name, filtered)?.0, desc));
                }
            }
            "format" => {
                format = match &**v {
                    "json" => Format::Json,
                    "txt" | "text" => Format::Text,
                    _ => {
                        return Err(Rejection::bad_request(
                            "_cat/indices answers format=json or format=txt only",
                        ))
                    }
                }
            }
            "v" => header = v != "false",
            "bytes" if BYTES.contains(&&**v) => bytes = Some(v.clone()),
            "bytes" => {
                return Err(Rejection::bad_request(
                    "query parameter [bytes] has a value that is not allowed",
                ))
            }
            // Rendering is esgate's: these change nothing it forwards.
            "pretty" | "human" | "local" | "master_timeout" => {}
            other => {
                return Err(Rejection::forbidden(format!(
                    "query parameter [{}] is not allowed for this request",
                    printable(other)
                )))
            }
        }
    }
    let explicit = columns.is_some();
    let columns = columns.unwrap_or_else(|| {
        DEFAULT
            .iter()
            .copied()
            .filter(|name| !(filtered && counts(name)))
            .map(|name| (name, name))
            .collect()
    });
    let mut wanted: Vec<&'static str> = Vec::new();
    for (c, _) in &columns {
        if !wanted.contains(c) {
            wanted.push(c);
        }
    }
    for (c, _) in &sort {
        if !wanted.contains(c) {
            wanted.push(c);
        }
    }
    let mut forward: Vec<Param> = vec![
        ("format".into(), "json".into()),
        ("h".into(), wanted.join(",").into()),
    ];
    if let Some(b) = bytes {
        forward.push(("bytes".into(), b));
    }
    Ok((
        forward,
        Table {
            columns,
            explicit,
            sort,
            format,
            header,
        },
    ))
}

/// Renders the backend's JSON rows. `None` when the answer is not a list of objects.
pub fn render(table: &Table, rows: &Value) -> Option<Vec<u8>> {
    let rows = rows.as_array()?;
    let mut rows: Vec<&Map<String, Value>> =
        rows.iter().map(Value::as_object).collect::<Option<_>>()?;
    if !table.sort.is_empty() {
        rows.sort_by(|a, b| {
            table
                .sort
                .iter()
                .map(|(c, desc)| {
                    let o = compare(a.get(*c), b.get(*c));
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
    }
    // Without `h`, a default column the backend does not have (e.g. `dataset.size` on
    // OpenSearch) is left out, as the backend itself would.
    let columns: Vec<(&'static str, &'static str)> = table
        .columns
        .iter()
        .copied()
        .filter(|(c, _)| {
            table.explicit || rows.is_empty() || rows.iter().any(|r| r.contains_key(*c))
        })
        .collect();
    let cell = |row: &Map<String, Value>, c: &str| -> Value {
        match row.get(c) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Null) | None => Value::Null,
            Some(other) => Value::String(other.to_string()),
        }
    };
    match table.format {
        Format::Json => {
            let out: Vec<Value> = rows
                .iter()
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .map(|(c, shown)| (shown.to_string(), cell(r, c)))
                            .collect(),
                    )
                })
                .collect();
            serde_json::to_vec(&out).ok()
        }
        Format::Text => {
            let mut lines: Vec<Vec<String>> = Vec::new();
            if table.header {
                lines.push(columns.iter().map(|(_, shown)| shown.to_string()).collect());
            }
            for r in &rows {
                lines.push(
                    columns
                        .iter()
                        .map(|(c, _)| match cell(r, c) {
                            Value::String(s) => s,
                            _ => String::new(),
                        })
                        .collect(),
                );
            }
            let widths: Vec<usize> = (0..columns.len())
                .map(|i| {
                    lines
                        .iter()
                        .map(|l| l[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut out = String::new();
            for line in &lines {
                let cells: Vec<String> = line
                    .iter()
                    .zip(&columns)
                    .zip(&widths)
                    .map(|((v, (c, _)), w)| {
                        if is_numeric(c) {
                            format!("{v:>w$}")
                        } else {
                            format!("{v:<w$}")
                        }
                    })
                    .collect();
                out.push_str(cells.join(" ").trim_end());
                out.push('\n');
            }
            Some(out.into_bytes())
        }
    }
}

/// The canonical column for a name or alias, and that name or alias as the table shows it, if
/// this token may see it.
fn column(name: &str, filtered: bool) -> Result<(&'static str, &'static str), Rejection> {
    let found = COLUMNS.iter().find_map(|c| {
        if c.name == name {
            return Some((c, c.name));
        }
        c.aliases.iter().find(|a| **a == name).map(|a| (c, *a))
    });
    let Some((c, shown)) = found else {
        return Err(Rejection::forbidden(format!(
            "_cat/indices column [{}] is not available through esgate",
            printable(name)
        )));
    };
    if filtered && c.counts {
        return Err(Rejection::forbidden(format!(
            "_cat/indices column [{}] counts documents outside this token's filters and is not available",
            c.name
        )));
    }
    Ok((c.name, shown))
}

fn counts(name: &str) -> bool {
    COLUMNS.iter().any(|c| c.name == name && c.counts)
}

fn is_numeric(name: &str) -> bool {
    COLUMNS.iter().any(|c| c.name == name && c.numeric)
}

/// Orders two cells: as numbers or byte sizes when both are, else as text; missing last.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match (text(a), text(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => match (size_of(&x), size_of(&y)) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => x.cmp(&y),
        },
    }
}

/// A number, or a byte size such as `304b`, `1.2kb`, `3gb`, in bytes.
fn size_of(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1024.0f64.powi(4),
        "pb" | "p" => 1024.0f64.powi(5),
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::pairs as p;

    fn rows() -> Value {
        json!([
            {"health": "yellow", "status": "open", "index": "logs-b", "uuid": "u2", "pri": "1",
             "rep": "1", "docs.count": "10", "docs.deleted": "0", "store.size": "1kb",
             "pri.store.size": "1kb"},
            {"health": "green", "status": "open", "index": "logs-a", "uuid": "u1", "pri": "2",
             "rep": "0", "docs.count": "9", "docs.deleted": "1", "store.size": "900b",
             "pri.store.size": "900b"},
        ])
    }

    fn json_of(bytes: Vec<u8>) -> Value {
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn filtered_token_defaults_leave_out_every_counting_column() {
        let (forward, table) = plan(&p(&[("format", "json")]), true).unwrap();
        assert_eq!(
            forward,
            p(&[
                ("format", "json"),
                ("h", "health,status,index,uuid,pri,rep")
            ])
        );
        let out = json_of(render(&table, &rows()).unwrap());
        assert_eq!(
            out,
            json!([
                {"health": "yellow", "status": "open", "index": "logs-b", "uuid": "u2", "pri": "1", "rep": "1"},
                {"health": "green", "status": "open", "index": "logs-a", "uuid": "u1", "pri": "2", "rep": "0"},
            ])
        );
    }

    #[test]
    fn unfiltered_token_gets_the_counts_and_absent_default_columns_are_dropped() {
        let (forward, table) = plan(&p(&[("format", "json"), ("bytes", "b")]), false).unwrap();
        assert_eq!(forward[1].1, DEFAULT.join(","));
        assert_eq!(forward[2..], p(&[("bytes", "b")]));
        let out = json_of(render(&table, &rows()).unwrap());
        assert_eq!(out[1]["docs.count"], json!("9"));
        assert!(out[0].get("dataset.size").is_none(), "{out}");
    }

    #[test]
    fn counting_and_unknown_columns_are_refused_when_asked_for() {
        for (params, filtered) in [
            (p(&[("h", "index,docs.count")]), true),
            (p(&[("h", "dc")]), true),
            (p(&[("s", "store.size:desc")]), true),
            (p(&[("h", "index,search.query_total")]), false),
            (p(&[("h", "docs.*")]), false),
            (p(&[("help", "")]), false),
            (p(&[("format", "yaml")]), false),
            (p(&[("bytes", "zb")]), false),
            (p(&[("s", "index:up")]), false),
        ] {
            assert!(plan(&params, filtered).is_err(), "{params:?} {filtered}");
        }
    }

    #[test]
    fn columns_by_alias_sort_and_text_table() {
        let (forward, table) =
            plan(&p(&[("h", "i,h,p"), ("s", "pri:desc"), ("v", "")]), true).unwrap();
        assert_eq!(forward[1].1, "index,health,pri");
        assert_eq!(table.format(), Format::Text);
        let text = String::from_utf8(render(&table, &rows()).unwrap()).unwrap();
        assert_eq!(text, "i      h      p\nlogs-a green  2\nlogs-b yellow 1\n");
    }

    /// A column is shown under the name `h` gave it, alias or not, once per name; the backend
    /// is asked for each canonical column once (Elasticsearch's display header).
    #[test]
    fn columns_are_shown_under_the_names_asked_for() {
        let (forward, table) = plan(
            &p(&[("h", "idx,index,s,s"), ("s", "i:desc"), ("format", "json")]),
            true,
        )
        .unwrap();
        assert_eq!(forward[1].1, "index,status");
        let out = json_of(render(&table, &rows()).unwrap());
        assert_eq!(
            out,
            json!([
                {"idx": "logs-b", "index": "logs-b", "s": "open"},
                {"idx": "logs-a", "index": "logs-a", "s": "open"},
            ])
        );
    }

    #[test]
    fn sort_keys_not_shown_are_fetched_and_sizes_sort_by_bytes() {
        let (forward, table) = plan(
            &p(&[("h", "index"), ("s", "ss"), ("format", "json")]),
            false,
        )
        .unwrap();
        assert_eq!(forward[1].1, "index,store.size");
        let out = json_of(render(&table, &rows()).unwrap());
        assert_eq!(out, json!([{"index": "logs-a"}, {"index": "logs-b"}]));
    }

    #[test]
    fn render_refuses_what_is_not_a_list_of_rows() {
        let (_, table) = plan(&[], true).unwrap();
        assert_eq!(render(&table, &json!({"error": {}})), None);
        assert_eq!(render(&table, &json!([1])), None);
        assert_eq!(render(&table, &json!([])), Some(Vec::new()));
    }
}

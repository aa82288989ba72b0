//! What the cluster and its indices are, never what they hold: `GET|HEAD /` (name and
//! version), `[/{index}]/_mapping` and `_resolve/index/{name}`. Each is forwarded as a
//! bodiless GET on a checked path.
//!
//! Invariant: the path's expression is narrowed to the token's indices like a search's
//! (`authorize`), so a mapping or a resolved name is only ever one of an allowed index.

use super::{Request, Spec, Upstream};
use crate::request::params::{Kind, ParamSet};
use crate::{Method, Rejection};

const MAPPING_PARAMS: &[(&str, Kind)] = &[("local", Kind::Bool), ("master_timeout", Kind::Time)];

pub(crate) const ROOT: Spec = Spec {
    action: "root",
    params: ParamSet::NONE,
    index: false,
    body: false,
    dialect: None,
    prepare: root,
};

pub(crate) const MAPPING: Spec = Spec {
    action: "mapping",
    params: ParamSet::own(MAPPING_PARAMS).indices_options(),
    index: true,
    body: false,
    dialect: None,
    prepare: mapping,
};

pub(crate) const RESOLVE_INDEX: Spec = Spec {
    action: "resolve_index",
    params: ParamSet::NONE.indices_options(),
    index: true,
    body: false,
    dialect: None,
    prepare: resolve_index,
};

/// `GET|HEAD /`, in the client's method.
fn root(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    Ok(Upstream::fixed(req.method, "/"))
}

fn mapping(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    Ok(Upstream::at_path(
        Method::Get,
        req.index()?,
        "/",
        "/_mapping",
    ))
}

/// elasticsearch-py 9 sends a POST; it is forwarded as a GET.
fn resolve_index(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    Ok(Upstream::at_path(
        Method::Get,
        req.index()?,
        "/_resolve/index/",
        "",
    ))
}

//! What a client sent, read strictly: the route (`endpoint`), its query-string parameters (`params`),
//! the body (`body`: content type, encoding, strict JSON; `tree`: the same strict JSON as a
//! borrowed tree, issue 10) and its media types (`media`), and the
//! backend REST dialect some routes depend on (`dialect`).

pub mod body;
pub mod dialect;
pub mod endpoint;
pub mod media;
pub mod params;
pub mod tree;

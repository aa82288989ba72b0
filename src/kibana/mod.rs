//! Share links' Kibana half (issue #16): link paths ([`path`]), sessions and link
//! credentials ([`session`]), what a viewer may ask Kibana ([`routes`]) and the front itself
//! ([`front`]): a reverse proxy in front of Kibana for link recipients.
pub mod front;
pub mod path;
pub mod routes;
pub mod session;

use crate::es::ids::continuation::IdKey;

/// The key session cookies are sealed with.
pub fn cookie_key(id_key: &IdKey) -> session::SealKey {
    session::SealKey::new(id_key.derive("kibana link session cookie"))
}

/// The key link credentials are sealed with.
pub fn credential_key(id_key: &IdKey) -> session::SealKey {
    session::SealKey::new(id_key.derive("kibana link credential"))
}

//! Share links' Kibana half (issue #16): link paths ([`path`]), sessions and link
//! credentials ([`session`]), what a viewer may ask Kibana ([`routes`]) and the front itself
//! ([`front`]): a reverse proxy in front of Kibana for link recipients.
pub mod front;
pub mod path;
pub mod routes;
pub mod session;

use crate::es::ids::continuation::IdKey;

/// How many characters of a link id name it where the id itself must not go: `lnk_` and 12
/// hex digits (48 of its 128 bits), enough to find it in `esgate link list`, while the 80 bits
/// left keep a reader from opening it.
const LINK_REF_LEN: usize = 16;

/// A link's reference: what the audit log names a link by. The id is the whole credential of
/// the link's URL (attack 19a: the audit log held live link ids, which open their dashboard).
pub fn link_ref(id: &str) -> &str {
    let mut end = LINK_REF_LEN.min(id.len());
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

/// The key session cookies are sealed with.
pub fn cookie_key(id_key: &IdKey) -> session::SealKey {
    session::SealKey::new(id_key.derive("kibana link session cookie"))
}

/// The key link credentials are sealed with.
pub fn credential_key(id_key: &IdKey) -> session::SealKey {
    session::SealKey::new(id_key.derive("kibana link credential"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_ref_is_the_ids_first_16_characters() {
        let id = format!("lnk_{}", "0a".repeat(16));
        assert_eq!(super::link_ref(&id), "lnk_0a0a0a0a0a0a");
        assert_eq!(super::link_ref("lnk_9"), "lnk_9");
        assert_eq!(super::link_ref("lnk_aéééééééé"), "lnk_aééééé");
    }
}

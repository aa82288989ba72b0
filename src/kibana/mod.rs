//! Share links' Kibana half (issue #16): link paths ([`path`]), sessions and link
//! credentials ([`session`]), what a viewer may ask Kibana ([`routes`]) and the front itself
//! ([`front`]): a reverse proxy in front of Kibana for link recipients.
pub mod front;
pub mod path;
pub mod routes;
pub mod session;

use crate::es::ids::continuation::IdKey;

/// A link id is this prefix and [`LINK_ID_HEX`] hex digits (`admin::links::new_link_id`).
pub const LINK_ID_PREFIX: &str = "lnk_";
/// The hex digits of a link id: its 128 bits.
pub const LINK_ID_HEX: usize = 32;

/// The hex digits of `id` if it has a link id's form (the prefix and [`LINK_ID_HEX`] hex digits,
/// either case).
pub fn link_id_hex(id: &str) -> Option<&str> {
    let hex = id.strip_prefix(LINK_ID_PREFIX)?;
    (hex.len() == LINK_ID_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

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

/// `path` with every link id in it (`lnk_` and 32 hex digits) cut to its reference: what the
/// front writes to the audit log for a request's path, whatever the path (a link URL mangled on
/// its way, `/s/<id>.` or `/s/<id>/`, is no link path but still holds the id).
pub fn redact_link_ids(path: &str) -> std::borrow::Cow<'_, str> {
    let hex_kept = LINK_REF_LEN - LINK_ID_PREFIX.len();
    let bytes = path.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = path[from..].find(LINK_ID_PREFIX) {
        let start = from + found + LINK_ID_PREFIX.len();
        let hex = bytes[start..]
            .iter()
            .take(LINK_ID_HEX)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex == LINK_ID_HEX {
            let o = out.get_or_insert_with(|| String::with_capacity(path.len()));
            o.push_str(&path[copied..start + hex_kept]);
            copied = start + LINK_ID_HEX;
        }
        from = start + hex;
    }
    match out {
        None => std::borrow::Cow::Borrowed(path),
        Some(mut o) => {
            o.push_str(&path[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_ids_in_a_path_are_cut_to_their_reference() {
        let id = format!("lnk_{}", "0a".repeat(16));
        let cases = [
            (format!("/s/{id}"), "/s/lnk_0a0a0a0a0a0a".to_owned()),
            (format!("/s/{id}."), "/s/lnk_0a0a0a0a0a0a.".to_owned()),
            (
                format!("/s/x/{id}/{id}Z"),
                "/s/x/lnk_0a0a0a0a0a0a/lnk_0a0a0a0a0a0aZ".to_owned(),
            ),
            (format!("/{}", &id[..30]), format!("/{}", &id[..30])),
            ("/app/dashboards".to_owned(), "/app/dashboards".to_owned()),
            ("/lnk_lnk_é".to_owned(), "/lnk_lnk_é".to_owned()),
        ];
        for (path, want) in cases {
            assert_eq!(super::redact_link_ids(&path), want, "{path}");
        }
    }

    #[test]
    fn a_link_ref_is_the_ids_first_16_characters() {
        let id = format!("lnk_{}", "0a".repeat(16));
        assert_eq!(super::link_ref(&id), "lnk_0a0a0a0a0a0a");
        assert_eq!(super::link_ref("lnk_9"), "lnk_9");
        assert_eq!(super::link_ref("lnk_aéééééééé"), "lnk_aééééé");
    }
}

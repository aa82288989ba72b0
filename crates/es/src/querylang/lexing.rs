//! Lexing pieces shared by the ES|QL and SQL readers (`esql.rs`, `sql.rs`): comments and
//! doubled-quote tokens. Each returns the index just after what it read.
//!
//! Invariant: conservative. Where Elasticsearch's grammar and a flat reading could end a token
//! in different places (a `/*` inside a block comment: ES nests them), the text is refused, so
//! every accepted query is read the same way by esgate and by Elasticsearch.

/// Deepest bracket nesting accepted in query text (the parsers behind are recursive; see
/// CVE-2023-31419 for what deep nesting did to one of them).
pub(crate) const MAX_DEPTH: usize = 32;

/// Why a token could not be read; each language turns it into its own refusal.
pub(crate) type Refused = &'static str;

/// The end of a line comment whose two-byte opener (`//` or `--`) starts at `i`: the first
/// line break, `\r` included (as in both grammars).
pub(crate) fn line_comment_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 2;
    while j < b.len() && !matches!(b[j], b'\n' | b'\r') {
        j += 1;
    }
    j
}

/// The end of the `/* */` comment starting at `i`. A nested `/*` is refused.
pub(crate) fn block_comment_end(b: &[u8], i: usize) -> Result<usize, Refused> {
    let mut j = i + 2;
    while j + 1 < b.len() {
        if b[j] == b'*' && b[j + 1] == b'/' {
            return Ok(j + 2);
        }
        if b[j] == b'/' && b[j + 1] == b'*' {
            return Err("nested comments are not allowed");
        }
        j += 1;
    }
    Err("unterminated comment")
}

/// The end of a token quoted by `q` starting at `i`, where a doubled `q` is an escaped quote.
pub(crate) fn doubled_quote_end(b: &[u8], i: usize, q: u8) -> Result<usize, Refused> {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Ok(j + 1);
        }
        j += 1;
    }
    Err("unterminated string or quoted identifier")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_end_where_both_grammars_end_them() {
        assert_eq!(line_comment_end(b"// a\rFROM", 0), 4);
        assert_eq!(line_comment_end(b"x -- a\nb", 2), 6);
        assert_eq!(line_comment_end(b"-- to the end", 0), 13);
        assert_eq!(block_comment_end(b"/* a */b", 0).unwrap(), 7);
        assert!(block_comment_end(b"/* a /* b */ c */", 0).is_err());
        assert!(block_comment_end(b"/* a", 0).is_err());
    }

    #[test]
    fn doubled_quotes_escape_and_a_missing_end_is_refused() {
        assert_eq!(doubled_quote_end(b"`a``b` x", 0, b'`').unwrap(), 6);
        assert_eq!(doubled_quote_end(b"'it''s'", 0, b'\'').unwrap(), 7);
        assert!(doubled_quote_end(b"\"open", 0, b'"').is_err());
    }
}

//! A borrowed strict JSON tree for request bodies (issue 10, goal 6): the same strictness as
//! [`body::parse_strict`](super::body::parse_strict) without serde_json's owned tree.
//!
//! [`parse`] writes a body as a tape: one small `Copy` token per value and per key, in body
//! order, in the parse's [`Arena`]. A container's token holds the index past its last item
//! (its items are skipped in one step), its number of items and its source text's place; a
//! compact array of plain strings (a `terms` list) is a single token, its text and count
//! (`Tok::Strings`), its items read from its text when asked for (session 17: 24 bytes and
//! a push an item saved; the goal 6 `terms` loop 1,025,686 -> 871,656 instructions); strings
//! borrow the body when they hold no escape and the arena when they do; numbers are
//! kept as their source text (checked against JSON's grammar and serde_json's range). The
//! parsed tree is read in place through [`Parsed`]: by the checks (the `J` view of
//! `dsl::json`), by [`write()`], and by [`Node::open`] for the few containers a request's
//! rewrite changes (a search body's top level).
//!
//! Why a tape (issue 10, measured in instructions and cycles): parsing into serde_json's
//! `preserve_order` tree cost a `String` and a SipHash insert per key and two allocations per
//! object, about 55% of a 2 KB search's request path. The owned [`Node`] tree that replaced it
//! moved every value (48 to 72 bytes) from the callee that parsed it to its parent's stack and
//! then to the arena: about 49k instructions for a 2 KB Kibana search, with store-forwarding
//! stalls on those moves taking about half the parser's cycles. A token is written once, where
//! it stays: the same parse is 31k instructions, and the 2 KB search's whole request path went
//! from 8.9 to 6.7 microseconds (`examples/request_path_loop`, one core).
//!
//! A compact body's common shapes are read with the parser's place in a register rather than
//! stored and reloaded per byte class: a plain key and its colon in one look, a string or
//! object right after a colon without the value dispatch, and an array's run of
//! comma-separated strings (a `terms` list) in one loop. The string scan tells a quote from
//! the other special bytes from the mask it already holds. An object's first sixteen keys are
//! compared as they come; a larger one's are all looked at once when it closes. (Session 10:
//! the 2 KB parse 31.4k -> 29.5k instructions, the 200 KB `terms` body's 1.86M -> 1.62M.)
//! A key is compared only with the earlier keys when its bit of 64 (from its length and first
//! and last bytes) is among theirs, and a brace or bracket followed by a quote (or a bracket
//! by a brace) skips no whitespace (session 24: the 2 KB parse and write 27.4k -> 26.0k).
//!
//! Session 29 (the 2 KB parse and write 26.0k -> 22.5k): an object's first entry is read before
//! any key-stack state is set up (`Parser::more_entries` takes the second key on); the hot
//! tokens are made on the tape, not on the stack and copied (`Parser::push_with`); a key's
//! and a string's end is told by its byte, so `str::get`'s boundary check needs no second
//! look, and strings are sliced by two one-ended `str::get`s (`text_at`), which LLVM keeps
//! inline where the two-ended one became a call; the bytes are read through `text` (one
//! field); words are read with `first_chunk`, not `copy_from_slice` (a call); an escaped
//! string's path is cold; the flag keys are told by one bit test of their length. Most of
//! these are about LLVM's inlining: each function of the parser inlines a dozen small ones,
//! and a change that grows it can turn `str::get` or bumpalo's `push` into calls (1k to 5k
//! instructions more): measure every change (BENCHMARKS.md, session 29).
//!
//! The string scan reads sixteen bytes at a time with SSE2 on x86_64 (its baseline, through
//! `safe_arch`: this crate has no `unsafe`), eight at a time in a word elsewhere and for texts
//! shorter than sixteen bytes. (Session 11: the 2 KB parse 29.5k -> 26.5k instructions, the
//! 200 KB `terms` body's 1.62M -> 1.32M.)
//!
//! A container whose source holds no string escape keeps its source text and is written by
//! copying it; dashboard bodies mostly pass through unchanged. Its text is what [`write()`]
//! writes for it but for JSON whitespace between tokens: a compact body's is byte for byte
//! the writer's, a spaced or pretty-printed one's (Python's `json.dumps`, `", "` and `": "`;
//! `requests.post(json=...)`, hand-written curl bodies) is sent as the client spaced it
//! (session 29: such a 2 KB search was written item by item, 49.8k instructions of writing
//! where the compact one's copy took 4.7k). Whitespace is safe to send: it is the four bytes
//! (space, tab, LF, CR) that the strict parse and the backends' parser (Jackson) both skip
//! between tokens and never read inside a token, and the text copied is the very text the
//! parse validated, so the backend reads the same tokens the checks read. (Jackson also
//! skips comments there, which the strict parse refuses: none is in a kept text.) An
//! `_msearch` line holds no LF or CR (split at LF, CR refused), so a text copied into its
//! NDJSON cannot break a line.
//!
//! A string escape is not sent as the client spelled it: a container holding one keeps no
//! text and is written item by item (its siblings keep theirs), the escape respelled as the
//! writer spells it (session 29, decided). Jackson decodes every escape the strict parse
//! accepts as serde_json does (the eight one-character escapes, `\/` included, and `\uXXXX`
//! as one UTF-16 unit, a surrogate pair so making the same code point; `\u0000` is U+0000
//! both ways); it would also take a lone surrogate, which the strict parse refuses, so no
//! such text reaches it. Sound today, but an escape is the one spelling the backend must
//! decode as esgate did (security.md E7, ENC-17: `\u0061ggs`), and whitespace needs no
//! decoding; the gain is small (only the containers around an escaped string, up to the
//! root, are written item by item), so esgate's own spelling is kept.
//!
//! A parsed container cannot be changed: [`Node::open`] makes a built
//! one of its items, and only the built one is changed, so a source text never outlives a
//! change. Entries are added deep in a parsed object (a histogram's `hard_bounds`) by
//! `Parsed::with_added`, which makes a new parsed value in the arena, its tape and its source
//! text copied with theirs in (session 28: one copy of the text in place of each container on
//! the way opened and written item by item).
//!
//! Invariant: [`parse`] accepts exactly the bodies `parse_strict` accepts (UTF-8 without BOM,
//! no comments, no duplicate keys at any depth, depth at most [`MAX_DEPTH`], nothing after the
//! value; a body of 4 GiB or more, far above any body cap, is left to it) and refuses the others
//! with `parse_strict`'s own reason (the refusal path runs `parse_strict`: refusals are rare
//! and their messages stay one implementation's). [`write()`] escapes strings as serde_json
//! does; a tree written and read back by serde_json equals the `Value` `parse_strict` builds
//! from the same body. A container's kept source text is what the writer writes for it item
//! by item, JSON whitespace outside strings aside: the same bytes once that is taken out,
//! and byte for byte the same when the text has none (the tests compare the two on every tree
//! they parse, and the request path's forwarded bodies both ways, as bytes and as values);
//! it holds no string escape. Everything in the arena is `Copy`, so owns no memory
//! ([`Arena`]; `tests/tree_arena.rs` counts the heap around parses, changes and drops).

use std::borrow::Cow;
use std::collections::HashSet;

use bumpalo::collections::{String as BumpString, Vec as BumpVec};
use bumpalo::Bump;
use serde_json::{Map, Number, Value};

use super::body::{parse_strict_within, MAX_DEPTH};
use crate::memory::Meter;
use crate::Rejection;

/// One JSON value: parsed (borrowing the body and its tape) or built (a request's rewrite, the
/// token's filter clauses).
#[derive(Clone, Debug)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// A number as its source text (valid JSON grammar, finite as an `f64`).
    Number(Cow<'a, str>),
    String(Cow<'a, str>),
    /// A built array (or a parsed one opened to be changed: [`Node::open`]).
    Array(Container<'a, Node<'a>>),
    /// A built object: entries in order, keys unique.
    Object(Container<'a, (Cow<'a, str>, Node<'a>)>),
    /// An array or object as [`parse`] left it: read in place, written as its source text when
    /// it kept one. Never a scalar (a parsed scalar is one of the variants above).
    Parsed(Parsed<'a>),
}

/// A built object's entries or array's items: in a `Vec` of their own, or in something that
/// outlives the tree and owns them ([`Container::shared`]: the token's filter clauses).
///
/// Read through `Deref<Target = [T]>`; changed only through [`Container::make_mut`], which
/// copies shared items out first (they are not the tree's to change).
///
/// ```compile_fail,E0596
/// // No mutable access through `Deref`: only `make_mut`.
/// let mut c = esgate_es::request::tree::Container::<u8>::from(vec![1]);
/// c.iter_mut().for_each(|b| *b = 2);
/// ```
#[derive(Clone)]
pub struct Container<'a, T> {
    items: Items<'a, T>,
}

#[derive(Clone)]
enum Items<'a, T> {
    Built(Vec<T>),
    /// Shared items, and the container's JSON text as [`write()`] writes them when it is known
    /// ([`SharedArray`]), else empty.
    Shared(&'a [T], &'a [u8]),
}

impl<'a, T> Container<'a, T> {
    /// A container of items that outlive the tree, as they are: no copy (the token's filter
    /// clauses, put in every search of the token: issue 10, their copy was six allocations a
    /// search). [`Container::make_mut`] copies them out.
    pub fn shared(items: &'a [T]) -> Self {
        Container {
            items: Items::Shared(items, &[]),
        }
    }
}

/// Array items that outlive the trees they are put in (the token's filter clauses), with the
/// array's JSON text as the writer writes it, written once when built: [`write()`] copies it
/// (issue 10, goal 6: the clauses were written key by key in every search). The two are
/// built together here and never change, so the text is always the items'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedArray<'x> {
    items: Vec<Node<'x>>,
    text: Vec<u8>,
}

impl<'x> SharedArray<'x> {
    pub fn new(items: Vec<Node<'x>>) -> SharedArray<'x> {
        let mut text = Vec::new();
        write_node::<false, _>(
            &Node::Array(Container::shared(&items)),
            &mut text,
            &mut Verbatim,
        );
        SharedArray { items, text }
    }

    pub fn items(&self) -> &[Node<'x>] {
        &self.items
    }

    /// The array, its items shared ([`Container::shared`]) and its text known.
    pub fn array(&self) -> Node<'_> {
        Node::Array(Container {
            items: Items::Shared(&self.items, &self.text),
        })
    }
}

impl<T: Clone> Container<'_, T> {
    /// The items, to change (shared ones are first copied out into a `Vec`).
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        if let Items::Shared(items, _) = self.items {
            self.items = Items::Built(items.to_vec());
        }
        match &mut self.items {
            Items::Built(items) => items,
            Items::Shared(..) => unreachable!("a shared container was just copied out"),
        }
    }

    /// The items, to build something else from them.
    pub fn into_vec(self) -> Vec<T> {
        match self.items {
            Items::Shared(items, _) => items.to_vec(),
            Items::Built(items) => items,
        }
    }
}

impl<'a> Container<'a, (Cow<'a, str>, Node<'a>)> {
    /// An object's `key` set to `value`: in place where the key is, else appended last (as
    /// serde_json's order-preserving map does). Through [`Container::make_mut`].
    pub fn set(&mut self, key: &'a str, value: Node<'a>) {
        let entries = self.make_mut();
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => entries.push((Cow::Borrowed(key), value)),
        }
    }
}

impl<T> From<Vec<T>> for Container<'_, T> {
    fn from(items: Vec<T>) -> Self {
        Container {
            items: Items::Built(items),
        }
    }
}

impl<T> std::ops::Deref for Container<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.items {
            Items::Shared(items, _) => items,
            Items::Built(items) => items,
        }
    }
}

impl<T> Default for Container<'_, T> {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Container<'_, T> {
    /// The items, as a `Vec` (debug output of the `FilterSet` holding the token's clauses).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Container<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Container<'_, T> {}

impl PartialEq for Node<'_> {
    /// The same tree however each side is held (parsed, built, shared): the same kinds, keys
    /// in the same order, the same strings and number texts. Compared as the writer's
    /// item-by-item output, which spells each such tree one way (tests, and comparing filter
    /// sets: never on a request's path).
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_node::<false, _>(self, &mut a, &mut Verbatim);
        write_node::<false, _>(other, &mut b, &mut Verbatim);
        a == b
    }
}

impl Eq for Node<'_> {}

impl<'a> Node<'a> {
    /// A built object.
    pub fn object(entries: Vec<(Cow<'a, str>, Node<'a>)>) -> Node<'a> {
        Node::Object(entries.into())
    }

    /// A built array.
    pub fn array(items: Vec<Node<'a>>) -> Node<'a> {
        Node::Array(items.into())
    }

    /// Whether an object has `key` (linear: search-body objects are small).
    pub fn contains_key(&self, key: &str) -> bool {
        match self {
            Node::Object(entries) => entries.iter().any(|(k, _)| k == key),
            Node::Parsed(p) => p.entries().any(|(k, _)| k == key),
            _ => false,
        }
    }

    /// An object's number of entries; `None` if it is not an object.
    pub fn object_len(&self) -> Option<usize> {
        match self {
            Node::Object(entries) => Some(entries.len()),
            Node::Parsed(p) if p.is_object() => Some(p.len()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer literal that fits `u64` (what `Value::is_u64` says of serde_json's parse).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Node::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        }
    }

    /// A parsed container made a built one, to be changed: its items read out of the tape one
    /// level deep (a container among them stays parsed, with its source text). Anything else
    /// is left as it is.
    pub fn open(&mut self) {
        if let Node::Parsed(p) = *self {
            *self = if p.is_object() {
                // Room for what a search's rewrite adds: a `timeout` (the query is moved, not
                // added), so no regrowth.
                let mut entries = Vec::with_capacity(p.len() + 1);
                entries.extend(p.entries().map(|(k, v)| (Cow::Borrowed(k), v.node())));
                Node::object(entries)
            } else {
                let mut items = Vec::with_capacity(p.len());
                items.extend(p.items());
                Node::array(items)
            };
        }
    }

    /// An object's entries, to build another object from them ([`Node::open`] for a parsed
    /// one); `None` if it is not an object.
    pub fn into_entries(mut self) -> Option<Vec<(Cow<'a, str>, Node<'a>)>> {
        self.open();
        match self {
            Node::Object(entries) => Some(entries.into_vec()),
            _ => None,
        }
    }

    /// The same value as serde_json's tree (numbers read by serde_json from their text).
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(text) => number_value(text),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
            Node::Parsed(p) => p.to_value(),
        }
    }

    /// The same tree with every string and number borrowed from `self`: the token's filter
    /// clauses go into each rewritten body this way, one allocation per container and none
    /// per string (a deep `clone` of their owned strings, and its drop, was a sixth of a
    /// 20-search msearch's cost; issue 10).
    pub fn reborrow(&self) -> Node<'_> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(*b),
            Node::Number(text) => Node::Number(Cow::Borrowed(text)),
            Node::String(s) => Node::String(Cow::Borrowed(s)),
            Node::Array(items) => Node::Array(match &items.items {
                Items::Shared(shared, text) => Container {
                    items: Items::Shared(shared, text),
                },
                Items::Built(built) => built.iter().map(Node::reborrow).collect::<Vec<_>>().into(),
            }),
            Node::Object(entries) => Node::Object(match &entries.items {
                Items::Shared(shared, text) => Container {
                    items: Items::Shared(shared, text),
                },
                Items::Built(built) => built
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(&**k), v.reborrow()))
                    .collect::<Vec<_>>()
                    .into(),
            }),
            Node::Parsed(p) => Node::Parsed(*p),
        }
    }

    /// An owned tree of a serde_json value (the token's filter clauses, built ones).
    pub fn from_value(v: &Value) -> Node<'static> {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(Cow::Owned(n.to_string())),
            Value::String(s) => Node::String(Cow::Owned(s.clone())),
            Value::Array(items) => Node::array(items.iter().map(Node::from_value).collect()),
            Value::Object(m) => Node::object(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Node::from_value(v)))
                    .collect(),
            ),
        }
    }
}

/// serde_json's number of a number's source text.
fn number_value(text: &str) -> Value {
    serde_json::from_str::<Number>(text)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A value of a parsed body, read in place: its tokens in the body's tape, and the body (a
/// container's source text is a span of it). `Copy`. Obtained from [`parse`] (as
/// [`Node::Parsed`]) and from a parsed container's items and entries.
#[derive(Clone, Copy)]
pub struct Parsed<'a> {
    body: &'a str,
    toks: Tokens<'a>,
}

/// A parsed value's tokens, its own first and then its items': what the checks read
/// (`dsl::json`'s `J`), `Copy`, two words. Never empty.
#[derive(Clone, Copy)]
pub struct Tokens<'a>(&'a [Tok<'a>]);

/// One token of a tape. An object's token is followed by its entries, each a key's `String`
/// token followed by the value's tokens; an array's by its items' tokens.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tok<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(&'a str),
    Array(Span),
    Object(Span),
    /// An array of plain strings (no escape, no control character), compact (no whitespace):
    /// its source text, brackets included, and its number of items; no tokens of its own
    /// items (issue 10: a token of 24 bytes an item of a 14,000-value `terms` list). Its items
    /// are read from its text ([`TokenItems`]): each is the text between two quotes.
    Strings(&'a str, u32),
}

// A token is three words, `Tok::Strings` included (the tape's room is claimed by this size).
const _: () = assert!(std::mem::size_of::<Tok<'static>>() == 24);

impl Tok<'_> {
    /// The number of tokens of the value this token starts.
    #[inline(always)]
    fn size(self) -> usize {
        match self {
            Tok::Array(span) | Tok::Object(span) => span.size as usize,
            _ => 1,
        }
    }
}

/// How many tokens a container has, how many items, and its source text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    /// Its number of tokens, its own included (the next value's token is this far on).
    size: u32,
    /// Its number of items (of entries for an object).
    len: u32,
    /// Its source text `body[start..start + raw_len]`, when [`write()`] copies it (no string
    /// escape in it: see the module doc); `raw_len` 0 when not (a container's text is at
    /// least two bytes).
    start: u32,
    raw_len: u32,
    /// An array's: what its items all are, told as it was parsed ([`ALL_SCALARS`],
    /// [`ALL_STRINGS`]; both for an empty one); 0 for an object.
    items: u8,
}

/// [`Span::items`]: every item is a scalar (no container, not even an empty one).
const ALL_SCALARS: u8 = 1;
/// [`Span::items`]: every item is a string.
const ALL_STRINGS: u8 = 2;

/// What a parsed value is: a scalar's value, or a container's tokens.
#[derive(Clone, Copy)]
pub enum Item<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(&'a str),
    Array(Tokens<'a>),
    Object(Tokens<'a>),
}

/// What the value whose tokens are `value` (the first is `tok`) is.
#[inline(always)]
fn item<'a>(tok: Tok<'a>, value: &'a [Tok<'a>]) -> Item<'a> {
    match tok {
        Tok::Null => Item::Null,
        Tok::Bool(b) => Item::Bool(b),
        Tok::Number(text) => Item::Number(text),
        Tok::String(s) => Item::String(s),
        Tok::Array(_) | Tok::Strings(..) => Item::Array(Tokens(value)),
        Tok::Object(_) => Item::Object(Tokens(value)),
    }
}

impl<'a> Tokens<'a> {
    fn head(self) -> Tok<'a> {
        self.0.first().copied().unwrap_or(Tok::Null)
    }

    /// The tokens after the value's own: its items' (none for a scalar).
    fn inside(self) -> &'a [Tok<'a>] {
        self.0.get(1..).unwrap_or_default()
    }

    /// What the value is.
    #[inline]
    pub fn item(self) -> Item<'a> {
        item(self.head(), self.0)
    }

    /// A container's number of items (entries for an object); 0 for a scalar.
    pub fn len(self) -> usize {
        match self.head() {
            Tok::Array(span) | Tok::Object(span) => span.len as usize,
            Tok::Strings(_, len) => len as usize,
            _ => 0,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Whether the value is an array whose items are all scalars. A read of its tokens, no
    /// walk (issue 10: a `terms` list of 14,000 values was checked item by item, through a `J`
    /// each).
    ///
    /// Told by the array's token, set as it was parsed: a 14,000-value `terms` list was a
    /// walk over its 14,000 tokens (about 100k instructions of a 200 KB search).
    pub fn items_all_scalars(self) -> bool {
        match self.head() {
            Tok::Array(span) => span.items & ALL_SCALARS != 0,
            Tok::Strings(..) => true,
            _ => false,
        }
    }

    /// Whether the value is an array whose items are all strings.
    pub fn items_all_strings(self) -> bool {
        match self.head() {
            Tok::Array(span) => span.items & ALL_STRINGS != 0,
            Tok::Strings(..) => true,
            _ => false,
        }
    }

    /// An object's only entry: `None` for an object of no or several entries, or anything
    /// else. One look at the tokens (issue 10: a query clause is such an object, read
    /// through `len`, `entries` and a step of the walk it was three matches on the token).
    pub fn only_entry(self) -> Option<(&'a str, Item<'a>)> {
        match self.0 {
            [Tok::Object(Span { len: 1, .. }), Tok::String(key), rest @ ..] => {
                let tok = *rest.first()?;
                Some((key, item(tok, rest.get(..tok.size())?)))
            }
            _ => None,
        }
    }

    /// The two keys of `{"<outer>": {"<inner>": <scalar>}}` (a query leaf such as
    /// `{"match_phrase": {"service.name": "checkout"}}`), in one look at its five tokens; `None`
    /// for any other value (issue 10: a Kibana search holds twenty such leaves, each read
    /// through two `J` objects and their entries).
    #[inline]
    pub fn scalar_leaf(self) -> Option<(&'a str, &'a str)> {
        match self.0 {
            [Tok::Object(Span { len: 1, .. }), Tok::String(outer), Tok::Object(Span { len: 1, .. }), Tok::String(inner), Tok::Null | Tok::Bool(_) | Tok::Number(_) | Tok::String(_), ..] => {
                Some((outer, inner))
            }
            _ => None,
        }
    }

    /// The value under `key` of an object (none for anything else): the keys compared as the
    /// walk goes, only the one found made an [`Item`].
    #[inline]
    pub fn get(self, key: &str) -> Option<Item<'a>> {
        let mut entries = self.entries();
        while let Some((k, tok, value)) = entries.step() {
            if k == key {
                return Some(item(tok, value));
            }
        }
        None
    }

    /// An array's items as their own tokens, each a [`Tokens`]: `None` for a
    /// `Tok::Strings` array (its items have no tokens) and anything but an array. A walk
    /// that reads each item's tokens itself (`dsl::query::parsed_bool`) without an [`Item`]
    /// made of each (issue 10: [`TokenItems::next`] was about 50 instructions an item).
    #[inline]
    pub fn item_tokens(self) -> Option<ItemTokens<'a>> {
        match self.head() {
            Tok::Array(_) => Some(ItemTokens {
                rest: self.inside(),
            }),
            _ => None,
        }
    }

    /// An array's items (none for anything else).
    pub fn items(self) -> TokenItems<'a> {
        match self.head() {
            Tok::Array(_) => TokenItems {
                rest: self.inside(),
                packed: "",
            },
            // Past the opening bracket.
            Tok::Strings(text, _) => TokenItems {
                rest: &[],
                packed: text.get(1..).unwrap_or_default(),
            },
            _ => TokenItems {
                rest: &[],
                packed: "",
            },
        }
    }

    /// An object's entries, in body order (none for anything else).
    pub fn entries(self) -> TokenEntries<'a> {
        TokenEntries {
            rest: match self.head() {
                Tok::Object(_) => self.inside(),
                _ => &[],
            },
        }
    }
}

/// The items of a parsed array of tokens ([`Tokens::item_tokens`]), each as its tokens.
#[derive(Clone)]
pub struct ItemTokens<'a> {
    /// The tokens of the items not yet read.
    rest: &'a [Tok<'a>],
}

impl<'a> Iterator for ItemTokens<'a> {
    type Item = Tokens<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<Tokens<'a>> {
        let tok = *self.rest.first()?;
        let (value, rest) = self.rest.split_at_checked(tok.size())?;
        self.rest = rest;
        Some(Tokens(value))
    }
}

/// How many bytes of a packed string list's item [`TokenItems::next_packed`] looks at one by
/// one before it hands the rest to `memchr`.
const SHORT_ITEM: usize = 24;

/// The items of a parsed array ([`Tokens::items`]): a walk over its tokens, a container's in
/// one step (its token holds its size).
#[derive(Clone)]
pub struct TokenItems<'a> {
    /// The tokens of the items not yet read.
    rest: &'a [Tok<'a>],
    /// A [`Tok::Strings`] array's items not yet read: their source text from the next item's
    /// opening quote to the closing bracket (`"a","b"]`), or empty.
    packed: &'a str,
}

impl<'a> TokenItems<'a> {
    /// The next item's first token and all its tokens.
    #[inline(always)]
    fn step(&mut self) -> Option<(Tok<'a>, &'a [Tok<'a>])> {
        let tok = *self.rest.first()?;
        let (value, rest) = self.rest.split_at_checked(tok.size())?;
        self.rest = rest;
        Some((tok, value))
    }

    /// The next item of a [`Tok::Strings`] array: the text up to the next quote (its items are
    /// plain: no escaped quote in them), found by `memchr` ([`plain_run`]'s block scan takes
    /// its slow tail on the short text left of a short array, a byte loop a few instructions
    /// a byte: kibana loop 51,620 and 51,486 instructions, against 51,315 before packing).
    ///
    /// The first [`SHORT_ITEM`] bytes are looked at one by one first (session 23: a field name
    /// or a highlight tag is that short, and `memchr`'s dispatch and set-up cost about 60
    /// instructions an item; `stored_fields: ["*"]` was 115 an item).
    #[inline]
    fn next_packed(&mut self) -> Option<&'a str> {
        let text = self.packed.strip_prefix('"')?;
        let bytes = text.as_bytes();
        let head = bytes.get(..SHORT_ITEM).unwrap_or(bytes);
        let end = match head.iter().position(|&b| b == b'"') {
            Some(end) => end,
            None => head.len() + memchr::memchr(b'"', bytes.get(head.len()..)?)?,
        };
        let (item, rest) = text.split_at_checked(end)?;
        self.packed = rest.strip_prefix("\",").unwrap_or_default();
        Some(item)
    }
}

impl<'a> Iterator for TokenItems<'a> {
    type Item = Item<'a>;

    /// Always inlined (issue 10, session 23): as a call, about 47 instructions an item of every
    /// parsed array the checks walk (`fields`, `sort`, `stored_fields`, a highlight's tags),
    /// for a `step` of a few and an [`Item`] returned through memory.
    #[inline(always)]
    fn next(&mut self) -> Option<Item<'a>> {
        match self.step() {
            Some((tok, value)) => Some(item(tok, value)),
            None => self.next_packed().map(Item::String),
        }
    }
}

/// The entries of a parsed object ([`Tokens::entries`]): each a key's `String` token and the
/// value's tokens.
#[derive(Clone)]
pub struct TokenEntries<'a> {
    /// The tokens of the entries not yet read.
    rest: &'a [Tok<'a>],
}

impl<'a> TokenEntries<'a> {
    /// The next entry's key, its value's first token and all its tokens.
    #[inline(always)]
    fn step(&mut self) -> Option<(&'a str, Tok<'a>, &'a [Tok<'a>])> {
        // The parser puts a key's `String` token before every value of an object.
        let [Tok::String(key), ref rest @ ..] = *self.rest else {
            return None;
        };
        let tok = *rest.first()?;
        let (value, rest) = rest.split_at_checked(tok.size())?;
        self.rest = rest;
        Some((key, tok, value))
    }
}

impl<'a> Iterator for TokenEntries<'a> {
    type Item = (&'a str, Item<'a>);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, Item<'a>)> {
        let (key, tok, value) = self.step()?;
        Some((key, item(tok, value)))
    }
}

impl<'a> Parsed<'a> {
    /// The value's tokens (what the checks read).
    pub fn tokens(self) -> Tokens<'a> {
        self.toks
    }

    pub fn is_object(self) -> bool {
        matches!(self.toks.head(), Tok::Object(_))
    }

    /// A container's number of items (entries for an object); 0 for a scalar.
    pub fn len(self) -> usize {
        self.toks.len()
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// A container's source text, when [`write()`] copies it (see the module doc).
    pub fn raw(self) -> Option<&'a [u8]> {
        match self.toks.head() {
            Tok::Array(span) | Tok::Object(span) if span.raw_len > 0 => {
                let start = span.start as usize;
                self.body
                    .as_bytes()
                    .get(start..start + span.raw_len as usize)
            }
            Tok::Strings(text, _) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// An array's items (none for anything else), each as [`Parsed::node`] makes it.
    pub fn items(self) -> impl Iterator<Item = Node<'a>> {
        let mut items = self.toks.items();
        std::iter::from_fn(move || match items.step() {
            Some((_, value)) => Some(self.at(value).node()),
            None => items.next_packed().map(|s| Node::String(Cow::Borrowed(s))),
        })
    }

    /// An object's entries, in body order (none for anything else).
    pub fn entries(self) -> impl Iterator<Item = (&'a str, Parsed<'a>)> {
        let mut entries = self.toks.entries();
        std::iter::from_fn(move || {
            let (key, _, value) = entries.step()?;
            Some((key, self.at(value)))
        })
    }

    /// The value whose tokens are `toks`, in the same body.
    fn at(self, toks: &'a [Tok<'a>]) -> Parsed<'a> {
        Parsed {
            body: self.body,
            toks: Tokens(toks),
        }
    }

    /// The value as a [`Node`]: a scalar as its variant (borrowing), a container as
    /// [`Node::Parsed`].
    pub fn node(self) -> Node<'a> {
        match self.toks.head() {
            Tok::Null => Node::Null,
            Tok::Bool(b) => Node::Bool(b),
            Tok::Number(text) => Node::Number(Cow::Borrowed(text)),
            Tok::String(s) => Node::String(Cow::Borrowed(s)),
            Tok::Array(_) | Tok::Object(_) | Tok::Strings(..) => Node::Parsed(self),
        }
    }

    /// The same value as serde_json's tree.
    pub fn to_value(self) -> Value {
        match self.toks.head() {
            Tok::Null => Value::Null,
            Tok::Bool(b) => Value::Bool(b),
            Tok::Number(text) => number_value(text),
            Tok::String(s) => Value::String(s.to_string()),
            Tok::Array(_) | Tok::Strings(..) => {
                Value::Array(self.items().map(|item| item.to_value()).collect())
            }
            Tok::Object(_) => Value::Object(
                self.entries()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// An entry [`Parsed::with_added`] puts last in an object inside a parsed container: the
/// object's place (the positions of the object entries that lead to it from the container,
/// each level an object; none: the container itself), and the entry: `key` and an object of
/// numbers, each a key and the number (written as serde_json writes it).
pub(crate) struct Added<'x> {
    pub(crate) path: &'x [usize],
    pub(crate) key: &'static str,
    pub(crate) numbers: &'x [(&'static str, Number)],
}

/// The most bytes serde_json writes for a number ([`Number`]'s `Display`): an `i64`'s 20, or
/// an `f64`'s shortest form (ryu's 24).
const NUMBER_TEXT_MAX: usize = 24;

impl Added<'_> {
    /// The entry's tokens: its key's, its object's, and a key's and a number's a number.
    fn tokens(&self) -> usize {
        2 + 2 * self.numbers.len()
    }

    /// At least the bytes of its text after an object's last entry, `,"key":{"a":1,"b":2}`
    /// (each number counted at its longest), and of its numbers' own texts.
    fn room(&self) -> usize {
        let entries: usize = self.numbers.iter().map(|(k, _)| k.len() + 4).sum();
        self.key.len() + 6 + entries + 2 * NUMBER_TEXT_MAX * self.numbers.len()
    }
}

/// `n` as serde_json writes it, in `bump`: an integer's digits written here, two at a time
/// (issue 10: through the formatting machinery, or a digit at a time, a date histogram's two
/// bounds were about 400 instructions), anything else through its `Display`.
fn number_text<'b>(n: &Number, bump: &'b Bump) -> &'b str {
    let mut text = BumpString::with_capacity_in(NUMBER_TEXT_MAX, bump);
    match n.as_i64() {
        Some(i) => {
            if i < 0 {
                text.push('-');
            }
            for &d in Decimal::of(i.unsigned_abs()).digits() {
                text.push(char::from(d));
            }
        }
        // Writing to a `String` cannot fail.
        None => {
            let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{n}"));
        }
    }
    text.into_bump_str()
}

/// The decimal digits of a `u64`, the last ones at the end of the buffer.
struct Decimal {
    digits: [u8; 20],
    from: usize,
}

impl Decimal {
    /// Two digits at a time from a table, four from each step in `u64` (as `itoa` does).
    fn of(mut n: u64) -> Decimal {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut d = Decimal {
            digits: [0; 20],
            from: 20,
        };
        let pair = |d: &mut Decimal, p: usize| {
            d.from -= 2;
            d.digits[d.from] = PAIRS[2 * p];
            d.digits[d.from + 1] = PAIRS[2 * p + 1];
        };
        while n >= 10_000 {
            let four = (n % 10_000) as usize;
            n /= 10_000;
            pair(&mut d, four % 100);
            pair(&mut d, four / 100);
        }
        let mut n = n as usize;
        if n >= 100 {
            pair(&mut d, n % 100);
            n /= 100;
        }
        if n >= 10 {
            pair(&mut d, n);
        } else {
            d.from -= 1;
            d.digits[d.from] = b'0' + n as u8;
        }
        d
    }

    fn digits(&self) -> &[u8] {
        self.digits.get(self.from..).unwrap_or_default()
    }
}

/// The index of the value of the `i`-th entry of the object whose token is `toks[at]`.
fn entry_value(toks: &[Tok<'_>], at: usize, i: usize) -> Option<usize> {
    let Tok::Object(span) = *toks.get(at)? else {
        return None;
    };
    if i >= span.len as usize {
        return None;
    }
    let mut key = at + 1;
    for _ in 0..i {
        key += 1 + toks.get(key + 1)?.size();
    }
    Some(key + 1)
}

/// The index of the object at `path` from the object whose token is `toks[0]`, and its span.
fn object_at(toks: &[Tok<'_>], path: &[usize]) -> Option<(usize, Span)> {
    let mut at = 0;
    for &i in path {
        at = entry_value(toks, at, i)?;
    }
    match toks.get(at) {
        Some(&Tok::Object(span)) => Some((at, span)),
        _ => None,
    }
}

impl<'a> Parsed<'a> {
    /// This object with the `added` entries put last in the objects they name, as a new parsed
    /// value in `arena` (its memory claimed from the arena's meter first): the tape copied with
    /// the entries' tokens in, and the source text, when the object kept one, copied with the
    /// entries' text in (each before its object's closing brace), so the checks read the
    /// entries ([`J`](crate::dsl::json::J) reads the tape) and [`write()`] copies the whole
    /// text (session 28: a histogram's `hard_bounds`, `dsl::fill`, in place of three
    /// containers opened and written item by item). Without a source text, the objects that
    /// gain an entry and those around them keep none (written item by item); the others keep
    /// theirs.
    ///
    /// `added` in body order, each naming an object of this one, none the same as another or
    /// inside another: `Ok(None)` if not, nothing claimed. The keys are plain (no character to
    /// escape) and absent from their objects: the caller's (`dsl::fill` adds `hard_bounds`
    /// only where there is none).
    pub(crate) fn with_added(
        self,
        arena: &'a Arena<'_>,
        added: &[Added<'_>],
    ) -> Result<Option<Parsed<'a>>, Rejection> {
        let toks = self.toks.0;
        let Some(&Tok::Object(top)) = toks.first() else {
            return Ok(None);
        };
        let base = top.start as usize;
        // The object's source text, if it kept one.
        let raw = match top.raw_len {
            0 => None,
            len => self.body.get(base..base + len as usize),
        };
        // Each in order, after the one before's tokens (so not inside it), and with its
        // object's text where the object kept one; what the new value takes.
        let (mut past, mut count, mut room) = (0, toks.len(), 0);
        for a in added {
            debug_assert!(!needs_escape(a.key.as_bytes()));
            match object_at(toks, a.path) {
                Some((at, span)) if at >= past && (raw.is_none() || span.raw_len > 0) => {
                    past = at + span.size as usize;
                }
                _ => return Ok(None),
            }
            count += a.tokens();
            room += a.room();
        }
        let text_room = raw.map_or(0, |r| r.len()) + room;
        if u32::try_from(count).is_err() || u32::try_from(text_room).is_err() {
            return Ok(None);
        }
        arena.claim(count * std::mem::size_of::<Tok>() + text_room)?;
        let bump = &arena.bump;
        let mut out = BumpVec::with_capacity_in(count, bump);
        let mut text = raw.map(|_| BumpString::with_capacity_in(text_room, bump));
        // The tokens and text copied so far (from the object's), and how far on in the new
        // text the text after them now is.
        let (mut copied, mut copied_text, mut shift) = (0, 0, 0);
        // The tokens from `copied` to `to` and the text to `to_text`, a container's text now
        // `shift` on (less the object's start).
        let copy = |out: &mut BumpVec<'a, Tok<'a>>,
                    text: &mut Option<BumpString<'a>>,
                    (from, to): (usize, usize),
                    (from_text, to_text): (usize, usize),
                    shift: usize| {
            let first = out.len();
            out.extend_from_slice_copy(toks.get(from..to).unwrap_or_default());
            if let (Some(text), Some(raw)) = (text, raw) {
                text.push_str(raw.get(from_text..to_text).unwrap_or_default());
                for tok in &mut out[first..] {
                    if let Tok::Object(span) | Tok::Array(span) = tok {
                        span.start = ((span.start as usize).saturating_sub(base) + shift) as u32;
                    }
                }
            }
        };
        for a in added {
            let Some((at, span)) = object_at(toks, a.path) else {
                continue;
            };
            let end = at + span.size as usize;
            // The object's closing brace, in its text (with a text).
            let close = (span.start as usize + span.raw_len as usize).saturating_sub(base + 1);
            copy(
                &mut out,
                &mut text,
                (copied, end),
                (copied_text, close),
                shift,
            );
            (copied, copied_text) = (end, close);
            let entry_at = text.as_ref().map_or(0, BumpString::len);
            if let Some(text) = &mut text {
                text.push_str(if span.len > 0 { ",\"" } else { "\"" });
                text.push_str(a.key);
                text.push_str("\":");
            }
            let value_at = text.as_ref().map_or(0, BumpString::len);
            out.push(Tok::String(a.key));
            let value = out.len();
            out.push(Tok::Null);
            for (i, (k, n)) in a.numbers.iter().enumerate() {
                let number = number_text(n, bump);
                if let Some(text) = &mut text {
                    text.push_str(if i == 0 { "{\"" } else { ",\"" });
                    text.push_str(k);
                    text.push_str("\":");
                    text.push_str(number);
                }
                out.push(Tok::String(k));
                out.push(Tok::Number(number));
            }
            let grown = match &mut text {
                Some(text) => {
                    text.push('}');
                    text.len() - entry_at
                }
                None => 0,
            };
            out[value] = Tok::Object(Span {
                size: (1 + 2 * a.numbers.len()) as u32,
                len: a.numbers.len() as u32,
                start: value_at as u32,
                raw_len: if text.is_some() {
                    (entry_at + grown - value_at) as u32
                } else {
                    0
                },
                items: 0,
            });
            shift += grown;
            // The objects that hold it, down to its own (found in the new tape: what is before
            // them there, the entries added before this one included, is whole): their tokens
            // and text grow by the entry's (or they keep no text), its own has an entry more.
            let mut on = 0;
            let mut path = a.path.iter();
            loop {
                if let Some(Tok::Object(span)) = out.get_mut(on) {
                    span.size += a.tokens() as u32;
                    span.raw_len = if text.is_some() {
                        span.raw_len + grown as u32
                    } else {
                        0
                    };
                }
                match path.next() {
                    Some(&i) => match entry_value(&out, on, i) {
                        Some(next) => on = next,
                        None => break,
                    },
                    None => {
                        if let Some(Tok::Object(span)) = out.get_mut(on) {
                            span.len += 1;
                        }
                        break;
                    }
                }
            }
        }
        let raw_len = raw.map_or(0, str::len);
        copy(
            &mut out,
            &mut text,
            (copied, toks.len()),
            (copied_text, raw_len),
            shift,
        );
        let body = match text {
            Some(text) => text.into_bump_str(),
            None => self.body,
        };
        let toks = out.into_bump_slice();
        arena.settle()?;
        // Every token copied, and with a text, all of it (what the object's token now says).
        let whole = toks.len() == count
            && (raw.is_none()
                || matches!(toks.first(), Some(Tok::Object(t)) if t.raw_len as usize == body.len()));
        Ok(whole.then_some(Parsed {
            body,
            toks: Tokens(toks),
        }))
    }
}

impl std::fmt::Debug for Parsed<'_> {
    /// The value's JSON text, as the writer writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = Vec::new();
        write_parsed::<false, _>(*self, &mut text, &mut Verbatim);
        write!(f, "Parsed({})", String::from_utf8_lossy(&text))
    }
}

impl std::fmt::Debug for Tokens<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.0.len())
    }
}

/// The memory one or more parses keep their tapes and escaped strings in (issue 10, goal 6):
/// one allocation for a typical body (the first chunk is sized from the body's length), and
/// one free when the arena is dropped, however many values the tree holds.
///
/// Nothing is ever dropped in the arena: what is put there must own no memory, or the memory
/// would leak. Only [`parse`] and `Parsed::with_added` write in it (the field is private),
/// and everything they put there is `Copy` (tokens, escaped strings, texts), which the
/// compiler holds to owning nothing.
/// `tests/tree_arena.rs` counts the heap to hold it.
///
/// A request's arena is [`Arena::metered`]: what its parses allocate is claimed from the
/// request's [`Meter`] first, and returned when the arena drops ([`crate::memory`]).
pub struct Arena<'m> {
    bump: Bump,
    meter: Option<&'m Meter<'m>>,
    /// Bytes claimed from `meter` for the bump's chunks: before an allocation that needs a new
    /// chunk, its size; after it, what the bump really holds ([`Arena::settle`]).
    in_bump: std::cell::Cell<usize>,
    /// Bytes claimed from `meter` for the parse's memory beside the arena (on the heap).
    beside: std::cell::Cell<usize>,
    /// The objects of every body parsed in the arena ([`Arena::objects`]).
    objects: std::cell::Cell<usize>,
    /// Whether a body parsed in the arena has a key `knn` ([`Arena::has_knn_key`]).
    knn_key: std::cell::Cell<bool>,
    /// Whether a body parsed in the arena has a key `inner_hits`
    /// ([`Arena::has_inner_hits_key`]).
    inner_hits_key: std::cell::Cell<bool>,
    /// How many keys of the bodies parsed in the arena are `highlight`
    /// ([`Arena::highlight_keys`]).
    highlight_keys: std::cell::Cell<usize>,
}

impl Arena<'static> {
    /// An arena whose first chunk holds the tape of a search body of `len` bytes (a 2 KB
    /// Kibana search's tape is under three times its length); more chunks are added as needed.
    /// Its memory is not claimed from anything: for tests and tools, never for a client's body.
    pub fn for_body(len: usize) -> Arena<'static> {
        Arena::new(Bump::with_capacity(first_chunk(len)), None)
    }
}

impl<'m> Arena<'m> {
    /// `bump`, nothing claimed yet from `meter` and no object parsed.
    fn new(bump: Bump, meter: Option<&'m Meter<'m>>) -> Arena<'m> {
        Arena {
            bump,
            meter,
            in_bump: std::cell::Cell::new(0),
            beside: std::cell::Cell::new(0),
            objects: std::cell::Cell::new(0),
            knn_key: std::cell::Cell::new(false),
            inner_hits_key: std::cell::Cell::new(false),
            highlight_keys: std::cell::Cell::new(0),
        }
    }

    /// [`Arena::for_body`] for a request's body, its first chunk and every parse's memory
    /// claimed from `meter`.
    pub fn metered(len: usize, meter: &'m Meter<'m>) -> Result<Arena<'m>, Rejection> {
        let first = first_chunk(len);
        meter.take(first)?;
        let arena = Arena::new(Bump::with_capacity(first), Some(meter));
        arena.in_bump.set(first);
        arena.settle()?;
        Ok(arena)
    }

    /// Claims `bytes` that a parse is about to allocate in the arena, unless they fit in the
    /// current chunk. [`Arena::settle`] follows the allocation.
    fn claim(&self, bytes: usize) -> Result<(), Rejection> {
        if let Some(meter) = self.meter {
            if bytes > self.bump.chunk_capacity() {
                meter.take(bytes)?;
                self.in_bump.set(self.in_bump.get() + bytes);
            }
        }
        Ok(())
    }

    /// Sets the bump's claim to what it holds: bumpalo rounds a new chunk up (at least
    /// doubling the last one), which is claimed here, and a claim it did not use is returned.
    fn settle(&self) -> Result<(), Rejection> {
        if let Some(meter) = self.meter {
            let holds = self.bump.allocated_bytes();
            let claimed = self.in_bump.get();
            if holds > claimed {
                meter.take(holds - claimed)?;
            } else {
                meter.give(claimed - holds);
            }
            self.in_bump.set(holds);
        }
        Ok(())
    }

    /// Claims `bytes` for what a parse is about to allocate beside the arena (on the heap).
    fn claim_beside(&self, bytes: usize) -> Result<(), Rejection> {
        if let Some(meter) = self.meter {
            meter.take(bytes)?;
            self.beside.set(self.beside.get() + bytes);
        }
        Ok(())
    }

    /// How many objects the bodies parsed in the arena hold: the places a query may run, where
    /// a rewrite puts a copy of the token's clauses (`routes::claim_clause_copies`).
    pub fn objects(&self) -> usize {
        self.objects.get()
    }

    /// Whether a key of an object of a body parsed in the arena is `knn` (escaped or not): the
    /// rewrite leaves such a search to the serde path. Known from the parse, which compares
    /// each key it reads (issue 10: a scan of the body's text for `knn` and `\u` was about 1.2k
    /// instructions of a 2 KB search, 20k of a 200 KB one).
    pub fn has_knn_key(&self) -> bool {
        self.knn_key.get()
    }

    /// Whether a key of an object of a body parsed in the arena is `inner_hits` (escaped or
    /// not), as [`Arena::has_knn_key`]: such a search is left to the serde path, which checks
    /// that no two of a body's inner hits share a name (`dsl::query::unique_inner_hits`).
    pub fn has_inner_hits_key(&self) -> bool {
        self.inner_hits_key.get()
    }

    /// How many keys of objects of the bodies parsed in the arena are `highlight` (escaped or
    /// not), as [`Arena::has_knn_key`]: a search whose only `highlight` keys are top-level ones
    /// may take the tree path (`rewrite::search_tree` gives each its `highlight_query`); one
    /// with a `highlight` elsewhere (`top_hits`, inner hits) is left to the serde path.
    pub fn highlight_keys(&self) -> usize {
        self.highlight_keys.get()
    }

    /// Returns `bytes` claimed beside the arena for memory a parse has freed.
    fn release(&self, bytes: usize) {
        if let Some(meter) = self.meter {
            meter.give(bytes);
            self.beside.set(self.beside.get() - bytes);
        }
    }
}

impl Drop for Arena<'_> {
    fn drop(&mut self) {
        if let Some(meter) = self.meter {
            meter.give(self.in_bump.get() + self.beside.get());
        }
    }
}

/// The first chunk's size for a body of `len` bytes.
fn first_chunk(len: usize) -> usize {
    len.min(MAX_FIRST_CHUNK / ARENA_PER_BYTE) * ARENA_PER_BYTE
}

impl Default for Arena<'_> {
    /// An empty arena, not metered: its first chunk is allocated by the first parse that needs
    /// one.
    fn default() -> Self {
        Arena::new(Bump::new(), None)
    }
}

/// Arena bytes allocated up front per body byte ([`Arena::for_body`]): a tape's room is
/// reserved at a 24-byte token per [`BYTES_PER_TOKEN`] body bytes (three per body byte);
/// escaped strings take the rest.
const ARENA_PER_BYTE: usize = 4;

/// The largest first chunk: a larger body's arena grows in more chunks as it is used (a body
/// mostly made of one long string needs little).
const MAX_FIRST_CHUNK: usize = 4 << 20;

/// A tape's first room, in body bytes per token: a token per eight bytes covers search bodies
/// (a 2 KB Kibana search has one per nine, a `terms` list of ids one per fourteen). A body
/// with more grows its tape as any vector (a copy per doubling).
const BYTES_PER_TOKEN: usize = 8;

/// Parses one JSON body strictly (see the module invariant), its tape in `arena`, its memory
/// claimed from the arena's meter before it is allocated: the tape's first room at the start,
/// each doubling of the tape when it comes, and at the first escape, room for the escaped
/// strings (twice the rest of the body, for their growth).
pub fn parse<'a>(bytes: &'a [u8], arena: &'a Arena<'_>) -> Result<Node<'a>, Rejection> {
    let room = bytes.len() / BYTES_PER_TOKEN + 8;
    arena.claim(room.saturating_mul(std::mem::size_of::<Tok>()))?;
    // Token indexes and text offsets are `u32`.
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) || u32::try_from(bytes.len()).is_err() {
        return Err(refusal(bytes, arena));
    }
    let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
        return Err(refusal(bytes, arena));
    };
    let mut p = Parser {
        arena,
        refused: None,
        escapes_claimed: false,
        objects: 0,
        knn_key: false,
        inner_hits_key: false,
        highlight_keys: 0,
        text,
        i: 0,
        bent_at: 0,
        toks: BumpVec::with_capacity_in(room, &arena.bump),
        keys: Vec::with_capacity(KEYS),
    };
    arena.settle()?;
    let whole = p.value(0).is_some() && {
        p.ws();
        p.i == p.s().len()
    };
    // What the escaped strings took is claimed too (or refuses the parse). A refused claim
    // refuses the parse even if the value read on past it: a tree is never taken whole when
    // a claim on the way was refused (review 12: held by structure, not by every caller of
    // `held` stopping).
    let settled = arena.settle();
    if !whole || p.refused.is_some() {
        let no_memory = p.refused.take().or(settled.err());
        return Err(no_memory.unwrap_or_else(|| refusal(bytes, arena)));
    }
    settled?;
    arena.objects.set(arena.objects.get() + p.objects);
    if p.knn_key {
        arena.knn_key.set(true);
    }
    if p.inner_hits_key {
        arena.inner_hits_key.set(true);
    }
    arena
        .highlight_keys
        .set(arena.highlight_keys.get() + p.highlight_keys);
    let toks = p.toks.into_bump_slice();
    Ok(Parsed {
        body: text,
        toks: Tokens(toks),
    }
    .node())
}

/// `parse_strict`'s reason for a body [`parse`] refused.
fn refusal(bytes: &[u8], arena: &Arena<'_>) -> Rejection {
    let unlimited = Meter::unlimited();
    match parse_strict_within(bytes, arena.meter.unwrap_or(&unlimited)) {
        Err(e) => e,
        // Never below 4 GiB: both accept the same bodies (the differential tests hold them to
        // it).
        Ok(_) => Rejection::bad_request("request body is not valid JSON"),
    }
}

/// Objects with more keys than this find duplicates through a hash set when they close: the
/// first ones are compared with each other as they come.
const SCAN_KEYS: usize = 16;

/// A bit for each length of a key the parse notes (`knn`, `highlight`, `inner_hits`), and
/// for those lengths plus 64 (a key's length is looked up modulo 64).
const FLAG_KEY_LENGTHS: u64 = 1 << 3 | 1 << 9 | 1 << 10;

/// The key stack's first size: the keys of the objects open at once in a search body.
const KEYS: usize = 32;

/// An upper bound of a [`distinct`] hash set's bytes per key: a `&str` and a control byte per
/// bucket, and under two buckets per key.
const DISTINCT_BYTES_PER_KEY: usize = 2 * (std::mem::size_of::<&str>() + 1);

struct Parser<'a> {
    /// Where the tape's room and escaped strings are ([`Arena`]), and what they are claimed
    /// from.
    arena: &'a Arena<'a>,
    /// Set when a claim was refused (the parse then stops).
    refused: Option<Rejection>,
    /// Whether the escaped strings' room is claimed (at the first escape).
    escapes_claimed: bool,
    /// The objects parsed.
    objects: usize,
    /// Whether a key read is `knn`.
    knn_key: bool,
    /// Whether a key read is `inner_hits`.
    inner_hits_key: bool,
    /// How many keys read are `highlight`.
    highlight_keys: usize,
    text: &'a str,
    i: usize,
    /// Where the body last held a string escape (0 if it has not): a container opened at
    /// `start` that closes with `bent_at <= start` held none, and is written as its source
    /// text (whitespace between its tokens does not count: see the module doc). A position,
    /// not a count: only the container's start is kept while it is parsed.
    bent_at: usize,
    /// The tape being written.
    toks: BumpVec<'a, Tok<'a>>,
    /// The keys of the objects being parsed, innermost last (duplicates are found in the
    /// innermost object's).
    keys: Vec<&'a str>,
}

impl<'a> Parser<'a> {
    /// The body's bytes: `text`'s own, so LLVM sees the same length and memory behind a byte
    /// read and a string sliced from `text` (one field, not two that it must load and
    /// compare apart).
    #[inline(always)]
    fn s(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Past JSON's whitespace (space, tab, LF, CR: the only bytes strict JSON and the
    /// backends' parser skip between tokens). A container's source text keeps it: whitespace
    /// between tokens is not a change of the value (session 29).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s().get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s().get(self.i).copied()
    }

    /// Past `byte`, looked at first where a compact body has it, then past any whitespace.
    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Option<()> {
        if self.s().get(self.i) != Some(&byte) {
            self.ws();
            if self.peek()? != byte {
                return None;
            }
        }
        self.i += 1;
        Some(())
    }

    fn literal(&mut self, word: &[u8], tok: Tok<'a>) -> Option<Tok<'a>> {
        if self.s()[self.i..].starts_with(word) {
            self.i += word.len();
            Some(tok)
        } else {
            None
        }
    }

    /// One value's tokens. Inlined into `object` and `array` (which stay calls): no call per
    /// string or number.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<()> {
        self.ws();
        let tok = match self.peek()? {
            b'{' => return self.object(depth + 1),
            b'[' => return self.array(depth + 1),
            b'"' => {
                self.i += 1;
                Tok::String(self.string()?)
            }
            b't' => self.literal(b"true", Tok::Bool(true))?,
            b'f' => self.literal(b"false", Tok::Bool(false))?,
            b'n' => self.literal(b"null", Tok::Null)?,
            b'-' | b'0'..=b'9' => Tok::Number(self.number()?),
            _ => return None,
        };
        self.push(tok)
    }

    /// Puts `tok` on the tape, its room claimed first when the tape is full.
    #[inline(always)]
    fn push(&mut self, tok: Tok<'a>) -> Option<()> {
        if self.toks.len() == self.toks.capacity() {
            return self.grow_and_push(tok);
        }
        self.toks.push(tok);
        Some(())
    }

    /// [`Parser::push`] of the token `make` makes: made where the tape has room, without a
    /// copy of it kept for the call that grows the tape (a token passed to
    /// [`Parser::grow_and_push`] is built on the stack, then copied to the tape, on every
    /// push); `make`'s captures, a string's two words, go to that call in registers.
    #[inline(always)]
    fn push_with(&mut self, make: impl FnOnce() -> Tok<'a>) -> Option<()> {
        if self.toks.len() == self.toks.capacity() {
            return self.grow_and_push_with(make);
        }
        self.toks.push(make());
        Some(())
    }

    #[cold]
    #[inline(never)]
    fn grow_and_push_with(&mut self, make: impl FnOnce() -> Tok<'a>) -> Option<()> {
        self.grow_and_push(make())
    }

    /// Doubles the tape's room, claimed first, and puts `tok` on it: a body denser than a
    /// token per `BYTES_PER_TOKEN` bytes (a list of small numbers is one per two).
    #[cold]
    #[inline(never)]
    fn grow_and_push(&mut self, tok: Tok<'a>) -> Option<()> {
        let more = self.toks.capacity().max(8);
        self.held(
            self.arena
                .claim(more.saturating_mul(std::mem::size_of::<Tok>())),
        )?;
        self.toks.reserve_exact(more);
        self.held(self.arena.settle())?;
        self.toks.push(tok);
        Some(())
    }

    /// Goes on when a claim on the arena's meter held; a refusal stops the parse with its
    /// reason.
    fn held(&mut self, claimed: Result<(), Rejection>) -> Option<()> {
        match claimed {
            Ok(()) => Some(()),
            Err(no_memory) => {
                self.refused = Some(no_memory);
                None
            }
        }
    }

    /// A container's token at `at` once it has closed (`self.i` past its last byte): where
    /// its items end, their number, and its source text if no string in it held an escape
    /// (every such place is after `start`).
    #[inline(always)]
    fn close(&mut self, at: usize, start: usize, len: u32, items: u8, kind: fn(Span) -> Tok<'a>) {
        let raw_len = if self.bent_at <= start {
            self.i - start
        } else {
            0
        };
        // Below `u32::MAX`: every token is at least one byte of a body shorter than that.
        self.toks[at] = kind(Span {
            size: (self.toks.len() - at) as u32,
            len,
            start: start as u32,
            raw_len: raw_len as u32,
            items,
        });
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.objects += 1;
        let start = self.i;
        let at = self.toks.len();
        // Its token, set when it closes.
        self.push_with(|| Tok::Null)?;
        self.i += 1;
        // A key's quote right after the brace (a compact body): no whitespace to skip, and not
        // the close.
        if self.s().get(self.i) != Some(&b'"') {
            self.ws();
            if self.peek()? == b'}' {
                self.i += 1;
                self.close(at, start, 0, 0, Tok::Object);
                return Some(());
            }
        }
        // The first entry: most of a search body's objects have one key, and need no key
        // stack and no compare.
        let first = self.entry_key()?;
        self.entry_value(first, depth)?;
        // The separator or the close where a compact body has it, else past whitespace.
        // Written out here, in `more_entries` and in `array` (session 12: one
        // `#[inline(always)]` helper for all measured 26,135 -> 26,669 instructions on the
        // 2 KB parse).
        match self.s().get(self.i) {
            Some(b',') => {
                self.i += 1;
                return self.more_entries(depth, at, start, first);
            }
            Some(b'}') => {}
            _ => {
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        return self.more_entries(depth, at, start, first);
                    }
                    b'}' => {}
                    _ => return None,
                }
            }
        }
        self.i += 1;
        self.close(at, start, 1, 0, Tok::Object);
        Some(())
    }

    /// An object's entries after its first (`first` its key), from the second's key, and the
    /// object's close.
    #[inline(never)]
    fn more_entries(
        &mut self,
        depth: usize,
        at: usize,
        start: usize,
        first: &'a str,
    ) -> Option<()> {
        let base = self.keys.len();
        self.push_key(first)?;
        // A bit per key on the stack ([`key_bit`]): a key whose bit is not set is new, and is
        // not looked for among the others.
        let mut seen = key_bit(first);
        let mut len = 1;
        loop {
            let key = self.entry_key()?;
            // The first keys are compared as they come, each only when its bit is among the
            // others' (session 24: a compare of every pair was about 1.4k instructions of the
            // 2 KB search's parse, 66 pairs of its top level's twelve keys); a larger object's
            // are all looked at once, when it closes (`distinct`).
            if len < SCAN_KEYS {
                let bit = key_bit(key);
                if seen & bit != 0 && self.keys[base..].contains(&key) {
                    return None;
                }
                seen |= bit;
            }
            self.push_key(key)?;
            self.entry_value(key, depth)?;
            len += 1;
            match self.s().get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                Some(b'}') => {}
                _ => {
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            continue;
                        }
                        b'}' => {}
                        _ => return None,
                    }
                }
            }
            self.i += 1;
            if len > SCAN_KEYS {
                // The hash set's room, claimed while it lives.
                let set = len * DISTINCT_BYTES_PER_KEY;
                self.held(self.arena.claim_beside(set))?;
                let distinct = distinct(&self.keys[base..]);
                self.arena.release(set);
                if !distinct {
                    return None;
                }
            }
            self.keys.truncate(base);
            self.close(at, start, len as u32, 0, Tok::Object);
            return Some(());
        }
    }

    /// An entry's key and its colon, the flag keys noted.
    #[inline(always)]
    fn entry_key(&mut self) -> Option<&'a str> {
        let key = self.key()?;
        // The flags' keys by their length first: one test of a bit for most keys.
        if FLAG_KEY_LENGTHS >> (key.len() % 64) & 1 != 0 {
            self.flag_key(key);
        }
        Some(key)
    }

    /// An entry's key token and its value's tokens, from the value's first byte.
    #[inline(always)]
    fn entry_value(&mut self, key: &'a str, depth: usize) -> Option<()> {
        self.push_with(|| Tok::String(key))?;
        // A string or an object right after the colon, without `value`'s whitespace skip and
        // dispatch.
        match self.s().get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let text = self.string()?;
                self.push_with(|| Tok::String(text))
            }
            Some(b'{') => self.object(depth + 1),
            _ => self.value(depth),
        }
    }

    /// Notes a key whose length is a flag key's ([`FLAG_KEY_LENGTHS`]).
    #[inline(always)]
    fn flag_key(&mut self, key: &str) {
        match key.len() {
            3 => self.knn_key |= key == "knn",
            9 => self.highlight_keys += usize::from(key == "highlight"),
            10 => self.inner_hits_key |= key == "inner_hits",
            _ => {}
        }
    }

    /// Puts `key` on the key stack, its next room (a vector doubles) claimed first.
    #[inline(always)]
    fn push_key(&mut self, key: &'a str) -> Option<()> {
        if self.keys.len() == self.keys.capacity() {
            self.held(
                self.arena
                    .claim_beside(self.keys.capacity() * 2 * std::mem::size_of::<&str>()),
            )?;
        }
        self.keys.push(key);
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        // A compact array of plain strings: one token.
        if self.s().get(start + 1) == Some(&b'"') {
            if let Some((end, len)) = packed(self.s(), start) {
                let text = self.text.get(start..end)?;
                self.i = end;
                return self.push(Tok::Strings(text, len));
            }
        }
        let at = self.toks.len();
        self.push_with(|| Tok::Null)?;
        self.i += 1;
        // A string or an object right after the bracket (a compact body): no whitespace to
        // skip, and not the close.
        if !matches!(self.s().get(self.i), Some(b'"' | b'{')) {
            self.ws();
            if self.peek()? == b']' {
                self.i += 1;
                self.close(at, start, 0, ALL_SCALARS | ALL_STRINGS, Tok::Array);
                return Some(());
            }
        }
        let mut len = 0;
        // What the items all are so far ([`Span::items`]): each item not a string takes away
        // what it is not.
        let mut items = ALL_SCALARS | ALL_STRINGS;
        loop {
            // A run of strings, or an object (a list of queries), without `value`'s whitespace
            // skip and dispatch.
            match self.s().get(self.i) {
                Some(b'"') => len += self.strings()?,
                Some(b'{') => {
                    self.object(depth + 1)?;
                    items = 0;
                    len += 1;
                }
                // Past whitespace (a spaced body's items), told apart by their first byte.
                _ => {
                    self.ws();
                    match self.s().get(self.i) {
                        Some(b'"') => len += self.strings()?,
                        Some(b'{' | b'[') => {
                            self.value(depth)?;
                            items = 0;
                            len += 1;
                        }
                        _ => {
                            self.value(depth)?;
                            items &= ALL_SCALARS;
                            len += 1;
                        }
                    }
                }
            }
            // The separator or the close where a compact body has it, else past whitespace.
            match self.s().get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                Some(b']') => {}
                _ => {
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            continue;
                        }
                        b']' => {}
                        _ => return None,
                    }
                }
            }
            self.i += 1;
            self.close(at, start, len, items, Tok::Array);
            return Some(());
        }
    }

    /// An object's key and its colon. A compact body's plain key is read with its place in a
    /// register (as [`Parser::strings`] reads a run of strings); any other, as a value's string.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a str> {
        let s = self.s();
        let i = self.i;
        if s.get(i) == Some(&b'"') {
            let (end, _) = plain_run(s, i + 1);
            if s.get(end) == Some(&b'"') && s.get(end + 1) == Some(&b':') {
                let key = text_at(self.text, i + 1, end)?;
                self.i = end + 2;
                return Some(key);
            }
        }
        self.expect(b'"')?;
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// A run of an array's string items, each right after the comma after the last (a
    /// compact body's `terms` list), from the quote at `self.i`: their tokens, and how many.
    /// Stops past the run's last string. Each is read as [`Parser::string`] reads it; the
    /// place is kept in a register, not in the parser, while the strings are plain: storing
    /// and reloading it was about a third of each item's instructions (issue 10).
    #[inline(always)]
    fn strings(&mut self) -> Option<u32> {
        // The tape, taken out of the parser while the run is read (and put back however the
        // run ends): its length and room stay in registers, not stored back into the parser
        // after every item (goal 6 `terms` loop 1,249,544 -> 1,207,565 instructions).
        let mut toks = std::mem::replace(&mut self.toks, BumpVec::new_in(&self.arena.bump));
        let n = self.string_run(&mut toks);
        self.toks = toks;
        n
    }

    /// [`Parser::strings`] onto `toks`, the tape taken out of the parser.
    #[inline(always)]
    fn string_run(&mut self, toks: &mut BumpVec<'a, Tok<'a>>) -> Option<u32> {
        // The text from the quote on, walked as a `&str` cursor: `strip_prefix` and
        // `split_at_checked` move it past what the scan found, where slicing the body by
        // offsets (`text.get(start..end)`) checked both ends for a character boundary (goal 6
        // `terms` loop 1,305,537 -> 1,249,544 instructions). `after` is past an item's opening quote: the
        // next item's is found by the separator's one look at `,"` (`strip_prefix(",\"")`),
        // not looked at again (goal 6 `terms` loop 1,207,565 -> 1,123,576 instructions).
        let mut after = self.text.get(self.i..)?.strip_prefix('"')?;
        let mut rest;
        let mut n = 0;
        loop {
            let (end, quote) = plain_run(after.as_bytes(), 0);
            let text = if quote {
                let (text, tail) = after.split_at_checked(end)?;
                rest = tail.strip_prefix('"')?;
                text
            } else {
                // An escape or a control character (or the end).
                let start = self.text.len() - after.len();
                self.i = start + end;
                let text = self.string_rest(start)?;
                rest = self.text.get(self.i..)?;
                text
            };
            // `push`, written out: through the call the 200 KB `terms` parse took 4.7% more
            // instructions (1.196M -> 1.252M; measured, the compiler's reason not found).
            if toks.len() == toks.capacity() {
                // The parser's own push, its tape put back for it.
                std::mem::swap(&mut self.toks, toks);
                let pushed = self.grow_and_push(Tok::String(text));
                std::mem::swap(&mut self.toks, toks);
                pushed?;
            } else {
                toks.push(Tok::String(text));
            }
            n += 1;
            match rest.strip_prefix(",\"") {
                Some(next) => after = next,
                None => break,
            }
        }
        self.i = self.text.len() - rest.len();
        Some(n)
    }

    /// The rest of a string after its opening quote: borrowed from the body unless it holds
    /// an escape. Inlined: most strings end at the first special byte the first block holds.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.i;
        let (end, _) = plain_run(self.s(), start);
        if self.s().get(end) == Some(&b'"') {
            let s = text_at(self.text, start, end)?;
            self.i = end + 1;
            return Some(s);
        }
        self.i = end;
        self.string_rest(start)
    }

    /// `Parser::string` from the first escape or control character (or the end). Cold: rare in
    /// a body, and the paths past a plain string are then the likely ones to LLVM (which
    /// inlines less into paths it guesses rare).
    #[cold]
    fn string_rest(&mut self, start: usize) -> Option<&'a str> {
        loop {
            match *self.s().get(self.i)? {
                b'"' => {
                    let s = self.text.get(start..self.i)?;
                    self.i += 1;
                    return Some(s);
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        // Written back, the escapes are spelled as the writer spells them, not as here.
        self.bent_at = self.i;
        if !self.escapes_claimed {
            // Every escaped string from here is at most the rest of the body; twice that
            // covers their growth as they are built.
            self.held(self.arena.claim(2 * (self.s().len() - start)))?;
            self.escapes_claimed = true;
        }
        // Built in the arena: a string there owns no memory of its own ([`Arena`]).
        let mut out = BumpString::from_str_in(self.text.get(start..self.i)?, &self.arena.bump);
        loop {
            match *self.s().get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out.into_bump_str());
                }
                b'\\' => {
                    self.i += 1;
                    let c = match *self.s().get(self.i)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            continue;
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    out.push(c);
                }
                0..=0x1f => return None,
                _ => {
                    // Copy the run up to the next quote or escape in one go.
                    let run = self.i;
                    self.i = skip_plain(self.s(), self.i + 1);
                    out.push_str(self.text.get(run..self.i)?);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s().get(self.i..self.i + 4)?;
        let mut n = 0u32;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    /// After `\u`: one character, surrogates paired (a lone surrogate is refused, as
    /// serde_json refuses it in a string).
    fn unicode_escape(&mut self) -> Option<char> {
        let n = self.hex4()?;
        match n {
            0xDC00..=0xDFFF => None,
            0xD800..=0xDBFF => {
                if self.s().get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                char::from_u32(0x10000 + ((n - 0xD800) << 10) + (low - 0xDC00))
            }
            _ => char::from_u32(n),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, finite as an `f64`. Read with its
    /// place in a local, stored once at the end (each `peek` through the parser loaded and
    /// stored it again).
    fn number(&mut self) -> Option<&'a str> {
        let s = self.s();
        let start = self.i;
        let mut i = start;
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        match *s.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = skip_digits(s, i + 1),
            _ => return None,
        }
        let int_digits = i - int_start;
        let mut exponent = false;
        if s.get(i) == Some(&b'.') {
            i += 1;
            if !s.get(i)?.is_ascii_digit() {
                return None;
            }
            i = skip_digits(s, i + 1);
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            if !s.get(i)?.is_ascii_digit() {
                return None;
            }
            i = skip_digits(s, i + 1);
            exponent = true;
        }
        self.i = i;
        let text = text_at(self.text, start, i)?;
        // serde_json reads integers beyond i64/u64 and every fraction as an f64 and refuses
        // one that overflows. Without an exponent no number of at most 300 integer digits can
        // (f64::MAX is about 1.8e308): only the others are parsed, by serde_json's own parser
        // (not `str::parse::<f64>`: exact, it rounds numbers just below the overflow threshold
        // to f64::MAX where serde_json finds them out of range; review9).
        if (exponent || int_digits > 300) && text.parse::<Number>().is_err() {
            return None;
        }
        Some(text)
    }
}

/// The end (past the closing bracket) and number of items of the array opened at `s[start]`
/// when it is a [`Tok::Strings`] array: compact, each item a plain string (its text ends at
/// the first quote, backslash or control character, and that is a quote) followed by `,"` or
/// `]`. `None` for any other array (the parser then reads it item by item, as before).
///
/// Read 64 bytes at a time, not item by item (perf18): each item's end found by its own scan
/// made a chain of loads, each waiting on the last one's result (a pasted list of 14,000 ids
/// took a quarter of a 200 KB search's CPU). Here each chunk's quotes, commas, backslashes and
/// control characters are masks; which bytes are inside strings is their quotes' running
/// parity (a prefix XOR), carried from chunk to chunk with the last byte's kind. The array is
/// as `packed_items` (the tests' reference) reads it exactly when, up to its first byte
/// outside a string that is not a comma (the `]`): no backslash or control character; every
/// comma outside a string is followed by an opening quote; no closing quote is followed by an
/// opening one. Bytes past the body's end count as control characters (the last chunk is
/// padded with zeros).
///
/// A one-item list (a search's `["*"]`) is read alone: it would pay a whole chunk.
#[inline(always)]
fn packed(s: &[u8], start: usize) -> Option<(usize, u32)> {
    let (end, quote) = plain_run(s, start + 2);
    if !quote {
        return None;
    }
    if s.get(end + 1) == Some(&b']') {
        return Some((end + 2, 1));
    }
    packed_chunks(s, start + 1)
}

/// [`packed`] from the first item's opening quote at `s[at]`, a chunk at a time. Not inlined
/// into the parser: its loop was slower there.
///
/// A chunk's backslashes and control characters are first told apart from none at all
/// ([`block::scan64`]: one mask of the whole chunk), and their exact mask ([`block::masks64`])
/// is made only for a chunk that has one; the items are counted as the quotes up to the `]`,
/// halved (every item is an opening and a closing quote before it), the quotes of whole chunks
/// summed in vector lanes ([`block::Quotes`]), not counted chunk by chunk: x86-64's baseline has
/// no `popcnt`, and its software count and the specials' mask were a third of the loop
/// (session 21).
#[inline(never)]
fn packed_chunks(s: &[u8], mut at: usize) -> Option<(usize, u32)> {
    let mut quotes_before = block::Quotes::new();
    // The last chunk's last byte: inside a string (or its opening quote), a comma outside a
    // string, a closing quote (as bits 0 of the carries).
    let (mut inside, mut comma, mut closed) = (0u64, 0u64, 0u64);
    // The body's last bytes padded with zeros (the chunk that ends the loop, if it is short).
    let mut padded = [0u8; 64];
    loop {
        let chunk = match s.get(at..).and_then(<[u8]>::first_chunk::<64>) {
            Some(chunk) => chunk,
            None => {
                let rest = s.get(at..).filter(|r| !r.is_empty())?;
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        let scanned = block::scan64(chunk);
        let (quotes, commas) = (scanned.quotes, scanned.commas);
        let specials = match scanned.special {
            true => block::masks64(chunk).1,
            false => 0,
        };
        // Bit i: inside a string after byte i (an opening quote and the string's text).
        let strings = prefix_xor(quotes) ^ inside.wrapping_neg();
        let opening = quotes & strings;
        let closing = quotes & !strings;
        let outside = !quotes & !strings;
        // The first byte outside a string that is not a comma ends the array (it must be `]`).
        let ends = outside & !commas;
        let after_comma = (outside & commas) << 1 | comma;
        let after_close = closing << 1 | closed;
        let wrong = specials | (after_comma & !opening) | (after_close & opening);
        if ends == 0 {
            // The array goes on past this chunk: all of it is the array's.
            if wrong != 0 {
                return None;
            }
        } else {
            let t = ends.trailing_zeros();
            let upto = u64::MAX >> (63 - t);
            if wrong & upto != 0 {
                return None;
            }
            // The `]` is outside every string: the quotes before it are the items' pairs.
            let pairs = (quotes_before.total() + u64::from((quotes & upto).count_ones())) / 2;
            let end = at + t as usize;
            // At most half the body's length, which is below `u32::MAX` (`parse`).
            return (s.get(end) == Some(&b']')).then_some((end + 1, pairs as u32));
        }
        quotes_before.add(&scanned);
        inside = strings >> 63;
        comma = (outside & commas) >> 63;
        closed = closing >> 63;
        at += 64;
    }
}

/// Bit i of the result: the parity of the bits 0 to i of `x`.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// [`packed`] item by item: the reference its tests hold it to (perf17b's reading).
#[cfg(test)]
fn packed_items(s: &[u8], start: usize) -> Option<(usize, u32)> {
    // At the item's opening quote.
    let mut at = start + 1;
    let mut len = 0u32;
    loop {
        let (end, quote) = plain_run(s, at + 1);
        if !quote {
            return None;
        }
        len += 1;
        match s.get(end + 1..end + 3) {
            Some(b",\"") => at = end + 2,
            _ => return (s.get(end + 1) == Some(&b']')).then_some((end + 2, len)),
        }
    }
}

/// `text[from..to]` (`None` unless `from <= to` and both are in `text` on character
/// boundaries), as two one-ended `str::get`s: each is small enough for LLVM to inline where
/// the two-ended one (`Range<usize>`'s) became a call as the parser's functions grew.
#[inline(always)]
fn text_at(text: &str, from: usize, to: usize) -> Option<&str> {
    text.get(..to)?.get(from..)
}

/// One of 64 bits for `key`, from its length and its first and last bytes: equal keys have
/// the same bit, so a key whose bit no earlier key of its object has is not among them
/// ([`Parser::object`]). Any function of the key's text would do; this one reads two bytes.
#[inline(always)]
fn key_bit(key: &str) -> u64 {
    let b = key.as_bytes();
    let ends = match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => u32::from(first) | u32::from(last) << 8,
        _ => 0,
    };
    // Bodies are below 4 GiB (`parse`): the length fits.
    let h = (b.len() as u32 ^ ends << 5).wrapping_mul(0x9E37_79B9) >> 26;
    1 << h
}

/// Whether an object's keys are all different: the test of an object with more than
/// [`SCAN_KEYS`] keys, whose first ones were compared as they came.
#[cold]
fn distinct(keys: &[&str]) -> bool {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter().all(|key| seen.insert(*key))
}

/// The index of the first byte at or after `from` that is not an ASCII digit (or the end),
/// eight bytes at a time: epoch-millisecond timestamps, thirteen digits, are most of a
/// dashboard search's numbers (issue 10).
fn skip_digits(s: &[u8], mut from: usize) -> usize {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // A word read as an array (`first_chunk`), not copied out of a slice: the copy was a
    // call to `copy_from_slice`'s length check, per word.
    while let Some(&word) = s.get(from..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(word);
        // Every byte is 0x30..=0x3F, and stays below 0x40 with 6 added: 0x30..=0x39.
        if w & HIGH_NIBBLES != ZEROS || (w + 0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS {
            break;
        }
        from += 8;
    }
    while let Some(b'0'..=b'9') = s.get(from) {
        from += 1;
    }
    from
}

/// Whether `s` holds a byte a JSON string must escape (serde_json's escapes, as `write_str`
/// writes them): a quote, a backslash or a control character. The parser's string scan; the
/// audit log asks it of every string of a request line (issue 10).
pub fn needs_escape(s: &[u8]) -> bool {
    skip_plain(s, 0) < s.len()
}

/// The index of the first byte at or after `from` that is a quote, a backslash or a control
/// character (or the end), a block at a time ([`plain_run`]): string contents are most of a
/// body's bytes.
fn skip_plain(s: &[u8], from: usize) -> usize {
    plain_run(s, from).0
}

/// [`skip_plain`], and whether the byte found is a quote: told by the mask the scan already
/// holds, so a string's end is known without loading that byte again (a load that waited on
/// the scan's result was the parse's costliest stall, issue 10).
///
/// Sixteen bytes at a time with SSE2 (x86_64's baseline: always there), the last block
/// read as the text's last sixteen bytes with the ones already looked at shifted out. A
/// text shorter than a block is scanned in words ([`plain_run_words`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn plain_run(s: &[u8], mut from: usize) -> (usize, bool) {
    while let Some(block) = s.get(from..).and_then(<[u8]>::first_chunk::<16>) {
        let (special, quotes) = block::specials(block);
        if special != 0 {
            let at = special.trailing_zeros();
            return (from + at as usize, quotes >> at & 1 == 1);
        }
        from += 16;
    }
    let tail = s.len().saturating_sub(from);
    if tail == 0 {
        return (from, false);
    }
    match s.last_chunk::<16>() {
        Some(last) => {
            // The block's first `16 - tail` bytes are before `from`: shifted out.
            let (special, quotes) = block::specials(last);
            let (special, quotes) = (special >> (16 - tail), quotes >> (16 - tail));
            if special != 0 {
                let at = special.trailing_zeros();
                (from + at as usize, quotes >> at & 1 == 1)
            } else {
                (s.len(), false)
            }
        }
        None => plain_run_words(s, from),
    }
}

/// [`plain_run`] where there is no SSE2: eight bytes at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn plain_run(s: &[u8], from: usize) -> (usize, bool) {
    plain_run_words(s, from)
}

/// The quotes, backslashes and control characters of a 16-byte block, with SSE2 through
/// `safe_arch`: this crate forbids `unsafe`, and `core::arch`'s intrinsics are safe to call
/// only in a `#[target_feature]` function, itself unsafe to call from one without (SSE2 being
/// on for the whole build does not count). A plain loop over the block's bytes is not
/// vectorised into this: LLVM built its mask a byte at a time, and the 2 KB parse took 53k
/// instructions instead of 26.5k (issue 10, session 11).
#[cfg(target_arch = "x86_64")]
mod block {
    use safe_arch::{
        add_i8_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, min_u8_m128i,
        move_mask_i8_m128i, set_splat_i8_m128i, sub_i8_m128i, sub_saturating_u8_m128i,
        sum_of_u8_abs_diff_m128i, zeroed_m128i,
    };

    /// A bit per byte of `block` (bit `i` for byte `i`): set for each byte that is special
    /// (a quote, a backslash or below 0x20), and, in the second mask, for each quote.
    #[inline(always)]
    pub(super) fn specials(block: &[u8; 16]) -> (u32, u32) {
        let v = load_unaligned_m128i(block);
        let quotes = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8));
        let backslashes = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
        // Below 0x20: zero once 0x1f is taken away, saturating.
        let controls = cmp_eq_mask_i8_m128i(
            sub_saturating_u8_m128i(v, set_splat_i8_m128i(0x1f)),
            zeroed_m128i(),
        );
        let special = bitor_m128i(bitor_m128i(quotes, backslashes), controls);
        (
            move_mask_i8_m128i(special) as u32,
            move_mask_i8_m128i(quotes) as u32,
        )
    }

    /// What [`scan64`] tells of a chunk.
    pub(super) struct Scanned {
        /// A bit per quote (bit `i` for byte `i`).
        pub(super) quotes: u64,
        /// A bit per comma.
        pub(super) commas: u64,
        /// Whether the chunk holds a backslash or a control character ([`masks64`] says where).
        pub(super) special: bool,
        /// Minus the quotes of each byte position of the four blocks (-4 to 0 a lane).
        tally: m128i,
    }

    /// The quotes and commas of `chunk`, and whether it holds a backslash or a control
    /// character ([`super::packed_chunks`]): the bytes below 0x20 told by the chunk's least byte
    /// (`min_u8`), the backslashes by one mask of the four blocks.
    #[inline(always)]
    pub(super) fn scan64(chunk: &[u8; 64]) -> Scanned {
        let (quote, comma) = (
            set_splat_i8_m128i(b'"' as i8),
            set_splat_i8_m128i(b',' as i8),
        );
        let backslash = set_splat_i8_m128i(b'\\' as i8);
        let (mut quotes, mut commas) = (0u64, 0u64);
        let mut tally = zeroed_m128i();
        let mut backslashes = zeroed_m128i();
        let mut least = set_splat_i8_m128i(-1);
        for (i, block) in chunk.chunks_exact(16).enumerate() {
            let block: &[u8; 16] = block.try_into().expect("sixteen bytes");
            let v = load_unaligned_m128i(block);
            let q = cmp_eq_mask_i8_m128i(v, quote);
            tally = add_i8_m128i(tally, q);
            backslashes = bitor_m128i(backslashes, cmp_eq_mask_i8_m128i(v, backslash));
            least = min_u8_m128i(least, v);
            let shift = 16 * i;
            quotes |= (move_mask_i8_m128i(q) as u32 as u64) << shift;
            commas |= (move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, comma)) as u32 as u64) << shift;
        }
        // Below 0x20: zero once 0x1f is taken away, saturating.
        let controls = cmp_eq_mask_i8_m128i(
            sub_saturating_u8_m128i(least, set_splat_i8_m128i(0x1f)),
            zeroed_m128i(),
        );
        Scanned {
            quotes,
            commas,
            special: move_mask_i8_m128i(bitor_m128i(backslashes, controls)) != 0,
            tally,
        }
    }

    /// Quotes of whole chunks counted in the lanes of a vector (a byte each, up to 63 chunks
    /// of four), summed into `total` before a lane could overflow.
    pub(super) struct Quotes {
        lanes: m128i,
        chunks: u32,
        total: u64,
    }

    impl Quotes {
        /// `new`, `fold` and `total` always inlined: with `fold` a call (as the build's code
        /// units happened to fall, session 24) [`super::packed_chunks`] kept the lanes and its
        /// loop's constants in memory, not in registers, four instructions more a chunk (the
        /// 200 KB `terms` parse +2%).
        #[inline(always)]
        pub(super) fn new() -> Quotes {
            Quotes {
                lanes: zeroed_m128i(),
                chunks: 0,
                total: 0,
            }
        }

        /// Counts the quotes of `chunk` (a [`scan64`]).
        #[inline(always)]
        pub(super) fn add(&mut self, chunk: &Scanned) {
            self.lanes = sub_i8_m128i(self.lanes, chunk.tally);
            self.chunks += 1;
            if self.chunks == 63 {
                self.fold();
            }
        }

        #[inline(always)]
        fn fold(&mut self) {
            let [low, high]: [u64; 2] = sum_of_u8_abs_diff_m128i(self.lanes, zeroed_m128i()).into();
            self.total += low + high;
            self.lanes = zeroed_m128i();
            self.chunks = 0;
        }

        /// The quotes of every chunk added.
        #[inline(always)]
        pub(super) fn total(&mut self) -> u64 {
            self.fold();
            self.total
        }
    }

    /// A bit per byte of `chunk` (bit `i` for byte `i`) for each quote, each backslash or
    /// control character, and each comma ([`super::packed`]).
    #[inline(always)]
    pub(super) fn masks64(chunk: &[u8; 64]) -> (u64, u64, u64) {
        let (mut quotes, mut specials, mut commas) = (0u64, 0u64, 0u64);
        for (i, block) in chunk.chunks_exact(16).enumerate() {
            let block: &[u8; 16] = block.try_into().expect("sixteen bytes");
            let v = load_unaligned_m128i(block);
            let q = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8));
            let b = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
            let c = cmp_eq_mask_i8_m128i(
                sub_saturating_u8_m128i(v, set_splat_i8_m128i(0x1f)),
                zeroed_m128i(),
            );
            let comma = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b',' as i8));
            let shift = 16 * i;
            quotes |= (move_mask_i8_m128i(q) as u32 as u64) << shift;
            specials |= (move_mask_i8_m128i(bitor_m128i(b, c)) as u32 as u64) << shift;
            commas |= (move_mask_i8_m128i(comma) as u32 as u64) << shift;
        }
        (quotes, specials, commas)
    }
}

/// [`packed`]'s masks where there is no SSE2, a byte at a time (compiled in tests too, where
/// `masks64_match_the_bytes` holds the SSE2 masks to it).
#[cfg(any(test, not(target_arch = "x86_64")))]
mod bytes {
    pub(super) fn masks64(chunk: &[u8; 64]) -> (u64, u64, u64) {
        let (mut quotes, mut specials, mut commas) = (0u64, 0u64, 0u64);
        for (i, &b) in chunk.iter().enumerate() {
            quotes |= u64::from(b == b'"') << i;
            specials |= u64::from(b == b'\\' || b < 0x20) << i;
            commas |= u64::from(b == b',') << i;
        }
        (quotes, specials, commas)
    }

    /// [`super::block::Scanned`], a byte at a time.
    pub(super) struct Scanned {
        pub(super) quotes: u64,
        pub(super) commas: u64,
        pub(super) special: bool,
    }

    pub(super) fn scan64(chunk: &[u8; 64]) -> Scanned {
        let (quotes, specials, commas) = masks64(chunk);
        Scanned {
            quotes,
            commas,
            special: specials != 0,
        }
    }

    /// [`super::block::Quotes`], a chunk's quotes counted as it is added.
    pub(super) struct Quotes {
        total: u64,
    }

    impl Quotes {
        pub(super) fn new() -> Quotes {
            Quotes { total: 0 }
        }

        pub(super) fn add(&mut self, chunk: &Scanned) {
            self.total += u64::from(chunk.quotes.count_ones());
        }

        pub(super) fn total(&mut self) -> u64 {
            self.total
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod block {
    pub(super) use super::bytes::{masks64, scan64, Quotes};
}

/// [`plain_run`] eight bytes at a time, in a word (SWAR): the scan where there is no SSE2, and
/// of texts shorter than its block.
#[inline(always)]
fn plain_run_words(s: &[u8], mut from: usize) -> (usize, bool) {
    while let Some(&word) = s.get(from..).and_then(<[u8]>::first_chunk::<8>) {
        if let Some((at, quote)) = first_special(u64::from_le_bytes(word)) {
            return (from + at, quote);
        }
        from += 8;
    }
    let tail = s.len().saturating_sub(from);
    if tail > 0 {
        // Zeros above the tail count as specials (control characters) at `tail` and up.
        return match first_special(tail_word(s, from)) {
            Some((at, quote)) if at < tail => (from + at, quote),
            _ => (from + tail, false),
        };
    }
    (from, false)
}

/// The bytes of `s` from `from` to its end (one to seven of them) in the low bytes of a
/// little-endian word, zeros above: zero bytes count as control characters, so a scan of the
/// word stops at the end at the latest. Read as the last eight bytes shifted when there are
/// eight.
fn tail_word(s: &[u8], from: usize) -> u64 {
    let tail = s.len() - from;
    if let Some(&word) = s.last_chunk::<8>() {
        u64::from_le_bytes(word) >> (8 * (8 - tail))
    } else {
        s[from..]
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b))
    }
}

/// The position of the first quote, backslash or control character in a little-endian word,
/// and whether it is a quote.
#[inline(always)]
fn first_special(w: u64) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` that is zero. Above the lowest such byte a borrow can
    // mark others too, but the lowest mark is always exact, and only it is used.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quotes = zero(w ^ (ONES * u64::from(b'"')));
    let special =
        quotes | zero(w ^ (ONES * u64::from(b'\\'))) | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
    // The lowest mark of `special` is the lowest of the quotes' or of the others', each
    // exact; a quote mark there is a quote, since the quotes' inexact marks are all above
    // their lowest exact one.
    (special != 0).then(|| {
        let bit = special.trailing_zeros();
        ((bit / 8) as usize, quotes >> bit & 1 == 1)
    })
}

/// Writes `node` as compact JSON (serde_json's string escapes; numbers as their text). A
/// parsed container that kept its source text is copied: the same bytes, but for the JSON
/// whitespace between tokens a spaced body's text holds (see the module doc).
pub fn write(node: &Node<'_>, out: &mut Vec<u8>) {
    #[cfg(test)]
    if tests::SPANS_OFF.with(std::cell::Cell::get) {
        return write_node::<false, _>(node, out, &mut Verbatim);
    }
    write_node::<true, _>(node, out, &mut Verbatim);
}

/// [`write()`] for a tree built from a parse of `source` (a request's body): a built object's
/// entries that are still as they stand in `source`, `"key":value` (the value's own text may
/// be spaced), are copied from it, a run of
/// entries that stand there side by side in one copy (issue 10, goal 6: a search's rewritten
/// top level was written key by key, each key through `write_str`). Only the outermost
/// object is written so (the one a rewrite opens); below it, as [`write()`]. The same bytes as
/// [`write()`] for any `source` (`source_text_writes_as_the_writer`).
pub fn write_from(node: &Node<'_>, source: &[u8], out: &mut Vec<u8>) {
    #[cfg(test)]
    if tests::SPANS_OFF.with(std::cell::Cell::get) {
        return write_node::<false, _>(node, out, &mut Verbatim);
    }
    write_from_with(node, source, out, &mut Verbatim);
}

/// [`write_from`] that leaves out of `out` every text of `source` of `min` bytes or more it
/// would copy (a parsed container's source text, a run of the top level's entries), and
/// returns where each goes instead (session 20: the 200 KB `terms` search's copy of the
/// client's `query` was 6.6% of its request and a second fresh 200 KB buffer). `out` with each
/// span's `source[from..from + len]` put back at its `at` (in order: [`ForwardBody::joined`])
/// is byte for byte what [`write_from`] writes (`spans_join_to_the_writer`): a span is only
/// ever a text [`write_from`] copies whole, which [`parse`] validated strictly.
///
/// [`ForwardBody::joined`]: crate::ForwardBody::joined
pub fn write_from_spans(
    node: &Node<'_>,
    source: &[u8],
    min: usize,
    out: &mut Vec<u8>,
) -> Vec<crate::SourceSpan> {
    let mut spans = Spans {
        source,
        min: min.max(1),
        spans: Vec::new(),
    };
    #[cfg(test)]
    if tests::SPANS_OFF.with(std::cell::Cell::get) {
        write_node::<false, _>(node, out, &mut spans);
        return spans.spans;
    }
    write_from_with(node, source, out, &mut spans);
    spans.spans
}

/// How the writer puts a text it copies whole into its output.
trait Copies {
    fn copy(&mut self, text: &[u8], out: &mut Vec<u8>);
}

/// Copied into the output ([`write()`], [`write_from`]).
struct Verbatim;

impl Copies for Verbatim {
    #[inline(always)]
    fn copy(&mut self, text: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(text);
    }
}

/// A text of the source of `min` bytes or more left out of the output and noted as a span
/// ([`write_from_spans`]); any other text copied.
struct Spans<'s> {
    source: &'s [u8],
    min: usize,
    spans: Vec<crate::SourceSpan>,
}

impl Copies for Spans<'_> {
    fn copy(&mut self, text: &[u8], out: &mut Vec<u8>) {
        if text.len() >= self.min {
            let from = (text.as_ptr() as usize).checked_sub(self.source.as_ptr() as usize);
            // Only a text that is a part of the source (a parsed container's text is; a
            // shared one, the token's clauses, is not).
            if let Some(from) = from.filter(|f| {
                f.checked_add(text.len())
                    .is_some_and(|end| end <= self.source.len())
            }) {
                self.spans.push(crate::SourceSpan {
                    at: out.len(),
                    from,
                    len: text.len(),
                });
                return;
            }
        }
        out.extend_from_slice(text);
    }
}

/// [`write_from`], its source texts put into `out` by `c`.
fn write_from_with<C: Copies>(node: &Node<'_>, source: &[u8], out: &mut Vec<u8>, c: &mut C) {
    let Node::Object(entries) = node else {
        return write_node::<true, C>(node, out, c);
    };
    out.push(b'{');
    // The run of source text not yet copied, and whether anything is written before it.
    let mut run: Option<(usize, usize)> = None;
    let mut written = false;
    for (k, v) in entries.iter() {
        let at = entry_source(source, k, v);
        if let (Some((start, end)), Some((from, to))) = (at, run) {
            // Next to the run in the source, past its comma (and the whitespace around it in
            // a spaced body): the run goes on.
            if (start == to + 1 && source.get(to) == Some(&b',')) || spaced_comma(source, to, start)
            {
                run = Some((from, end));
                continue;
            }
        }
        if let Some((from, to)) = run.take() {
            if written {
                out.push(b',');
            }
            c.copy(source.get(from..to).unwrap_or_default(), out);
            written = true;
        }
        if at.is_some() {
            run = at;
            continue;
        }
        if written {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_item::<true, C>(v, out, c);
        written = true;
    }
    if let Some((from, to)) = run {
        if written {
            out.push(b',');
        }
        c.copy(source.get(from..to).unwrap_or_default(), out);
    }
    out.push(b'}');
}

/// Whether `source[to..start]` is a comma with JSON whitespace around it (an object's
/// separator in a spaced body, `, `): two entries of one object side by side. Apart: a compact
/// body's entries are told by one look (`,` alone). Reads only up to the first byte that is
/// neither: a compact body's run is broken where a rewritten entry stood, and a check that read
/// all the text between (a split at commas) cost the compact 2 KB search's write 280
/// instructions.
#[cold]
#[inline(never)]
fn spaced_comma(source: &[u8], to: usize, start: usize) -> bool {
    let ws = |i: usize| matches!(source.get(i), Some(b' ' | b'\t' | b'\n' | b'\r'));
    if start <= to {
        return false;
    }
    let mut i = to;
    while ws(i) {
        i += 1;
    }
    if source.get(i) != Some(&b',') {
        return false;
    }
    i += 1;
    while i < start && ws(i) {
        i += 1;
    }
    i == start
}

/// Where the entry `key: value` stands in `source` as [`write()`] writes it (`"key":` and the
/// value) but for JSON whitespace between the colon and the value (a spaced body's `": "`,
/// session 29): `source[start..end]`. `None` when it does not, or cannot
/// be told to. A key or value stands in `source` when its text is borrowed from it (the
/// parser borrows a string from the body only when it has no escape, and always the whole
/// string between its quotes: such a string is written as its quotes around it); a scalar's
/// place is known from its text's, `true`, `false` and `null` are compared; a parsed
/// container's source text is what [`write()`] copies for it.
#[inline]
fn entry_source(source: &[u8], key: &str, value: &Node<'_>) -> Option<(usize, usize)> {
    let start = place(source, key.as_bytes())?.checked_sub(1)?;
    // The value's first byte in a compact body.
    let v = start + key.len() + 3;
    if source.get(start) != Some(&b'"') || source.get(v - 2..v) != Some(b"\":") {
        return None;
    }
    let end = match value_end(source, v, value) {
        Some(end) => end,
        None => spaced_value_end(source, v, value)?,
    };
    (end <= source.len()).then_some((start, end))
}

/// The place in `source` of a text that is a part of it.
#[inline(always)]
fn place(source: &[u8], text: &[u8]) -> Option<usize> {
    let at = (text.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
    (at < source.len()).then_some(at)
}

/// Where `value` ends in `source` when it starts at `v` ([`entry_source`]).
#[inline(always)]
fn value_end(source: &[u8], v: usize, value: &Node<'_>) -> Option<usize> {
    match value {
        Node::Parsed(p) => {
            let raw = p.raw()?;
            (place(source, raw)? == v).then_some(v + raw.len())
        }
        Node::Number(Cow::Borrowed(text)) => {
            (place(source, text.as_bytes())? == v).then_some(v + text.len())
        }
        Node::String(Cow::Borrowed(s)) => {
            let end = v + s.len() + 2;
            let quoted = place(source, s.as_bytes())? == v + 1
                && source.get(v) == Some(&b'"')
                && source.get(end - 1) == Some(&b'"');
            quoted.then_some(end)
        }
        Node::Bool(b) => {
            let text: &[u8] = if *b { b"true" } else { b"false" };
            (source.get(v..v + text.len()) == Some(text)).then_some(v + text.len())
        }
        Node::Null => (source.get(v..v + 4) == Some(b"null")).then_some(v + 4),
        _ => None,
    }
}

/// [`value_end`] past the JSON whitespace at `v` (a spaced body's `": "`, session 29); `None`
/// when there is none. Apart: a compact body's entries are found without it.
#[cold]
#[inline(never)]
fn spaced_value_end(source: &[u8], mut v: usize, value: &Node<'_>) -> Option<usize> {
    let from = v;
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = source.get(v) {
        v += 1;
    }
    if v == from {
        return None;
    }
    value_end(source, v, value)
}

/// [`write()`]; with `SPANS` false, every container written item by item (the tests' reference:
/// the two must agree on every tree [`parse`] builds).
fn write_node<const SPANS: bool, C: Copies>(node: &Node<'_>, out: &mut Vec<u8>, c: &mut C) {
    match node {
        Node::Array(items) => {
            if let (true, Items::Shared(_, text @ [_, ..])) = (SPANS, &items.items) {
                return out.extend_from_slice(text);
            }
            out.push(b'[');
            if let Some((first, rest)) = items.split_first() {
                write_item::<SPANS, C>(first, out, c);
                for item in rest {
                    out.push(b',');
                    write_item::<SPANS, C>(item, out, c);
                }
            }
            out.push(b']');
        }
        Node::Object(entries) => {
            out.push(b'{');
            if let Some(((k, v), rest)) = entries.split_first() {
                write_str(k, out);
                out.push(b':');
                write_item::<SPANS, C>(v, out, c);
                for (k, v) in rest {
                    out.push(b',');
                    write_str(k, out);
                    out.push(b':');
                    write_item::<SPANS, C>(v, out, c);
                }
            }
            out.push(b'}');
        }
        Node::Parsed(p) => write_parsed::<SPANS, C>(*p, out, c),
        leaf => write_item::<SPANS, C>(leaf, out, c),
    }
}

/// One value inside a container: a leaf written in place, a container by [`write_node`] (no
/// recursive call per string of a long array).
#[inline(always)]
fn write_item<const SPANS: bool, C: Copies>(node: &Node<'_>, out: &mut Vec<u8>, c: &mut C) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Number(text) => out.extend_from_slice(text.as_bytes()),
        Node::String(s) => write_str(s, out),
        Node::Array(_) | Node::Object(_) | Node::Parsed(_) => write_node::<SPANS, C>(node, out, c),
    }
}

/// A parsed value: its source text when it kept one (and `SPANS`), else item by item.
fn write_parsed<const SPANS: bool, C: Copies>(p: Parsed<'_>, out: &mut Vec<u8>, c: &mut C) {
    if let (true, Some(raw)) = (SPANS, p.raw()) {
        return c.copy(raw, out);
    }
    match p.toks.head() {
        Tok::Array(_) => {
            out.push(b'[');
            let mut items = p.toks.items();
            let mut n = 0;
            while let Some((_, value)) = items.step() {
                if n > 0 {
                    out.push(b',');
                }
                write_parsed_item::<SPANS, C>(p.at(value), out, c);
                n += 1;
            }
            out.push(b']');
        }
        // Its source text above, unless `SPANS` is off (the tests' reference).
        Tok::Strings(..) => {
            out.push(b'[');
            for (n, item) in p.items().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_item::<SPANS, C>(&item, out, c);
            }
            out.push(b']');
        }
        Tok::Object(_) => {
            out.push(b'{');
            for (n, (k, v)) in p.entries().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_parsed_item::<SPANS, C>(v, out, c);
            }
            out.push(b'}');
        }
        _ => write_parsed_item::<SPANS, C>(p, out, c),
    }
}

/// [`write_item`] for a parsed value.
#[inline(always)]
fn write_parsed_item<const SPANS: bool, C: Copies>(p: Parsed<'_>, out: &mut Vec<u8>, c: &mut C) {
    match p.toks.head() {
        Tok::Null => out.extend_from_slice(b"null"),
        Tok::Bool(true) => out.extend_from_slice(b"true"),
        Tok::Bool(false) => out.extend_from_slice(b"false"),
        Tok::Number(text) => out.extend_from_slice(text.as_bytes()),
        Tok::String(s) => write_str(s, out),
        Tok::Array(_) | Tok::Object(_) | Tok::Strings(..) => write_parsed::<SPANS, C>(p, out, c),
    }
}

/// A JSON string as serde_json writes it: `"`, `\` and control characters escaped, nothing
/// else.
///
/// Checked and copied eight bytes at a time, the last word too (the string's last eight bytes
/// shifted, written whole and the surplus truncated): a fixed-size copy is a single store
/// where a short `memcpy` call, with the separate scan before it, cost twice the whole of this
/// for the typical key or value of ten-odd bytes.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.push(b'"');
    // Four to seven bytes (most keys a search's rewrite writes: `size`, `query`, `filter`):
    // the first four and the last four, overlapping, checked in one word and written as two
    // four-byte stores, the second over the first's surplus (the word loop's tail is built a
    // byte at a time; issue 10).
    if let (Some(head), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        if bytes.len() < 8 {
            let word =
                u64::from(u32::from_le_bytes(*head)) | u64::from(u32::from_le_bytes(*last)) << 32;
            if first_special(word).is_some() {
                return write_escaped(bytes, 0, out);
            }
            let start = out.len();
            out.extend_from_slice(head);
            out.truncate(start + bytes.len() - 4);
            out.extend_from_slice(last);
            out.push(b'"');
            return;
        }
    }
    // Eight to sixteen bytes (`track_total_hits`): the same with the first and last eight.
    if let (Some(head), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        if bytes.len() <= 16 {
            if first_special(u64::from_le_bytes(*head)).is_some()
                || first_special(u64::from_le_bytes(*last)).is_some()
            {
                return write_escaped(bytes, 0, out);
            }
            let start = out.len();
            out.extend_from_slice(head);
            out.truncate(start + bytes.len() - 8);
            out.extend_from_slice(last);
            out.push(b'"');
            return;
        }
    }
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if first_special(u64::from_le_bytes(word)).is_some() {
            return write_escaped(bytes, at, out);
        }
        out.extend_from_slice(&word);
        at += 8;
    }
    let tail = bytes.len() - at;
    if tail > 0 {
        // Zeros above the tail count as specials at positions `tail` and up: only a lower
        // one is in the string.
        let w = tail_word(bytes, at);
        if first_special(w).is_some_and(|(p, _)| p < tail) {
            return write_escaped(bytes, at, out);
        }
        let end = out.len() + tail;
        out.extend_from_slice(&w.to_le_bytes());
        out.truncate(end);
    }
    out.push(b'"');
}

/// The rest of [`write_str`] from `from` (everything before it written, and plain) when the
/// string holds a byte to escape, and the closing quote.
fn write_escaped(bytes: &[u8], from: usize, out: &mut Vec<u8>) {
    let mut run = from;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
pub(crate) mod tests;

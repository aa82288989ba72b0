//! A borrowed strict JSON tree for request bodies (issue 10, goal 6): the same strictness as
//! [`body::parse_strict`](super::body::parse_strict) without serde_json's owned tree.
//!
//! Objects are slices of entries in body order (linear `get`: search-body objects have a few
//! keys), strings borrow the body when they hold no escape, numbers are kept as their source
//! text (checked against JSON's grammar and serde_json's range). Parsing into serde_json's
//! `preserve_order` tree cost a `String` and a SipHash insert per key and two allocations per
//! object: about 55% of a 2 KB search's request path, serialising and dropping it another 25%.
//!
//! Cheaper still (issue 10 goal 6, measured in instructions): an array's items and an object's
//! entries are pushed on one of the parser's two stacks and moved into the parse's [`Arena`]
//! when the container closes (their exact number, no doubling); an array past 64 items is
//! collected in the arena directly, in room estimated from the rest of the body (a
//! 14,000-value `terms` list is neither copied off the stack nor regrown). The arena is one
//! allocation for a typical body and one free for the whole tree, where each container was a
//! `Vec` of its own and the drop walked every node: the 200 KB `terms` search's request path
//! went from 3.76M instructions to 2.78M, the 2 KB Kibana search's from 90.1k to 87.2k.
//! Escaped strings are unescaped into the arena too, so everything in it borrows what it
//! holds ([`Arena`] says why it must); a number
//! without exponent and with at most 300 integer digits is known to be in range without
//! parsing it; [`write()`] checks and copies strings a word at a time (a fixed-size copy
//! instead of a scan followed by a `memcpy` call per string); a container's leaves, and a
//! string's plain path, are parsed and written in place, not by a call each (a call per value
//! of a 14,000-string array was a tenth of its cost).
//!
//! Cheaper again: a container whose source is already exactly what [`write()`] writes
//! (compact, no escape) keeps its source bytes and is written by copying them; changing one
//! drops them ([`Container`] says how the types enforce it). Dashboard bodies are compact and
//! mostly pass through unchanged: writing a 2 KB Kibana search went from 22k instructions to
//! 3k, a 200 KB `terms` search's whole request path from 5.4M to 3.8M.
//!
//! Invariant: [`parse`] accepts exactly the bodies `parse_strict` accepts (UTF-8 without BOM,
//! no comments, no duplicate keys at any depth, depth at most [`MAX_DEPTH`], nothing after the
//! value) and refuses the others with `parse_strict`'s own reason (the refusal path runs
//! `parse_strict`: refusals are rare and their messages stay one implementation's). [`write()`]
//! escapes strings as serde_json does; a tree written and read back by serde_json equals the
//! `Value` `parse_strict` builds from the same body. A container's kept source bytes are byte
//! for byte what the writer writes for it item by item (the tests compare the two on every
//! tree they parse, and the request path's forwarded bodies both ways). Nothing in the arena
//! owns memory, since the arena runs no destructors ([`Arena`]; `tests/tree_arena.rs` counts
//! the heap around parses, changes and drops).

use std::borrow::Cow;
use std::collections::HashSet;

use bumpalo::collections::{String as BumpString, Vec as BumpVec};
use bumpalo::Bump;
use serde_json::{Map, Number, Value};

use super::body::{parse_strict, MAX_DEPTH};
use crate::Rejection;

/// One JSON value borrowing from the body it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// A number as its source text (valid JSON grammar, finite as an `f64`).
    Number(Cow<'a, str>),
    String(Cow<'a, str>),
    Array(Container<'a, Node<'a>>),
    /// Entries in body order, keys unique.
    Object(Container<'a, (Cow<'a, str>, Node<'a>)>),
}

/// An object's entries or an array's items, and the container's source text when [`write()`]
/// may copy that text instead of writing the items one by one.
///
/// The text (`raw`) is kept by [`parse`] only for a container whose source is exactly what the
/// writer would produce for it: no whitespace between its tokens and no escape in any of its
/// strings or keys (numbers and literals are written as their source text, plain strings
/// too). Copying it is therefore byte for byte the writer's output: the backend still receives
/// esgate's own canonical serialisation (issue 10, goal 6: most of a dashboard's body passes
/// through unchanged, and writing it was a fifth of the request path).
///
/// The text must never outlive a change. The fields are private: the items are read through
/// `Deref<Target = [T]>`, and the only mutable access, [`Container::make_mut`], drops the
/// text. A `&mut` to any node inside a container can only be had through its container's
/// `make_mut`, so every container above a change has lost its text; a container built from a
/// `Vec` has none. An unchanged subtree moved elsewhere keeps its text, which is still its own.
///
/// Equality compares the items only.
///
/// ```compile_fail,E0596
/// // No mutable access through `Deref`: only `make_mut`, which drops the source text.
/// let mut c = esgate_es::request::tree::Container::<u8>::from(vec![1]);
/// c.iter_mut().for_each(|b| *b = 2);
/// ```
#[derive(Clone)]
pub struct Container<'a, T> {
    items: Items<'a, T>,
    raw: Option<&'a [u8]>,
}

/// Where a container's items live: in the parse's [`Arena`] (never dropped one by one: see
/// [`Arena`] for why nothing there owns memory), in a `Vec` of their own (built, or changed
/// through [`Container::make_mut`]), or in something that outlives the tree and owns them
/// ([`Container::shared`]: the token's filter clauses).
#[derive(Clone)]
enum Items<'a, T> {
    Parsed(&'a [T]),
    Built(Vec<T>),
    Shared(&'a [T]),
}

impl<'a, T> Container<'a, T> {
    /// The container's source text, when [`write()`] copies it (see the type's doc).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }

    /// A container of items that outlive the tree, as they are: no copy, no source text (the
    /// token's filter clauses, put in every search of the token: issue 10, their copy was six
    /// allocations a search). [`Container::make_mut`] copies them out like parsed ones.
    pub fn shared(items: &'a [T]) -> Self {
        Container {
            items: Items::Shared(items),
            raw: None,
        }
    }
}

impl<'a, T: Clone> Container<'a, T> {
    /// The items, to change: the source text is dropped (it no longer describes them). A
    /// parsed container's items are first copied out of the arena into a `Vec` (shallow
    /// copies: a parsed item borrows all it holds).
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        self.raw = None;
        if let Items::Parsed(items) | Items::Shared(items) = self.items {
            self.items = Items::Built(items.to_vec());
        }
        match &mut self.items {
            Items::Built(items) => items,
            Items::Parsed(_) | Items::Shared(_) => {
                unreachable!("a parsed or shared container was just copied out")
            }
        }
    }

    /// The items, to build something else from them.
    pub fn into_vec(self) -> Vec<T> {
        match self.items {
            Items::Parsed(items) | Items::Shared(items) => items.to_vec(),
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
    /// A built container: no source text.
    fn from(items: Vec<T>) -> Self {
        Container {
            items: Items::Built(items),
            raw: None,
        }
    }
}

impl<T> std::ops::Deref for Container<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.items {
            Items::Parsed(items) | Items::Shared(items) => items,
            Items::Built(items) => items,
        }
    }
}

impl<T> Default for Container<'_, T> {
    /// Empty, no source text.
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Container<'_, T> {
    /// The items, as the `Vec` they were before containers kept their source text (debug
    /// output of trees, and of the `FilterSet` holding the token's clauses, is unchanged).
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

impl<'a> Node<'a> {
    /// A built object (no source text).
    pub fn object(entries: Vec<(Cow<'a, str>, Node<'a>)>) -> Node<'a> {
        Node::Object(entries.into())
    }

    /// A built array (no source text).
    pub fn array(items: Vec<Node<'a>>) -> Node<'a> {
        Node::Array(items.into())
    }

    /// The value under `key` of an object (linear: search-body objects are small).
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
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

    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Node<'a>)]> {
        match self {
            Node::Object(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node<'a>]> {
        match self {
            Node::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The same value as serde_json's tree (numbers read by serde_json from their text).
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(text) => serde_json::from_str::<Number>(text)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
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
            // The same items: the same source text, if any. Parsed items borrow all they
            // hold already, shared ones outlive the tree: the same slice.
            Node::Array(items) => Node::Array(Container {
                items: match &items.items {
                    Items::Parsed(parsed) => Items::Parsed(parsed),
                    Items::Shared(shared) => Items::Shared(shared),
                    Items::Built(built) => Items::Built(built.iter().map(Node::reborrow).collect()),
                },
                raw: items.raw,
            }),
            Node::Object(entries) => Node::Object(Container {
                items: match &entries.items {
                    Items::Parsed(parsed) => Items::Parsed(parsed),
                    Items::Shared(shared) => Items::Shared(shared),
                    Items::Built(built) => Items::Built(
                        built
                            .iter()
                            .map(|(k, v)| (Cow::Borrowed(&**k), v.reborrow()))
                            .collect(),
                    ),
                },
                raw: entries.raw,
            }),
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

/// The memory one or more parses keep their containers' items and escaped strings in (issue
/// 10, goal 6): one allocation for a typical body (the first chunk is sized from the body's
/// length), and one free when the arena is dropped, however many containers the tree holds.
///
/// Nothing is ever dropped in the arena: what is put there must own no memory, or the memory
/// would leak. Only [`parse`] writes in it (the field is private), and it puts there only
/// parsed items, which borrow all they hold: strings from the body or from the arena,
/// containers from the arena (`Parser::store`, checked in debug builds). A container changed
/// through [`Container::make_mut`] moves its items out to a `Vec` of their own, dropped as
/// usual. `tests/tree_arena.rs` counts the heap to hold it.
pub struct Arena {
    bump: Bump,
}

impl Arena {
    /// An arena whose first chunk holds the tree of a search body of `len` bytes (a 2 KB
    /// Kibana search's tree is about four times its length); more chunks are added as needed.
    pub fn for_body(len: usize) -> Arena {
        Arena {
            bump: Bump::with_capacity(len.min(MAX_FIRST_CHUNK / ARENA_PER_BYTE) * ARENA_PER_BYTE),
        }
    }
}

impl Default for Arena {
    /// An empty arena: its first chunk is allocated by the first parse that needs one.
    fn default() -> Self {
        Arena { bump: Bump::new() }
    }
}

/// Arena bytes allocated up front per body byte ([`Arena::for_body`]): a 2 KB Kibana search's
/// tree takes 8.6 KB (4.2 bytes per body byte), the median of the bodies of `tests/data` 2.1.
const ARENA_PER_BYTE: usize = 5;

/// The largest first chunk: a larger body's arena grows in more chunks as it is used (a body
/// mostly made of one long string needs little).
const MAX_FIRST_CHUNK: usize = 4 << 20;

/// Parses one JSON body strictly (see the module invariant), its containers in `arena`.
pub fn parse<'a>(bytes: &'a [u8], arena: &'a Arena) -> Result<Node<'a>, Rejection> {
    let parsed = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        None
    } else {
        std::str::from_utf8(bytes).ok().and_then(|text| {
            let small = bytes.len() <= SMALL_BODY;
            let mut p = Parser {
                arena: &arena.bump,
                s: text.as_bytes(),
                text,
                i: 0,
                bent_at: 0,
                items: Vec::with_capacity(if small { SMALL_ITEMS } else { STACK }),
                entries: Vec::with_capacity(if small { SMALL_ENTRIES } else { STACK }),
            };
            let v = p.value(0)?;
            p.ws();
            (p.i == p.s.len()).then_some(v)
        })
    };
    parsed.ok_or_else(|| refusal(bytes))
}

/// What the parser puts in the arena, which never drops it: values that own no memory
/// ([`Arena`]). A parsed node's containers are in the arena already (checked when they were
/// stored), so one level is enough.
trait Borrowed {
    fn borrowed(&self) -> bool;
}

impl Borrowed for Node<'_> {
    fn borrowed(&self) -> bool {
        match self {
            Node::Null | Node::Bool(_) => true,
            Node::Number(text) | Node::String(text) => matches!(text, Cow::Borrowed(_)),
            Node::Array(items) => matches!(items.items, Items::Parsed(_)),
            Node::Object(entries) => matches!(entries.items, Items::Parsed(_)),
        }
    }
}

impl Borrowed for (Cow<'_, str>, Node<'_>) {
    fn borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_)) && self.1.borrowed()
    }
}

/// `parse_strict`'s reason for a body [`parse`] refused.
fn refusal(bytes: &[u8]) -> Rejection {
    match parse_strict(bytes) {
        Err(e) => e,
        // Never: both accept the same bodies (the differential tests hold them to it).
        Ok(_) => Rejection::bad_request("request body is not valid JSON"),
    }
}

/// Objects with more keys than this find duplicates through a hash set, not a scan.
const SCAN_KEYS: usize = 16;

/// The parser's stacks' first size: a search body's open containers rarely hold more.
const STACK: usize = 32;

/// Bodies up to this size (an `_msearch` line, a small search) start with stacks that fit in
/// 1 KB, the largest block the allocator (mimalloc) hands out on its fast path: two stacks of
/// [`STACK`] items were 1.5 and 2.3 KB, two slow allocations per parse, eighty per `_msearch`
/// of twenty searches (issue 10 goal 6). Larger bodies keep [`STACK`] (a 2 KB search grew
/// smaller stacks, which cost more than it saved). A stack that needs more grows as any `Vec`.
const SMALL_BODY: usize = 1024;
const SMALL_ITEMS: usize = 1024 / std::mem::size_of::<Node<'static>>();
const SMALL_ENTRIES: usize = 1024 / std::mem::size_of::<(Cow<'static, str>, Node<'static>)>();

/// Arrays longer than this are collected in the arena directly, not on the parser's stack
/// (the module doc says why).
const LONG: usize = 64;

struct Parser<'a> {
    /// Where the containers go ([`Arena`]): written only by [`Parser::store`], a long array
    /// ([`Parser::array`]) and an escaped string ([`Parser::string_rest`]).
    arena: &'a Bump,
    s: &'a [u8],
    text: &'a str,
    i: usize,
    /// Where the body last strayed from what [`write()`] writes (0 if it has not): a
    /// whitespace byte skipped, or an escape in a string. A container opened at `start` that
    /// closes with `bent_at <= start` held none, and is written as its source text
    /// ([`Container`]). A position, not a count: only the container's start is kept while it
    /// is parsed (a count and a start were twice the instructions).
    bent_at: usize,
    /// The items of the arrays being parsed, innermost last: an array's items are moved into
    /// the arena, their exact number, when it closes (no doubling, no regrowth copies).
    items: Vec<Node<'a>>,
    /// The same for the entries of the objects being parsed.
    entries: Vec<(Cow<'a, str>, Node<'a>)>,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.bent_at = self.i;
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn literal(&mut self, word: &[u8], node: Node<'a>) -> Option<Node<'a>> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(node)
        } else {
            None
        }
    }

    /// Inlined into `object` and `array` (which stay calls): no call per string or number.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<Node<'a>> {
        self.ws();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                self.i += 1;
                self.string().map(Node::String)
            }
            b't' => self.literal(b"true", Node::Bool(true)),
            b'f' => self.literal(b"false", Node::Bool(false)),
            b'n' => self.literal(b"null", Node::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// The container opened at `start` and just closed (`self.i` past its last byte), with
    /// its source text if nothing in it strayed from the writer's form (every such place is
    /// after `start`).
    #[inline(always)]
    fn close<T>(&self, items: &'a [T], start: usize) -> Container<'a, T> {
        let raw = if self.bent_at <= start {
            self.s.get(start..self.i)
        } else {
            None
        };
        Container {
            items: Items::Parsed(items),
            raw,
        }
    }

    /// The items `stack[base..]` of a container just closed, moved into the arena: with the
    /// long arrays' [`Parser::array`] and the escaped strings' [`Parser::string_rest`], the
    /// only writes in it. What the parser builds borrows all it holds ([`Arena`]).
    #[inline(always)]
    fn store<T: Borrowed>(arena: &'a Bump, stack: &mut Vec<T>, base: usize) -> &'a [T] {
        debug_assert!(stack[base..].iter().all(Borrowed::borrowed));
        arena.alloc_slice_fill_iter(stack.drain(base..))
    }

    fn object(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(Node::Object(self.close(&[], start)));
        }
        let base = self.entries.len();
        let mut seen: Option<HashSet<Cow<'a, str>>> = None;
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            self.i += 1;
            let key = self.string()?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            let value = self.value(depth)?;
            // Duplicates are refused where they appear (as serde_json's visitor does), so a
            // later syntax error never changes which refusal a body gets.
            match &mut seen {
                Some(set) => {
                    if !set.insert(key.clone()) {
                        return None;
                    }
                }
                None => {
                    let entries = &self.entries[base..];
                    if entries.iter().any(|(k, _)| *k == key) {
                        return None;
                    }
                    if entries.len() == SCAN_KEYS {
                        let mut set: HashSet<Cow<'a, str>> =
                            entries.iter().map(|(k, _)| k.clone()).collect();
                        set.insert(key.clone());
                        seen = Some(set);
                    }
                }
            }
            self.entries.push((key, value));
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    let entries = Self::store(self.arena, &mut self.entries, base);
                    return Some(Node::Object(self.close(entries, start)));
                }
                _ => return None,
            }
        }
    }

    /// Room for a long array opened at `start` that has [`LONG`] items so far: as many items
    /// as the rest of the body holds at their width so far, at most [`ARENA_PER_BYTE`] times
    /// the rest of the body in bytes (the estimate may be far too large when the array ends
    /// early; the room it does not use is never touched).
    fn room(&self, start: usize) -> usize {
        let rest = self.s.len() - self.i;
        let width = ((self.i - start) / LONG).max(1);
        LONG + (rest / width).min(rest * ARENA_PER_BYTE / std::mem::size_of::<Node<'_>>()) + 1
    }

    fn array(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(Node::Array(self.close(&[], start)));
        }
        let base = self.items.len();
        // A long array is collected in the arena directly, in room for as many items as the
        // rest of the body holds at the width of its first ones: no copy off the stack, and
        // (mostly) no regrowth copies.
        let mut long: Option<BumpVec<'a, Node<'a>>> = None;
        loop {
            let item = self.value(depth)?;
            if let Some(items) = &mut long {
                items.push(item);
            } else {
                self.items.push(item);
                if self.items.len() - base == LONG {
                    let mut items = BumpVec::with_capacity_in(self.room(start), self.arena);
                    items.extend(self.items.drain(base..));
                    long = Some(items);
                }
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    let items = match long {
                        Some(items) => {
                            debug_assert!(items.iter().all(Borrowed::borrowed));
                            items.into_bump_slice()
                        }
                        None => Self::store(self.arena, &mut self.items, base),
                    };
                    return Some(Node::Array(self.close(items, start)));
                }
                _ => return None,
            }
        }
    }

    /// The rest of a string after its opening quote: borrowed unless it holds an escape.
    /// Inlined: most strings end at the first special byte the word scan finds.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        let end = skip_plain(self.s, start);
        if self.s.get(end) == Some(&b'"') {
            let s = self.text.get(start..end)?;
            self.i = end + 1;
            return Some(Cow::Borrowed(s));
        }
        self.i = end;
        self.string_rest(start)
    }

    /// `Parser::string` from the first escape or control character (or the end).
    fn string_rest(&mut self, start: usize) -> Option<Cow<'a, str>> {
        loop {
            match *self.s.get(self.i)? {
                b'"' => {
                    let s = self.text.get(start..self.i)?;
                    self.i += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        // Written back, the escapes are spelled as the writer spells them, not as here.
        self.bent_at = self.i;
        // Built in the arena: a string there owns no memory of its own ([`Arena`]).
        let mut out = BumpString::from_str_in(self.text.get(start..self.i)?, self.arena);
        loop {
            match *self.s.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Borrowed(out.into_bump_str()));
                }
                b'\\' => {
                    self.i += 1;
                    let c = match *self.s.get(self.i)? {
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
                    self.i = skip_plain(self.s, self.i + 1);
                    out.push_str(self.text.get(run..self.i)?);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
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
                if self.s.get(self.i..self.i + 2)? != b"\\u" {
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

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, finite as an `f64`.
    fn number(&mut self) -> Option<Node<'a>> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let int_digits = self.i - int_start;
        let mut exponent = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
            exponent = true;
        }
        let text = self.text.get(start..self.i)?;
        // serde_json reads integers beyond i64/u64 and every fraction as an f64 and refuses
        // one that overflows. Without an exponent no number of at most 300 integer digits can
        // (f64::MAX is about 1.8e308): only the others are parsed.
        if exponent || int_digits > 300 {
            // With an exponent it is never an integer; without one, beyond u64/i64.
            if !text.parse::<f64>().ok()?.is_finite() {
                return None;
            }
        }
        Some(Node::Number(Cow::Borrowed(text)))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }
}

/// The index of the first byte at or after `from` that is a quote, a backslash or a control
/// character (or the end), eight bytes at a time: string contents are most of a body's bytes.
fn skip_plain(s: &[u8], mut from: usize) -> usize {
    while let Some(chunk) = s.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if let Some(at) = first_special(u64::from_le_bytes(word)) {
            return from + at;
        }
        from += 8;
    }
    let tail = s.len().saturating_sub(from);
    if tail > 0 {
        return from + first_special(tail_word(s, from)).map_or(tail, |at| at.min(tail));
    }
    from
}

/// The bytes of `s` from `from` to its end (one to seven of them) in the low bytes of a
/// little-endian word, zeros above: zero bytes count as control characters, so a scan of the
/// word stops at the end at the latest. Read as the last eight bytes shifted when there are
/// eight.
fn tail_word(s: &[u8], from: usize) -> u64 {
    let tail = s.len() - from;
    if s.len() >= 8 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[s.len() - 8..]);
        u64::from_le_bytes(word) >> (8 * (8 - tail))
    } else {
        s[from..]
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b))
    }
}

/// The position of the first quote, backslash or control character in a little-endian word.
fn first_special(w: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` that is zero. Above the lowest such byte a borrow can
    // mark others too, but the lowest mark is always exact, and only it is used.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let special = zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
    (special != 0).then(|| (special.trailing_zeros() / 8) as usize)
}

/// Writes `node` as compact JSON (serde_json's string escapes; numbers as their text). A
/// container that kept its source text ([`Container`]) is copied: the same bytes.
pub fn write(node: &Node<'_>, out: &mut Vec<u8>) {
    #[cfg(test)]
    if tests::SPANS_OFF.with(std::cell::Cell::get) {
        return write_node::<false>(node, out);
    }
    write_node::<true>(node, out);
}

/// [`write()`]; with `SPANS` false, every container written item by item (the tests' reference:
/// the two must agree on every tree [`parse`] builds).
fn write_node<const SPANS: bool>(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Array(items) => {
            if let (true, Some(raw)) = (SPANS, items.raw) {
                return out.extend_from_slice(raw);
            }
            out.push(b'[');
            if let Some((first, rest)) = items.split_first() {
                write_item::<SPANS>(first, out);
                for item in rest {
                    out.push(b',');
                    write_item::<SPANS>(item, out);
                }
            }
            out.push(b']');
        }
        Node::Object(entries) => {
            if let (true, Some(raw)) = (SPANS, entries.raw) {
                return out.extend_from_slice(raw);
            }
            out.push(b'{');
            if let Some(((k, v), rest)) = entries.split_first() {
                write_str(k, out);
                out.push(b':');
                write_item::<SPANS>(v, out);
                for (k, v) in rest {
                    out.push(b',');
                    write_str(k, out);
                    out.push(b':');
                    write_item::<SPANS>(v, out);
                }
            }
            out.push(b'}');
        }
        leaf => write_item::<SPANS>(leaf, out),
    }
}

/// One value inside a container: a leaf written in place, a container by [`write_node`] (no
/// recursive call per string of a long array).
#[inline(always)]
fn write_item<const SPANS: bool>(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Number(text) => out.extend_from_slice(text.as_bytes()),
        Node::String(s) => write_str(s, out),
        Node::Array(_) | Node::Object(_) => write_node::<SPANS>(node, out),
    }
}

/// A JSON string as serde_json writes it: `"`, `\` and control characters escaped, nothing
/// else.
///
/// Checked and copied eight bytes at a time, the last word too (the string's last eight bytes
/// shifted, written whole and the surplus truncated): a fixed-size copy is a single store
/// where a short `memcpy` call, with the separate scan before it, cost twice the whole of this
/// for the typical key or value of ten-odd bytes.
fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.push(b'"');
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
        if first_special(w).is_some_and(|p| p < tail) {
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

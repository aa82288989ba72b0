//! One read-only view ([`J`]) of a JSON value held either as serde_json's tree or as the borrowed
//! request tree (`request::tree::Node`: built nodes, and parsed containers read in place in the
//! body's tape), so the body checks exist once and decide alike for every representation
//! (issue 10, goal 6: the checks move to the tree without a second copy of any security rule).
//!
//! Invariant: a [`J`] of a `Value` and a [`J`] of the `Node` parsed from the same body answer
//! every question alike: same kinds, same keys in the same order, same strings, and numbers
//! read through serde_json's own number parser (`Number::from_str`), so a numeric check sees
//! exactly the value serde_json would have given it.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::request::tree::{Item, Node, Parsed, TokenEntries, TokenItems, Tokens};

/// A JSON value, borrowed from either representation. Cheap to copy; match on it like on a
/// `Value`.
#[derive(Clone, Copy, Debug)]
pub enum J<'a> {
    Null,
    Bool(bool),
    Number(Num<'a>),
    String(&'a str),
    Array(Arr<'a>),
    Object(Obj<'a>),
}

/// A number of either representation.
#[derive(Clone, Copy, Debug)]
pub enum Num<'a> {
    V(&'a Number),
    /// The number's source text (valid JSON, finite: the tree checked it).
    N(&'a str),
}

/// An array of either representation.
#[derive(Clone, Copy, Debug)]
pub enum Arr<'a> {
    V(&'a [Value]),
    N(&'a [Node<'a>]),
    /// A parsed array, read in its tape.
    T(Tokens<'a>),
}

/// An object of either representation (entries in body order).
#[derive(Clone, Copy, Debug)]
pub enum Obj<'a> {
    V(&'a Map<String, Value>),
    N(&'a [(Cow<'a, str>, Node<'a>)]),
    /// A parsed object, read in its tape.
    T(Tokens<'a>),
}

impl<'a> From<&'a Value> for J<'a> {
    fn from(v: &'a Value) -> J<'a> {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(Num::V(n)),
            Value::String(s) => J::String(s),
            Value::Array(items) => J::Array(Arr::V(items)),
            Value::Object(m) => J::Object(Obj::V(m)),
        }
    }
}

impl<'a> From<&'a Node<'a>> for J<'a> {
    fn from(v: &'a Node<'a>) -> J<'a> {
        match v {
            Node::Null => J::Null,
            Node::Bool(b) => J::Bool(*b),
            Node::Number(text) => J::Number(Num::N(text)),
            Node::String(s) => J::String(s),
            Node::Array(items) => J::Array(Arr::N(items)),
            Node::Object(entries) => J::Object(Obj::N(entries)),
            Node::Parsed(p) => J::from(*p),
        }
    }
}

impl<'a> From<Parsed<'a>> for J<'a> {
    fn from(p: Parsed<'a>) -> J<'a> {
        J::from(p.tokens().item())
    }
}

impl<'a> From<Item<'a>> for J<'a> {
    #[inline]
    fn from(item: Item<'a>) -> J<'a> {
        match item {
            Item::Null => J::Null,
            Item::Bool(b) => J::Bool(b),
            Item::Number(text) => J::Number(Num::N(text)),
            Item::String(s) => J::String(s),
            Item::Array(p) => J::Array(Arr::T(p)),
            Item::Object(p) => J::Object(Obj::T(p)),
        }
    }
}

impl<'a> J<'a> {
    /// The value under `key` of an object.
    pub fn get(self, key: &str) -> Option<J<'a>> {
        match self {
            J::Object(m) => m.get(key),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            J::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(self) -> Option<u64> {
        match self {
            J::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        match self {
            J::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_object(self) -> Option<Obj<'a>> {
        match self {
            J::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(self) -> Option<Arr<'a>> {
        match self {
            J::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_string(self) -> bool {
        matches!(self, J::String(_))
    }

    /// A single value: a string, number, boolean or null.
    pub fn is_scalar(self) -> bool {
        matches!(self, J::String(_) | J::Number(_) | J::Bool(_) | J::Null)
    }

    pub fn is_number(self) -> bool {
        matches!(self, J::Number(_))
    }

    pub fn is_u64(self) -> bool {
        self.as_u64().is_some()
    }

    pub fn is_null(self) -> bool {
        matches!(self, J::Null)
    }

    pub fn is_boolean(self) -> bool {
        matches!(self, J::Bool(_))
    }

    /// The same value as serde_json's tree (for the few checks that build one).
    pub fn to_value(self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => n.number().map_or(Value::Null, Value::Number),
            J::String(s) => Value::String(s.to_string()),
            J::Array(a) => Value::Array(a.iter().map(J::to_value).collect()),
            J::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// The value of `text` when it is all ASCII digits and fits a u64 (what `str::parse::<u64>`
/// gives for such text), in one pass: `None` for anything else (empty, a sign, a fraction, an
/// exponent, beyond u64).
#[inline]
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let digit = |b: u8| {
        let d = b.wrapping_sub(b'0');
        (d <= 9).then_some(u64::from(d))
    };
    // Nineteen digits never overflow (u64::MAX has twenty): only those after them are checked
    // (issue 10: a date histogram's 13-digit bounds were read at 180 instructions each).
    let (head, tail) = text.as_bytes().split_at(text.len().min(19));
    let mut n: u64 = 0;
    for &b in head {
        n = n * 10 + digit(b)?;
    }
    for &b in tail {
        n = n.checked_mul(10)?.checked_add(digit(b)?)?;
    }
    Some(n)
}

impl Num<'_> {
    /// serde_json's number (the tree's text read by serde_json's parser).
    fn number(self) -> Option<Number> {
        match self {
            Num::V(n) => Some(n.clone()),
            Num::N(text) => text.parse().ok(),
        }
    }

    pub fn as_u64(self) -> Option<u64> {
        match self {
            Num::V(n) => n.as_u64(),
            // An integer literal in u64's range is what serde_json reads as a u64; anything
            // else (a sign, a fraction, an exponent, beyond u64) is not.
            Num::N(text) => digits(text),
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Num::V(n) => n.as_i64(),
            Num::N(_) => self.number()?.as_i64(),
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        match self {
            Num::V(n) => n.as_f64(),
            // An integer literal in u64's range is serde_json's u64 (see `as_u64`), and its f64
            // is that u64's: read without serde_json's parser (issue 10: bounds and intervals of
            // every date histogram went through it). `as_f64_reads_as_serde_json` (tests).
            Num::N(_) => match self.as_u64() {
                Some(n) => Some(n as f64),
                None => self.number()?.as_f64(),
            },
        }
    }
}

impl<'a> Arr<'a> {
    pub fn len(self) -> usize {
        match self {
            Arr::V(items) => items.len(),
            Arr::N(items) => items.len(),
            Arr::T(p) => p.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Whether every item is a single value (a string, number, boolean or null), as
    /// `iter().all(J::is_scalar)`: a parsed array's counts say it without a walk.
    pub fn all_scalars(self) -> bool {
        match self {
            Arr::T(t) => t.items_all_scalars(),
            _ => self.iter().all(J::is_scalar),
        }
    }

    /// Whether every item is a string, as `iter().all(J::is_string)`: a parsed array's tokens
    /// are read without making a `J` of each.
    pub fn all_strings(self) -> bool {
        match self {
            Arr::T(t) => t.items_all_strings(),
            _ => self.iter().all(J::is_string),
        }
    }

    /// `f` on each item in order, stopping at its first error: the representation matched
    /// once (as [`Obj::try_each`]).
    #[inline]
    pub fn try_each<E>(self, f: impl FnMut(J<'a>) -> Result<(), E>) -> Result<(), E> {
        let mut f = f;
        match self {
            Arr::V(items) => items.iter().try_for_each(|v| f(J::from(v))),
            Arr::N(items) => items.iter().try_for_each(|v| f(J::from(v))),
            Arr::T(p) => p.items().try_for_each(|v| f(J::from(v))),
        }
    }

    pub fn iter(self) -> ArrIter<'a> {
        match self {
            Arr::V(items) => ArrIter::V(items.iter()),
            Arr::N(items) => ArrIter::N(items.iter()),
            Arr::T(p) => ArrIter::T(p.items()),
        }
    }
}

impl<'a> IntoIterator for Arr<'a> {
    type Item = J<'a>;
    type IntoIter = ArrIter<'a>;
    fn into_iter(self) -> ArrIter<'a> {
        self.iter()
    }
}

/// The items of an [`Arr`].
pub enum ArrIter<'a> {
    V(std::slice::Iter<'a, Value>),
    N(std::slice::Iter<'a, Node<'a>>),
    T(TokenItems<'a>),
}

impl<'a> Iterator for ArrIter<'a> {
    type Item = J<'a>;
    /// Always inlined (session 23): with a hint only, the loops of `try_for_each` and `all`
    /// over it kept a call an item (about 50 instructions, 115 for a packed string list's).
    #[inline(always)]
    fn next(&mut self) -> Option<J<'a>> {
        match self {
            ArrIter::V(it) => it.next().map(J::from),
            ArrIter::N(it) => it.next().map(J::from),
            ArrIter::T(it) => it.next().map(J::from),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ArrIter::V(it) => it.size_hint(),
            ArrIter::N(it) => it.size_hint(),
            ArrIter::T(it) => it.size_hint(),
        }
    }
}

impl<'a> Obj<'a> {
    pub fn get(self, key: &str) -> Option<J<'a>> {
        match self {
            Obj::V(m) => m.get(key).map(J::from),
            Obj::N(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| J::from(v)),
            Obj::T(p) => p.get(key).map(J::from),
        }
    }

    /// The only entry of an object of exactly one, as `iter().next()` when `len() == 1`: a
    /// parsed object's read in one look at its tokens.
    #[inline]
    pub fn only_entry(self) -> Option<(&'a str, J<'a>)> {
        match self {
            Obj::T(t) => t.only_entry().map(|(k, v)| (k, J::from(v))),
            _ if self.len() == 1 => self.iter().next(),
            _ => None,
        }
    }

    pub fn contains_key(self, key: &str) -> bool {
        match self {
            Obj::V(m) => m.contains_key(key),
            Obj::N(entries) => entries.iter().any(|(k, _)| k == key),
            Obj::T(p) => p.get(key).is_some(),
        }
    }

    pub fn len(self) -> usize {
        match self {
            Obj::V(m) => m.len(),
            Obj::N(entries) => entries.len(),
            Obj::T(p) => p.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    pub fn iter(self) -> ObjIter<'a> {
        match self {
            Obj::V(m) => ObjIter::V(m.iter()),
            Obj::N(entries) => ObjIter::N(entries.iter()),
            Obj::T(p) => ObjIter::T(p.entries()),
        }
    }

    /// `f` on each entry in order, stopping at its first error: the representation matched
    /// once, each entry then read by its own iterator inline (issue 10: through [`ObjIter`]
    /// every entry was a call that matched the representation again).
    #[inline]
    pub fn try_each<E>(self, mut f: impl FnMut(&'a str, J<'a>) -> Result<(), E>) -> Result<(), E> {
        match self {
            Obj::V(m) => m.iter().try_for_each(|(k, v)| f(k, J::from(v))),
            Obj::N(entries) => entries.iter().try_for_each(|(k, v)| f(k, J::from(v))),
            Obj::T(p) => p.entries().try_for_each(|(k, v)| f(k, J::from(v))),
        }
    }

    /// `f` on each entry whose key `wanted` accepts, with its position among all the entries,
    /// in order, stopping at its first error: the others' values never read (perf28c: a search
    /// body's top level, walked for its `aggs` alone, had each of its entries' values made a
    /// [`J`] first).
    #[inline]
    pub fn try_each_wanted<E>(
        self,
        wanted: impl Fn(&str) -> bool,
        mut f: impl FnMut(usize, &'a str, J<'a>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Obj::V(m) => m
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| wanted(k))
                .try_for_each(|(i, (k, v))| f(i, k, J::from(v))),
            Obj::N(entries) => entries
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| wanted(k))
                .try_for_each(|(i, (k, v))| f(i, k, J::from(v))),
            Obj::T(p) => p
                .entries()
                .enumerate()
                .filter(|(_, (k, _))| wanted(k))
                .try_for_each(|(i, (k, v))| f(i, k, J::from(v))),
        }
    }

    /// Whether `f` holds for every entry, through [`Obj::try_each`] (stopping at the first
    /// that fails).
    #[inline]
    pub fn all(self, mut f: impl FnMut(&'a str, J<'a>) -> bool) -> bool {
        self.try_each(|k, v| if f(k, v) { Ok(()) } else { Err(()) })
            .is_ok()
    }

    pub fn keys(self) -> impl Iterator<Item = &'a str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(self) -> impl Iterator<Item = J<'a>> {
        self.iter().map(|(_, v)| v)
    }
}

impl<'a> IntoIterator for Obj<'a> {
    type Item = (&'a str, J<'a>);
    type IntoIter = ObjIter<'a>;
    fn into_iter(self) -> ObjIter<'a> {
        self.iter()
    }
}

/// The entries of an [`Obj`], in body order.
pub enum ObjIter<'a> {
    V(serde_json::map::Iter<'a>),
    N(std::slice::Iter<'a, (Cow<'a, str>, Node<'a>)>),
    T(TokenEntries<'a>),
}

impl<'a> Iterator for ObjIter<'a> {
    type Item = (&'a str, J<'a>);
    #[inline]
    fn next(&mut self) -> Option<(&'a str, J<'a>)> {
        match self {
            ObjIter::V(it) => it.next().map(|(k, v)| (k.as_str(), J::from(v))),
            ObjIter::N(it) => it.next().map(|(k, v)| (&**k, J::from(v))),
            ObjIter::T(it) => it.next().map(|(k, v)| (k, J::from(v))),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ObjIter::V(it) => it.size_hint(),
            ObjIter::N(it) => it.size_hint(),
            ObjIter::T(it) => it.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` given the `J` of `text` in each representation: serde_json's tree, the parsed tape
    /// and built nodes.
    fn each_representation(text: &str, mut f: impl FnMut(J<'_>)) {
        let value: Value = serde_json::from_str(text).unwrap();
        let arena = crate::request::tree::Arena::default();
        let parsed = crate::request::tree::parse(text.as_bytes(), &arena).unwrap();
        let built = Node::from_value(&value);
        for j in [J::from(&value), J::from(&parsed), J::from(&built)] {
            f(j);
        }
    }

    /// `all_scalars` and `all_strings` answer as the walks they replace, for serde_json's tree,
    /// built nodes and parsed arrays (whose counts and tokens answer without a walk), on arrays
    /// of every kind of item, nested ones and empty ones.
    #[test]
    fn array_shortcuts_answer_as_the_walks() {
        let arrays = [
            "[]",
            "[1]",
            r#"["a"]"#,
            r#"["a","b\n",""]"#,
            r#"["a",1]"#,
            "[null,true,false,1.5e3]",
            r#"["a",[]]"#,
            r#"[{}]"#,
            r#"["a",{"b":"c"},"d"]"#,
            r#"[[1,2],[3]]"#,
            r#"["x","y",["z"]]"#,
        ];
        let answers_as_walks = |items: Arr<'_>, shown: &str| {
            assert_eq!(
                items.all_scalars(),
                items.iter().all(J::is_scalar),
                "{shown}"
            );
            assert_eq!(
                items.all_strings(),
                items.iter().all(J::is_string),
                "{shown}"
            );
        };
        for text in arrays {
            each_representation(text, |j| {
                let J::Array(items) = j else {
                    panic!("{text}: an array")
                };
                answers_as_walks(items, text);
            });
            let arena = crate::request::tree::Arena::default();
            // Inside an object too (a parsed array's tokens end where its parent's go on).
            let wrapped = format!(r#"{{"a":{text},"b":["c",{{}}]}}"#);
            let parsed = crate::request::tree::parse(wrapped.as_bytes(), &arena).unwrap();
            let items = J::from(&parsed).get("a").and_then(J::as_array).unwrap();
            answers_as_walks(items, &wrapped);
        }
    }

    /// Review of the tape (issue 10, session 9): on random trees (arrays and objects nested in
    /// each other, empty ones among items, scalars of every kind, keys and strings with
    /// escapes), every container reached by the walk answers the shortcuts (`all_scalars`,
    /// `all_strings`, `only_entry`, `get`, `contains_key`, `len`) as the walks they replace, and
    /// alike in serde_json's tree, the parsed tape and built nodes: a container whose tokens
    /// ended early or late would answer for its siblings' tokens.
    #[test]
    fn shortcuts_answer_as_the_walks_in_every_container() {
        fn random(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
            let n = next();
            match if depth > 4 { n % 6 } else { n % 10 } {
                0 => Value::Null,
                1 => Value::Bool(n.is_multiple_of(3)),
                2 => serde_json::json!((n % 2001) as i64 - 1000),
                3 => serde_json::json!(0.5),
                4 => Value::String(
                    ["", "a", "é\n\"/", "knn", "a\u{1}b"][(n >> 8) as usize % 5].into(),
                ),
                5 => Value::String(format!("s{}", n % 7)),
                6 | 7 => Value::Array((0..next() % 5).map(|_| random(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 4)
                        .map(|i| (format!("k{}", (i + next()) % 6), random(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        /// Every answer of every container under `j`, in pre-order.
        fn answers(j: J<'_>, out: &mut Vec<String>) {
            match j {
                J::Array(items) => {
                    let walked: Vec<J<'_>> = items.iter().collect();
                    assert_eq!(items.len(), walked.len());
                    assert_eq!(items.all_scalars(), walked.iter().all(|i| i.is_scalar()));
                    assert_eq!(items.all_strings(), walked.iter().all(|i| i.is_string()));
                    out.push(format!(
                        "[{} {} {}",
                        items.len(),
                        items.all_scalars(),
                        items.all_strings()
                    ));
                    walked.into_iter().for_each(|i| answers(i, out));
                }
                J::Object(m) => {
                    let walked: Vec<(&str, J<'_>)> = m.iter().collect();
                    assert_eq!(m.len(), walked.len());
                    let first = (walked.len() == 1).then(|| (walked[0].0, walked[0].1.to_value()));
                    let only = m.only_entry().map(|(k, v)| (k, v.to_value()));
                    assert_eq!(only, first);
                    for k in ["k0", "k1", "k2", "k3", "k4", "k5", "x"] {
                        let found = walked
                            .iter()
                            .find(|(w, _)| *w == k)
                            .map(|(_, v)| v.to_value());
                        assert_eq!(m.get(k).map(J::to_value), found, "{k}");
                        assert_eq!(m.contains_key(k), found.is_some(), "{k}");
                    }
                    out.push(format!("{{{} {:?}", m.len(), only));
                    walked.into_iter().for_each(|(_, v)| answers(v, out));
                }
                other => out.push(format!("{:?}", other.to_value())),
            }
        }
        let mut next = crate::testing::xorshift(0x1234_5678_9abc_def1u64);
        for _ in 0..3_000 {
            let v = random(&mut next, 0);
            // Some spelled with whitespace and escapes, so that containers lose their source text
            // (the escapes: a spaced container keeps it, session 29).
            let text = if next().is_multiple_of(2) {
                v.to_string()
            } else {
                serde_json::to_string_pretty(&v)
                    .unwrap()
                    .replace('k', "\\u006b")
            };
            let mut all = Vec::new();
            each_representation(&text, |j| {
                let mut out = Vec::new();
                answers(j, &mut out);
                all.push(out);
            });
            assert!(all.windows(2).all(|w| w[0] == w[1]), "{text}");
        }
    }

    /// `only_entry` is `iter().next()` of an object of one entry and nothing for others, for
    /// every representation, the one entry's value of every kind (a container's tokens end
    /// where the object's do).
    #[test]
    fn only_entry_is_the_first_of_one() {
        let objects = [
            "{}",
            r#"{"a":1}"#,
            r#"{"a":"x"}"#,
            r#"{"a":[]}"#,
            r#"{"a":{"b":[1,{"c":2}]}}"#,
            r#"{"a":null,"b":2}"#,
            r#"{"a":{"b":1},"c":[]}"#,
            "[1]",
            r#""a""#,
        ];
        for text in objects {
            each_representation(text, |j| {
                let expected = j
                    .as_object()
                    .filter(|m| m.len() == 1)
                    .and_then(|m| m.iter().next())
                    .map(|(k, v)| (k, v.to_value()));
                let got = j
                    .as_object()
                    .and_then(Obj::only_entry)
                    .map(|(k, v)| (k, v.to_value()));
                assert_eq!(got, expected, "{text}");
            });
        }
    }

    /// The tree's numbers read as serde_json reads the same text: integers (in and beyond
    /// u64's range, beyond f64's exact integers), negative numbers, fractions, exponents.
    /// `digits` is the all-digits test and `str::parse::<u64>` it replaced.
    #[test]
    fn digits_are_parse_of_digit_text() {
        for text in [
            "",
            "0",
            "00",
            "7",
            "+1",
            "-1",
            "1a",
            "a1",
            "1.0",
            "1e3",
            " 1",
            "1 ",
            "١",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "000000000000000000000000001",
            "9999999999999999999",
            "10000000000000000000",
            "0000000000000000009",
            "00000000000000000009",
            "999999999999999999a",
            "1700000000000",
        ] {
            let old = if text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<u64>().ok()
            } else {
                None
            };
            assert_eq!(digits(text), old, "{text:?}");
        }
    }

    #[test]
    fn as_f64_reads_as_serde_json() {
        let mut texts: Vec<String> = [
            "0",
            "1",
            "10",
            "1700000000000",
            "9007199254740992",
            "9007199254740993",
            "9007199254740995",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "123456789012345678901234567890",
            "-0",
            "-1",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.5",
            "1.0",
            "-1.5",
            "1e3",
            "1E-3",
            "2.5e+10",
            "1e400",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for shift in 0..64 {
            let n = 1u64 << shift;
            for d in [n - 1, n, n + 1, n.wrapping_mul(3) / 2] {
                texts.push(d.to_string());
            }
        }
        for text in &texts {
            let Ok(want) = text.parse::<Number>() else {
                continue;
            };
            let got = Num::N(text);
            assert_eq!(
                got.as_f64().map(f64::to_bits),
                want.as_f64().map(f64::to_bits),
                "{text}"
            );
            assert_eq!(got.as_u64(), want.as_u64(), "{text}");
            assert_eq!(got.as_i64(), want.as_i64(), "{text}");
        }
    }
}

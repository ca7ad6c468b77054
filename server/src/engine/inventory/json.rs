//! JSON text to a [`Value`], refusing duplicate keys, with the big arrays handed over one entry
//! at a time.
//!
//! `serde_json` keeps the last of two values under one key without a word, so that a second
//! `"host"` in a node silently replaces the first; TOML refuses such a file. This reader builds the
//! same [`Value`] as `serde_json::from_str` but records every duplicate key with its path, so a
//! JSON inventory is held to the same rule as a TOML one.
//!
//! The arrays named as streamed (an inventory's `nodes` and `storage_groups`) are not built into
//! the document: each entry is handed to a sink as soon as it is read and dropped after it, so a
//! 100,000-node inventory never exists as one tree of values (several hundred megabytes) beside
//! the cluster built from it.

use super::reader::{Problem, entry_path, index_path, key_path};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why the text could not be read.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON, but with duplicate keys: one problem for each.
    Duplicates(Vec<Problem>),
}

/// What the reader hands to the sink of a streamed array.
#[derive(Debug)]
pub(crate) enum Streamed {
    /// Entry `index` of the top-level array `key`.
    Entry {
        key: &'static str,
        index: usize,
        value: Value,
    },
    /// The array `key` has been read to its end.
    End { key: &'static str },
}

/// Parses `text` into a [`Value`]; the first value of a duplicate key is kept while the rest of
/// the document is read, so that every duplicate is reported at once.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Value, JsonError> {
    parse_streaming(text, &[], &mut |_| {})
}

/// Parses `text` as [`parse`] does, except that the top-level arrays named in `streamed` go to
/// `sink` entry by entry and are left out of the returned document (a streamed key whose value
/// is not an array stays in the document, for the loader to report). The sink sees every entry
/// even when the document turns out to have duplicate keys; only the verdict comes at the end.
pub(crate) fn parse_streaming(
    text: &str,
    streamed: &[&'static str],
    sink: &mut dyn FnMut(Streamed),
) -> Result<Value, JsonError> {
    let mut walk = Walk::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = Top {
        walk: &mut walk,
        streamed,
        sink,
    }
    .deserialize(&mut de)
    .map_err(JsonError::Syntax)?;
    de.end().map_err(JsonError::Syntax)?;
    if walk.duplicates.is_empty() {
        return Ok(doc);
    }
    let problems = walk
        .duplicates
        .into_iter()
        .map(|dup| Problem {
            path: match dup {
                Duplicate::Rendered(path) => path,
                Duplicate::At(steps) => render(&doc, String::new(), &steps),
            },
            message: "duplicate key".into(),
        })
        .collect();
    Err(JsonError::Duplicates(problems))
}

/// Reads the next value of `map` as [`parse`] would, failing on a duplicate key anywhere in it
/// (with a bare message: the fast reader that calls this falls back to the checking one).
pub(crate) fn next_value_without_duplicates<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Value, A::Error> {
    let mut walk = Walk::default();
    let value = map.next_value_seed(Seed { walk: &mut walk })?;
    if walk.duplicates.is_empty() {
        Ok(value)
    } else {
        Err(de::Error::custom("duplicate key"))
    }
}

/// One step of a path into the document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// A duplicate key: its path rendered already (inside a streamed entry, which is gone by the end),
/// or its steps, rendered against the finished document.
#[derive(Debug)]
enum Duplicate {
    Rendered(String),
    At(Vec<Step>),
}

/// Where the reader is, and the duplicates found so far, in the document's order.
#[derive(Default)]
struct Walk {
    at: Vec<Step>,
    duplicates: Vec<Duplicate>,
}

/// A key as it appears in a path: bare when it is a plain word, quoted otherwise.
fn show_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A path in the loader's notation, naming the ids of the entries it passes through (looked up
/// in `root`, the value `base` names; a step it cannot follow is shown by index only).
fn render(root: &Value, base: String, steps: &[Step]) -> String {
    let mut path = base;
    let mut here = Some(root);
    for step in steps {
        match step {
            Step::Key(k) => {
                path = key_path(&path, &show_key(k));
                here = here.and_then(|v| v.get(k.as_str()));
            }
            Step::Index(i) => {
                here = here.and_then(|v| v.get(*i));
                path = match here {
                    Some(entry) => entry_path(&path, *i, entry),
                    None => index_path(&path, *i),
                };
            }
        }
    }
    path
}

/// Deserializes one value at the walk's current path.
struct Seed<'w> {
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own Value does: a float JSON cannot hold becomes null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Seed { walk: self.walk }.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.walk.at.push(Step::Index(out.len()));
            let next = seq.next_element_seed(Seed {
                walk: &mut *self.walk,
            })?;
            self.walk.at.pop();
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.walk.at.push(Step::Key(key.clone()));
            if out.contains_key(&key) {
                let at = self.walk.at.clone();
                self.walk.duplicates.push(Duplicate::At(at));
            }
            let value = map.next_value_seed(Seed {
                walk: &mut *self.walk,
            })?;
            self.walk.at.pop();
            out.entry(key).or_insert(value);
        }
        Ok(Value::Object(out))
    }
}

/// The document itself: a table whose streamed arrays go to the sink; anything else is read as
/// [`Seed`] reads it (the loader reports a document that is not a table).
struct Top<'w> {
    walk: &'w mut Walk,
    streamed: &'w [&'static str],
    sink: &'w mut dyn FnMut(Streamed),
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_string(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Seed { walk: self.walk }.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Seed { walk: self.walk }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // The streamed keys met so far (their entries are not in `out`).
        let mut met: Vec<&'static str> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            self.walk.at.push(Step::Key(key.clone()));
            let stream = self.streamed.iter().copied().find(|s| *s == key);
            let again = out.contains_key(&key) || stream.is_some_and(|s| met.contains(&s));
            if again {
                let at = self.walk.at.clone();
                self.walk.duplicates.push(Duplicate::At(at));
            }
            match stream {
                Some(name) if !again => {
                    let streamed = map.next_value_seed(Stream {
                        walk: &mut *self.walk,
                        key: name,
                        sink: &mut *self.sink,
                    })?;
                    match streamed {
                        // Not an array: the loader reports it from the document.
                        Some(value) => {
                            out.insert(key, value);
                        }
                        None => met.push(name),
                    }
                }
                // A second array under a streamed key is read (its syntax must hold) and
                // dropped: the first one counts, as for every other duplicate.
                Some(_) => {
                    map.next_value::<IgnoredAny>()?;
                }
                None => {
                    let value = map.next_value_seed(Seed {
                        walk: &mut *self.walk,
                    })?;
                    out.entry(key).or_insert(value);
                }
            }
            self.walk.at.pop();
        }
        Ok(Value::Object(out))
    }
}

/// The value of a streamed key: an array goes to the sink entry by entry (and yields `None`);
/// any other value is built as [`Seed`] builds it.
struct Stream<'w> {
    walk: &'w mut Walk,
    key: &'static str,
    sink: &'w mut dyn FnMut(Streamed),
}

impl<'de> DeserializeSeed<'de> for Stream<'_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Stream<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_bool(v).map(Some)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_i64(v).map(Some)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_u64(v).map(Some)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_f64(v).map(Some)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_str(v).map(Some)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_string(v).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Seed { walk: self.walk }.visit_unit().map(Some)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Seed { walk: self.walk }.visit_map(map).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut index = 0;
        loop {
            self.walk.at.push(Step::Index(index));
            let first_duplicate = self.walk.duplicates.len();
            let next = seq.next_element_seed(Seed {
                walk: &mut *self.walk,
            })?;
            self.walk.at.pop();
            let Some(value) = next else {
                (self.sink)(Streamed::End { key: self.key });
                return Ok(None);
            };
            // The entry is about to go: name its duplicates now, from the entry itself.
            let base = entry_path(&show_key(self.key), index, &value);
            for dup in &mut self.walk.duplicates[first_duplicate..] {
                if let Duplicate::At(steps) = dup {
                    let inner = steps.get(2..).unwrap_or_default();
                    *dup = Duplicate::Rendered(render(&value, base.clone(), inner));
                }
            }
            (self.sink)(Streamed::Entry {
                key: self.key,
                index,
                value,
            });
            index += 1;
        }
    }
}

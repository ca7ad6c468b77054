//! JSON text to a [`Value`], refusing duplicate keys.
//!
//! `serde_json` keeps the last of two values under one key without a word, so that a second
//! `"host"` in a node silently replaces the first; TOML refuses such a file. This reader builds the
//! same [`Value`] as `serde_json::from_str` but records every duplicate key with its path, so a
//! JSON inventory is held to the same rule as a TOML one.

use super::reader::{Problem, entry_path, index_path, key_path};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
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

/// Parses `text` into a [`Value`]; the first value of a duplicate key is kept while the rest of
/// the document is read, so that every duplicate is reported at once.
pub(crate) fn parse(text: &str) -> Result<Value, JsonError> {
    let mut walk = Walk::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = Seed { walk: &mut walk }
        .deserialize(&mut de)
        .map_err(JsonError::Syntax)?;
    de.end().map_err(JsonError::Syntax)?;
    if walk.duplicates.is_empty() {
        return Ok(doc);
    }
    let problems = walk
        .duplicates
        .iter()
        .map(|steps| Problem {
            path: render(&doc, steps),
            message: "duplicate key".into(),
        })
        .collect();
    Err(JsonError::Duplicates(problems))
}

/// One step of a path into the document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where the reader is, and the duplicates found so far.
#[derive(Default)]
struct Walk {
    at: Vec<Step>,
    duplicates: Vec<Vec<Step>>,
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
/// in the finished document; a step it cannot follow is shown by index only).
fn render(doc: &Value, steps: &[Step]) -> String {
    let mut path = String::new();
    let mut here = Some(doc);
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
                self.walk.duplicates.push(self.walk.at.clone());
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

//! A reader over a parsed document that collects every problem with its key path instead of
//! stopping at the first, so that one run of the loader tells a user everything to fix.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// One problem found in an inventory: where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `nodes[3].pdisks[0].path`; empty for the document itself.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// Collects problems.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Joins a key onto a path.
pub(crate) fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins an index onto a path.
pub(crate) fn index_path(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Joins an array entry onto a path, naming the entry's `id` too when it has one, e.g.
/// `nodes[36] (id 37)`: a person fixing the file looks for the id, a tool for the index.
pub(crate) fn entry_path(path: &str, i: usize, entry: &Value) -> String {
    match entry.get("id").and_then(Value::as_u64) {
        Some(id) => format!("{path}[{i}] (id {id})"),
        None => index_path(path, i),
    }
}

/// `1 node`, `2 nodes`: a count with its noun in the right number.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// A table being read: remembers which keys were read so that the rest can be reported as
/// unknown (a misspelt key must not be silently ignored).
pub(crate) struct Table<'a> {
    pub(crate) path: String,
    map: Option<&'a Map<String, Value>>,
    seen: BTreeSet<&'static str>,
}

impl<'a> Table<'a> {
    /// Reads `value` as a table; reports and yields an empty table when it is not one.
    pub(crate) fn new(value: &'a Value, path: String, probs: &mut Problems) -> Table<'a> {
        let map = match value {
            Value::Object(m) => Some(m),
            other => {
                probs.add(
                    path.clone(),
                    format!("expected a table, found {}", type_name(other)),
                );
                None
            }
        };
        Table {
            path,
            map,
            seen: BTreeSet::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.map.and_then(|m| m.get(key))
    }

    /// The raw value at `key`, if present.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get(key)
    }

    /// Reports keys that were never read.
    pub(crate) fn finish(self, probs: &mut Problems) {
        if let Some(m) = self.map {
            for k in m.keys() {
                if !self.seen.contains(k.as_str()) {
                    probs.add(key_path(&self.path, k), "unknown key");
                }
            }
        }
    }

    /// Reports a problem at `key` of this table (its path is built only then).
    fn report(&self, key: &str, probs: &mut Problems, message: String) {
        probs.add(key_path(&self.path, key), message);
    }

    /// Reads a key that must be present, converting it with `conv`.
    fn required<T>(
        &mut self,
        key: &'static str,
        probs: &mut Problems,
        conv: fn(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.get(key) {
            Some(v) => conv(v).map_err(|m| self.report(key, probs, m)).ok(),
            None => {
                // A table that is not a table was reported already; do not pile on.
                if self.map.is_some() {
                    self.report(key, probs, "missing required key".into());
                }
                None
            }
        }
    }

    /// Reads a key that may be absent, converting it with `conv`.
    fn optional<T>(
        &mut self,
        key: &'static str,
        probs: &mut Problems,
        conv: fn(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.get(key)?;
        conv(v).map_err(|m| self.report(key, probs, m)).ok()
    }

    pub(crate) fn req_u32(&mut self, key: &'static str, probs: &mut Problems) -> Option<u32> {
        self.required(key, probs, u32_of)
    }

    pub(crate) fn opt_u32(&mut self, key: &'static str, probs: &mut Problems) -> Option<u32> {
        self.optional(key, probs, u32_of)
    }

    pub(crate) fn req_str(&mut self, key: &'static str, probs: &mut Problems) -> Option<String> {
        self.required(key, probs, str_of)
    }

    pub(crate) fn opt_str(&mut self, key: &'static str, probs: &mut Problems) -> Option<String> {
        self.optional(key, probs, str_of)
    }

    pub(crate) fn opt_duration(
        &mut self,
        key: &'static str,
        probs: &mut Problems,
    ) -> Option<Duration> {
        let s = self.optional(key, probs, str_of)?;
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    key,
                    probs,
                    format!("invalid duration '{s}': {e} (write e.g. \"5m\" or \"90s\")"),
                );
                None
            }
        }
    }

    /// The array at `key` (absent: empty).
    pub(crate) fn opt_array(&mut self, key: &'static str, probs: &mut Problems) -> &'a [Value] {
        match self.get(key) {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(other) => {
                let message = format!("expected an array, found {}", type_name(other));
                self.report(key, probs, message);
                &[]
            }
        }
    }
}

pub(crate) fn as_u32(v: &Value, path: &str, probs: &mut Problems) -> Option<u32> {
    u32_of(v).map_err(|m| probs.add(path, m)).ok()
}

pub(crate) fn as_str(v: &Value, path: &str, probs: &mut Problems) -> Option<String> {
    str_of(v).map_err(|m| probs.add(path, m)).ok()
}

/// The value as a `u32`, or what is wrong with it.
fn u32_of(v: &Value) -> Result<u32, String> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| match v {
            Value::Number(_) => format!("{v} is not an integer in 0..=4294967295"),
            other => format!("expected an integer, found {}", type_name(other)),
        })
}

/// The value as a string, or what is wrong with it.
fn str_of(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("expected a string, found {}", type_name(other))),
    }
}

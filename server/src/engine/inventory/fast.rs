//! The fast reader: a JSON inventory read straight into typed entries, for the common case of a
//! file with nothing wrong in it.
//!
//! The checking reader builds a value for every entry so that it can name each problem by its
//! key path; at 100,000 nodes that costs most of the start. This reader answers a cluster only
//! when the inventory has no problem at all. On anything else (a value of the wrong type, an
//! unknown or repeated key, anything the value checks refuse) it answers `None` at the first
//! sign, and the caller reads the file again with the checking reader, which reports every
//! problem. Both run the same value checks (`entries.rs`) and the same [`Loader`], and a test
//! compares the two on many damaged inventories.

use super::entries::{self, NodeFields};
use super::reader::Problems;
use super::{Loader, json};
use crate::engine::cluster::{Cluster, Location, Node, VDisk};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A node entry; every key the checking reader knows, and no other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastNode {
    id: u32,
    host: String,
    #[serde(default, deserialize_with = "present")]
    port: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    data_center: Option<String>,
    #[serde(default, deserialize_with = "present")]
    module: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rack: Option<String>,
    #[serde(default, deserialize_with = "present")]
    unit: Option<String>,
    #[serde(default, deserialize_with = "present")]
    tenant: Option<String>,
    #[serde(default, deserialize_with = "present")]
    version: Option<String>,
    #[serde(default, deserialize_with = "present")]
    machine_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    state: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pdisks: Option<Vec<FastPDisk>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastPDisk {
    id: u32,
    path: String,
}

/// A storage group entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastGroup {
    id: u32,
    erasure: String,
    #[serde(default, deserialize_with = "present")]
    vdisks: Option<Vec<FastVDisk>>,
    #[serde(default, deserialize_with = "present")]
    nodes: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastVDisk {
    node: u32,
    pdisk: u32,
}

/// An optional key that, when present, must hold a value of its type (`null` is refused, as
/// the checking reader refuses it).
fn present<'de, D: de::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The cluster, when the JSON inventory `text` has no problem at all (not indexed yet).
pub(super) fn parse(text: &str) -> Option<Cluster> {
    let mut loader = Loader::default();
    let mut early = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let rest = Top {
        loader: &mut loader,
        early: &mut early,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    for g in early {
        group(&mut loader, g)?;
    }
    let mut probs = Problems::default();
    let cluster = loader.finish(&Value::Object(rest), &mut probs);
    probs.0.is_empty().then_some(cluster)
}

/// A node entry through the same checks as the checking reader's (paths are not needed: a
/// problem only sends the file to that reader).
fn node(f: FastNode, probs: &mut Problems) -> Option<Node> {
    let id = entries::node_id(Some(f.id), "", probs);
    entries::check_name(&f.host, "", "host", "a host name", probs);
    let port = f.port.unwrap_or(0);
    entries::check_port(port, "", probs);
    entries::check_tenant(f.tenant.as_deref(), "", probs);
    if let Some(m) = &f.machine_id {
        entries::check_name(m, "", "machine_id", "a machine id", probs);
    }
    let initial_state = entries::initial_state(f.state.as_deref(), "", probs);
    let given = f.pdisks.unwrap_or_default();
    let mut pdisks = Vec::with_capacity(given.len());
    for pd in given {
        entries::check_name(&pd.path, "", "path", "a device path", probs);
        entries::add_pdisk(&mut pdisks, pd.id, pd.path, "", probs);
    }
    NodeFields {
        id,
        host: Some(f.host),
        port,
        location: Location {
            data_center: f.data_center,
            module: f.module,
            rack: f.rack,
            unit: f.unit,
        },
        tenant: f.tenant,
        version: f.version,
        machine_id: f.machine_id,
        initial_state,
        pdisks,
    }
    .build()
}

/// A group entry, once every node is known; `None` on any problem.
fn group(loader: &mut Loader, f: FastGroup) -> Option<()> {
    let probs = &mut loader.group_probs;
    let cluster = &loader.cluster;
    let erasure = entries::erasure(&f.erasure, "", probs)?;
    if !entries::members_given(f.vdisks.is_some(), f.nodes.is_some(), "", probs) {
        return None;
    }
    let vdisks: Vec<VDisk> = match (f.vdisks, f.nodes) {
        (Some(given), _) => given
            .iter()
            .map(|m| entries::vdisk_member(m.node, m.pdisk, "", cluster, probs))
            .collect::<Option<_>>()?,
        (None, Some(given)) => given
            .iter()
            .map(|n| entries::node_member(*n, "", cluster, probs))
            .collect::<Option<_>>()?,
        (None, None) => return None,
    };
    let group = entries::finish_group(f.id, erasure, vdisks, "", cluster, probs)?;
    loader.add_group(group, "");
    loader.group_probs.0.is_empty().then_some(())
}

/// An error that only says "read it the checking way".
fn refuse<E: de::Error>() -> E {
    E::custom("not for the fast reader")
}

/// The document: `nodes` and `storage_groups` go to the loader entry by entry; every other
/// top-level value is kept (read without duplicate keys) for [`Loader::finish`].
struct Top<'l> {
    loader: &'l mut Loader,
    /// Groups read before the nodes were.
    early: &'l mut Vec<FastGroup>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inventory table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = Map::new();
        let (mut nodes, mut groups) = (false, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "nodes" if !nodes => {
                    nodes = true;
                    map.next_value_seed(Nodes {
                        loader: &mut *self.loader,
                    })?;
                }
                "storage_groups" if !groups => {
                    groups = true;
                    map.next_value_seed(Groups {
                        loader: &mut *self.loader,
                        early: &mut *self.early,
                    })?;
                }
                "nodes" | "storage_groups" => return Err(refuse()),
                _ if rest.contains_key(&key) => return Err(refuse()),
                _ => {
                    let value = json::next_value_without_duplicates(&mut map)?;
                    rest.insert(key, value);
                }
            }
        }
        Ok(rest)
    }
}

/// The `nodes` array.
struct Nodes<'l> {
    loader: &'l mut Loader,
}

impl<'de> DeserializeSeed<'de> for Nodes<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Nodes<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of nodes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let loader = self.loader;
        while let Some(f) = seq.next_element::<FastNode>()? {
            loader.node_entries += 1;
            let node = node(f, &mut loader.node_probs).ok_or_else(refuse)?;
            loader.add_node(node, "", |_| String::new());
            if !loader.node_probs.0.is_empty() {
                return Err(refuse());
            }
        }
        loader.nodes_done = true;
        Ok(())
    }
}

/// The `storage_groups` array.
struct Groups<'l> {
    loader: &'l mut Loader,
    early: &'l mut Vec<FastGroup>,
}

impl<'de> DeserializeSeed<'de> for Groups<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Groups<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of storage groups")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(f) = seq.next_element::<FastGroup>()? {
            if self.loader.nodes_done {
                group(self.loader, f).ok_or_else(refuse)?;
            } else {
                self.early.push(f);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, checked};
    use proptest::prelude::*;
    use serde_json::Value;

    /// A JSON document that can hold what `Value` cannot: repeated keys, keys in any order.
    #[derive(Debug, Clone)]
    enum Doc {
        Table(Vec<(String, Doc)>),
        List(Vec<Doc>),
        Plain(Value),
    }

    impl Doc {
        fn of(v: &Value) -> Doc {
            match v {
                Value::Object(m) => {
                    Doc::Table(m.iter().map(|(k, v)| (k.clone(), Doc::of(v))).collect())
                }
                Value::Array(a) => Doc::List(a.iter().map(Doc::of).collect()),
                other => Doc::Plain(other.clone()),
            }
        }

        fn text(&self) -> String {
            match self {
                Doc::Table(entries) => {
                    let inner: Vec<String> = entries
                        .iter()
                        .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v.text()))
                        .collect();
                    format!("{{{}}}", inner.join(", "))
                }
                Doc::List(items) => {
                    let inner: Vec<String> = items.iter().map(Doc::text).collect();
                    format!("[{}]", inner.join(", "))
                }
                Doc::Plain(v) => v.to_string(),
            }
        }

        /// Every place in the document, depth first (the root first).
        fn places(&self) -> usize {
            1 + match self {
                Doc::Table(e) => e.iter().map(|(_, v)| v.places()).sum(),
                Doc::List(i) => i.iter().map(Doc::places).sum(),
                Doc::Plain(_) => 0,
            }
        }

        /// The place numbered `n` (as [`Doc::places`] counts), if there is one.
        fn at(&mut self, n: usize) -> Option<&mut Doc> {
            if n == 0 {
                return Some(self);
            }
            let mut n = n - 1;
            let children: Vec<&mut Doc> = match self {
                Doc::Table(e) => e.iter_mut().map(|(_, v)| v).collect(),
                Doc::List(i) => i.iter_mut().collect(),
                Doc::Plain(_) => return None,
            };
            for c in children {
                let size = c.places();
                if n < size {
                    return c.at(n);
                }
                n -= size;
            }
            None
        }
    }

    /// The example cluster as JSON, with the keys it does not use filled in.
    fn base() -> Doc {
        let text = include_str!("../../../../examples/cluster-12.toml");
        let table: toml::Table = toml::from_str(text).expect("example");
        let mut v = serde_json::to_value(table).expect("json");
        v["nodes"][0]["machine_id"] = "m-1".into();
        v["nodes"][1]["state"] = "up".into();
        v["nodes"][2]["state"] = "down".into();
        v["nodes"][3]["module"] = "mod-1".into();
        v["nodes"][4]["unit"] = "u-1".into();
        if let Some(groups) = v["storage_groups"].as_array_mut() {
            groups.push(serde_json::json!({"id": 900, "erasure": "none", "nodes": [1]}));
        }
        v["windows"] = serde_json::json!([{"name": "nights", "zone": "Europe/Berlin",
            "start": "22:00", "end": "06:00", "nodes": [1, 2]}]);
        Doc::of(&v)
    }

    /// One change to the document at place `at`.
    fn damage(doc: &mut Doc, at: usize, kind: u8) {
        let places = doc.places();
        let Some(d) = doc.at(at % places) else { return };
        let value = |v: Value| Doc::Plain(v);
        *d = match (kind % 16, &*d) {
            (0, _) => value(Value::Null),
            (1, _) => value(0.into()),
            (2, _) => value((-1).into()),
            (3, _) => value(serde_json::json!(2.5)),
            (4, _) => value("".into()),
            (5, _) => value("x".repeat(300).into()),
            (6, _) => value(true.into()),
            (7, _) => value(70_000.into()),
            (8, _) => value(5_000_000_000u64.into()),
            (9, _) => Doc::List(Vec::new()),
            (10, _) => Doc::Table(Vec::new()),
            (11, Doc::Table(e)) => {
                // An unknown key.
                let mut e = e.clone();
                e.push(("colour".into(), value("red".into())));
                Doc::Table(e)
            }
            (12, Doc::Table(e)) if !e.is_empty() => {
                // A key given twice.
                let mut e = e.clone();
                let first = e[at % e.len()].clone();
                e.push(first);
                Doc::Table(e)
            }
            (13, Doc::Table(e)) if !e.is_empty() => {
                // A key left out.
                let mut e = e.clone();
                e.remove(at % e.len());
                Doc::Table(e)
            }
            (14, Doc::Table(e)) => {
                // The same keys in another order (still valid).
                let mut e = e.clone();
                e.reverse();
                Doc::Table(e)
            }
            (15, Doc::List(i)) if !i.is_empty() => {
                // An entry given twice (duplicate ids, device paths, ring members...).
                let mut i = i.clone();
                let first = i[at % i.len()].clone();
                i.push(first);
                Doc::List(i)
            }
            (_, same) => same.clone(),
        };
    }

    /// The fast reader answers exactly when the checking reader accepts, with the same cluster.
    fn agree(text: &str) -> Result<(), TestCaseError> {
        let fast = super::parse(text).map(|c| c.index());
        let slow = checked(text, Format::Json);
        match (fast, slow) {
            (Some(a), Ok(b)) => {
                prop_assert_eq!(&a.nodes, &b.nodes);
                prop_assert_eq!(&a.groups, &b.groups);
                prop_assert_eq!(&a.tenants, &b.tenants);
                prop_assert_eq!(&a.limits, &b.limits);
                prop_assert_eq!(&a.defaults, &b.defaults);
                prop_assert_eq!(&a.state_storage, &b.state_storage);
                prop_assert_eq!(&a.sys_tablets, &b.sys_tablets);
                prop_assert_eq!(&a.fleetlock_groups, &b.fleetlock_groups);
                prop_assert_eq!(format!("{:?}", a.windows), format!("{:?}", b.windows));
            }
            (None, Err(_)) => {}
            (Some(_), Err(e)) => prop_assert!(
                false,
                "fast accepted what the checking reader refuses: {e}\n{text}"
            ),
            (None, Ok(_)) => prop_assert!(false, "fast refused a good inventory:\n{text}"),
        }
        Ok(())
    }

    #[test]
    fn the_base_inventory_takes_the_fast_path() {
        let text = base().text();
        assert!(checked(&text, Format::Json).is_ok());
        assert!(super::parse(&text).is_some());
        agree(&text).expect("agree");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn fast_and_checking_readers_agree_on_damaged_inventories(
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
        ) {
            let mut doc = base();
            for (at, kind) in changes {
                damage(&mut doc, at, kind);
            }
            agree(&doc.text())?;
        }
    }
}

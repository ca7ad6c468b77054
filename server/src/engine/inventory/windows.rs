//! `[[windows]]`: maintenance windows, with their zones resolved from jiff's bundled tz
//! database (data compiled into the binary, never the machine's zone files).

use super::reader::{Problems, Table, as_str, index_path, key_path};
use crate::engine::cluster::Cluster;
use crate::engine::windows::{Window, WindowScope, parse_date, parse_day, parse_hhmm};
use serde_json::Value;
use std::collections::BTreeSet;

/// The TOML loader turns an unquoted TOML time or date (`start = 22:00:00`) into this one-key table.
const TOML_DATETIME: &str = "$__toml_private_datetime";

/// A string, or an unquoted TOML date/time as its text.
fn as_text(v: &Value, path: &str, probs: &mut Problems) -> Option<String> {
    if let Some(s) = v
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get(TOML_DATETIME))
        .and_then(Value::as_str)
    {
        // TOML writes local times with seconds: accept "22:00:00" as "22:00".
        return Some(
            s.strip_suffix(":00")
                .filter(|t| t.len() == 5)
                .unwrap_or(s)
                .to_owned(),
        );
    }
    as_str(v, path, probs)
}

/// `windows[0] (name 'nights')`.
fn window_path(i: usize, v: &Value) -> String {
    let base = index_path("windows", i);
    match v.get("name").and_then(Value::as_str) {
        Some(name) => format!("{base} (name '{name}')"),
        None => base,
    }
}

/// Reads every `[[windows]]` entry; `cluster` has its nodes and tenants already.
pub(super) fn load_windows(
    values: &[Value],
    cluster: &Cluster,
    probs: &mut Problems,
) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let db = jiff::tz::TimeZoneDatabase::bundled();
    for (i, v) in values.iter().enumerate() {
        let path = window_path(i, v);
        let Some(w) = load_window(v, &path, cluster, &db, probs) else {
            continue;
        };
        if out.iter().any(|o| o.name == w.name) {
            probs.add(
                key_path(&path, "name"),
                format!("duplicate window name '{}'", w.name),
            );
            continue;
        }
        out.push(w);
    }
    out
}

fn load_window(
    v: &Value,
    path: &str,
    cluster: &Cluster,
    db: &jiff::tz::TimeZoneDatabase,
    probs: &mut Problems,
) -> Option<Window> {
    let mut t = Table::new(v, path.to_owned(), probs);
    let name = t.req_str("name", probs);
    if name.as_deref() == Some("") {
        probs.add(key_path(path, "name"), "a window name must not be empty");
    }
    let zone_name = t.req_str("zone", probs);
    let zone = zone_name.as_deref().and_then(|z| match db.get(z) {
        Ok(tz) => Some(tz),
        Err(_) => {
            probs.add(
                key_path(path, "zone"),
                format!(
                    "unknown time zone '{z}' (an IANA name, e.g. \"Europe/Berlin\" or \"UTC\")"
                ),
            );
            None
        }
    });

    let mut days = [false; 7];
    let mut days_ok = true;
    match t.value("days") {
        None => days = [true; 7],
        Some(Value::Array(a)) => {
            let dpath = key_path(path, "days");
            if a.is_empty() {
                probs.add(dpath.clone(), "a window needs at least one day");
                days_ok = false;
            }
            for (j, d) in a.iter().enumerate() {
                let p = index_path(&dpath, j);
                let Some(s) = as_str(d, &p, probs) else {
                    days_ok = false;
                    continue;
                };
                match parse_day(&s) {
                    Some(k) if days[k] => {
                        probs.add(p, format!("'{s}' is listed twice"));
                        days_ok = false;
                    }
                    Some(k) => days[k] = true,
                    None => {
                        probs.add(
                            p,
                            format!(
                                "unknown weekday '{s}' (mon | tue | wed | thu | fri | sat | sun)"
                            ),
                        );
                        days_ok = false;
                    }
                }
            }
        }
        Some(_) => {
            probs.add(key_path(path, "days"), "expected an array of weekday names");
            days_ok = false;
        }
    }

    let mut time = |key: &'static str, allow_24: bool, probs: &mut Problems| {
        let p = key_path(path, key);
        let Some(v) = t.value(key) else {
            if v.is_object() {
                probs.add(p, "missing required key");
            }
            return None;
        };
        let s = as_text(v, &p, probs)?;
        let parsed = parse_hhmm(&s, allow_24);
        if parsed.is_none() {
            let range = if allow_24 {
                "00:00 to 24:00"
            } else {
                "00:00 to 23:59"
            };
            probs.add(
                p,
                format!("invalid time '{s}' (write HH:MM, {range}, local time)"),
            );
        }
        parsed
    };
    let start = time("start", false, probs);
    let end = time("end", true, probs);
    if let (Some(s), Some(e)) = (start, end)
        && s == e
    {
        probs.add(
            key_path(path, "end"),
            "start and end must differ (for a whole day write start = \"00:00\", end = \"24:00\")",
        );
    }

    let mut exclude = BTreeSet::new();
    let mut exclude_ok = true;
    let epath = key_path(path, "exclude");
    for (j, d) in t.opt_array("exclude", probs).iter().enumerate() {
        let p = index_path(&epath, j);
        let Some(s) = as_text(d, &p, probs) else {
            exclude_ok = false;
            continue;
        };
        match parse_date(&s) {
            Some(date) => {
                exclude.insert(date);
            }
            None => {
                probs.add(p, format!("invalid date '{s}' (write YYYY-MM-DD)"));
                exclude_ok = false;
            }
        }
    }

    let cut = match t.value("cut") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            probs.add(key_path(path, "cut"), "expected true or false");
            true
        }
    };

    let scope = load_scope(&mut t, path, cluster, probs);
    t.finish(probs);
    let start = start?;
    let end = end?;
    if start == end || !days_ok || !exclude_ok {
        return None;
    }
    Some(Window {
        name: name.filter(|n| !n.is_empty())?,
        zone_name: zone_name?,
        zone: zone?,
        days,
        start,
        end,
        exclude,
        cut,
        scope: scope?,
    })
}

/// One of `all = true`, `nodes = [...]`, `tenant = "..."`, `data_center = "..."`; none: all.
pub(super) fn load_scope(
    t: &mut Table<'_>,
    path: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<WindowScope> {
    let all = t.value("all");
    let nodes = t.value("nodes");
    let tenant = t.value("tenant");
    let dc = t.value("data_center");
    let given = [all, nodes, tenant, dc]
        .iter()
        .filter(|x| x.is_some())
        .count();
    if given > 1 {
        probs.add(
            path,
            "give one of `all`, `nodes`, `tenant` or `data_center`, not several",
        );
        return None;
    }
    if let Some(a) = all {
        return match a {
            Value::Bool(true) => Some(WindowScope::All),
            Value::Bool(false) => {
                probs.add(
                    key_path(path, "all"),
                    "`all = false` covers no node: name `nodes`, a `tenant` or a `data_center`",
                );
                None
            }
            _ => {
                probs.add(key_path(path, "all"), "expected true or false");
                None
            }
        };
    }
    if let Some(n) = nodes {
        let npath = key_path(path, "nodes");
        let Value::Array(a) = n else {
            probs.add(npath, "expected an array of node ids");
            return None;
        };
        let before = probs.0.len();
        let list = super::load_node_list(a, &npath, cluster, probs);
        if list.is_empty() && probs.0.len() == before {
            probs.add(npath, "the node list must not be empty");
        }
        return (probs.0.len() == before).then_some(WindowScope::Nodes(list));
    }
    if let Some(tv) = tenant {
        let p = key_path(path, "tenant");
        let name = as_str(tv, &p, probs)?;
        if cluster.tenant(&name).is_none() {
            probs.add(p, format!("unknown tenant '{name}'"));
            return None;
        }
        return Some(WindowScope::Tenant(name));
    }
    if let Some(dv) = dc {
        let p = key_path(path, "data_center");
        let name = as_str(dv, &p, probs)?;
        if !cluster
            .nodes()
            .any(|n| n.location.data_center.as_deref() == Some(name.as_str()))
        {
            probs.add(
                p,
                format!("unknown data center '{name}' (no node is in it)"),
            );
            return None;
        }
        return Some(WindowScope::DataCenter(name));
    }
    Some(WindowScope::All)
}

#[cfg(test)]
mod tests {
    use crate::engine::inventory::{Format, parse};
    use crate::engine::time::Timestamp;
    use crate::engine::windows::{Gate, WindowScope};

    const NODES: &str = r#"
[[nodes]]
id = 1
host = "a"
data_center = "dc-a"

[[nodes]]
id = 2
host = "b"
data_center = "dc-b"

[[nodes]]
id = 3
host = "c"
tenant = "/Root/db1"
"#;

    fn problems(windows: &str) -> Vec<String> {
        match parse(&format!("{NODES}{windows}"), Format::Toml) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .into_iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        }
    }

    #[test]
    fn loads_windows_and_their_scopes() {
        let text = format!(
            "{NODES}{}",
            r#"
[[windows]]
name = "weekday-nights"
zone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "22:00"
end = "06:00"
exclude = ["2026-12-24", 2026-12-31]
nodes = [1, 3]

[[windows]]
name = "dc-b"
zone = "UTC"
start = 08:00:00
end = "24:00"
data_center = "dc-b"
cut = false

[[windows]]
name = "db1"
zone = "America/New_York"
start = "01:00"
end = "02:00"
tenant = "/Root/db1"
"#
        );
        let c = parse(&text, Format::Toml).expect("valid");
        let w = c.windows();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].scope, WindowScope::Nodes(vec![1, 3]));
        assert_eq!(w[0].exclude.len(), 2);
        assert!(w[0].cut);
        assert_eq!((w[1].start, w[1].end, w[1].days), (480, 1440, [true; 7]));
        assert!(!w[1].cut);
        assert_eq!(w[2].scope, WindowScope::Tenant("/Root/db1".into()));
        assert_eq!(c.windows_of.get(&1), Some(&vec![0]));
        assert_eq!(c.windows_of.get(&2), Some(&vec![1]));
        assert_eq!(c.windows_of.get(&3), Some(&vec![0, 2]));
        // 2026-01-01T00:00Z is a Thursday, 01:00 in Berlin: inside Wednesday's night.
        let now = Timestamp(1_767_225_600_000);
        assert_eq!(c.window_gate(1, now), Gate::Open);
        match c.window_gate(2, now) {
            Gate::Closed { details, opens } => {
                assert_eq!(
                    details,
                    "node 2 is outside maintenance window 'dc-b' (UTC, daily 08:00-24:00); \
                     next opens 2026-01-01T08:00:00+00:00"
                );
                assert_eq!(opens, Some(Timestamp(1_767_225_600_000 + 8 * 3_600_000)));
            }
            Gate::Open => panic!("node 2 is outside"),
        }
        // Cut to Berlin 06:00 (05:00Z).
        assert_eq!(
            c.window_cut([1], now, Timestamp(u64::MAX)),
            Timestamp(1_767_225_600_000 + 5 * 3_600_000)
        );
    }

    #[test]
    fn a_json_inventory_takes_windows_too() {
        let text = r#"{"nodes": [{"id": 1, "host": "a"}],
            "windows": [{"name": "w", "zone": "UTC", "start": "01:00", "end": "02:00"}]}"#;
        let c = parse(text, Format::Json).expect("valid");
        assert_eq!(c.windows()[0].scope, WindowScope::All);
    }

    #[test]
    fn reports_every_problem_with_its_key_path() {
        let got = problems(
            r#"
[[windows]]
name = "nights"
zone = "Europe/Berln"
days = ["mon", "mo", "mon", 3]
start = "7:00"
end = "24:01"
exclude = ["2026-02-30", "tomorrow"]
nodes = [1, 9]
cut = "yes"
colour = "red"

[[windows]]
name = "t"
zone = "UTC"
start = "01:00"
end = "01:00"
tenant = "/Root/nope"

[[windows]]
name = "d"
zone = "UTC"
start = "01:00"
end = "02:00"
data_center = "dc-z"

[[windows]]
name = "two"
zone = "UTC"
start = "01:00"
end = "02:00"
all = true
nodes = [1]

[[windows]]
name = "d"
zone = "UTC"
start = "01:00"
end = "02:00"
days = []

[[windows]]
zone = "UTC"
all = false
"#,
        );
        let want = [
            "windows[0] (name 'nights').zone: unknown time zone 'Europe/Berln'",
            "windows[0] (name 'nights').days[1]: unknown weekday 'mo'",
            "windows[0] (name 'nights').days[2]: 'mon' is listed twice",
            "windows[0] (name 'nights').days[3]: expected a string, found a number",
            "windows[0] (name 'nights').start: invalid time '7:00'",
            "windows[0] (name 'nights').end: invalid time '24:01'",
            "windows[0] (name 'nights').exclude[0]: invalid date '2026-02-30'",
            "windows[0] (name 'nights').exclude[1]: invalid date 'tomorrow'",
            "windows[0] (name 'nights').nodes[1]: unknown node 9",
            "windows[0] (name 'nights').cut: expected true or false",
            "windows[0] (name 'nights').colour: unknown key",
            "windows[1] (name 't').end: start and end must differ",
            "windows[1] (name 't').tenant: unknown tenant '/Root/nope'",
            "windows[2] (name 'd').data_center: unknown data center 'dc-z'",
            "windows[3] (name 'two'): give one of `all`, `nodes`, `tenant` or `data_center`",
            "windows[4] (name 'd').days: a window needs at least one day",
            "windows[5].name: missing required key",
            "windows[5].start: missing required key",
            "windows[5].end: missing required key",
            "windows[5].all: `all = false` covers no node",
        ];
        for w in want {
            assert!(
                got.iter().any(|g| g.starts_with(w)),
                "missing {w:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let got = problems(
            r#"
[[windows]]
name = "w"
zone = "UTC"
start = "01:00"
end = "02:00"

[[windows]]
name = "w"
zone = "UTC"
start = "03:00"
end = "04:00"
"#,
        );
        assert_eq!(
            got,
            ["windows[1] (name 'w').name: duplicate window name 'w'"]
        );
    }
}

//! Printing: aligned tables and key-value blocks for people, JSON for scripts, and the one way
//! every command spells times, ages and enum values (so a table and its JSON agree).

use arbiter_client::proto::ydb::maintenance::action_state::{ActionReason, ActionStatus};
use arbiter_client::proto::ydb::maintenance::{AvailabilityMode, ItemState};
use arbiter_client::proto::ydb::status_ids::StatusCode;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Columns under a header, each as wide as its widest cell; the last column is not padded, so
/// a long text (a pending action's details) does not drag trailing spaces.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells beyond the header are dropped, missing ones are empty).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                // Cells never hold line breaks: a details text from the server is one line.
                let cell = cell.replace(['\n', '\r'], " ");
                if i + 1 == n {
                    line.push_str(&cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines with the values aligned, indented by two spaces.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let _ = writeln!(out, "  {k:<w$}  {v}");
    }
    out
}

/// Writes `text` to stdout in one piece and flushes, so a reader of a pipe (a script following
/// `task watch`) sees every update as soon as it is printed. When the reader has gone
/// (`arbiter task watch T | head -1`) there is nobody left to print for: the process ends
/// quietly with 0 at its next write, as a C tool would by SIGPIPE, rather than watching on.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if written.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// One JSON document, pretty-printed, for every command but `task watch`.
pub(crate) fn emit_json(value: &Value) {
    emit(&format!("{value:#}\n"));
}

/// One JSON object on one line (`task watch` prints a stream of these).
pub(crate) fn emit_json_line(value: &Value) {
    emit(&format!("{value}\n"));
}

/// A protobuf timestamp as a point in time; `None` when it cannot be one.
pub(crate) fn system_time(t: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// RFC 3339, UTC, whole seconds (`2026-01-01T00:10:00Z`); `-` when absent.
pub(crate) fn rfc3339(t: Option<&prost_types::Timestamp>) -> String {
    rfc3339_opt(t).unwrap_or_else(|| "-".to_owned())
}

/// RFC 3339 for JSON: `null` when absent or out of range.
pub(crate) fn rfc3339_json(t: Option<&prost_types::Timestamp>) -> Value {
    rfc3339_opt(t).map_or(Value::Null, Value::String)
}

fn rfc3339_opt(t: Option<&prost_types::Timestamp>) -> Option<String> {
    let t = system_time(t?)?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// How long ago `t` was, like `3s ago` or `2h 5m ago` (`in 4s` when it is ahead of this
/// machine's clock); `-` when absent.
pub(crate) fn age(t: Option<&prost_types::Timestamp>, now: SystemTime) -> String {
    let Some(t) = t.and_then(system_time) else {
        return "-".to_owned();
    };
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", compact(d)),
        Err(e) => format!("in {}", compact(e.duration())),
    }
}

/// A duration in its two largest units: `45s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub(crate) fn compact(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Strips a protobuf enum's type prefix (`ACTION_STATUS_PERFORMED` -> `PERFORMED`); an unknown
/// number prints as `UNKNOWN(7)`.
fn enum_name(name: Option<&'static str>, prefix: &str, raw: i32) -> String {
    match name {
        Some(n) => n.strip_prefix(prefix).unwrap_or(n).to_owned(),
        None => format!("UNKNOWN({raw})"),
    }
}

/// `UP`, `MAINTENANCE`, `DOWN`.
pub(crate) fn item_state(raw: i32) -> String {
    let name = ItemState::try_from(raw).ok().map(|s| s.as_str_name());
    enum_name(name, "ITEM_STATE_", raw)
}

/// The arbiter's own node state: `UP`, `ENTERING_MAINTENANCE`, `IN_MAINTENANCE`, `RESTARTING`,
/// `SETTLING`, `DOWN`, `UNKNOWN`.
pub(crate) fn node_condition(raw: i32) -> String {
    use arbiter_client::proto::arbiter::v1::NodeCondition;
    let name = NodeCondition::try_from(raw).ok().map(|s| s.as_str_name());
    enum_name(name, "NODE_CONDITION_", raw)
}

/// `PENDING`, `PERFORMED`, ...
pub(crate) fn action_status(raw: i32) -> String {
    let name = ActionStatus::try_from(raw).ok().map(|s| s.as_str_name());
    enum_name(name, "ACTION_STATUS_", raw)
}

/// `OK`, `DISABLED_NODES_LIMIT_REACHED`, ...
pub(crate) fn action_reason(raw: i32) -> String {
    let name = ActionReason::try_from(raw).ok().map(|s| s.as_str_name());
    enum_name(name, "ACTION_REASON_", raw)
}

/// `STRONG`, `WEAK`, `FORCE`, `SMART`.
pub(crate) fn mode(raw: i32) -> String {
    let name = AvailabilityMode::try_from(raw)
        .ok()
        .map(|s| s.as_str_name());
    enum_name(name, "AVAILABILITY_MODE_", raw)
}

/// YDB's status names as they are on the wire: `SUCCESS`, `BAD_REQUEST`, ...
pub(crate) fn status_code(raw: i32) -> String {
    let name = StatusCode::try_from(raw).ok().map(|s| s.as_str_name());
    enum_name(name, "", raw)
}

/// `yes` / `no`.
pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// `text`, or `-` for an empty one (an empty cell would shift the eye to the next column).
pub(crate) fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_do_not_pad_the_last_column() {
        let mut t = Table::new(&["ID", "HOST", "DETAIL"]);
        t.row(vec!["1".into(), "storage-1".into(), "".into()]);
        t.row(vec!["12".into(), "c".into(), "down since x".into()]);
        assert_eq!(
            t.render(),
            "ID  HOST       DETAIL\n1   storage-1\n12  c          down since x\n"
        );
    }

    #[test]
    fn times_and_ages() {
        let t = prost_types::Timestamp {
            seconds: 1_767_226_200,
            nanos: 0,
        };
        assert_eq!(rfc3339(Some(&t)), "2026-01-01T00:10:00Z");
        assert_eq!(rfc3339(None), "-");
        let bad = prost_types::Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(rfc3339(Some(&bad)), "-");
        let now = UNIX_EPOCH + Duration::from_secs(1_767_226_203);
        assert_eq!(age(Some(&t), now), "3s ago");
        assert_eq!(age(Some(&t), UNIX_EPOCH), "in 20454d 0h");
        assert_eq!(compact(Duration::from_secs(3 * 3600 + 125)), "3h 2m");
        assert_eq!(compact(Duration::from_secs(200)), "3m 20s");
    }

    #[test]
    fn enum_names_lose_their_prefix() {
        assert_eq!(action_status(ActionStatus::Performed as i32), "PERFORMED");
        assert_eq!(
            action_reason(ActionReason::DisabledNodesLimitReached as i32),
            "DISABLED_NODES_LIMIT_REACHED"
        );
        assert_eq!(item_state(ItemState::Maintenance as i32), "MAINTENANCE");
        assert_eq!(mode(AvailabilityMode::Strong as i32), "STRONG");
        assert_eq!(status_code(StatusCode::BadRequest as i32), "BAD_REQUEST");
        assert_eq!(action_status(99), "UNKNOWN(99)");
    }
}

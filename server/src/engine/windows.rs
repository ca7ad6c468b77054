//! Maintenance windows: when a node may be granted a lock at all.
//!
//! A [`Window`] is declared in the inventory: a time zone (resolved by the loader from jiff's
//! bundled tz database, so nothing here reads the machine's zone files), weekdays, a daily start
//! and end in local time (the end may wrap past midnight), and dates to exclude. An *occurrence*
//! opens on a listed, non-excluded local day at `start` and closes at `end` (the next local day
//! when the window wraps). Local times are turned into instants with the "compatible" rule: a
//! time that a daylight-saving jump skips is taken after the jump (02:30 in a spring-forward gap
//! is 03:30), a time that repeats is taken at its first occurrence.
//!
//! Everything is a function of (window, `now`): no clock is read.

use crate::engine::cluster::{Cluster, NodeId};
use crate::engine::report::{NodeView, WindowStatus};
use crate::engine::state::State;
use crate::engine::time::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// How far ahead the next opening is looked for (local days); excluded dates beyond that are
/// not expected.
const HORIZON_DAYS: u32 = 800;

/// Minutes in a day: the largest `end` ("24:00").
pub(crate) const DAY_MINUTES: u16 = 24 * 60;

/// Which nodes a window covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowScope {
    /// Every node.
    All,
    /// The dynamic nodes of a tenant.
    Tenant(String),
    /// The nodes of a data center.
    DataCenter(String),
    /// These nodes.
    Nodes(Vec<NodeId>),
}

/// One maintenance window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Unique among the inventory's windows.
    pub name: String,
    /// The IANA name as the inventory wrote it.
    pub zone_name: String,
    /// The zone, resolved when the inventory was loaded.
    pub zone: TimeZone,
    /// Open days, Monday first.
    pub days: [bool; 7],
    /// Local opening time, minutes after midnight (0..1440).
    pub start: u16,
    /// Local closing time, minutes after midnight (0..=1440); at or before `start`: the next day.
    pub end: u16,
    /// Local days on which the window does not open.
    pub exclude: BTreeSet<Date>,
    /// Whether a lock granted inside the window ends when the window does.
    pub cut: bool,
    /// Which nodes it covers.
    pub scope: WindowScope,
}

/// Whether a node may be granted now, by its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The node has no windows, or is inside one.
    Open,
    /// Outside all its windows: the text to show, and when the soonest one opens (if ever).
    Closed {
        details: String,
        opens: Option<Timestamp>,
    },
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Parses a weekday name: `mon` or `monday`, any case.
pub(crate) fn parse_day(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    FULL.iter()
        .position(|f| *f == lower || (lower.len() == 3 && f.starts_with(lower.as_str())))
}

/// Parses `HH:MM` (00:00 to 23:59, and 24:00 when `allow_24` is set) into minutes.
pub(crate) fn parse_hhmm(s: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 {
        return None;
    }
    let total = h * 60 + m;
    if total < DAY_MINUTES || (allow_24 && total == DAY_MINUTES) {
        Some(total)
    } else {
        None
    }
}

/// Parses `YYYY-MM-DD` into a valid calendar date.
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || m.len() != 2
        || d.len() != 2
        || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The instant as jiff sees it; `None` past jiff's range (year 9999).
fn to_jiff(t: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(i64::try_from(t.as_millis()).ok()?).ok()
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    Timestamp(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

impl Window {
    /// `Mon-Fri`, `Mon,Wed,Sat`, `daily`.
    fn days_text(&self) -> String {
        if self.days.iter().all(|d| *d) {
            return "daily".to_owned();
        }
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.days[i] {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < 7 && self.days[j + 1] {
                j += 1;
            }
            if j - i >= 2 {
                parts.push(format!("{}-{}", DAY_NAMES[i], DAY_NAMES[j]));
            } else {
                parts.extend(DAY_NAMES[i..=j].iter().map(|d| (*d).to_owned()));
            }
            i = j + 1;
        }
        parts.join(",")
    }

    /// `'weekday-nights' (Europe/Berlin, Mon-Fri 22:00-06:00)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "'{}' ({}, {} {}-{})",
            self.name,
            self.zone_name,
            self.days_text(),
            hhmm(self.start),
            hhmm(self.end)
        )
    }

    /// An instant as RFC 3339 with the window zone's offset there, to the second.
    pub(crate) fn local_text(&self, t: Timestamp) -> String {
        let Some(ts) = to_jiff(t) else {
            return t.to_string();
        };
        let dt = self.zone.to_datetime(ts);
        let off = self.zone.to_offset(ts).seconds();
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            off / 3600,
            off / 60 % 60
        );
        if !off.is_multiple_of(60) {
            let _ = write!(s, ":{:02}", off % 60);
        }
        s
    }

    fn local_instant(&self, date: Date, minutes: u16) -> Option<jiff::Timestamp> {
        let (date, minutes) = if minutes >= DAY_MINUTES {
            (date.tomorrow().ok()?, minutes - DAY_MINUTES)
        } else {
            (date, minutes)
        };
        let hour = i8::try_from(minutes / 60).ok()?;
        let minute = i8::try_from(minutes % 60).ok()?;
        let dt: DateTime = date.at(hour, minute, 0, 0);
        self.zone.to_ambiguous_timestamp(dt).compatible().ok()
    }

    /// The occurrence that opens on local day `date`, if the window opens that day: [open, close).
    fn occurrence(&self, date: Date) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        let wd = usize::try_from(date.weekday().to_monday_zero_offset()).ok()?;
        if !self.days.get(wd).copied().unwrap_or(false) || self.exclude.contains(&date) {
            return None;
        }
        let open = self.local_instant(date, self.start)?;
        let close_day = if self.end <= self.start {
            date.tomorrow().ok()?
        } else {
            date
        };
        let close = self.local_instant(close_day, self.end)?;
        (open < close).then_some((open, close))
    }

    /// The local day two days before `now`'s: the earliest day whose occurrence may still be open.
    fn first_day(&self, now: jiff::Timestamp) -> Option<Date> {
        let today = self.zone.to_datetime(now).date();
        today.yesterday().ok()?.yesterday().ok()
    }

    /// The occurrence open at `now`, if any.
    fn open_at(&self, now: jiff::Timestamp) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        let mut day = self.first_day(now)?;
        for _ in 0..4 {
            if let Some((o, c)) = self.occurrence(day)
                && o <= now
                && now < c
            {
                return Some((o, c));
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        to_jiff(now).is_some_and(|n| self.open_at(n).is_some())
    }

    /// The first opening strictly after `now`, within the horizon.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        let now = to_jiff(now)?;
        let mut day = self.first_day(now)?;
        for _ in 0..HORIZON_DAYS {
            if let Some((o, _)) = self.occurrence(day)
                && o > now
            {
                return Some(from_jiff(o));
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// When the window open at `now` closes: its occurrence's end, carried on through any
    /// occurrence that opens by then (a window of 00:00-24:00 every day never closes
    /// in between). `None` when it is not open.
    pub fn open_until(&self, now: Timestamp) -> Option<Timestamp> {
        let now = to_jiff(now)?;
        let (_, mut close) = self.open_at(now)?;
        let mut day = self.zone.to_datetime(close).date().yesterday().ok()?;
        for _ in 0..HORIZON_DAYS {
            match self.occurrence(day) {
                Some((o, c)) if o <= close && c > close => close = c,
                _ => {}
            }
            if self.zone.to_datetime(close).date() < day {
                break;
            }
            day = day.tomorrow().ok()?;
        }
        Some(from_jiff(close))
    }
}

impl Cluster {
    /// Rebuilds node -> windows from each window's scope.
    pub(crate) fn index_windows(&mut self) {
        self.windows_of.clear();
        for (i, w) in self.windows.iter().enumerate() {
            let nodes: Vec<NodeId> = match &w.scope {
                WindowScope::All => self.nodes.keys().copied().collect(),
                WindowScope::Tenant(t) => self
                    .nodes
                    .values()
                    .filter(|n| n.tenant.as_deref() == Some(t.as_str()))
                    .map(|n| n.id)
                    .collect(),
                WindowScope::DataCenter(dc) => self
                    .nodes
                    .values()
                    .filter(|n| n.location.data_center.as_deref() == Some(dc.as_str()))
                    .map(|n| n.id)
                    .collect(),
                WindowScope::Nodes(ns) => ns.clone(),
            };
            for n in nodes {
                self.windows_of.entry(n).or_default().push(i);
            }
        }
    }

    /// The maintenance windows, in inventory order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The windows that cover node `n`.
    fn windows_of(&self, n: NodeId) -> impl Iterator<Item = &Window> {
        self.windows_of
            .get(&n)
            .into_iter()
            .flatten()
            .filter_map(|i| self.windows.get(*i))
    }

    /// Whether node `n` has windows and none is open at `now` (the gate, without its text).
    pub(crate) fn window_closed(&self, n: NodeId, now: Timestamp) -> bool {
        self.windows_of.contains_key(&n) && !self.windows_of(n).any(|w| w.is_open(now))
    }

    /// Whether node `n` may be granted at `now` by its maintenance windows.
    pub(crate) fn window_gate(&self, n: NodeId, now: Timestamp) -> Gate {
        let mut soonest: Option<(&Window, Option<Timestamp>)> = None;
        let mut count = 0usize;
        for w in self.windows_of(n) {
            if w.is_open(now) {
                return Gate::Open;
            }
            count += 1;
            let next = w.next_open(now);
            let better = match &soonest {
                None => true,
                Some((_, best)) => match (next, best) {
                    (Some(a), Some(b)) => a < *b,
                    (Some(_), None) => true,
                    _ => false,
                },
            };
            if better {
                soonest = Some((w, next));
            }
        }
        let Some((w, opens)) = soonest else {
            return Gate::Open;
        };
        let mut details = format!("node {n} is outside maintenance window {}", w.describe());
        match opens {
            Some(t) => {
                let _ = write!(details, "; next opens {}", w.local_text(t));
            }
            None => details.push_str("; it does not open again in the next two years"),
        }
        if count > 1 {
            let _ = write!(details, " (the soonest of its {count} windows)");
        }
        Gate::Closed { details, opens }
    }

    /// Node `n`'s maintenance windows at `now`: their names, whether one is open, and when the
    /// open one closes (the latest end among the open ones) or, when none is open, the soonest
    /// opening. `None` when no window covers the node.
    pub fn window_status(&self, n: NodeId, now: Timestamp) -> Option<WindowStatus> {
        let mut at = WindowsAt::new(self, now);
        self.status_with(n, &mut at)
    }

    /// [`Cluster::window_status`] with each window's answer taken once from `at`.
    fn status_with(&self, n: NodeId, at: &mut WindowsAt<'_>) -> Option<WindowStatus> {
        let ids = self.windows_of.get(&n).filter(|ids| !ids.is_empty())?;
        let mut names = Vec::with_capacity(ids.len());
        // (instant, window) of the latest end among the open ones, and of the soonest opening.
        let mut until: Option<(Option<Timestamp>, usize)> = None;
        let mut next: Option<(Option<Timestamp>, usize)> = None;
        for &i in ids {
            let Some(w) = self.windows.get(i) else {
                continue;
            };
            names.push(w.name.clone());
            match at.get(i) {
                Moment::Open(end) => {
                    let later = match until {
                        None => true,
                        Some((best, _)) => end > best,
                    };
                    if later {
                        until = Some((end, i));
                    }
                }
                Moment::Closed(opens) => {
                    let sooner = match next {
                        None => true,
                        Some((None, _)) => opens.is_some(),
                        Some((Some(b), _)) => opens.is_some_and(|o| o < b),
                    };
                    if sooner {
                        next = Some((opens, i));
                    }
                }
            }
        }
        let open = until.is_some();
        let (instant, i) = until.or(next)?;
        let w = self.windows.get(i)?;
        Some(WindowStatus {
            names,
            open,
            open_until: if open { instant } else { None },
            next_open: if open { None } else { instant },
            zone: w.zone_name.clone(),
            local: instant.map(|t| w.local_text(t)),
        })
    }

    /// A lock's deadline cut to the end of the windows its nodes are in: for each node, the
    /// latest end among its open windows, unless one of them does not cut (or the node has no
    /// windows); the earliest of those over the nodes.
    pub(crate) fn window_cut(
        &self,
        nodes: impl IntoIterator<Item = NodeId>,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Timestamp {
        let mut out = deadline;
        for n in nodes {
            let mut bound: Option<Timestamp> = None;
            let mut uncut = false;
            for w in self.windows_of(n) {
                let Some(end) = w.open_until(now) else {
                    continue;
                };
                if !w.cut {
                    uncut = true;
                    break;
                }
                bound = Some(bound.map_or(end, |b| b.max(end)));
            }
            if let (false, Some(b)) = (uncut, bound) {
                out = out.min(b);
            }
        }
        out
    }
}

/// Where one window stands at an instant.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Open, until then (`None`: past jiff's range).
    Open(Option<Timestamp>),
    /// Closed; opens then (`None`: not within the horizon).
    Closed(Option<Timestamp>),
}

/// Each window's [`Moment`] at one instant, computed when first asked for: a node list asks
/// about the same few windows for every node.
struct WindowsAt<'a> {
    windows: &'a [Window],
    now: Timestamp,
    seen: Vec<Option<Moment>>,
}

impl<'a> WindowsAt<'a> {
    fn new(cluster: &'a Cluster, now: Timestamp) -> WindowsAt<'a> {
        WindowsAt {
            windows: &cluster.windows,
            now,
            seen: vec![None; cluster.windows.len()],
        }
    }

    fn get(&mut self, i: usize) -> Moment {
        if let Some(Some(m)) = self.seen.get(i) {
            return *m;
        }
        let m = match self.windows.get(i) {
            Some(w) if w.is_open(self.now) => Moment::Open(w.open_until(self.now)),
            Some(w) => Moment::Closed(w.next_open(self.now)),
            None => Moment::Closed(None),
        };
        if let Some(slot) = self.seen.get_mut(i) {
            *slot = Some(m);
        }
        m
    }
}

impl State {
    /// Every node with its state, ascending by id, and with its maintenance windows at `now`
    /// ([`Cluster::window_status`]; each window is looked at once).
    pub fn nodes_at(&self, now: Timestamp) -> Vec<NodeView> {
        let cluster = self.cluster();
        let mut at = WindowsAt::new(cluster, now);
        let mut views = self.nodes();
        for v in &mut views {
            v.window = cluster.status_with(v.id, &mut at);
        }
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(zone: &str, days: &[usize], start: &str, end: &str, exclude: &[&str]) -> Window {
        let mut d = [false; 7];
        for i in days {
            d[*i] = true;
        }
        Window {
            name: "w".into(),
            zone_name: zone.into(),
            zone: jiff::tz::TimeZoneDatabase::bundled()
                .get(zone)
                .expect("zone"),
            days: d,
            start: parse_hhmm(start, false).expect("start"),
            end: parse_hhmm(end, true).expect("end"),
            exclude: exclude
                .iter()
                .map(|s| parse_date(s).expect("date"))
                .collect(),
            cut: true,
            scope: WindowScope::All,
        }
    }

    fn at(s: &str) -> Timestamp {
        let t: jiff::Timestamp = s.parse().expect("timestamp");
        from_jiff(t)
    }

    #[test]
    fn parses_times_days_and_dates() {
        assert_eq!(parse_hhmm("22:00", false), Some(1320));
        assert_eq!(parse_hhmm("00:00", false), Some(0));
        assert_eq!(parse_hhmm("24:00", false), None);
        assert_eq!(parse_hhmm("24:00", true), Some(1440));
        for bad in ["7:00", "07:60", "25:00", "07-00", "", "ab:cd", "+1:00"] {
            assert_eq!(parse_hhmm(bad, true), None, "{bad}");
        }
        assert_eq!(parse_day("mon"), Some(0));
        assert_eq!(parse_day("Sunday"), Some(6));
        assert_eq!(parse_day("SAT"), Some(5));
        assert_eq!(parse_day("mo"), None);
        assert_eq!(parse_day("thurs"), None);
        assert!(parse_date("2026-12-24").is_some());
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-24",
            "2026-1-01",
            "2026-12-24x",
            "",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_window_that_wraps_past_midnight() {
        // Mon-Fri 22:00-06:00 Berlin (UTC+1 in winter). 2026-12-01 is a Tuesday.
        let w = window("Europe/Berlin", &[0, 1, 2, 3, 4], "22:00", "06:00", &[]);
        assert_eq!(w.describe(), "'w' (Europe/Berlin, Mon-Fri 22:00-06:00)");
        assert!(!w.is_open(at("2026-12-01T12:00:00Z")));
        assert_eq!(
            w.next_open(at("2026-12-01T12:00:00Z")),
            Some(at("2026-12-01T21:00:00Z"))
        );
        assert_eq!(
            w.local_text(at("2026-12-01T21:00:00Z")),
            "2026-12-01T22:00:00+01:00"
        );
        assert!(w.is_open(at("2026-12-01T21:00:00Z")));
        assert!(w.is_open(at("2026-12-02T04:59:59Z")));
        assert!(!w.is_open(at("2026-12-02T05:00:00Z")));
        assert_eq!(
            w.open_until(at("2026-12-01T23:00:00Z")),
            Some(at("2026-12-02T05:00:00Z"))
        );
        // Friday night runs into Saturday morning; Saturday night does not open.
        assert!(w.is_open(at("2026-12-05T03:00:00Z")));
        assert!(!w.is_open(at("2026-12-05T22:00:00Z")));
        assert_eq!(
            w.next_open(at("2026-12-05T22:00:00Z")),
            Some(at("2026-12-07T21:00:00Z"))
        );
    }

    #[test]
    fn excluded_dates_skip_the_occurrence_that_opens_on_them() {
        // 2026-12-24 is a Thursday.
        let w = window(
            "Europe/Berlin",
            &[0, 1, 2, 3, 4],
            "22:00",
            "06:00",
            &["2026-12-24"],
        );
        assert!(!w.is_open(at("2026-12-24T22:00:00Z")));
        assert!(w.is_open(at("2026-12-24T04:00:00Z")), "Wednesday's night");
        assert_eq!(
            w.next_open(at("2026-12-24T12:00:00Z")),
            Some(at("2026-12-25T21:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_changes() {
        // Berlin jumps from 02:00 CET to 03:00 CEST on 2026-03-29 (01:00Z).
        let w = window(
            "Europe/Berlin",
            &[0, 1, 2, 3, 4, 5, 6],
            "01:30",
            "03:30",
            &[],
        );
        // 01:30 CET = 00:30Z; 03:30 CEST = 01:30Z: one real hour that day.
        assert_eq!(
            w.next_open(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T00:30:00Z"))
        );
        assert_eq!(
            w.open_until(at("2026-03-29T00:45:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
        assert!(!w.is_open(at("2026-03-29T01:30:00Z")));
        // The next day it is CEST: 01:30 local = 23:30Z the evening before.
        assert_eq!(
            w.next_open(at("2026-03-29T01:30:00Z")),
            Some(at("2026-03-29T23:30:00Z"))
        );
        assert_eq!(
            w.local_text(at("2026-03-29T23:30:00Z")),
            "2026-03-30T01:30:00+02:00"
        );
        // A start inside the gap opens after the jump.
        let g = window("Europe/Berlin", &[6], "02:30", "04:00", &[]);
        assert_eq!(
            g.next_open(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
        // Autumn: 2026-10-25 03:00 CEST -> 02:00 CET; 01:00-04:00 lasts four real hours.
        let f = window("Europe/Berlin", &[6], "01:00", "04:00", &[]);
        assert_eq!(
            f.open_until(at("2026-10-24T23:30:00Z")),
            Some(at("2026-10-25T03:00:00Z"))
        );
    }

    #[test]
    fn back_to_back_days_do_not_close_at_midnight() {
        let w = window(
            "UTC",
            &[0, 1, 2, 3, 4, 5, 6],
            "00:00",
            "24:00",
            &["2026-01-05"],
        );
        assert_eq!(w.days_text(), "daily");
        assert_eq!(
            w.open_until(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-05T00:00:00Z"))
        );
        let s = window("UTC", &[5, 6], "08:00", "09:00", &[]);
        assert_eq!(s.days_text(), "Sat,Sun");
        let m = window("UTC", &[0, 2, 3, 4], "08:00", "09:00", &[]);
        assert_eq!(m.days_text(), "Mon,Wed-Fri");
    }

    #[test]
    fn window_status_of_a_node() {
        use crate::engine::inventory::{Format, parse};
        let text = r#"
[[nodes]]
id = 1
host = "n1"
port = 1

[[nodes]]
id = 2
host = "n2"
port = 1

[[nodes]]
id = 3
host = "n3"
port = 1

[[windows]]
name = "nights"
zone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "22:00"
end = "06:00"
nodes = [1, 2]

[[windows]]
name = "mornings"
zone = "UTC"
start = "07:00"
end = "09:00"
nodes = [2]
"#;
        let c = parse(text, Format::Toml).expect("valid");
        // 2026-12-01 is a Tuesday; 12:00Z is 13:00 in Berlin: both closed.
        let noon = at("2026-12-01T12:00:00Z");
        assert_eq!(c.window_status(3, noon), None, "no window covers node 3");
        assert_eq!(c.window_status(99, noon), None, "no such node");
        let s = c.window_status(1, noon).expect("node 1 has a window");
        assert_eq!(s.names, vec!["nights".to_owned()]);
        assert!(!s.open);
        assert_eq!(s.open_until, None);
        assert_eq!(s.next_open, Some(at("2026-12-01T21:00:00Z")));
        assert_eq!(s.zone, "Europe/Berlin");
        assert_eq!(s.local.as_deref(), Some("2026-12-01T22:00:00+01:00"));
        // Node 2: the soonest of its two openings (Berlin at 21:00Z before UTC at 07:00Z).
        let s = c.window_status(2, noon).expect("node 2 has windows");
        assert_eq!(s.names, vec!["nights".to_owned(), "mornings".to_owned()]);
        assert_eq!(s.next_open, Some(at("2026-12-01T21:00:00Z")));
        // At 23:00Z Berlin's night is open until 05:00Z; the mornings are closed.
        let night = at("2026-12-01T23:00:00Z");
        let s = c.window_status(2, night).expect("node 2 has windows");
        assert!(s.open);
        assert_eq!(s.open_until, Some(at("2026-12-02T05:00:00Z")));
        assert_eq!(s.next_open, None);
        assert_eq!(s.local.as_deref(), Some("2026-12-02T06:00:00+01:00"));
        // At 08:00Z only the mornings are open, until 09:00Z.
        let s = c
            .window_status(2, at("2026-12-02T08:00:00Z"))
            .expect("node 2 has windows");
        assert!(s.open);
        assert_eq!(s.open_until, Some(at("2026-12-02T09:00:00Z")));
        assert_eq!(s.zone, "UTC");
        assert_eq!(s.local.as_deref(), Some("2026-12-02T09:00:00+00:00"));
        // The state's node list carries the same, and nothing for node 3.
        let state = State::new(std::sync::Arc::new(c.clone()));
        let views = state.nodes_at(night);
        assert_eq!(views.len(), 3);
        assert_eq!(views[1].window, c.window_status(2, night));
        assert_eq!(views[2].window, None);
        assert!(state.nodes().iter().all(|v| v.window.is_none()));
    }

    #[test]
    fn a_window_that_never_opens_again_is_closed_with_no_opening() {
        let w = window("UTC", &[0], "08:00", "09:00", &[]);
        let mut c = Cluster::default();
        c.windows.push(w);
        c.windows_of.insert(1, vec![0]);
        let s = c
            .window_status(1, Timestamp(253_402_300_799_999))
            .expect("covered");
        assert!(!s.open);
        assert_eq!((s.open_until, s.next_open, s.local), (None, None, None));
    }

    #[test]
    fn absurd_times_never_panic() {
        let w = window("Europe/Berlin", &[0], "22:00", "06:00", &[]);
        for t in [0, u64::MAX, 253_402_300_799_999, 253_402_300_799_999 + 1] {
            let _ = w.is_open(Timestamp(t));
            let _ = w.next_open(Timestamp(t));
            let _ = w.open_until(Timestamp(t));
            let _ = w.local_text(Timestamp(t));
        }
    }
}

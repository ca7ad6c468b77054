//! `arbiter audit`: the server's audit trail (arbiter.v1 ListAudit), filtered, every page of
//! it; with `--follow`, then every new entry as it comes (polling with `after_seq` every
//! `--poll`), until Ctrl-C.

use crate::Ctx;
use crate::cli::{AuditArgs, Format};
use crate::error::Failure;
use crate::output::{self, Table, emit, emit_json, emit_json_line, or_dash};
use arbiter_client::proto::arbiter::v1::{AuditEntry, ListAuditRequest};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most entries one page asks for (the server's cap).
const PAGE: u32 = 1000;
/// The shortest and longest `--poll`.
pub(crate) const POLL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));

/// `--since`: a point in time, or how long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// RFC 3339.
    At(SystemTime),
    /// A duration before now.
    Ago(Duration),
}

impl Since {
    fn resolve(self, now: SystemTime) -> SystemTime {
        match self {
            Since::At(t) => t,
            Since::Ago(d) => now.checked_sub(d).unwrap_or(UNIX_EPOCH),
        }
    }
}

/// `2026-01-01T00:00:00Z` or `10m` (that long ago).
pub(crate) fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(Since::At(t));
    }
    humantime::parse_duration(s).map(Since::Ago).map_err(|_| {
        format!("'{s}' is neither an RFC 3339 time (2026-01-01T00:00:00Z) nor a duration (10m, 2h)")
    })
}

/// `--poll`: within [`POLL_RANGE`].
pub(crate) fn parse_poll(s: &str) -> Result<Duration, String> {
    let d = arbiter_client::durations::duration(s)?;
    let (low, high) = POLL_RANGE;
    if d < low || d > high {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(low),
            humantime::format_duration(high)
        ));
    }
    Ok(d)
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn request(args: &AuditArgs, since: Option<SystemTime>, after_seq: u64) -> ListAuditRequest {
    ListAuditRequest {
        task_uid: args.task.clone().unwrap_or_default(),
        node_id: args.node.unwrap_or(0),
        user: args.by.clone().unwrap_or_default(),
        kind: args.kind.clone().unwrap_or_default(),
        since: since.map(timestamp),
        until: None,
        after_seq,
        limit: PAGE,
    }
}

/// Every matching entry after `after_seq`, page by page; and the sequence number to go on from.
async fn fetch(
    ctx: &Ctx,
    args: &AuditArgs,
    since: Option<SystemTime>,
    mut after_seq: u64,
) -> Result<(Vec<AuditEntry>, u64), Failure> {
    let mut all = Vec::new();
    loop {
        let page = ctx
            .client
            .list_audit(request(args, since, after_seq))
            .await?;
        let before = after_seq;
        if let Some(last) = page.entries.last() {
            after_seq = after_seq.max(last.seq);
        }
        all.extend(page.entries);
        // 0: nothing more now. A server never points backwards; if it did, stop rather than loop.
        if page.next_after_seq == 0 || page.next_after_seq <= before {
            return Ok((all, after_seq));
        }
        after_seq = after_seq.max(page.next_after_seq);
    }
}

/// Prints the trail (and, with `--follow`, keeps printing new entries until Ctrl-C).
pub(crate) async fn run(ctx: &Ctx, args: &AuditArgs) -> Result<(), Failure> {
    let since = args.since.map(|s| s.resolve(SystemTime::now()));
    let (entries, mut after) = fetch(ctx, args, since, 0).await?;
    if !args.follow {
        match ctx.format {
            Format::Table if entries.is_empty() => emit("no audit entries\n"),
            Format::Table => emit(&table(&entries)),
            Format::Json => emit_json(&Value::Array(entries.iter().map(to_json).collect())),
        }
        return Ok(());
    }
    print_follow(ctx.format, &entries);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            () = tokio::time::sleep(args.poll) => {}
        }
        let (entries, next) = fetch(ctx, args, since, after).await?;
        after = next;
        print_follow(ctx.format, &entries);
    }
}

fn print_follow(format: Format, entries: &[AuditEntry]) {
    for e in entries {
        match format {
            Format::Table => emit(&format!("{}\n", line(e))),
            Format::Json => emit_json_line(&to_json(e)),
        }
    }
}

fn who(e: &AuditEntry) -> String {
    let mut text = or_dash(&e.user);
    if !e.role.is_empty() {
        text = format!("{text} ({})", e.role);
    }
    text
}

fn nodes(e: &AuditEntry) -> String {
    if e.node_ids.is_empty() {
        return "-".to_owned();
    }
    let ids: Vec<String> = e.node_ids.iter().map(u32::to_string).collect();
    ids.join(",")
}

/// One entry on one line (`--follow`).
fn line(e: &AuditEntry) -> String {
    format!(
        "#{} {} {} by {} from {} task {} nodes {}: {}",
        e.seq,
        output::rfc3339(e.time.as_ref()),
        e.kind,
        who(e),
        or_dash(&e.peer),
        or_dash(&e.task_uid),
        nodes(e),
        e.detail
    )
}

fn table(entries: &[AuditEntry]) -> String {
    let mut table = Table::new(&[
        "SEQ", "TIME", "KIND", "USER", "PEER", "TASK", "NODES", "DETAIL",
    ]);
    for e in entries {
        table.row(vec![
            e.seq.to_string(),
            output::rfc3339(e.time.as_ref()),
            e.kind.clone(),
            who(e),
            or_dash(&e.peer),
            or_dash(&e.task_uid),
            nodes(e),
            or_dash(&e.detail),
        ]);
    }
    table.render()
}

fn to_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "time": output::rfc3339_json(e.time.as_ref()),
        "kind": e.kind,
        "user": e.user,
        "role": e.role,
        "peer": e.peer,
        "task_uid": e.task_uid,
        "node_ids": e.node_ids,
        "detail": e.detail,
        "fencing_token": e.fencing_token,
        "force": e.force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration() {
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Duration::from_secs(600))));
        let at = parse_since("2026-01-01T00:00:00Z").expect("rfc3339");
        assert_eq!(
            at,
            Since::At(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_poll("10ms").is_err());
        assert_eq!(parse_poll("1s"), Ok(Duration::from_secs(1)));
    }
}

//! The rollout: follows the task, starts the command for granted nodes (at most `--inflight` at
//! once, in the task's group order), waits until each restarted node is seen up again, then
//! completes its lock.
//!
//! # Seen up again
//! After a node's command succeeds, the rollout polls `ListNodes`. The node is back when its
//! state is UP and, if it has an agent, the arbiter has received a heartbeat newer than the one
//! it knew of just after the command ended (both times are the server's, so clocks need not
//! agree). A node without an agent only has to be UP; the server's settle time covers it after
//! the completion. Not back within `--up-timeout` of the command's end: the rollout stops, says
//! which of these it waited for and what the arbiter last said of the node, and the node keeps
//! its lock.
//!
//! # Stopping
//! - Ctrl-C (or SIGTERM): no new node starts; the ones in progress finish (restart, come up,
//!   complete). Then the task is dropped, or kept with `--keep-task` for a resume. A second
//!   Ctrl-C stops the running commands at once.
//! - A node that does not come back, or whose command fails (without `--keep-going`): no new
//!   node starts, the ones in progress finish, the task is kept with that node's lock.
//! - The task disappears (dropped by someone else): nothing new can be granted; the ones in
//!   progress finish.
//!
//! While it stops, the rollout closes its watch, so the arbiter stops granting it more nodes.

use super::RollingError;
use super::args::RollingArgs;
use super::executor::{self, Event, Job};
use super::feed::{self, Feed, FeedMsg};
use super::node_run::{NodeRun, Phase, newer, waited_for};
use super::plan::Plan;
use super::progress::{Counts, Progress};
use super::select::Target;
use super::signals::Signals;
use super::summary::Summary;
use super::task::{NodeAction, node_actions, show_duration, show_time};
use crate::Client;
use crate::proto::arbiter::v1::NodeStatus;
use crate::proto::ydb::maintenance::ItemState;
use crate::proto::ydb::status_ids::StatusCode;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// How often a status line is printed in lines mode.
const STATUS_EVERY: Duration = Duration::from_secs(30);
/// The least time between two reports of the same server trouble.
const TROUBLE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupted,
    Stalled(usize),
    Failed(usize),
    TaskGone,
}

struct Rollout {
    client: Client,
    args: RollingArgs,
    uid: String,
    template: String,
    nodes: Vec<NodeRun>,
    index: HashMap<u32, usize>,
    out: Progress,
    stop: Option<Stop>,
    aborted: bool,
    started: Instant,
    events: mpsc::UnboundedSender<Event>,
    abort: watch::Sender<bool>,
    skipped: Vec<(Target, String)>,
    last_trouble: HashMap<String, Instant>,
    task_gone: bool,
}

/// Runs the rollout of `plan` to its end.
pub(crate) async fn drive(
    client: Client,
    args: RollingArgs,
    plan: Plan,
    signals: &mut Signals,
) -> Result<(), RollingError> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (abort, _) = watch::channel(false);
    let out = Progress::new(args.progress, plan.targets.len());
    let mut r = Rollout {
        client: client.clone(),
        template: args.exec.clone().unwrap_or_default(),
        uid: plan.uid.clone(),
        index: plan
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect(),
        nodes: plan
            .targets
            .iter()
            .map(|t| NodeRun {
                target: t.clone(),
                phase: Phase::Waiting,
                uid: None,
                deadline: None,
                why: String::new(),
                lock_gone: false,
                remark: None,
            })
            .collect(),
        args,
        out,
        stop: None,
        aborted: false,
        started: Instant::now(),
        events: events_tx,
        abort,
        skipped: plan.skipped.clone(),
        last_trouble: HashMap::new(),
        task_gone: false,
    };
    r.out.line(&plan.headline);
    for note in &plan.notes {
        r.out.line(note);
    }
    for (t, why) in &plan.skipped {
        r.out.line(&format!("{t}: skipped: {why}"));
    }
    r.apply(&plan.initial, false);

    let mut feed = Some(feed::start(client, plan.uid));
    let mut poll = tokio::time::interval(r.args.poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let status_every = if r.out.is_bar() {
        Duration::from_secs(1)
    } else {
        STATUS_EVERY
    };
    let mut status =
        tokio::time::interval_at(tokio::time::Instant::now() + status_every, status_every);
    status.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        r.schedule();
        r.show_counts();
        if r.finished() {
            break;
        }
        tokio::select! {
            msg = next_feed(&mut feed) => match msg {
                Some(m) => r.on_feed(m),
                // The feed ends after reporting the task gone; otherwise it failed: again.
                None if r.task_gone => feed = None,
                None => feed = Some(feed::start(r.client.clone(), r.uid.clone())),
            },
            Some(ev) = events_rx.recv() => r.on_event(ev).await,
            _ = poll.tick(), if r.coming_up() => r.poll_up().await,
            sig = signals.recv() => r.on_signal(sig),
            _ = status.tick() => r.status(),
        }
        if r.stop.is_some() {
            // Stop driving the task: nothing more should be granted to a rollout that stops.
            feed = None;
        }
    }
    drop(feed);
    r.finish().await
}

async fn next_feed(feed: &mut Option<Feed>) -> Option<FeedMsg> {
    match feed {
        Some(f) => f.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Rollout {
    fn node_mut(&mut self, id: u32) -> Option<&mut NodeRun> {
        let i = *self.index.get(&id)?;
        self.nodes.get_mut(i)
    }

    fn in_flight(&self) -> usize {
        self.nodes.iter().filter(|n| n.in_flight()).count()
    }

    fn coming_up(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.phase, Phase::ComingUp { .. }))
    }

    fn finished(&self) -> bool {
        if self.nodes.iter().all(NodeRun::terminal) {
            return true;
        }
        self.stop.is_some() && self.in_flight() == 0
    }

    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for n in &self.nodes {
            match n.phase {
                Phase::Done => c.restarted += 1,
                Phase::Running | Phase::ComingUp { .. } => c.in_progress += 1,
                Phase::Waiting | Phase::Granted => c.waiting += 1,
                Phase::Failed(_) | Phase::Stalled | Phase::Lost(_) => c.failed += 1,
                Phase::Aborted => {}
            }
        }
        c
    }

    fn show_counts(&mut self) {
        let c = self.counts();
        self.out.set_counts(c);
    }

    /// Reports server trouble, at most once per [`TROUBLE_EVERY`] for the same text.
    fn trouble(&mut self, text: String) {
        let now = Instant::now();
        if self
            .last_trouble
            .get(&text)
            .is_some_and(|t| now.duration_since(*t) < TROUBLE_EVERY)
        {
            return;
        }
        self.last_trouble.insert(text.clone(), now);
        self.out.line(&format!("warning: {text}"));
    }

    /// Takes in what the task says; `full`: the task's whole state, so a node that is missing
    /// has left it.
    fn apply(&mut self, actions: &[(u32, NodeAction)], full: bool) {
        let mut present = HashSet::new();
        for (id, action) in actions {
            present.insert(*id);
            let Some(n) = self.node_mut(*id) else {
                continue;
            };
            let mut line = None;
            match (action, &n.phase) {
                (NodeAction::Granted { uid, deadline }, Phase::Waiting) => {
                    n.phase = Phase::Granted;
                    n.uid.clone_from(uid);
                    n.deadline = *deadline;
                    line = Some(match deadline {
                        Some(t) => format!("{}: granted (lock until {})", n.target, show_time(*t)),
                        None => format!("{}: granted", n.target),
                    });
                }
                (NodeAction::Granted { deadline, .. }, _) => n.deadline = *deadline,
                (NodeAction::Waiting { why }, Phase::Waiting) => n.why.clone_from(why),
                (NodeAction::Waiting { .. }, _) => {}
            }
            if let Some(l) = line {
                self.out.step(&l);
            }
        }
        if !full {
            return;
        }
        let mut lines = Vec::new();
        for n in &mut self.nodes {
            if present.contains(&n.target.id) {
                continue;
            }
            match n.phase {
                Phase::Waiting | Phase::Granted => {
                    let why = "its action left the task before its turn (someone completed it, or its lock lapsed)".to_owned();
                    lines.push(format!("{}: {why}", n.target));
                    n.phase = Phase::Lost(why);
                }
                Phase::Running | Phase::ComingUp { .. } if !n.lock_gone => {
                    n.lock_gone = true;
                    lines.push(format!(
                        "warning: {}: its lock is no longer in the task (it lapsed, or someone released it); its restart goes on",
                        n.target
                    ));
                }
                _ => {}
            }
        }
        for l in lines {
            self.out.line(&l);
        }
    }

    fn on_feed(&mut self, msg: FeedMsg) {
        match msg {
            FeedMsg::Update(result) => {
                let actions = node_actions(&result.action_group_states);
                self.apply(&actions, true);
            }
            FeedMsg::Gone => {
                self.task_gone = true;
                // The last completion removes the task: then every node is done already.
                let mut lost = 0;
                for n in &mut self.nodes {
                    match n.phase {
                        Phase::Waiting | Phase::Granted => {
                            n.phase = Phase::Lost("the task is gone".into());
                            lost += 1;
                        }
                        Phase::Running | Phase::ComingUp { .. } => n.lock_gone = true,
                        _ => {}
                    }
                }
                if lost > 0 {
                    self.out.line(&format!(
                        "task '{}' is gone (dropped by someone else, or its locks lapsed): {lost} nodes can no longer be granted",
                        self.uid
                    ));
                    if self.stop.is_none() {
                        self.stop = Some(Stop::TaskGone);
                    }
                }
            }
            FeedMsg::Trouble(text) => self.trouble(text),
        }
    }

    /// Starts the command for granted nodes while slots are free.
    fn schedule(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let limit = usize::try_from(self.args.inflight).unwrap_or(usize::MAX);
        let mut running = self.in_flight();
        for i in 0..self.nodes.len() {
            if running >= limit {
                break;
            }
            if self.nodes[i].phase != Phase::Granted {
                continue;
            }
            self.nodes[i].phase = Phase::Running;
            running += 1;
            let job = Job {
                target: self.nodes[i].target.clone(),
                template: self.template.clone(),
                task_uid: self.uid.clone(),
                attempts: self.args.retries.saturating_add(1),
                retry_delay: self.args.retry_delay,
                timeout: self.args.command_timeout,
            };
            // The job ends by itself (its command finishes, times out or is aborted).
            drop(executor::spawn(
                job,
                self.events.clone(),
                self.abort.subscribe(),
            ));
        }
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Attempt { node, attempt, of } => {
                let Some(n) = self.node_mut(node) else { return };
                let text = if attempt == 1 {
                    format!("{}: restarting", n.target)
                } else {
                    format!("{}: restarting (attempt {attempt} of {of})", n.target)
                };
                self.out.step(&text);
            }
            Event::Retrying {
                node,
                attempt,
                why,
                output,
            } => {
                let Some(n) = self.node_mut(node) else { return };
                let t = n.target.clone();
                self.out.line(&format!(
                    "{t}: attempt {attempt} failed: {why}; trying again in {}",
                    show_duration(self.args.retry_delay)
                ));
                self.show_output(&t, &output);
            }
            Event::Succeeded { node, took, output } => {
                let aborted = self.aborted;
                let Some(n) = self.node_mut(node) else { return };
                if aborted {
                    // Finished just as the abort came: nobody waits for it any more.
                    n.phase = Phase::Aborted;
                    return;
                }
                n.phase = Phase::ComingUp {
                    since: Instant::now(),
                    baseline: None,
                    up: false,
                };
                let t = n.target.clone();
                if !self.out.is_bar() {
                    self.show_output(&t, &output);
                }
                self.out.step(&format!(
                    "{t}: restarted in {}; waiting to see it up",
                    show_duration(took)
                ));
                // Right away: the heartbeat the server knows of now is the baseline.
                self.poll_up().await;
            }
            Event::Failed { node, why, output } => {
                let Some(n) = self.node_mut(node) else { return };
                n.phase = Phase::Failed(why.clone());
                let t = n.target.clone();
                let kept = n.kept_until();
                self.out
                    .line(&format!("{t}: restart failed: {why}; {kept}"));
                self.show_output(&t, &output);
                if !self.args.keep_going && self.stop.is_none() {
                    if let Some(&i) = self.index.get(&node) {
                        self.stop = Some(Stop::Failed(i));
                    }
                    let busy = self.in_flight();
                    let mut text = "the rollout stops here (--keep-going would go on)".to_owned();
                    if busy > 0 {
                        text.push_str(&format!("; the {busy} in progress finish first"));
                    }
                    self.out.line(&text);
                }
            }
            Event::Aborted { node } => {
                if let Some(n) = self.node_mut(node) {
                    n.phase = Phase::Aborted;
                }
            }
        }
    }

    fn show_output(&mut self, t: &Target, output: &[String]) {
        for l in output {
            self.out.line(&format!("{t} | {l}"));
        }
    }

    /// Looks at the nodes coming back up: baselines, up-again checks, completions, timeouts.
    async fn poll_up(&mut self) {
        let sent = Instant::now();
        let listed = match self.client.list_nodes().await {
            Ok(l) => Some(l),
            Err(e) => {
                self.trouble(format!("cannot list the nodes: {e}"));
                None
            }
        };
        let by_id: HashMap<u32, &NodeStatus> =
            listed.iter().flatten().map(|n| (n.node_id, n)).collect();
        let mut complete = Vec::new();
        let mut stalled = Vec::new();
        let mut up_lines = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let Phase::ComingUp {
                since,
                baseline,
                up,
            } = &mut n.phase
            else {
                continue;
            };
            if *up {
                complete.push(i);
                continue;
            }
            let status = by_id.get(&n.target.id).copied();
            if *since <= sent
                && let Some(st) = status
            {
                let state = ItemState::try_from(st.state).unwrap_or(ItemState::Unspecified);
                let first_look = baseline.is_none();
                let base = baseline.get_or_insert_with(|| st.last_heartbeat);
                let fresh = !st.monitored || (!first_look && newer(&st.last_heartbeat, base));
                if state == ItemState::Up && fresh {
                    *up = true;
                    up_lines.push(format!(
                        "{}: up again after {}",
                        n.target,
                        show_duration(since.elapsed())
                    ));
                    complete.push(i);
                    continue;
                }
            }
            if since.elapsed() >= self.args.up_timeout {
                stalled.push((i, waited_for(status, listed.is_some())));
            }
        }
        for l in up_lines {
            self.out.step(&l);
        }
        for (i, waited) in stalled {
            let n = &mut self.nodes[i];
            n.phase = Phase::Stalled;
            let text = format!(
                "{} was not seen up again within {} after its restart command finished ({waited}); the rollout stops here; {} (task '{}')",
                n.target,
                show_duration(self.args.up_timeout),
                n.kept_until(),
                self.uid
            );
            n.remark = Some(text);
            self.out.line(&format!(
                "{}: not seen up again within {} after its restart command finished ({waited}); {}",
                n.target,
                show_duration(self.args.up_timeout),
                n.kept_until()
            ));
            if self.stop.is_none() || self.stop == Some(Stop::Interrupted) {
                self.stop = Some(Stop::Stalled(i));
            }
        }
        for i in complete {
            self.complete(i).await;
        }
    }

    /// Completes node `i`'s lock.
    async fn complete(&mut self, i: usize) {
        let Some(uid) = self.nodes[i].uid.clone() else {
            self.nodes[i].phase = Phase::Done;
            return;
        };
        let t = self.nodes[i].target.clone();
        match self.client.complete_actions(vec![uid]).await {
            Ok(_) => {
                self.nodes[i].phase = Phase::Done;
                if self.nodes[i].lock_gone {
                    self.nodes[i].remark = Some(
                        "restarted, but its lock had lapsed or been released meanwhile".into(),
                    );
                }
                self.out.line(&format!("{t}: completed"));
            }
            Err(e) if e.status() == Some(StatusCode::BadRequest) => {
                self.nodes[i].phase = Phase::Done;
                self.nodes[i].remark = Some(format!(
                    "restarted, but its lock was already gone when it came back ({e})"
                ));
                self.out
                    .line(&format!("{t}: completed (its lock was already gone: {e})"));
            }
            Err(e) if e.is_retryable() => {
                self.trouble(format!("cannot complete the lock of {t} yet: {e}"));
            }
            Err(e) => {
                let why = format!("restarted and up, but its lock could not be completed: {e}");
                self.out.line(&format!("{t}: {why}"));
                self.nodes[i].phase = Phase::Failed(why);
                if self.stop.is_none() {
                    self.stop = Some(Stop::Failed(i));
                }
            }
        }
    }

    fn on_signal(&mut self, sig: &str) {
        let in_flight = self.in_flight();
        if self.stop.is_none() {
            self.stop = Some(Stop::Interrupted);
            if in_flight > 0 {
                self.out.line(&format!(
                    "{sig}: no new node starts; waiting for the {in_flight} in progress to finish ({sig} again stops them now)"
                ));
            } else {
                self.out.line(&format!("{sig}: stopping"));
            }
            return;
        }
        if self.aborted || in_flight == 0 {
            return;
        }
        self.aborted = true;
        self.out.line(&format!(
            "{sig} again: stopping the {in_flight} in progress now"
        ));
        let _ = self.abort.send(true);
        for n in &mut self.nodes {
            if matches!(n.phase, Phase::ComingUp { .. }) {
                n.phase = Phase::Aborted;
            }
        }
    }

    fn status(&mut self) {
        if self.out.is_bar() {
            self.out.tick();
            return;
        }
        let c = self.counts();
        let mut text = format!(
            "progress: {}/{} restarted, {} in progress, {} waiting",
            c.restarted,
            self.nodes.len(),
            c.in_progress,
            c.waiting
        );
        if let Some(n) = self.nodes.iter().find(|n| n.phase == Phase::Waiting) {
            text.push_str(&format!("; next: {}: {}", n.target, n.why));
        }
        self.out.line(&text);
    }

    /// Drops or keeps the task as the ending requires, prints the summary, and says how it
    /// ended.
    async fn finish(mut self) -> Result<(), RollingError> {
        let remaining = self.nodes.iter().filter(|n| n.phase != Phase::Done).count();
        let mut closing = Vec::new();
        let uid = self.uid.clone();
        let resume = format!(
            "run the same command with --task-uid {uid} to resume, or drop the task with `arbiter task drop {uid}`"
        );
        let result = match self.stop {
            None => {
                let failed = self
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.phase, Phase::Failed(_) | Phase::Lost(_)))
                    .count();
                if failed == 0 {
                    Ok(())
                } else {
                    Err(RollingError::Incomplete(format!(
                        "{failed} of {} nodes were not restarted; the failed ones keep their locks in task '{uid}' ({resume})",
                        self.nodes.len()
                    )))
                }
            }
            Some(Stop::Interrupted) => {
                if self.args.keep_task {
                    closing.push(format!(
                        "task '{uid}' is kept with {remaining} nodes left; {resume}"
                    ));
                    Err(RollingError::Interrupted(format!(
                        "interrupted; task '{uid}' is kept for a resume (--task-uid {uid})"
                    )))
                } else {
                    match self.client.drop_task(&uid).await {
                        Ok(()) => {
                            let left: Vec<u32> = self
                                .nodes
                                .iter()
                                .filter(|n| n.phase != Phase::Done)
                                .map(|n| n.target.id)
                                .collect();
                            let mut text = format!("task '{uid}' dropped: its locks are released");
                            if !left.is_empty() {
                                text.push_str(&format!(
                                    "; {remaining} nodes were not restarted: to do them, run again with --nodes {} (or use --keep-task next time to resume the same task)",
                                    id_ranges(&left)
                                ));
                            }
                            closing.push(text);
                            Err(RollingError::Interrupted(format!(
                                "interrupted; task '{uid}' dropped"
                            )))
                        }
                        Err(e) if feed::is_not_found(&e) => Err(RollingError::Interrupted(
                            format!("interrupted; task '{uid}' was already gone"),
                        )),
                        Err(e) => Err(RollingError::Interrupted(format!(
                            "interrupted, and task '{uid}' could not be dropped ({e}); drop it with `arbiter task drop {uid}`"
                        ))),
                    }
                }
            }
            Some(Stop::Stalled(i)) => {
                let text = self.nodes[i].remark.clone().unwrap_or_default();
                closing.push(format!("task '{uid}' is kept; {resume}"));
                Err(RollingError::Stalled(text))
            }
            Some(Stop::Failed(i)) => {
                let n = &self.nodes[i];
                let why = match &n.phase {
                    Phase::Failed(w) => w.clone(),
                    _ => "it failed".into(),
                };
                closing.push(format!("task '{uid}' is kept; {resume}"));
                Err(RollingError::CommandFailed(format!(
                    "{}: restart failed: {why}; the rollout stops here; {} (task '{uid}')",
                    n.target,
                    n.kept_until()
                )))
            }
            Some(Stop::TaskGone) => Err(RollingError::TaskGone(format!(
                "task '{uid}' disappeared before the rollout finished (dropped by someone else, or its locks lapsed); {remaining} nodes were not restarted"
            ))),
        };
        self.out.finish();
        let summary = self.summary();
        let mut out = std::io::stdout().lock();
        use std::io::Write as _;
        for l in closing {
            let _ = writeln!(out, "{l}");
        }
        let _ = write!(out, "{}", summary.render());
        let _ = out.flush();
        result
    }

    fn summary(&self) -> Summary {
        let mut s = Summary {
            skipped: self.skipped.clone(),
            took: self.started.elapsed(),
            ..Summary::default()
        };
        for n in &self.nodes {
            let t = n.target.clone();
            match &n.phase {
                Phase::Done => {
                    s.restarted += 1;
                    if let Some(r) = &n.remark {
                        s.remarks.push((t, r.clone()));
                    }
                }
                Phase::Failed(why) | Phase::Lost(why) => s.failed.push((t, why.clone())),
                Phase::Stalled => s.failed.push((
                    t,
                    format!(
                        "not seen up again within {} after its restart command finished",
                        show_duration(self.args.up_timeout)
                    ),
                )),
                Phase::Waiting => s.left.push((t, format!("waiting: {}", n.why))),
                Phase::Granted => s.left.push((t, "granted, not started".into())),
                Phase::Running | Phase::ComingUp { .. } | Phase::Aborted => {
                    s.left.push((t, "stopped during its restart".into()));
                }
            }
        }
        s
    }
}

/// Node ids as `1-3,7,9-10`.
fn id_ranges(ids: &[u32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_as_ranges() {
        assert_eq!(id_ranges(&[9, 1, 2, 3, 7, 10, 2]), "1-3,7,9-10");
        assert_eq!(id_ranges(&[5]), "5");
        assert_eq!(id_ranges(&[]), "");
    }
}

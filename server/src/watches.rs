//! Open task watches: who is watching which task, and whether its owner is among them.
//!
//! Each watched task has a `tokio::sync::watch` channel holding its latest state, so a slow
//! watcher sees the newest state rather than a backlog. A second channel whose receivers are
//! never read counts the watchers that may drive the task (its owner or an admin): while one is
//! open, the writer re-checks the task's pending actions whenever anything changes, so a grant
//! reaches the owner without a refresh. Channels whose watchers have all gone are pruned.

use crate::engine::TaskView;
use std::collections::HashMap;
use tokio::sync::watch;

/// The state of a watched task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskUpdate {
    /// The task as Refresh would report it.
    Live(Box<TaskView>),
    /// The task is gone: completed, dropped, or its last lock expired.
    Gone,
}

/// A task's new state on its way to the task's watchers.
#[derive(Debug)]
pub struct Publication {
    tx: watch::Sender<TaskUpdate>,
    update: TaskUpdate,
}

impl Publication {
    /// Tells the watchers; an unchanged state wakes nobody (a new watch may already hold it).
    pub fn send(self) {
        let update = self.update;
        self.tx.send_if_modified(|current| {
            let modified = *current != update;
            *current = update;
            modified
        });
    }
}

/// One watcher's end.
#[derive(Debug)]
pub struct Subscription {
    /// The task's latest state; `changed()` wakes on every update.
    pub updates: watch::Receiver<TaskUpdate>,
    /// Held (never read) while this watcher drives the task.
    _driver: Option<watch::Receiver<()>>,
}

struct Entry {
    updates: watch::Sender<TaskUpdate>,
    drivers: watch::Sender<()>,
}

/// Every open watch, by task uid.
#[derive(Default)]
pub struct Watches {
    by_task: HashMap<String, Entry>,
}

impl Watches {
    /// Opens a watch on a task whose current state is `now`.
    ///
    /// `now` may hold changes of the running batch that are not durable yet. A new channel may
    /// start from it: its only receiver is the new watcher, who gets it after the commit. An
    /// open channel keeps its value, the last one published after a commit; the batch's
    /// changes reach every watcher of it through [`Watches::publish`], after the commit.
    pub fn subscribe(&mut self, uid: &str, now: TaskUpdate, drives: bool) -> Subscription {
        let entry = self.by_task.entry(uid.to_owned()).or_insert_with(|| Entry {
            updates: watch::channel(now).0,
            drivers: watch::channel(()).0,
        });
        Subscription {
            updates: entry.updates.subscribe(),
            _driver: drives.then(|| entry.drivers.subscribe()),
        }
    }

    /// Tasks with at least one open watch by someone who may drive them.
    pub fn driven(&self) -> Vec<String> {
        let mut uids: Vec<String> = self
            .by_task
            .iter()
            .filter(|(_, e)| e.drivers.receiver_count() > 0)
            .map(|(uid, _)| uid.clone())
            .collect();
        uids.sort();
        uids
    }

    /// Whether anyone watches `uid`.
    pub fn is_watched(&self, uid: &str) -> bool {
        self.by_task.contains_key(uid)
    }

    /// Publishes a task's new state now; drops the entry when nobody watches any more or the
    /// task is gone.
    pub fn publish(&mut self, uid: &str, update: TaskUpdate) {
        if let Some(p) = self.prepare(uid, update) {
            p.send();
        }
    }

    /// A task's new state, to publish once the batch that made it is durable
    /// ([`Publication::send`]). A gone task's entry is dropped at once, so that a task created
    /// again under its uid gets a channel of its own; if the publication is then never sent
    /// (the commit failed), its watchers see their channel close.
    pub fn prepare(&mut self, uid: &str, update: TaskUpdate) -> Option<Publication> {
        let entry = self.by_task.get(uid)?;
        let tx = if update == TaskUpdate::Gone {
            self.by_task.remove(uid)?.updates
        } else {
            entry.updates.clone()
        };
        Some(Publication { tx, update })
    }

    /// Forgets watches whose watchers have all gone.
    pub fn prune(&mut self) {
        self.by_task.retain(|_, e| e.updates.receiver_count() > 0);
    }

    /// How many watch streams are open (every subscription not dropped yet).
    pub fn open(&self) -> usize {
        self.by_task
            .values()
            .map(|e| e.updates.receiver_count())
            .sum()
    }

    /// Whether no task is watched.
    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_are_counted_while_their_subscription_lives() {
        let mut w = Watches::default();
        let viewer = w.subscribe("t", TaskUpdate::Gone, false);
        assert!(w.driven().is_empty());
        let owner = w.subscribe("t", TaskUpdate::Gone, true);
        assert_eq!(w.driven(), vec!["t".to_string()]);
        drop(owner);
        assert!(w.driven().is_empty());
        drop(viewer);
        w.prune();
        assert!(w.is_empty());
    }

    #[test]
    fn gone_ends_the_watch() {
        let mut w = Watches::default();
        let s = w.subscribe("t", TaskUpdate::Gone, true);
        w.publish("t", TaskUpdate::Gone);
        assert!(!w.is_watched("t"));
        assert_eq!(*s.updates.borrow(), TaskUpdate::Gone);
    }
}

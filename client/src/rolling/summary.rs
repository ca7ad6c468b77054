//! The closing summary: what was restarted, what failed, what was skipped or left, and how
//! long it took.

use super::select::Target;
use super::task::show_duration;
use std::time::Duration;

/// How a rollout ended, node by node.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) restarted: usize,
    /// Restarted, with a remark (e.g. its lock had lapsed meanwhile).
    pub(crate) remarks: Vec<(Target, String)>,
    /// The command failed, the node did not come back, or its lock vanished.
    pub(crate) failed: Vec<(Target, String)>,
    /// Left out at the start.
    pub(crate) skipped: Vec<(Target, String)>,
    /// Not (or not completely) restarted because the rollout stopped.
    pub(crate) left: Vec<(Target, String)>,
    pub(crate) took: Duration,
}

impl Summary {
    /// The summary as lines of text.
    pub(crate) fn render(&self) -> String {
        let total = self.restarted + self.failed.len() + self.skipped.len() + self.left.len();
        let mut text = format!(
            "summary: {} restarted, {} failed, {} skipped",
            self.restarted,
            self.failed.len(),
            self.skipped.len()
        );
        if !self.left.is_empty() {
            text.push_str(&format!(", {} not restarted", self.left.len()));
        }
        text.push_str(&format!(" (of {total}) in {}\n", show_duration(self.took)));
        for (title, list) in [
            ("note", &self.remarks),
            ("failed", &self.failed),
            ("skipped", &self.skipped),
            ("not restarted", &self.left),
        ] {
            for (t, why) in list {
                text.push_str(&format!("  {title}: {t}: {why}\n"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u32) -> Target {
        Target {
            id,
            host: format!("h{id}"),
            port: 1,
        }
    }

    #[test]
    fn counts_and_reasons() {
        let s = Summary {
            restarted: 5,
            failed: vec![(t(6), "the command exited with status 1".into())],
            skipped: vec![(t(7), "not up at the start (down)".into())],
            left: vec![(t(8), "waiting: node 6 is locked".into())],
            took: Duration::from_millis(83_250),
            ..Summary::default()
        };
        assert_eq!(
            s.render(),
            "summary: 5 restarted, 1 failed, 1 skipped, 1 not restarted (of 8) in 1m 23s\n\
             \x20 failed: node 6 (h6): the command exited with status 1\n\
             \x20 skipped: node 7 (h7): not up at the start (down)\n\
             \x20 not restarted: node 8 (h8): waiting: node 6 is locked\n"
        );
    }
}

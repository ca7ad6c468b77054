//! Progress on standard output: a one-line bar redrawn in place on a terminal, plain lines
//! otherwise (one per event, for logs and scripts).
//!
//! In bar mode the per-node steps (granted, restarting, up again) only move the bar; completions,
//! failures and notes are printed above it.

use super::args::ProgressMode;
use super::task::show_duration;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Restarted and completed.
    pub(crate) restarted: usize,
    /// Restarting or coming back up.
    pub(crate) in_progress: usize,
    /// Not started yet (pending, or granted and waiting for a free slot).
    pub(crate) waiting: usize,
    /// Failed, stalled or lost.
    pub(crate) failed: usize,
}

/// The progress display.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: bool,
    total: usize,
    counts: Counts,
    drawn: bool,
    started: Instant,
}

const BAR_WIDTH: usize = 20;

impl Progress {
    /// A display for `total` nodes.
    pub(crate) fn new(mode: ProgressMode, total: usize) -> Progress {
        let bar = match mode {
            ProgressMode::Bar => true,
            ProgressMode::Lines => false,
            ProgressMode::Auto => std::io::stdout().is_terminal(),
        };
        Progress {
            bar,
            total,
            counts: Counts::default(),
            drawn: false,
            started: Instant::now(),
        }
    }

    /// A per-node step: its own line in lines mode; in bar mode only the bar moves.
    pub(crate) fn step(&mut self, text: &str) {
        if !self.bar {
            self.print(text);
        }
    }

    /// A line shown in both modes (above the bar on a terminal).
    pub(crate) fn line(&mut self, text: &str) {
        self.print(text);
    }

    /// New counts; the bar is redrawn when they changed.
    pub(crate) fn set_counts(&mut self, counts: Counts) {
        if counts != self.counts || !self.drawn {
            self.counts = counts;
            self.redraw();
        }
    }

    /// Redraws the bar (its clock moves).
    pub(crate) fn tick(&mut self) {
        self.redraw();
    }

    /// Takes the bar off the screen, before the summary.
    pub(crate) fn finish(&mut self) {
        if self.bar && self.drawn {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.drawn = false;
        }
    }

    /// Whether this is the bar (a terminal) rather than lines.
    pub(crate) fn is_bar(&self) -> bool {
        self.bar
    }

    fn print(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.bar && self.drawn {
            let _ = write!(out, "\r\x1b[2K{text}\n{}", self.bar_text());
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }

    fn redraw(&mut self) {
        if !self.bar {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{}", self.bar_text());
        let _ = out.flush();
        self.drawn = true;
    }

    fn bar_text(&self) -> String {
        render_bar(self.counts, self.total, self.started.elapsed())
    }
}

/// `[#####---------------] 5/20 restarted, 2 in progress, 13 waiting (1m 5s)`.
pub(crate) fn render_bar(c: Counts, total: usize, elapsed: Duration) -> String {
    let filled = (c.restarted * BAR_WIDTH)
        .checked_div(total)
        .unwrap_or(0)
        .min(BAR_WIDTH);
    let mut text = format!(
        "[{}{}] {}/{total} restarted, {} in progress, {} waiting",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        c.restarted,
        c.in_progress,
        c.waiting
    );
    if c.failed > 0 {
        text.push_str(&format!(", {} failed", c.failed));
    }
    text.push_str(&format!(
        " ({})",
        show_duration(Duration::from_secs(elapsed.as_secs()))
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_restarted_nodes() {
        let c = Counts {
            restarted: 12,
            in_progress: 2,
            waiting: 13,
            failed: 0,
        };
        assert_eq!(
            render_bar(c, 27, Duration::from_millis(65_400)),
            "[########------------] 12/27 restarted, 2 in progress, 13 waiting (1m 5s)"
        );
        let done = Counts {
            restarted: 3,
            failed: 1,
            ..Counts::default()
        };
        assert!(render_bar(done, 3, Duration::ZERO).starts_with("[####################] 3/3"));
        assert!(render_bar(done, 0, Duration::ZERO).contains("1 failed"));
    }
}

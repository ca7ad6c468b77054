//! Running an operator's command for the agent (the health check, the drain and cordon hooks):
//! `sh -c CMD` in its own process group with the agent's environment variables, killed whole
//! on a timeout or when its run is abandoned, with its stdout read line by line (for progress)
//! and the last line of its stderr kept for the report.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::mpsc;

/// One run to make.
pub(crate) struct Hook<'a> {
    /// The command, for `sh -c`.
    pub(crate) cmd: &'a str,
    /// Its environment variables (added to the agent's).
    pub(crate) env: &'a [(&'static str, String)],
    /// How long it may take.
    pub(crate) timeout: Duration,
}

/// How a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    /// "exited with status 3", "was killed by signal 9", "did not finish within 10s (killed)".
    pub(crate) exit: String,
    /// The last non-empty line of its stderr (may be empty).
    pub(crate) stderr: String,
}

impl Failed {
    /// "the drain hook exited with status 3: no replica".
    pub(crate) fn text(&self, what: &str) -> String {
        if self.stderr.is_empty() {
            format!("{what} {}", self.exit)
        } else {
            format!("{what} {}: {}", self.exit, self.stderr)
        }
    }
}

/// A percentage from a line `progress 42` or `progress 42.5%`; `None` for any other line.
pub(crate) fn progress_of(line: &str) -> Option<f64> {
    let rest = line.trim().strip_prefix("progress")?;
    let rest = rest.strip_prefix([' ', '\t', ':', '='])?.trim();
    let rest = rest.strip_suffix('%').unwrap_or(rest).trim();
    let p: f64 = rest.parse().ok()?;
    (p.is_finite() && (0.0..=100.0).contains(&p)).then_some(p)
}

/// Runs `hook` once. Each progress line of its stdout goes to `progress` (when given).
pub(crate) async fn run(
    hook: &Hook<'_>,
    progress: Option<mpsc::Sender<f64>>,
) -> Result<(), Failed> {
    let failed = |exit: String| Failed {
        exit,
        stderr: String::new(),
    };
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(hook.cmd)
        .envs(hook.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(if progress.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("could not be started: {e}")))?;
    // Whatever the shell started goes with it, however this run ends.
    let _group = Group(child.id());
    let stdout = child.stdout.take();
    let lines = tokio::spawn(async move {
        let (Some(out), Some(tx)) = (stdout, progress) else {
            return;
        };
        let mut lines = BufReader::new(out.take(16 * 1024 * 1024)).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(p) = progress_of(&line) {
                // A full channel drops a step: the next one carries the newer value.
                let _ = tx.try_send(p);
            }
        }
    });
    let stderr = child.stderr.take();
    let read = tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(mut e) = stderr {
            // At most what a last line needs; the rest is drained and dropped.
            let _ = (&mut e).take(64 * 1024).read_to_end(&mut text).await;
            let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
        }
        text
    });
    let status = match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            lines.abort();
            read.abort();
            return Err(failed(format!("failed to run: {e}")));
        }
        Err(_) => {
            lines.abort();
            read.abort();
            return Err(failed(format!(
                "did not finish within {} (killed)",
                humantime::format_duration(hook.timeout)
            )));
        }
    };
    // The progress lines it printed before it ended are all read (a background process
    // holding stdout open is waited for only a moment).
    let _ = tokio::time::timeout(Duration::from_millis(500), lines).await;
    if status.success() {
        read.abort();
        return Ok(());
    }
    let text = tokio::time::timeout(Duration::from_millis(500), read)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&text);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    let exit = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt as _;
                match status.signal() {
                    Some(sig) => format!("was killed by signal {sig}"),
                    None => "was killed by a signal".to_owned(),
                }
            }
            #[cfg(not(unix))]
            "was killed".to_owned()
        }
    };
    Err(Failed {
        exit,
        stderr: last.map(|l| l.trim().to_owned()).unwrap_or_default(),
    })
}

/// A value as one shell word: single-quoted, with any single quote spelled `'\''`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The process group of a run: killed (SIGKILL) when dropped, so that nothing the command
/// started outlives its run.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_read_and_other_lines_ignored() {
        assert_eq!(progress_of("progress 42"), Some(42.0));
        assert_eq!(progress_of("  progress: 42.5%"), Some(42.5));
        assert_eq!(progress_of("progress=100"), Some(100.0));
        assert_eq!(progress_of("progress 101"), None);
        assert_eq!(progress_of("progress -1"), None);
        assert_eq!(progress_of("progressive 3"), None);
        assert_eq!(progress_of("moved 3 shards"), None);
        assert_eq!(progress_of("progress NaN"), None);
    }

    #[test]
    fn a_value_becomes_one_shell_word() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
    }

    #[tokio::test]
    async fn a_run_reports_progress_and_its_failure() {
        let (tx, mut rx) = mpsc::channel(8);
        let env = [("ARBITER_NODE_ID", "7".to_owned())];
        let hook = Hook {
            cmd: "echo progress 30; echo progress $ARBITER_NODE_ID; echo no replica >&2; exit 3",
            env: &env,
            timeout: Duration::from_secs(10),
        };
        let failed = run(&hook, Some(tx)).await.expect_err("exit 3");
        assert_eq!(failed.exit, "exited with status 3");
        assert_eq!(failed.stderr, "no replica");
        assert_eq!(rx.recv().await, Some(30.0));
        assert_eq!(rx.recv().await, Some(7.0));
        let slow = Hook {
            cmd: "sleep 30",
            env: &env,
            timeout: Duration::from_millis(200),
        };
        let failed = run(&slow, None).await.expect_err("timed out");
        assert!(
            failed.exit.contains("did not finish within 200ms"),
            "{failed:?}"
        );
    }
}

//! Runs the `--exec` command for one node: `sh -c` with the node's values filled in, a timeout,
//! and retries. The rollout decides how many run at once; each job reports what happens on a
//! channel.
//!
//! The command runs in its own process group, so a Ctrl-C on the terminal reaches only the
//! rollout (which lets running commands finish); a timeout or an abort stops the whole group
//! (SIGTERM, then SIGKILL after a grace period). Its output (stdout and stderr together) goes to
//! a temporary file, so a command that leaves a daemon holding the output open cannot hang the
//! rollout; the last lines are shown afterwards.

use super::select::Target;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How long a stopped command's process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How many of a command's last output lines are shown.
const OUTPUT_LINES: usize = 20;
/// How much of a command's output is read, from its end.
const OUTPUT_BYTES: u64 = 64 * 1024;

/// One node's restart.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) target: Target,
    /// The `--exec` text, placeholders not yet filled in.
    pub(crate) template: String,
    pub(crate) task_uid: String,
    /// 1 + retries.
    pub(crate) attempts: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) timeout: Duration,
}

/// What a job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// An attempt starts.
    Attempt { node: u32, attempt: u32, of: u32 },
    /// An attempt failed; another follows.
    Retrying {
        node: u32,
        attempt: u32,
        why: String,
        output: Vec<String>,
    },
    /// The command succeeded.
    Succeeded {
        node: u32,
        took: Duration,
        output: Vec<String>,
    },
    /// Every attempt failed.
    Failed {
        node: u32,
        why: String,
        output: Vec<String>,
    },
    /// Stopped by an abort (a second Ctrl-C).
    Aborted { node: u32 },
}

/// Starts `job` on its own task.
pub(crate) fn spawn(
    job: Job,
    events: mpsc::UnboundedSender<Event>,
    abort: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(job, events, abort))
}

async fn run(job: Job, events: mpsc::UnboundedSender<Event>, mut abort: watch::Receiver<bool>) {
    let node = job.target.id;
    let command = render(&job.template, &job.target);
    let of = job.attempts.max(1);
    for attempt in 1..=of {
        let _ = events.send(Event::Attempt { node, attempt, of });
        let started = Instant::now();
        match run_once(&job, &command, attempt, &mut abort).await {
            Outcome::Succeeded(output) => {
                let _ = events.send(Event::Succeeded {
                    node,
                    took: started.elapsed(),
                    output,
                });
                return;
            }
            Outcome::Aborted => {
                let _ = events.send(Event::Aborted { node });
                return;
            }
            Outcome::Failed(why, output) if attempt == of => {
                let why = if of > 1 {
                    format!("{why} (attempt {attempt} of {of})")
                } else {
                    why
                };
                let _ = events.send(Event::Failed { node, why, output });
                return;
            }
            Outcome::Failed(why, output) => {
                let _ = events.send(Event::Retrying {
                    node,
                    attempt,
                    why,
                    output,
                });
                tokio::select! {
                    () = tokio::time::sleep(job.retry_delay) => {}
                    () = aborted(&mut abort) => {
                        let _ = events.send(Event::Aborted { node });
                        return;
                    }
                }
            }
        }
    }
}

enum Outcome {
    Succeeded(Vec<String>),
    Failed(String, Vec<String>),
    Aborted,
}

async fn run_once(
    job: &Job,
    command: &str,
    attempt: u32,
    abort: &mut watch::Receiver<bool>,
) -> Outcome {
    let log = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => {
            return Outcome::Failed(format!("cannot create a file for its output: {e}"), vec![]);
        }
    };
    let (out, err) = match (log.try_clone(), log.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::Failed(format!("cannot set up its output: {e}"), vec![]);
        }
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("ARBITER_NODE_ID", job.target.id.to_string())
        .env("ARBITER_NODE_HOST", &job.target.host)
        .env("ARBITER_NODE_PORT", job.target.port.to_string())
        .env("ARBITER_TASK_UID", &job.task_uid)
        .env("ARBITER_ATTEMPT", attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start `sh -c`: {e}"), vec![]),
    };
    let pid = child.id();
    let status = tokio::select! {
        status = child.wait() => Some(status),
        () = tokio::time::sleep(job.timeout) => {
            stop(&mut child, pid).await;
            let output = tail(log);
            return Outcome::Failed(
                format!("the command was still running after {} and was killed",
                    super::task::show_duration(job.timeout)),
                output,
            );
        }
        () = aborted(abort) => None,
    };
    let Some(status) = status else {
        stop(&mut child, pid).await;
        return Outcome::Aborted;
    };
    let output = tail(log);
    match status {
        Ok(s) if s.success() => Outcome::Succeeded(output),
        Ok(s) => Outcome::Failed(describe(s), output),
        Err(e) => Outcome::Failed(format!("cannot wait for the command: {e}"), output),
    }
}

/// Resolves once an abort is requested (or can no longer come).
async fn aborted(abort: &mut watch::Receiver<bool>) {
    if abort.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Stops the command's process group: SIGTERM, then SIGKILL after [`KILL_GRACE`].
async fn stop(child: &mut tokio::process::Child, pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pgid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
        if tokio::time::timeout(KILL_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        } else {
            // The shell is gone; whatever it left in the group goes too.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
    let _ = child.kill().await;
}

fn describe(s: ExitStatus) -> String {
    if let Some(code) = s.code() {
        return format!("the command exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = s.signal() {
            return format!("the command was killed by signal {sig}");
        }
    }
    format!("the command failed ({s})")
}

/// The last lines of the command's output.
fn tail(mut file: std::fs::File) -> Vec<String> {
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let from = len.saturating_sub(OUTPUT_BYTES);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text
        .lines()
        .skip(usize::from(from > 0))
        .map(str::to_owned)
        .collect();
    if lines.len() > OUTPUT_LINES {
        let cut = lines.len() - OUTPUT_LINES;
        lines.drain(..cut);
        lines.insert(0, format!("({cut} earlier lines not shown)"));
    }
    lines
}

/// The command with `{id}`, `{host}` and `{port}` filled in; values that are not plainly safe
/// for the shell are single-quoted.
pub(crate) fn render(template: &str, target: &Target) -> String {
    template
        .replace("{id}", &target.id.to_string())
        .replace("{host}", &shell_word(&target.host))
        .replace("{port}", &target.port.to_string())
}

fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@+=,%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str) -> Target {
        Target {
            id: 7,
            host: host.into(),
            port: 19001,
        }
    }

    fn job(template: &str, attempts: u32, timeout: Duration) -> Job {
        Job {
            target: target("node-7.example"),
            template: template.into(),
            task_uid: "t-1".into(),
            attempts,
            retry_delay: Duration::from_millis(10),
            timeout,
        }
    }

    async fn events_of(job: Job) -> Vec<Event> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_abort_tx, abort_rx) = watch::channel(false);
        spawn(job, tx, abort_rx).await.expect("the job ends");
        let mut all = Vec::new();
        while let Ok(e) = rx.try_recv() {
            all.push(e);
        }
        all
    }

    #[test]
    fn placeholders_are_filled_in_and_quoted() {
        assert_eq!(
            render(
                "ssh {host} restart --id {id} --port {port}",
                &target("h-1.dc")
            ),
            "ssh h-1.dc restart --id 7 --port 19001"
        );
        assert_eq!(render("echo {host}", &target("a b'c")), r"echo 'a b'\''c'");
    }

    #[tokio::test]
    async fn values_reach_the_command_and_output_is_kept() {
        let events = events_of(job(
            "echo \"$ARBITER_NODE_ID $ARBITER_NODE_HOST $ARBITER_TASK_UID {id}\"; echo oops >&2",
            1,
            Duration::from_secs(30),
        ))
        .await;
        assert_eq!(events.len(), 2, "{events:?}");
        match &events[1] {
            Event::Succeeded {
                node: 7, output, ..
            } => assert_eq!(
                output,
                &vec!["7 node-7.example t-1 7".to_string(), "oops".to_string()]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failing_command_is_retried_then_fails() {
        let events = events_of(job(
            "echo try $ARBITER_ATTEMPT; exit 3",
            3,
            Duration::from_secs(30),
        ))
        .await;
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                Event::Attempt { .. } => "attempt",
                Event::Retrying { .. } => "retrying",
                Event::Failed { .. } => "failed",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "attempt", "retrying", "attempt", "retrying", "attempt", "failed"
            ]
        );
        match events.last() {
            Some(Event::Failed { why, output, .. }) => {
                assert_eq!(why, "the command exited with status 3 (attempt 3 of 3)");
                assert_eq!(output, &vec!["try 3".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        let events = events_of(job("sleep 30 & sleep 30", 1, Duration::from_millis(300))).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        match events.last() {
            Some(Event::Failed { why, .. }) => assert!(why.contains("still running"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_abort_stops_the_command() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (abort_tx, abort_rx) = watch::channel(false);
        let handle = spawn(job("sleep 30", 2, Duration::from_secs(60)), tx, abort_rx);
        tokio::time::sleep(Duration::from_millis(200)).await;
        abort_tx.send(true).expect("the job listens");
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("stops promptly")
            .expect("no panic");
        let mut last = None;
        while let Ok(e) = rx.try_recv() {
            last = Some(e);
        }
        assert_eq!(last, Some(Event::Aborted { node: 7 }));
    }
}

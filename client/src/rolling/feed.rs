//! The task's state as it changes: a watch stream (the server re-checks the task whenever
//! anything changes while its owner watches, so grants arrive without polling), with a
//! refresh now and then as a safety net, reconnection after a broken stream, and plain
//! refresh polling against a server without the watch.

use crate::proto::ydb::maintenance::MaintenanceTaskResult;
use crate::proto::ydb::status_ids::StatusCode;
use crate::{Client, ClientError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// While watching, a refresh this often anyway (a re-check that no change triggered).
pub(crate) const SAFETY_REFRESH: Duration = Duration::from_secs(30);
/// Without a watch, how often the task is refreshed.
pub(crate) const POLL_REFRESH: Duration = Duration::from_secs(5);
/// The longest pause before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the feed reports.
#[derive(Debug)]
pub(crate) enum FeedMsg {
    /// The task's current state.
    Update(MaintenanceTaskResult),
    /// The task no longer exists.
    Gone,
    /// Something went wrong talking to the server; the feed keeps trying.
    Trouble(String),
}

/// A running feed; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) rx: mpsc::Receiver<FeedMsg>,
    handle: JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Starts following task `uid`.
pub(crate) fn start(client: Client, uid: String) -> Feed {
    let (tx, rx) = mpsc::channel(16);
    let handle = tokio::spawn(follow(client, uid, tx));
    Feed { rx, handle }
}

/// Whether the error says the task does not exist.
pub(crate) fn is_not_found(e: &ClientError) -> bool {
    match e {
        ClientError::Refused { status, message } => {
            *status == StatusCode::BadRequest && message.contains("Task not found")
        }
        ClientError::Rpc(s) => {
            s.code() == tonic::Code::InvalidArgument && s.message().contains("Task not found")
        }
        _ => false,
    }
}

fn is_unimplemented(e: &ClientError) -> bool {
    matches!(e, ClientError::Rpc(s) if s.code() == tonic::Code::Unimplemented)
}

enum End {
    /// The receiver is gone: stop.
    Closed,
    /// The task is gone (reported).
    Gone,
    /// The stream broke; reconnect.
    Broken(String),
}

async fn follow(client: Client, uid: String, tx: mpsc::Sender<FeedMsg>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.watch_task(&uid).await {
            Ok(mut watch) => {
                backoff = Duration::from_millis(200);
                match stream(&client, &uid, &mut watch, &tx).await {
                    End::Closed | End::Gone => return,
                    End::Broken(why) => {
                        if tx
                            .send(FeedMsg::Trouble(format!(
                                "the task watch broke ({why}); reconnecting"
                            )))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            Err(e) if is_not_found(&e) => {
                let _ = tx.send(FeedMsg::Gone).await;
                return;
            }
            Err(e) if is_unimplemented(&e) => {
                poll(&client, &uid, &tx).await;
                return;
            }
            Err(e) => {
                let msg = FeedMsg::Trouble(format!("cannot watch the task: {e}; retrying"));
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
        // A refresh keeps the state moving while the watch is down (and tells whether the task
        // still exists).
        if let Some(End::Closed | End::Gone) = refresh(&client, &uid, &tx).await {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn stream(
    client: &Client,
    uid: &str,
    watch: &mut crate::Watch,
    tx: &mpsc::Sender<FeedMsg>,
) -> End {
    loop {
        let next = tokio::select! {
            next = watch.next() => next,
            () = tokio::time::sleep(SAFETY_REFRESH) => {
                if let Some(end @ (End::Closed | End::Gone)) = refresh(client, uid, tx).await {
                    return end;
                }
                continue;
            }
        };
        match next {
            Some(Ok(result)) => {
                if tx.send(FeedMsg::Update(result)).await.is_err() {
                    return End::Closed;
                }
            }
            Some(Err(e)) if e.status() == Some(StatusCode::BadRequest) => {
                let _ = tx.send(FeedMsg::Gone).await;
                return End::Gone;
            }
            Some(Err(e)) => return End::Broken(e.to_string()),
            None => return End::Broken("the server closed it".into()),
        }
    }
}

/// One refresh, reported; `Some` when the feed should end or the refresh failed.
async fn refresh(client: &Client, uid: &str, tx: &mpsc::Sender<FeedMsg>) -> Option<End> {
    let msg = match client.refresh_task(uid).await {
        Ok(result) => FeedMsg::Update(result),
        Err(e) if is_not_found(&e) => {
            let _ = tx.send(FeedMsg::Gone).await;
            return Some(End::Gone);
        }
        Err(e) => FeedMsg::Trouble(format!("cannot refresh the task: {e}")),
    };
    let failed = matches!(msg, FeedMsg::Trouble(_));
    if tx.send(msg).await.is_err() {
        return Some(End::Closed);
    }
    failed.then(|| End::Broken(String::new()))
}

async fn poll(client: &Client, uid: &str, tx: &mpsc::Sender<FeedMsg>) {
    let note = format!(
        "the server has no task watch; refreshing the task every {}",
        super::task::show_duration(POLL_REFRESH)
    );
    if tx.send(FeedMsg::Trouble(note)).await.is_err() {
        return;
    }
    loop {
        if let Some(End::Closed | End::Gone) = refresh(client, uid, tx).await {
            return;
        }
        tokio::time::sleep(POLL_REFRESH).await;
    }
}

//! High availability on etcd, end to end: real etcd members and real `arbiter-server`
//! instances on loopback (ephemeral ports, temporary directories, `--leader-lease 2s`).
//!
//! - `kill_9_of_the_leader_under_load_loses_nothing`: 3 etcd members, 3 instances; clients
//!   drive create → check → complete (or drop) cycles through the followers only; the leader is
//!   killed with SIGKILL mid-load. A new leader serves within 2 × the lease, and a client-side
//!   ledger proves that no acknowledged grant, completion or drop was lost or duplicated, that
//!   no node ever had two live locks, that action ids and fencing tokens (from the servers'
//!   `lock granted` log lines) only grow across the failover, and that the log in etcd holds
//!   the old epoch's entries strictly before the new epoch's.
//! - `a_leader_stopped_past_its_lease_commits_nothing_and_rejoins`: SIGSTOP of the leader for
//!   longer than the lease, with calls queued on it and a lock that expires meanwhile; after
//!   SIGCONT nothing it commits reaches etcd (every log entry after the new epoch carries the new
//!   epoch), its queued calls are refused or, if SUCCESS, visible through the new leader, and it
//!   rejoins as a follower.
//! - `etcd_member_loss_and_total_outage`: one etcd member of three killed: service continues on
//!   every instance; every member stopped: calls fail with UNAVAILABLE naming etcd; service
//!   resumes by itself when etcd returns, with nothing lost.
//! - `an_instance_with_another_inventory_is_refused`: exit code 2, naming the file.
//!
//! The tests run one at a time (a lock), since failover timing is what they measure.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{ListInstancesRequest, ListInstancesResponse};
use arbiter_e2e::proto::ydb::maintenance::v1::maintenance_service_client::MaintenanceServiceClient;
use arbiter_e2e::proto::ydb::maintenance::{
    ActionState, ActionUid, AvailabilityMode, CompleteActionRequest, CreateMaintenanceTaskRequest,
    DropMaintenanceTaskRequest, GetMaintenanceTaskRequest, GetMaintenanceTaskResult,
    ListMaintenanceTasksRequest, ListMaintenanceTasksResult, MaintenanceTaskResult,
    ManageActionResult,
};
use arbiter_e2e::proto::ydb::operations::Operation;
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, action_number, is_performed, lock, node_locks, raw_unary,
    run_to_exit, states, task, uid_of, unpack,
};
use arbiter_etcd::testing::EtcdCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// `--leader-lease`.
const LEASE: Duration = Duration::from_secs(2);
/// The deadline of one call of a client.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Every client sends this ticket (open mode: it is the user).
const TICKET: &str = "ha-e2e";
/// gRPC health statuses.
const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;
/// How long into an etcd outage an instance may still answer without naming etcd: 2 leases
/// (every lease gone: a follower forgets the leader when its own lease lapses, its renewals
/// bounded by a third of the lease) and a second for calls already waiting.
const STALE_LIMIT: Duration = Duration::from_secs(5);
/// The health service that is SERVING only on the leader.
const LEADER_SERVICE: &str = "arbiter.v1.Leader";

/// One test at a time: they measure failover times on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ----- calls ---------------------------------------------------------------------------------

/// What a call came to.
#[derive(Debug)]
enum Outcome {
    /// SUCCESS.
    Success(Operation),
    /// A definitive refusal (BAD_REQUEST, ...), with its message.
    Refused(StatusCode, String),
    /// A retryable failure (UNAVAILABLE envelope, a gRPC error): the outcome is unknown.
    Retryable(String),
}

fn message(op: &Operation) -> String {
    op.issues
        .iter()
        .map(|i| i.message.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn classify(r: Result<Operation, tonic::Status>) -> Outcome {
    match r {
        Ok(op) => {
            let code = StatusCode::try_from(op.status).unwrap_or(StatusCode::Unspecified);
            match code {
                StatusCode::Success => Outcome::Success(op),
                StatusCode::Unavailable
                | StatusCode::Overloaded
                | StatusCode::Timeout
                | StatusCode::Undetermined
                | StatusCode::Aborted => Outcome::Retryable(format!("{code:?}: {}", message(&op))),
                code => Outcome::Refused(code, message(&op)),
            }
        }
        Err(s) => match s.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated => panic!("a call no retry cures: {s:?}"),
            code => Outcome::Retryable(format!("gRPC {code:?}: {}", s.message())),
        },
    }
}

/// The maintenance API of one instance, never panicking on a failed call.
#[derive(Debug, Clone)]
struct Api {
    channel: Channel,
    timeout: Duration,
}

fn lazy_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid uri")
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy()
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api {
            channel: lazy_channel(addr),
            timeout: CALL_TIMEOUT,
        }
    }

    fn with_timeout(&self, timeout: Duration) -> Api {
        Api {
            channel: self.channel.clone(),
            timeout,
        }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r.metadata_mut()
            .insert("x-ydb-auth-ticket", TICKET.parse().expect("ascii"));
        r
    }

    fn m(&self) -> MaintenanceServiceClient<Channel> {
        MaintenanceServiceClient::new(self.channel.clone())
    }

    async fn create(&self, req: CreateMaintenanceTaskRequest) -> Outcome {
        let r = self.m().create_maintenance_task(self.request(req)).await;
        classify(r.map(|r| r.into_inner().operation.expect("an operation")))
    }

    async fn get(&self, uid: &str) -> Outcome {
        let req = GetMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self.m().get_maintenance_task(self.request(req)).await;
        classify(r.map(|r| r.into_inner().operation.expect("an operation")))
    }

    async fn complete(&self, uids: Vec<ActionUid>) -> Outcome {
        let req = CompleteActionRequest {
            action_uids: uids,
            ..Default::default()
        };
        let r = self.m().complete_action(self.request(req)).await;
        classify(r.map(|r| r.into_inner().operation.expect("an operation")))
    }

    async fn drop_task(&self, uid: &str) -> Outcome {
        let req = DropMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self.m().drop_maintenance_task(self.request(req)).await;
        classify(r.map(|r| r.into_inner().operation.expect("an operation")))
    }

    async fn list(&self) -> Outcome {
        let r = self
            .m()
            .list_maintenance_tasks(self.request(ListMaintenanceTasksRequest::default()))
            .await;
        classify(r.map(|r| r.into_inner().operation.expect("an operation")))
    }

    /// Every task uid (retrying retryable failures, bounded).
    async fn task_uids(&self) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            match self.list().await {
                Outcome::Success(op) => {
                    let r: ListMaintenanceTasksResult = unpack(&op);
                    let mut uids = r.tasks_uids;
                    uids.sort();
                    return uids;
                }
                other if Instant::now() > until => panic!("ListMaintenanceTasks: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// What a Get says of a task: its first action's state, gone, or unknown (retryable).
    async fn find(&self, uid: &str) -> Find {
        match self.get(uid).await {
            Outcome::Success(op) => {
                let r: GetMaintenanceTaskResult = unpack(&op);
                Find::Found(Box::new(states(&r.action_group_states)[0].clone()))
            }
            Outcome::Refused(StatusCode::BadRequest, m) if m == "Task not found" => Find::Gone,
            Outcome::Refused(code, m) => panic!("Get {uid}: {code:?} {m}"),
            Outcome::Retryable(m) => Find::Unknown(m),
        }
    }

    /// As [`Api::find`], retrying until it is known (bounded).
    async fn find_known(&self, uid: &str) -> Find {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            match self.find(uid).await {
                Find::Unknown(m) if Instant::now() > until => panic!("Get {uid}: {m}"),
                Find::Unknown(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                known => return known,
            }
        }
    }
}

#[derive(Debug)]
enum Find {
    Found(Box<ActionState>),
    Gone,
    Unknown(String),
}

/// grpc.health.v1.Health/Check of `service` (hand-encoded); `None` when the call failed.
async fn health(addr: SocketAddr, service: &str) -> Option<i32> {
    let mut body = Vec::new();
    if !service.is_empty() {
        body.push(0x0a);
        body.push(u8::try_from(service.len()).expect("a short name"));
        body.extend_from_slice(service.as_bytes());
    }
    let call = raw_unary(lazy_channel(addr), "/grpc.health.v1.Health/Check", body);
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok(bytes)) if bytes.len() >= 2 && bytes[0] == 0x08 => Some(i32::from(bytes[1])),
        Ok(Ok(_)) => Some(0),
        _ => None,
    }
}

/// ListInstances as `addr` answers it (never relayed).
async fn instances(addr: SocketAddr) -> Result<ListInstancesResponse, tonic::Status> {
    let mut req = tonic::Request::new(ListInstancesRequest {});
    req.set_timeout(Duration::from_secs(2));
    ArbiterServiceClient::new(lazy_channel(addr))
        .list_instances(req)
        .await
        .map(tonic::Response::into_inner)
}

/// Polls `probe` every 50 ms until it answers `Some`, at most `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ----- the cluster ---------------------------------------------------------------------------

/// etcd members and arbiter instances `i0`, `i1`, ... on one prefix.
struct Ha {
    // Dropped first: the instances, then etcd.
    servers: Vec<ServerProcess>,
    etcd: EtcdCluster,
    client: arbiter_etcd::Etcd,
    files: Files,
    inventory: PathBuf,
    prefix: String,
    endpoints: String,
}

fn id(i: usize) -> String {
    format!("i{i}")
}

impl Ha {
    fn start(members: usize, instances: usize, inventory: &str) -> Ha {
        let etcd = EtcdCluster::start(members);
        let client = etcd.client();
        let files = Files::new();
        let inventory = files.write("inventory.toml", inventory);
        let endpoints = etcd.endpoints().join(",");
        let mut ha = Ha {
            servers: Vec::new(),
            etcd,
            client,
            files,
            inventory,
            prefix: String::from("/arbiter/e2e"),
            endpoints,
        };
        for i in 0..instances {
            let args = ha.args(&id(i));
            let server = ServerProcess::start_with(&ha.inventory, &args);
            ha.servers.push(server);
        }
        ha
    }

    /// The options of instance `id` (the harness adds --listen, --data-dir, --inventory).
    fn args(&self, id: &str) -> Vec<String> {
        vec![
            "--store".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            self.endpoints.clone(),
            "--etcd-prefix".into(),
            self.prefix.clone(),
            "--leader-lease".into(),
            format!("{}s", LEASE.as_secs()),
            "--instance-id".into(),
            id.into(),
        ]
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i].addr()
    }

    fn api(&self, i: usize) -> Api {
        Api::new(self.addr(i))
    }

    /// Who holds the leader key (instance index) and its epoch (the key's create revision).
    async fn leader_key(&self) -> Option<(usize, i64)> {
        let kv = self
            .client
            .get(format!("{}/leader", self.prefix))
            .await
            .ok()??;
        let v: serde_json::Value = serde_json::from_slice(&kv.value).ok()?;
        let i = v["id"].as_str()?.strip_prefix('i')?.parse().ok()?;
        Some((i, kv.create_revision))
    }

    /// Waits for a leader other than `not` that says so on its health service.
    async fn leader(&self, not: Option<usize>, limit: Duration) -> (usize, i64) {
        poll("a leader", limit, || async {
            let (i, epoch) = self.leader_key().await?;
            if Some(i) == not {
                return None;
            }
            (health(self.addr(i), LEADER_SERVICE).await == Some(SERVING)).then_some((i, epoch))
        })
        .await
    }

    /// Every log entry under `<prefix>/log/`: (seq key, its epoch field, mod revision).
    async fn log_entries(&self) -> Vec<(String, i64, i64)> {
        let (kvs, _) = self
            .client
            .range_prefix(format!("{}/log/", self.prefix), 0)
            .await
            .expect("read the log");
        kvs.iter()
            .map(|kv| {
                let v: serde_json::Value =
                    serde_json::from_slice(&kv.value).expect("a log entry is JSON");
                let epoch = v["epoch"].as_i64().expect("a log entry names its epoch");
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    epoch,
                    kv.mod_revision,
                )
            })
            .collect()
    }
}

/// The `lock granted` lines of one server's stderr: (task uid, fencing token), in order.
fn grants_logged(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter(|l| l.contains("lock granted"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_owned())
                    .unwrap_or_else(|| panic!("no {name} in {l:?}"))
            };
            let token = field("fencing_token=")
                .parse()
                .unwrap_or_else(|e| panic!("fencing_token in {l:?}: {e}"));
            (field("task="), token)
        })
        .collect()
}

// ----- the client's ledger -------------------------------------------------------------------

/// A lock a client knows was live from `from` (the reply that showed it) to `until` (when it
/// sent the completion).
#[derive(Debug, Clone)]
struct Held {
    uid: String,
    node: u32,
    from: Instant,
    until: Instant,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Ledger {
    /// Every task it created, in order, with its action number.
    numbers: Vec<(String, u64)>,
    /// Creates answered SUCCESS with the action PERFORMED.
    acked_grants: Vec<String>,
    /// Completions and drops answered SUCCESS.
    acked_done: Vec<String>,
    /// Finished tasks whose finishing call failed but a read showed it done.
    learned_done: Vec<String>,
    held: Vec<Held>,
    retries: usize,
    violations: Vec<String>,
}

/// One cycle for task `uid` on `node`: create, read it back, complete it (granted) or drop it
/// (pending). Retryable failures are retried, the outcome learned by reading when unknown.
async fn cycle(api: &Api, uid: &str, node: u32, ledger: &mut Ledger) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(30);
    let over = |what: &str| {
        if Instant::now() > until {
            Err(format!("{uid}: {what} not settled within 30 s"))
        } else {
            Ok(())
        }
    };
    let pause = || tokio::time::sleep(Duration::from_millis(50));

    // Create.
    let req = node_locks(uid, &[node]);
    let mut uncertain = false;
    let (state, acked) = loop {
        over("create")?;
        match api.create(req.clone()).await {
            Outcome::Success(op) => {
                let r: MaintenanceTaskResult = unpack(&op);
                break (states(&r.action_group_states)[0].clone(), true);
            }
            Outcome::Refused(StatusCode::BadRequest, m)
                if uncertain && m.contains("already exists") =>
            {
                match api.find_known(uid).await {
                    Find::Found(s) => break (*s, false),
                    other => return Err(format!("{uid}: exists, then {other:?}")),
                }
            }
            Outcome::Refused(code, m) => return Err(format!("{uid}: create refused {code:?} {m}")),
            Outcome::Retryable(_) => {
                uncertain = true;
                ledger.retries += 1;
                match api.find(uid).await {
                    Find::Found(s) => break (*s, false),
                    Find::Gone => {}
                    Find::Unknown(_) => pause().await,
                }
            }
        }
    };
    let seen = Instant::now();
    ledger.numbers.push((uid.to_owned(), action_number(&state)));
    if acked && is_performed(&state) {
        ledger.acked_grants.push(uid.to_owned());
    }

    // Read it back: what was answered is there.
    match api.find_known(uid).await {
        Find::Found(s) => {
            if uid_of(&s) != uid_of(&state)
                || s.status != state.status
                || s.deadline != state.deadline
            {
                ledger.violations.push(format!(
                    "{uid}: answered {state:?}, read back {s:?} (acknowledged: {acked})"
                ));
            }
        }
        other => ledger.violations.push(format!(
            "{uid}: answered {state:?} (acknowledged: {acked}), then read back {other:?}"
        )),
    }

    // Finish it.
    let performed = is_performed(&state);
    if performed {
        ledger.held.push(Held {
            uid: uid.to_owned(),
            node,
            from: seen,
            until: Instant::now(),
        });
    }
    let mut uncertain = false;
    loop {
        over("complete/drop")?;
        let outcome = if performed {
            api.complete(vec![uid_of(&state)]).await
        } else {
            api.drop_task(uid).await
        };
        match outcome {
            Outcome::Success(op) => {
                if performed {
                    let r: ManageActionResult = unpack(&op);
                    let st = r.action_statuses.first().map(|s| s.status);
                    if st != Some(StatusCode::Success as i32) {
                        ledger
                            .violations
                            .push(format!("{uid}: complete answered per-action {r:?}"));
                    }
                }
                ledger.acked_done.push(uid.to_owned());
                break;
            }
            Outcome::Refused(StatusCode::BadRequest, m) if uncertain && m == "Task not found" => {
                ledger.learned_done.push(uid.to_owned());
                break;
            }
            Outcome::Refused(code, m) => {
                // The grant (or task) it had been answered is gone.
                ledger.violations.push(format!(
                    "{uid}: finishing refused {code:?} {m:?} (acknowledged: {acked})"
                ));
                break;
            }
            Outcome::Retryable(_) => {
                uncertain = true;
                ledger.retries += 1;
                match api.find(uid).await {
                    Find::Gone => {
                        ledger.learned_done.push(uid.to_owned());
                        break;
                    }
                    Find::Found(_) => {}
                    Find::Unknown(_) => pause().await,
                }
            }
        }
    }
    Ok(())
}

/// Asserts no node had two locks at once across every client's ledger.
fn assert_exclusive(ledgers: &[Ledger]) {
    let mut by_node: BTreeMap<u32, Vec<&Held>> = BTreeMap::new();
    for h in ledgers.iter().flat_map(|l| l.held.iter()) {
        by_node.entry(h.node).or_default().push(h);
    }
    for (node, held) in by_node {
        for (i, a) in held.iter().enumerate() {
            for b in &held[i + 1..] {
                assert!(
                    !(a.from < b.until && b.from < a.until),
                    "node {node} had two live locks at once: {} and {}",
                    a.uid,
                    b.uid
                );
            }
        }
    }
}

// ----- the tests -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut ha = Ha::start(3, 3, FIVE_NODES);
    let (old, old_epoch) = ha.leader(None, Duration::from_secs(20)).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != old).collect();

    // Four clients, two on each follower, on overlapping nodes (5 nodes, at most 2 locked).
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut clients = Vec::new();
    for c in 0..4usize {
        let api = ha.api(followers[c % 2]);
        let stop = stop.clone();
        let done = progress[c].clone();
        clients.push(tokio::spawn(async move {
            let mut ledger = Ledger::default();
            let mut k = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = u32::try_from((c + k) % 5 + 1).expect("small");
                if let Err(e) = cycle(&api, &format!("c{c}-{k}"), node, &mut ledger).await {
                    ledger.violations.push(e);
                    break;
                }
                k += 1;
                done.store(k, Ordering::SeqCst);
            }
            ledger
        }));
    }
    let cycles = |p: &[Arc<AtomicUsize>]| -> Vec<usize> {
        p.iter().map(|a| a.load(Ordering::SeqCst)).collect()
    };
    // Forwarding works: every client, on a follower, gets through several cycles.
    poll(
        "3 cycles per client through the followers",
        Duration::from_secs(30),
        || async { cycles(&progress).iter().all(|&n| n >= 3).then_some(()) },
    )
    .await;

    // Kill the leader under load; probe every survivor until one serves.
    let before = cycles(&progress);
    let killed_at = Instant::now();
    ha.servers[old].kill9();
    let probes: Vec<_> = followers
        .iter()
        .map(|&i| {
            let api = ha.api(i).with_timeout(Duration::from_secs(1));
            tokio::spawn(async move {
                loop {
                    if let Outcome::Success(_) = api.list().await {
                        return killed_at.elapsed();
                    }
                    assert!(
                        killed_at.elapsed() < Duration::from_secs(30),
                        "instance {i} serves nothing 30 s after the leader died"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let mut served = Vec::new();
    for p in probes {
        served.push(p.await.expect("probe"));
    }
    let first = served.iter().min().copied().expect("two probes");
    let (new, new_epoch) = ha.leader(Some(old), Duration::from_secs(10)).await;
    println!(
        "failover after kill -9 of the leader (lease {LEASE:?}): a new leader served in {first:?} \
         (every survivor in {:?}); leader {} (epoch {old_epoch}) -> {} (epoch {new_epoch}); \
         cycles before the kill {before:?}",
        served.iter().max().expect("two probes"),
        id(old),
        id(new)
    );
    assert!(
        first < 2 * LEASE,
        "a new leader served only {first:?} after the kill (lease {LEASE:?})"
    );
    assert!(new_epoch > old_epoch);

    // Load goes on through the survivors.
    let at_failover = cycles(&progress);
    poll(
        "3 more cycles per client after the failover",
        Duration::from_secs(30),
        || async {
            cycles(&progress)
                .iter()
                .zip(&at_failover)
                .all(|(n, m)| *n >= m + 3)
                .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut ledgers = Vec::new();
    for c in clients {
        ledgers.push(
            tokio::time::timeout(Duration::from_secs(40), c)
                .await
                .expect("a client finishes its cycle")
                .expect("client"),
        );
    }

    // The ledger: nothing answered was lost, nothing finished came back.
    for (c, l) in ledgers.iter().enumerate() {
        assert!(l.violations.is_empty(), "client {c}: {:#?}", l.violations);
    }
    assert_exclusive(&ledgers);
    let new_api = ha.api(new);
    assert_eq!(
        new_api.task_uids().await,
        Vec::<String>::new(),
        "every cycle ended with its task completed or dropped"
    );
    for uid in ledgers.iter().flat_map(|l| l.acked_done.iter()) {
        assert!(
            matches!(new_api.find_known(uid).await, Find::Gone),
            "{uid} was completed or dropped and came back"
        );
    }
    // Action ids: each client's grow, and none is issued twice.
    let mut all_numbers = BTreeSet::new();
    for (c, l) in ledgers.iter().enumerate() {
        for w in l.numbers.windows(2) {
            assert!(w[0].1 < w[1].1, "client {c}: action ids went back: {w:?}");
        }
        for (uid, n) in &l.numbers {
            assert!(
                all_numbers.insert(*n),
                "action id a-{n} issued twice ({uid})"
            );
        }
    }
    // Fencing tokens, from the servers' logs: every acknowledged grant logged exactly once by
    // the leader that committed it, tokens increasing on each leader and from the old leader to
    // the new one, and along each client's successive grants.
    let logged: Vec<Vec<(String, u64)>> = ha
        .servers
        .iter()
        .map(|s| grants_logged(&s.stderr()))
        .collect();
    for (i, g) in logged.iter().enumerate() {
        for w in g.windows(2) {
            assert!(
                w[0].1 < w[1].1,
                "{}: fencing tokens went back: {w:?}",
                id(i)
            );
        }
        if i != old && i != new {
            assert!(g.is_empty(), "{} never led but granted {g:?}", id(i));
        }
    }
    if let (Some(last_old), Some(first_new)) = (logged[old].last(), logged[new].first()) {
        assert!(
            last_old.1 < first_new.1,
            "the new leader's first token {first_new:?} is not above the old one's last {last_old:?}"
        );
    }
    let mut token_of: BTreeMap<&str, u64> = BTreeMap::new();
    for (uid, token) in logged.iter().flatten() {
        assert!(
            token_of.insert(uid.as_str(), *token).is_none(),
            "{uid} granted twice"
        );
    }
    let mut tokens: Vec<u64> = token_of.values().copied().collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), token_of.len(), "a fencing token issued twice");
    let mut acked = 0;
    for (c, l) in ledgers.iter().enumerate() {
        let mine: Vec<u64> = l
            .acked_grants
            .iter()
            .map(|uid| {
                *token_of
                    .get(uid.as_str())
                    .unwrap_or_else(|| panic!("acknowledged grant {uid} was never logged"))
            })
            .collect();
        for w in mine.windows(2) {
            assert!(w[0] < w[1], "client {c}: fencing tokens went back: {w:?}");
        }
        acked += mine.len();
    }
    // The log in etcd: the old epoch's entries, then the new one's.
    let entries = ha.log_entries().await;
    let epochs: Vec<i64> = entries.iter().map(|e| e.1).collect();
    assert!(
        epochs.windows(2).all(|w| w[0] <= w[1]),
        "epochs out of order in the log: {epochs:?}"
    );
    assert!(
        epochs.iter().all(|e| *e == old_epoch || *e == new_epoch),
        "unknown epochs: {epochs:?}"
    );
    for (key, epoch, rev) in &entries {
        assert!(
            *epoch != old_epoch || *rev < new_epoch,
            "{key} of the old epoch was written after the new one began"
        );
    }
    let retries: usize = ledgers.iter().map(|l| l.retries).sum();
    println!(
        "ledger: {} cycles, {acked} acknowledged grants, {} acknowledged completions/drops, {} \
         learned by reading, {retries} retried calls; {} log entries",
        ledgers.iter().map(|l| l.numbers.len()).sum::<usize>(),
        ledgers.iter().map(|l| l.acked_done.len()).sum::<usize>(),
        ledgers.iter().map(|l| l.learned_done.len()).sum::<usize>(),
        entries.len()
    );
    assert!(acked >= 4, "too few grants to mean anything");

    // The dead instance leaves the registry with its lease.
    poll(
        "the killed instance leaves ListInstances",
        Duration::from_secs(15),
        || async {
            let r = instances(ha.addr(new)).await.ok()?;
            let ids: Vec<&str> = r.instances.iter().map(|i| i.id.as_str()).collect();
            (!ids.contains(&id(old).as_str()) && r.leader_id == id(new)).then_some(())
        },
    )
    .await;
}

/// Six nodes, at most five unavailable: grants are not limited by the count.
const SIX_NODES: &str = r#"
[defaults]
lock_duration = "10m"
retry_after = "1m"

[limits]
max_unavailable_nodes = 5
max_unavailable_ratio = 0

[[nodes]]
id = 1
host = "node-1.example"
port = 19001

[[nodes]]
id = 2
host = "node-2.example"
port = 19001

[[nodes]]
id = 3
host = "node-3.example"
port = 19001

[[nodes]]
id = 4
host = "node-4.example"
port = 19001

[[nodes]]
id = 5
host = "node-5.example"
port = 19001

[[nodes]]
id = 6
host = "node-6.example"
port = 19001
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_stopped_past_its_lease_commits_nothing_and_rejoins() {
    let _serial = SERIAL.lock().await;
    let ha = Ha::start(1, 3, SIX_NODES);
    let (old, old_epoch) = ha.leader(None, Duration::from_secs(20)).await;
    let follower = (0..3).find(|&i| i != old).expect("a follower");
    let via_follower = ha.api(follower);

    // A lock that stays, and a 3-second lock on the leader that runs out while it is stopped:
    // its timer fires the moment it wakes.
    let Outcome::Success(_) = via_follower.create(node_locks("base", &[1])).await else {
        panic!("create base")
    };
    let direct = ha.api(old).with_timeout(Duration::from_secs(30));
    let short = task(
        "short",
        AvailabilityMode::Strong,
        vec![vec![lock(2, Some(3))]],
    );
    let Outcome::Success(op) = direct.create(short).await else {
        panic!("create short")
    };
    let r: MaintenanceTaskResult = unpack(&op);
    assert!(is_performed(states(&r.action_group_states)[0]), "{r:?}");

    // Calls sent to the leader just before it stops (the connection is open already).
    let queued: Vec<(String, tokio::task::JoinHandle<Outcome>)> = (0..6)
        .map(|q| {
            let uid = format!("queued-{q}");
            let node = [3, 4, 5][q % 3];
            let api = direct.clone();
            let req = node_locks(&uid, &[node]);
            (uid, tokio::spawn(async move { api.create(req).await }))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(3)).await;
    ha.servers[old].send_signal(rustix::process::Signal::STOP);
    let stopped_at = Instant::now();

    // Another instance takes over, and runs the timers: the short lock expires there.
    let (new, new_epoch) = ha.leader(Some(old), Duration::from_secs(15)).await;
    assert!(new_epoch > old_epoch);
    let via_new = ha.api(new);
    let Outcome::Success(_) = via_new.create(node_locks("during", &[6])).await else {
        panic!("create during")
    };
    poll(
        "the new leader expires the short lock",
        Duration::from_secs(10),
        || async { matches!(via_new.find("short").await, Find::Gone).then_some(()) },
    )
    .await;
    // Stopped for longer than the lease, whatever the election took.
    let stopped_for = 2 * LEASE + Duration::from_secs(1);
    if let Some(rest) = stopped_for.checked_sub(stopped_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    println!(
        "SIGSTOP of leader {} (epoch {old_epoch}): {} leads (epoch {new_epoch}); SIGCONT after {:?}",
        id(old),
        id(new),
        stopped_at.elapsed()
    );
    ha.servers[old].send_signal(rustix::process::Signal::CONT);

    // Its queued calls: refused, or SUCCESS only if the new leader shows it.
    let mut answers = Vec::new();
    for (uid, call) in queued {
        let outcome = tokio::time::timeout(Duration::from_secs(40), call)
            .await
            .expect("a queued call is answered after SIGCONT")
            .expect("call task");
        match &outcome {
            Outcome::Success(op) => {
                let r: MaintenanceTaskResult = unpack(op);
                let answered = states(&r.action_group_states)[0].clone();
                match via_new.find_known(&uid).await {
                    Find::Found(s) => assert!(
                        uid_of(&s) == uid_of(&answered) && s.status == answered.status,
                        "{uid}: answered {answered:?}, the new leader has {s:?}"
                    ),
                    other => panic!("{uid} was answered SUCCESS but the new leader has {other:?}"),
                }
                answers.push(format!("{uid}: SUCCESS, visible on the new leader"));
            }
            Outcome::Refused(code, m) => answers.push(format!("{uid}: {code:?} {m}")),
            Outcome::Retryable(m) => answers.push(format!("{uid}: {m}")),
        }
    }
    println!("the stopped leader's queued calls: {answers:#?}");
    // Those that landed hold nodes 3-5; with base and during that is the node limit. Release
    // them, so that what follows does not depend on how many made it before the stop.
    for q in 0..6 {
        let _ = via_new.drop_task(&format!("queued-{q}")).await;
    }

    // It steps down and follows the new leader.
    poll(
        "the old leader rejoins as a follower",
        Duration::from_secs(15),
        || async {
            let me = instances(ha.addr(old)).await.ok()?;
            let mine = me.instances.iter().find(|i| i.id == id(old))?;
            let theirs = instances(ha.addr(new)).await.ok()?;
            let seen = theirs.instances.iter().find(|i| i.id == id(old))?;
            (mine.role == "follower"
                && seen.role == "follower"
                && me.leader_id == id(new)
                && me.leader_epoch == new_epoch)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        health(ha.addr(old), LEADER_SERVICE).await,
        Some(NOT_SERVING),
        "the deposed leader must not say it leads"
    );
    assert_eq!(health(ha.addr(old), "").await, Some(SERVING));
    let stderr = ha.servers[old].stderr();
    assert!(
        stderr.contains("stepping down"),
        "the deposed leader says it steps down:\n{stderr}"
    );
    // It serves again, relaying to the new leader.
    let via_old = ha.api(old);
    let Outcome::Success(op) = via_old.create(node_locks("after", &[2])).await else {
        panic!("create through the old leader")
    };
    let r: MaintenanceTaskResult = unpack(&op);
    assert!(is_performed(states(&r.action_group_states)[0]), "{r:?}");
    assert!(matches!(via_new.find_known("after").await, Find::Found(_)));
    assert!(matches!(via_new.find_known("base").await, Find::Found(s) if is_performed(&s)));
    assert!(
        matches!(via_old.find_known("short").await, Find::Gone),
        "the expired lock stays expired"
    );

    // Nothing the deposed leader did after the new epoch reached etcd.
    assert_eq!(
        ha.leader_key().await,
        Some((new, new_epoch)),
        "leadership did not move again"
    );
    let entries = ha.log_entries().await;
    let after: Vec<&(String, i64, i64)> = entries.iter().filter(|e| e.2 > new_epoch).collect();
    assert!(
        after.len() >= 3,
        "the new leader wrote entries (during, the expiry, after): {entries:?}"
    );
    for (key, epoch, rev) in &after {
        assert_eq!(
            *epoch, new_epoch,
            "{key} (revision {rev}) was written after epoch {new_epoch} began by epoch {epoch}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_member_loss_and_total_outage() {
    let _serial = SERIAL.lock().await;
    let mut ha = Ha::start(3, 3, FIVE_NODES);
    let (leader, _) = ha.leader(None, Duration::from_secs(20)).await;
    let apis: Vec<Api> = (0..3).map(|i| ha.api(i)).collect();

    // A lock that must survive everything.
    let Outcome::Success(op) = apis[(leader + 1) % 3]
        .create(node_locks("keep", &[1]))
        .await
    else {
        panic!("create keep")
    };
    let r: MaintenanceTaskResult = unpack(&op);
    let keep = states(&r.action_group_states)[0].clone();
    assert!(is_performed(&keep));

    // One etcd member of three dies: every instance still serves a whole cycle.
    ha.etcd.kill9(0);
    let mut ledger = Ledger::default();
    let t = Instant::now();
    for (i, api) in apis.iter().enumerate() {
        cycle(api, &format!("member-loss-{i}"), 2, &mut ledger)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    println!(
        "with one etcd member of three dead: a cycle through each instance in {:?} ({} retries)",
        t.elapsed(),
        ledger.retries
    );
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    assert_eq!(ledger.acked_grants.len() + ledger.learned_done.len(), 3);

    // All of etcd stops: calls fail with a clear, retryable error.
    ha.etcd.stop_all();
    let outage = Instant::now();
    let round = |tag: &'static str| {
        let apis = apis.clone();
        async move {
            let calls: Vec<_> = apis
                .iter()
                .enumerate()
                .map(|(i, api)| {
                    let api = api.with_timeout(Duration::from_secs(20));
                    let uid = format!("{tag}-{i}");
                    tokio::spawn(async move { api.create(node_locks(&uid, &[3])).await })
                })
                .collect();
            let mut out = Vec::new();
            for c in calls {
                out.push(c.await.expect("call"));
            }
            out
        }
    };
    // Every call fails UNAVAILABLE, and before long every instance says why: etcd. By 2 leases
    // into the outage every lease (the leader's too) has run out, so no instance can still know
    // a leader; answers that do not name etcd after that are printed (see STALE_LIMIT), and
    // after STALE_LIMIT they fail the test.
    let mut rounds = Vec::new();
    let mut stale = Vec::new();
    let named_at = loop {
        let started = outage.elapsed();
        let answers = round("outage").await;
        let mut named = true;
        for (i, o) in answers.iter().enumerate() {
            match o {
                Outcome::Retryable(m) => {
                    assert!(
                        m.starts_with("Unavailable") || m.starts_with("gRPC Unavailable"),
                        "{}: not UNAVAILABLE: {m}",
                        id(i)
                    );
                    if !m.contains("etcd") {
                        named = false;
                        if started >= 2 * LEASE {
                            stale.push(format!("{} at {started:?}: {m}", id(i)));
                        }
                        assert!(
                            started < STALE_LIMIT,
                            "{} still answers without naming etcd {started:?} into the outage: {m}",
                            id(i)
                        );
                    }
                }
                other => panic!("{} during the etcd outage: {other:?}", id(i)),
            }
        }
        rounds.push((started, answers));
        if named {
            break started;
        }
        if let Some(rest) = (2 * LEASE).checked_sub(outage.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    };
    println!("during the etcd outage (calls started {named_at:?} in all name etcd): {rounds:#?}");

    // etcd returns: service resumes by itself, nothing lost.
    ha.etcd.start_all();
    let back = Instant::now();
    poll(
        "a create after etcd returned",
        Duration::from_secs(30),
        || {
            let api = apis[0].clone();
            async move {
                match api.create(node_locks("back", &[4])).await {
                    Outcome::Success(_) => Some(()),
                    // An earlier attempt landed after all.
                    Outcome::Refused(StatusCode::BadRequest, m) if m.contains("already exists") => {
                        Some(())
                    }
                    _ => None,
                }
            }
        },
    )
    .await;
    println!(
        "etcd was down for {:?}; service resumed {:?} after it returned",
        back - outage,
        back.elapsed()
    );
    for api in &apis {
        match api.find_known("keep").await {
            Find::Found(s) => assert!(
                uid_of(&s) == uid_of(&keep) && is_performed(&s) && s.deadline == keep.deadline,
                "keep changed: {s:?} (was {keep:?})"
            ),
            other => panic!("keep was lost: {other:?}"),
        }
    }
    let uids = apis[1].task_uids().await;
    assert!(
        uids.iter().all(|u| !u.starts_with("member-loss-")),
        "completed tasks came back: {uids:?}"
    );
    assert!(uids.contains(&"keep".to_owned()) && uids.contains(&"back".to_owned()));
    let mut ledger = Ledger::default();
    for (i, api) in apis.iter().enumerate() {
        cycle(api, &format!("resumed-{i}"), 5, &mut ledger)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    if !stale.is_empty() {
        println!(
            "WARNING: {:?} or more into the etcd outage (no lease alive), answers that do not \
             name etcd: {stale:#?}",
            2 * LEASE
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_with_another_inventory_is_refused() {
    let _serial = SERIAL.lock().await;
    let ha = Ha::start(1, 1, FIVE_NODES);
    ha.leader(None, Duration::from_secs(20)).await;
    let other = ha.files.write(
        "other.toml",
        &FIVE_NODES.replace("max_unavailable_nodes = 2", "max_unavailable_nodes = 3"),
    );
    let data = ha.files.path().join("other-data");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--inventory".into(),
        other.clone().into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data.into(),
    ];
    args.extend(ha.args("i9").into_iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = tokio::task::block_in_place(|| run_to_exit(&refs, ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&other.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("differs from the inventory"),
        "says it differs from the cluster's: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it never listened"
    );
    // The cluster goes on.
    let Outcome::Success(_) = ha.api(0).create(node_locks("still", &[1])).await else {
        panic!("the running instance stopped serving")
    };
}

/// A follower relays a stream (WatchMaintenanceTask) as well as unary calls; a call that was
/// already relayed once is refused by a follower rather than relayed again; `arbiter instances`
/// shows the roles; and a state exported from a single redb instance and imported into etcd is
/// what the cluster then serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_relays_streams_refuses_relayed_calls_and_an_import_is_served() {
    let _serial = SERIAL.lock().await;
    use arbiter_e2e::proto::arbiter::v1::WatchMaintenanceTaskRequest;
    use std::ffi::OsStr;

    // A single instance on redb with one live lock, exported.
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut solo = ServerProcess::start(&inventory);
    let c = solo.client(Some(TICKET)).await;
    let t: MaintenanceTaskResult =
        arbiter_e2e::success(&c.create(node_locks("moved-in", &[1])).await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
    solo.terminate();
    let dump = files.path().join("state.json");
    let out = run_to_exit(
        &[
            OsStr::new("--data-dir"),
            solo.data_dir().as_os_str(),
            OsStr::new("export"),
            OsStr::new("--out"),
            dump.as_os_str(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");

    // Into etcd before any instance runs, then two instances on it.
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let out = run_to_exit(
        &[
            OsStr::new("--store"),
            OsStr::new("etcd"),
            OsStr::new("--etcd-endpoints"),
            OsStr::new(&endpoints),
            OsStr::new("--etcd-prefix"),
            OsStr::new("/arbiter/e2e"),
            OsStr::new("import"),
            OsStr::new("--in"),
            dump.as_os_str(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let mut ha = Ha {
        servers: Vec::new(),
        client: etcd.client(),
        etcd,
        files,
        inventory,
        prefix: String::from("/arbiter/e2e"),
        endpoints,
    };
    for i in 0..2 {
        let args = ha.args(&id(i));
        let server = ServerProcess::start_with(&ha.inventory, &args);
        ha.servers.push(server);
    }
    let (leader, _) = ha.leader(None, Duration::from_secs(10)).await;
    let follower = 1 - leader;

    // The imported lock is live: the same node cannot be taken, through the follower.
    let api = ha.api(follower);
    match api.get("moved-in").await {
        Outcome::Success(op) => {
            let r: GetMaintenanceTaskResult = unpack(&op);
            assert!(is_performed(states(&r.action_group_states)[0]), "{r:?}");
        }
        other => panic!("the imported task through the follower: {other:?}"),
    }

    // A watch opened on the follower streams the leader's updates.
    let mut watch = ArbiterServiceClient::new(lazy_channel(ha.addr(follower)));
    let mut stream = watch
        .watch_maintenance_task(api.request(WatchMaintenanceTaskRequest {
            task_uid: "moved-in".into(),
        }))
        .await
        .expect("a watch through the follower")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a first update in time")
        .expect("a stream message")
        .expect("not the end");
    assert_eq!(first.status, StatusCode::Success as i32, "{first:?}");
    let uid = uid_of(states(&first.result.as_ref().expect("a result").action_group_states)[0]);
    assert!(
        matches!(api.complete(vec![uid]).await, Outcome::Success(_)),
        "complete through the follower"
    );
    let last = loop {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an update in time")
            .expect("a stream message");
        match m {
            Some(m) if m.status == StatusCode::Success as i32 => continue,
            Some(m) => break m,
            None => panic!("the stream ended without saying the task is gone"),
        }
    };
    assert_eq!(last.status, StatusCode::BadRequest as i32, "{last:?}");

    // A call marked as relayed already is refused by the follower, not relayed again.
    let mut raw = MaintenanceServiceClient::new(lazy_channel(ha.addr(follower)));
    let mut req = api.request(ListMaintenanceTasksRequest::default());
    req.metadata_mut().insert(
        "x-arbiter-forwarded-by",
        "elsewhere".parse().expect("ascii"),
    );
    let err = raw
        .list_maintenance_tasks(req)
        .await
        .expect_err("a relayed call on a follower");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("not relayed again"), "{err:?}");

    // `arbiter instances` through either instance: one leader, one follower, one epoch.
    for i in 0..2 {
        let out = std::process::Command::new(arbiter_e2e::cli_binary())
            .env_remove("ARBITER_TOKEN")
            .args([
                "--endpoint",
                &ha.addr(i).to_string(),
                "-o",
                "json",
                "instances",
            ])
            .output()
            .expect("arbiter instances");
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(v["store"], "etcd", "{v}");
        let roles: BTreeSet<String> = v["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|x| x["role"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(
            roles,
            BTreeSet::from(["follower".to_owned(), "leader".to_owned()]),
            "{v}"
        );
        assert_eq!(v["leader_id"], id(leader), "{v}");
    }
}

/// An instance started while etcd is down does not exit: it says once that etcd is unreachable,
/// naming the endpoints, and keeps trying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_waits_for_an_unreachable_etcd_and_says_so() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let stderr = files.path().join("stderr.log");
    let mut child = arbiter_e2e::server_command()
        .args(["--inventory"])
        .arg(&inventory)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(files.path().join("data"))
        .args(["--store", "etcd", "--etcd-endpoints", &endpoint])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start arbiter-server");
    let said = poll("the etcd warning", Duration::from_secs(15), || async {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        (log.contains("etcd unreachable") && log.contains(&endpoint)).then_some(log)
    })
    .await;
    assert!(said.contains("retrying"), "{said}");
    // Still waiting, not exited, a retry round later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the server exited instead of waiting for etcd"
    );
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(
        log.matches("etcd unreachable").count(),
        1,
        "said once, not per attempt: {log}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

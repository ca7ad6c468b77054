"""Drain and cordon as YDB's own Python SDK stubs see them, with real `arbiter agent` processes.

A DrainAction or CordonAction (node_id scope) is sent exactly as ydbops or any YDB SDK user
would send it, through `ydb_maintenance_pb2`; the node's work is done by a real `arbiter agent
--on-drain/--on-undrain/--on-cordon/--on-uncordon` whose hooks are small shell scripts in the
test's directory. Each hook appends one line to a log (its ARBITER_* environment and its
placeholder arguments), so the test sees which hook ran, for which action, and in which order.

What this shows:
- without an agent a drain waits: ACTION_STATUS_PENDING, the details name the missing agent;
- once the agent is there, a RefreshMaintenanceTask (ydbops polls it) grants the drain, and
  GetMaintenanceTask shows ACTION_STATUS_IN_PROGRESS with YDB's "Progress: NN.NN%" details
  while the drain hook reports progress, then ACTION_STATUS_PERFORMED; a drain has no deadline
  at any point; CompleteAction makes the agent run the undrain hook, once;
- a cordon is PERFORMED once the cordon hook ran; dropping its task runs the uncordon hook;
- dropping a task mid-drain stops the drain hook (its process is gone, it never finishes) and
  runs the undrain hook;
- a failing drain hook shows its exit status and last stderr line in the details, and is tried
  again; a DrainAction (or CordonAction) with a host scope is refused with BAD_REQUEST
  "Unsupported scope" and nothing is stored;
- ListClusterNodes keeps YDB's three item states (UP / MAINTENANCE / DOWN) during a drain: the
  draining node is UP (it still serves); arbiter.v1 ListNodes has the finer condition
  (ENTERING_MAINTENANCE while the drain runs, IN_MAINTENANCE once drained).

Every wait polls with a bound; nothing sleeps to synchronise (the hooks sleep to stand for work).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from arbiter_testlib import (
    BAD_REQUEST, NODE_STATE_DOWN, PENDING, PERFORMED, REPO, RPC_TIMEOUT_S, decode_fields, groups,
    m, server_env, states,
)

R = m.ActionState
IN_PROGRESS = R.ACTION_STATUS_IN_PROGRESS
ITEM_UP = m.ItemState.ITEM_STATE_UP
ITEM_MAINTENANCE = m.ItemState.ITEM_STATE_MAINTENANCE
ITEM_DOWN = m.ItemState.ITEM_STATE_DOWN
YDB_ITEM_STATES = {ITEM_UP, ITEM_MAINTENANCE, ITEM_DOWN}

# arbiter.v1 NodeCondition (no Python stubs: numbers from arbiter.proto).
CONDITION_ENTERING_MAINTENANCE = 2
CONDITION_IN_MAINTENANCE = 7

PROGRESS_RE = re.compile(r"^Progress: (\d+\.\d\d)%")
#: How long any awaited change may take.
BOUND_S = 20.0
#: How often the agents beat.
EVERY = "300ms"

NODES = "".join(
    f'\n[[nodes]]\nid = {i}\nhost = "node-{i}"\nport = 1\n' for i in range(1, 5))
INVENTORY = f"""
[defaults]
lock_duration = "1h"

[limits]
max_unavailable_nodes = 4
max_unavailable_ratio = 0
{NODES}"""


# ----- helpers -----------------------------------------------------------------------------------


def cli_binary() -> Path:
    """The `arbiter` CLI: $ARBITER_CLI_BIN, else <repo>/target/debug/arbiter (as the Rust e2e
    harness finds it)."""
    env = os.environ.get("ARBITER_CLI_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "arbiter"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"arbiter CLI not found at {path}: build it with `cargo build -p "
                    "arbiter-client --bin arbiter` or set ARBITER_CLI_BIN", pytrace=False)
    return path


def wait_for(check: Callable[[], object], what: str, bound: float = BOUND_S):
    """Polls `check` until it returns something truthy (returned) or `bound` seconds pass."""
    deadline = time.monotonic() + bound
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound}s waiting for {what}; last: {last!r}")
        time.sleep(0.03)


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class HookLog:
    """The log every hook script of a test appends to: one line per run,
    `ACTION node=N host=H task=T action=A args=...`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / "hooks.log"
        self.path.touch()

    def script(self, name: str, body: str = "") -> str:
        """An executable hook script that logs its run, then runs `body`; returns the hook
        command line with every placeholder as an argument."""
        path = self.directory / f"{name}.sh"
        path.write_text(
            "#!/bin/sh\n"
            f'echo "$ARBITER_ACTION node=$ARBITER_NODE_ID host=$ARBITER_HOST '
            f'task=$ARBITER_TASK_UID action=$ARBITER_ACTION_ID args=$*" >> {self.path}\n'
            f"{body}\n")
        path.chmod(0o755)
        return f"{path} {{node}} {{host}} {{task}} {{action}}"

    def runs(self) -> list[str]:
        return self.path.read_text().splitlines()

    @staticmethod
    def line(hook: str, node: int, task: str, action: str) -> str:
        return (f"{hook} node={node} host=node-{node} task={task} action={action} "
                f"args={node} node-{node} {task} {action}")


class Agent:
    """One `arbiter agent --node N --every 300ms ARGS` process; stdout and stderr go to files."""

    def __init__(self, directory: Path, address: str, node: int, args: list[str]):
        self.node = node
        self.out_path = directory / f"agent-{node}.out"
        self.err_path = directory / f"agent-{node}.err"
        argv = [str(cli_binary()), "--endpoint", address, "agent", "--node", str(node),
                "--every", EVERY, *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=server_env())

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait: an agent stopped by a signal exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"agent of node {self.node} ignored SIGTERM")
        return self.proc.returncode

    def describe(self) -> str:
        return (f"--- agent {self.node} stdout ---\n{self.output()}"
                f"--- agent {self.node} stderr ---\n{self.err_path.read_text(errors='replace')}")


@pytest.fixture
def cluster(server_factory, tmp_path):
    """A server on a 4-node inventory without storage groups (only the node limit, 4, checks),
    a client, a hook log and a function starting agents (all stopped at the end, exit 0)."""
    inventory = tmp_path / "drain.toml"
    inventory.write_text(INVENTORY)
    srv = server_factory(inventory)
    hooks_dir = tmp_path / "hooks"
    hooks_dir.mkdir()
    log = HookLog(hooks_dir)
    agents: list[Agent] = []

    def start_agent(node: int, *args: str) -> Agent:
        agent = Agent(tmp_path, srv.address, node, list(args))
        agents.append(agent)
        return agent

    class Cluster:
        pass

    c = Cluster()
    c.server, c.client, c.log, c.agent, c.agents = srv, srv.client("ops"), log, start_agent, agents
    try:
        yield c
    finally:
        codes = {a.node: a.stop() for a in agents}
        bad = {n: code for n, code in codes.items() if code != 0}
        assert not bad, "agents exited non-zero on SIGTERM: " + str(bad) + "\n" + "\n".join(
            a.describe() for a in agents)


def drain(node: Optional[int] = None, host: Optional[str] = None) -> m.Action:
    scope = m.ActionScope(node_id=node) if node is not None else m.ActionScope(host=host)
    return m.Action(drain_action=m.DrainAction(scope=scope))


def cordon(node: Optional[int] = None, host: Optional[str] = None) -> m.Action:
    scope = m.ActionScope(node_id=node) if node is not None else m.ActionScope(host=host)
    return m.Action(cordon_action=m.CordonAction(scope=scope))


def one_state(client, uid: str):
    """The only action state of task `uid`, through GetMaintenanceTask."""
    (s,) = states(client.get(uid).expect().result)
    return s


def assert_echoes(s, kind: str, node: int) -> None:
    """The state echoes its action as sent: the same kind, the node_id scope."""
    assert s.action.WhichOneof("action") == kind, s
    assert getattr(s.action, kind).scope.node_id == node, s


def ydb_node_states(client) -> dict[int, int]:
    return {n.node_id: n.state for n in client.list_nodes().expect().result.nodes}


def conditions(server) -> dict[int, int]:
    """arbiter.v1 ListNodes, hand-encoded: node id -> NodeCondition (field 15)."""
    ch = server.shared_channel()
    call = ch.unary_unary("/arbiter.v1.ArbiterService/ListNodes",
                          request_serializer=lambda b: b, response_deserializer=lambda b: b)
    out = {}
    for raw in decode_fields(call(b"", timeout=RPC_TIMEOUT_S)).get(1, []):
        f = decode_fields(raw)
        out[f[1][0]] = f.get(15, [0])[0]
    return out


def watch_drain(client, uid: str, until: Callable[[object], bool], seen: list[str]):
    """Polls GetMaintenanceTask until `until(state)`; every state seen on the way must be a
    drain in progress or performed, without a deadline; the progress values go to `seen`."""
    def step():
        s = one_state(client, uid)
        assert not s.HasField("deadline"), f"a drain has no deadline: {s}"
        assert s.status in (IN_PROGRESS, PERFORMED), s
        if s.status == IN_PROGRESS:
            match = PROGRESS_RE.match(s.details)
            if match:
                seen.append(match.group(1))
        return s if until(s) else None
    return wait_for(step, f"task {uid} to reach the wanted state")


# ----- 1. drain: pending without an agent, progress, performed, undrain on complete --------------


def test_drain_waits_for_its_agent_shows_progress_then_performed_and_undrains_on_complete(
        cluster):
    c, log = cluster.client, cluster.log
    created = c.create("d-1", [m.ActionGroup(actions=[drain(node=1)])]).expect().result
    (s,) = states(created)
    assert s.status == PENDING, s
    assert_echoes(s, "drain_action", 1)
    assert s.details.startswith("no agent is connected for node 1"), s.details
    assert "arbiter agent --node 1 --on-drain" in s.details, s.details
    assert not s.HasField("deadline"), s
    uid = s.action_uid
    assert uid.action_id, "a pending action has its uid"
    # Still pending on Get; nothing ran.
    again = one_state(c, "d-1")
    assert again.status == PENDING and again.details == s.details, again
    assert log.runs() == []

    progress = log.script("drain", "for p in 20 50 80; do echo \"progress $p\"; sleep 0.5; done")
    undrain = log.script("undrain")
    agent = cluster.agent(1, "--on-drain", progress, "--on-undrain", undrain)

    # As ydbops does, the client refreshes its task: granted once the agent's order stream is
    # open (until then it stays pending, naming the missing agent).
    def granted():
        (st,) = states(c.refresh("d-1").expect().result)
        assert not st.HasField("deadline"), st
        if st.status == PENDING:
            assert st.details.startswith("no agent is connected for node 1"), st
            return None
        assert st.status in (IN_PROGRESS, PERFORMED), st
        return st

    wait_for(granted, "the drain to be granted")
    seen: list[str] = []
    first = watch_drain(c, "d-1", lambda s: s.status == IN_PROGRESS and PROGRESS_RE.match(
        s.details) is not None, seen)
    assert_echoes(first, "drain_action", 1)
    assert first.action_uid == uid, first
    done = watch_drain(c, "d-1", lambda s: s.status == PERFORMED, seen)
    assert seen, "no 'Progress: NN.NN%' seen while the drain ran"
    assert set(seen) <= {"0.00", "20.00", "50.00", "80.00"}, seen
    assert [float(p) for p in seen] == sorted(float(p) for p in seen), f"progress went back: {seen}"
    assert done.details == "drained by the node's agent", done.details
    assert done.reason == R.ACTION_REASON_OK, done
    assert done.action_uid == uid, done
    assert log.runs() == [log.line("drain", 1, "d-1", uid.action_id)]
    # Refresh says the same as Get: performed, no deadline.
    (r,) = states(c.refresh("d-1").expect().result)
    assert r.status == PERFORMED and not r.HasField("deadline"), r

    # Completing the action makes the agent undrain, once.
    c.complete([uid]).expect()
    want = [log.line("drain", 1, "d-1", uid.action_id),
            log.line("undrain", 1, "d-1", uid.action_id)]
    wait_for(lambda: log.runs() == want, "the undrain hook to run")
    wait_for(lambda: "undrain done for task d-1" in agent.output(), "the agent to say undrained")
    assert log.runs() == want
    c.get("d-1").expect_error(BAD_REQUEST, "Task not found")


# ----- 2. cordon -----------------------------------------------------------------------------------


def test_cordon_is_performed_once_its_hook_ran_and_dropping_the_task_uncordons(cluster):
    c, log = cluster.client, cluster.log
    cordon_hook = log.script("cordon", "sleep 0.3")
    uncordon_hook = log.script("uncordon")
    agent = cluster.agent(2, "--on-cordon", cordon_hook, "--on-uncordon", uncordon_hook)
    wait_for(lambda: "orders connected" in agent.output(), "the agent's order stream")

    created = c.create("c-1", [m.ActionGroup(actions=[cordon(node=2)])]).expect().result
    (s,) = states(created)
    assert s.status in (IN_PROGRESS, PERFORMED), f"granted at once, its agent is there: {s}"
    assert_echoes(s, "cordon_action", 2)
    uid = s.action_uid
    cordon_line = log.line("cordon", 2, "c-1", uid.action_id)

    def performed():
        st = one_state(c, "c-1")
        assert st.status in (IN_PROGRESS, PERFORMED), st
        assert not st.HasField("deadline"), f"a cordon has no deadline: {st}"
        if st.status == IN_PROGRESS:
            # Not performed before the hook ran to its end.
            assert st.details != "cordoned by the node's agent", st
        return st if st.status == PERFORMED else None

    done = wait_for(performed, "the cordon to be performed")
    assert log.runs() == [cordon_line], "performed only once the cordon hook ran"
    assert done.details == "cordoned by the node's agent", done.details
    assert_echoes(done, "cordon_action", 2)

    c.drop("c-1").expect()
    want = [cordon_line, log.line("uncordon", 2, "c-1", uid.action_id)]
    wait_for(lambda: log.runs() == want, "the uncordon hook to run")
    wait_for(lambda: "uncordon done for task c-1" in agent.output(),
             "the agent to say uncordoned")
    assert c.task_uids() == []


# ----- 3. drop mid-drain -----------------------------------------------------------------------------


def test_dropping_a_task_mid_drain_stops_the_drain_hook_and_undrains(cluster, tmp_path):
    c, log = cluster.client, cluster.log
    pid_file = tmp_path / "drain.pid"
    finished = tmp_path / "drain.finished"
    slow = log.script(
        "drain",
        f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n"
        "echo progress 10\n"
        "i=0; while [ $i -lt 100 ]; do sleep 0.3; i=$((i+1)); done\n"
        f"touch {finished}")
    undrain = log.script("undrain")
    agent = cluster.agent(3, "--on-drain", slow, "--on-undrain", undrain)
    wait_for(lambda: "orders connected" in agent.output(), "the agent's order stream")

    (s,) = states(c.create("d-3", [m.ActionGroup(actions=[drain(node=3)])]).expect().result)
    uid = s.action_uid
    running = watch_drain(c, "d-3", lambda s: s.details.startswith("Progress: 10.00%"), [])
    assert running.status == IN_PROGRESS, running
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
                       "the drain hook's pid"))
    assert pid_alive(pid), "the drain hook runs"

    c.drop("d-3").expect()
    want = [log.line("drain", 3, "d-3", uid.action_id),
            log.line("undrain", 3, "d-3", uid.action_id)]
    wait_for(lambda: log.runs() == want, "the undrain hook to run")
    wait_for(lambda: not pid_alive(pid), "the drain hook to be stopped")
    assert not finished.exists(), "the drain hook ran to its end"
    out = wait_for(lambda: "undrain done for task d-3" in agent.output() and agent.output(),
                   "the agent to say undrained")
    assert "drain: stopped for task d-3: the arbiter no longer asks for it" in out, out
    assert c.task_uids() == []
    assert log.runs() == want, "the drain hook was not started again"


# ----- 4. a failing hook; a host scope --------------------------------------------------------------


def test_a_failing_drain_hook_shows_its_exit_and_stderr_and_a_host_scope_is_refused(cluster):
    c, log = cluster.client, cluster.log
    failing = log.script("drain", "echo trying >&2; echo no replica >&2; exit 3")
    agent = cluster.agent(4, "--on-drain", failing, "--on-undrain", log.script("undrain"),
                          "--hook-retry-delay", "500ms")
    wait_for(lambda: "orders connected" in agent.output(), "the agent's order stream")

    (s,) = states(c.create("d-4", [m.ActionGroup(actions=[drain(node=4)])]).expect().result)
    uid = s.action_uid

    def failed(attempt: int):
        def check():
            st = one_state(c, "d-4")
            assert st.status == IN_PROGRESS, f"a failing drain is never performed: {st}"
            assert not st.HasField("deadline"), st
            return st if f"(attempt {attempt})" in st.details else None
        return check

    first = wait_for(failed(1), "the first failure in the details")
    assert "exited with status 3" in first.details, first.details
    assert "no replica" in first.details, first.details
    assert "trying" not in first.details, "only the last stderr line is shown"
    assert first.details == ("drain: the hook failed (attempt 1): exited with status 3: "
                             "no replica; the agent tries again in 1s"), first.details
    # The agent tries again after --hook-retry-delay.
    second = wait_for(failed(2), "the second attempt to fail")
    assert "exited with status 3: no replica" in second.details, second.details
    assert log.runs()[:2] == [log.line("drain", 4, "d-4", uid.action_id)] * 2
    c.drop("d-4").expect()

    # A drain or a cordon takes a node_id scope: a host scope is refused, nothing is stored.
    for uid_, action in (("h-1", drain(host="node-1")), ("h-2", cordon(host="node-1"))):
        c.create(uid_, [m.ActionGroup(actions=[action])]).expect_error(
            BAD_REQUEST, "Unsupported scope")
        c.get(uid_).expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == []


# ----- 5. ListClusterNodes during a drain -----------------------------------------------------------


def test_list_cluster_nodes_keeps_ydb_item_states_during_a_drain(cluster):
    c, log, srv = cluster.client, cluster.log, cluster.server
    gate = log.directory / "drain.go"
    # The drain runs until the test lets it end (bounded: 30 s at most).
    held = log.script(
        "drain",
        "echo progress 40\n"
        f"i=0; while [ ! -e {gate} ] && [ $i -lt 100 ]; do sleep 0.3; i=$((i+1)); done\n"
        f"[ -e {gate} ]")
    agent = cluster.agent(1, "--on-drain", held, "--on-undrain", log.script("undrain"))
    wait_for(lambda: "orders connected" in agent.output(), "the agent's order stream")

    (s,) = states(c.create("d-5", [m.ActionGroup(actions=[drain(node=1)])]).expect().result)
    watch_drain(c, "d-5", lambda s: s.details.startswith("Progress: 40.00%"), [])
    # Node 2: locked, then down (MAINTENANCE); node 3: down without a lock (DOWN); node 4: UP.
    (lock2,) = states(c.create("l-2", groups(2, duration=600)).expect().result)
    assert lock2.status == PERFORMED, lock2
    ops = srv.client("agent")
    ops.set_node_state(2, NODE_STATE_DOWN, "rebooting")
    ops.set_node_state(3, NODE_STATE_DOWN, "disk failure")

    want = {1: ITEM_UP, 2: ITEM_MAINTENANCE, 3: ITEM_DOWN, 4: ITEM_UP}
    during = ydb_node_states(c)
    assert set(during.values()) <= YDB_ITEM_STATES, during
    assert during == want, "the draining node serves: UP"
    assert one_state(c, "d-5").status == IN_PROGRESS
    assert conditions(srv)[1] == CONDITION_ENTERING_MAINTENANCE

    gate.touch()
    watch_drain(c, "d-5", lambda s: s.status == PERFORMED, [])
    after = ydb_node_states(c)
    assert set(after.values()) <= YDB_ITEM_STATES, after
    assert after == want, "a drained node is still up: UP"
    assert conditions(srv)[1] == CONDITION_IN_MAINTENANCE
    # Every state survives a round trip through YDB's stubs as a known enum value.
    for n in c.list_nodes().expect().result.nodes:
        assert m.ItemState.Name(n.state) in ("ITEM_STATE_UP", "ITEM_STATE_MAINTENANCE",
                                             "ITEM_STATE_DOWN"), n

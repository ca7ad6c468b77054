"""High availability on etcd through the YDB SDK's stubs, as ydbops drives it.

One etcd member (started here on free loopback ports, --unsafe-no-fsync, a temporary data
directory) and two arbiter-server instances on it (--store etcd, --leader-lease 2s). ydbops's
call sequence (Login, ListClusterNodes, ListDatabases, WhoAmI, ListMaintenanceTasks + Get + Drop
of a leftover, Create, then process / CompleteAction / Refresh / ListClusterNodes) goes through
the FOLLOWER's endpoint only, so every call is relayed to the leader. Mid-restart the leader is
killed with SIGKILL and the sequence continues through the survivor with the same login token
(issued by the dead leader: the signing key is shared through etcd). The independent failure-model
checker runs after every view; at the end every node was restarted exactly once and the task is
gone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest

from arbiter_testlib import (
    BAD_REQUEST, INVENTORIES, NODE_STATE_DOWN, NODE_STATE_UP, PERFORMED, STRONG, SUCCESS, Client,
    S, groups, m, states, status_name,
)
from failure_model import Inventory

INVENTORY = INVENTORIES / "rolling-16.toml"
USER, PASSWORD = "rolling", "rolling-restart-password"
AGENT_TOKEN = "node-agent-token-00000000000000001"
LEASE_S = 2
UNAVAILABLE = S.UNAVAILABLE
LEADER_SERVICE = "arbiter.v1.Leader"
SERVING, NOT_SERVING = 1, 2
MAX_ITERATIONS = 200
RESTART_BUDGET_S = 181


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """One etcd member on free loopback ports with its own data directory."""

    def __init__(self, workdir: Path):
        binary = os.environ.get("ETCD_BIN") or shutil.which("etcd")
        if not binary:
            pytest.fail("these tests need a real etcd server: install it (Debian/Ubuntu: "
                        "`apt-get install etcd-server`) or set ETCD_BIN", pytrace=False)
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "etcd.log"
        self.proc = None
        self.client_port = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> "Etcd":
        for _attempt in range(2):  # a port taken meanwhile: once more with new ones
            self.client_port, peer_port = free_port(), free_port()
            peer = f"http://127.0.0.1:{peer_port}"
            argv = [self.binary, "--name", "m0", "--data-dir", str(self.workdir / "data"),
                    "--listen-client-urls", self.endpoint,
                    "--advertise-client-urls", self.endpoint,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"m0={peer}", "--initial-cluster-state", "new",
                    "--unsafe-no-fsync", "--logger", "zap", "--log-outputs", "stderr",
                    "--log-level", "warn"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, env=env)
            if self._wait_healthy(30.0):
                return self
            self.kill()
            shutil.rmtree(self.workdir / "data", ignore_errors=True)
        raise AssertionError(f"etcd did not start:\n{self.log_tail()}")

    def _wait_healthy(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except FileNotFoundError:
            return ""


@pytest.fixture
def etcd(tmp_path):
    member = Etcd(tmp_path / "etcd").start()
    yield member
    member.kill()


def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.toml"
    path.write_text(f'''
[[users]]
name = "{USER}"
password = "{PASSWORD}"
role = "operator"

[[users]]
name = "node-agent"
token = "{AGENT_TOKEN}"
role = "admin"
''')
    return path


def ha_args(etcd: Etcd, instance: str) -> list[str]:
    return ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", "/arbiter/py",
            "--leader-lease", f"{LEASE_S}s", "--instance-id", instance]


def health(srv, service: str = "") -> int:
    try:
        return srv.client().health(service)
    except grpc.RpcError:
        return 0


def wait_for(what: str, limit: float, probe):
    deadline = time.monotonic() + limit
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {limit}s"
        time.sleep(0.05)


def retrying(what: str, fn, limit: float = 20.0):
    """Calls fn until it answers something other than UNAVAILABLE (envelope or gRPC)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            r = fn()
            if getattr(r, "status", SUCCESS) != UNAVAILABLE:
                return r
            last = f"{status_name(r.status)}: {r.message}"
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            last = f"gRPC {e.code().name}: {e.details()}"
        assert time.monotonic() < deadline, f"{what}: still failing after {limit}s: {last}"
        time.sleep(0.05)


class Ydbops:
    """ydbops's client side: a new connection per RPC, x-ydb-auth-ticket only. Retries
    UNAVAILABLE (a failover) for as long as `retry` allows (0: not at all)."""

    def __init__(self, srv):
        self.srv = srv
        self.token = None
        self.calls: list[str] = []
        self.retried = 0

    def rpc(self, name, fn, retry: float = 0.0):
        self.calls.append(name)

        def once():
            channel = self.srv.channel()
            try:
                return fn(Client(channel, ticket=self.token))
            finally:
                channel.close()

        if not retry:
            return once()
        first = [True]

        def counted():
            if not first[0]:
                self.retried += 1
            first[0] = False
            return once()
        return retrying(name, counted, retry)


def performed_nodes(result) -> set[int]:
    return {s.action.lock_action.scope.node_id for s in states(result) if s.status == PERFORMED}


def test_ydbops_through_a_follower_survives_kill_9_of_the_leader(etcd, server_factory, tmp_path):
    inv = Inventory(INVENTORY)
    auth = auth_file(tmp_path)
    a = server_factory(INVENTORY, auth=auth, extra_args=ha_args(etcd, "a"), name="a")
    b = server_factory(INVENTORY, auth=auth, extra_args=ha_args(etcd, "b"), name="b")
    servers = {"a": a, "b": b}

    def leader():
        on = [n for n, s in servers.items() if s.running and health(s, LEADER_SERVICE) == SERVING]
        return on[0] if len(on) == 1 else None

    lead = wait_for("a leader", 20.0, leader)
    follower = servers["b" if lead == "a" else "a"]
    leader_srv = servers[lead]
    assert health(follower, LEADER_SERVICE) == NOT_SERVING
    wait_for("the follower knows the leader", 10.0, lambda: health(follower) == SERVING)

    # A leftover of an earlier run, created on the leader itself.
    old_token = leader_srv.client(None).login(USER, PASSWORD).expect().result.token
    leftover = f"rolling-restart-{uuid.uuid4()}"
    leader_srv.client(old_token).create(leftover, groups(5, duration=3600)).expect()

    # ---- ydbops, through the follower: login, discovery, cleanup ----
    y = Ydbops(follower)
    y.token = y.rpc("Login", lambda c: c.login(USER, PASSWORD)).expect().result.token
    assert len(y.token) >= 20
    nodes = y.rpc("ListClusterNodes", lambda c: c.list_nodes()).expect().result.nodes
    node_map = {n.node_id: n for n in nodes if n.state == m.ItemState.ITEM_STATE_UP}
    targets = sorted(n.node_id for n in node_map.values() if n.WhichOneof("type") == "storage")
    assert targets == inv.storage_nodes() == list(range(1, 17))
    assert "/Root/db1" in y.rpc("ListDatabases", lambda c: c.list_databases()).expect().result.paths
    assert y.rpc("WhoAmI", lambda c: c.whoami()).expect().result.user == USER
    mine = y.rpc("ListMaintenanceTasks", lambda c: c.list_tasks(USER)).expect().result.tasks_uids
    assert list(mine) == [leftover], "the leader's task is visible through the follower"
    for uid in mine:
        y.rpc("GetMaintenanceTask", lambda c: c.get(uid)).expect()
    for uid in mine:
        y.rpc("DropMaintenanceTask", lambda c: c.drop(uid)).expect()

    # ---- ydbops: create, then process / complete / refresh until done ----
    task_uid = f"rolling-restart-{uuid.uuid4()}"
    create = m.CreateMaintenanceTaskRequest(
        task_options=m.MaintenanceTaskOptions(
            task_uid=task_uid, description="Rolling restart maintenance task",
            availability_mode=STRONG, priority=0),
        action_groups=groups(*targets, duration=len(targets) * RESTART_BUDGET_S))
    view = y.rpc("CreateMaintenanceTask", lambda c: c.create_raw(create)).expect().result
    assert view.task_uid == task_uid

    agent = Ydbops(follower)
    agent.token = AGENT_TOKEN
    restarts = {n: 0 for n in targets}
    uid_of: dict[int, object] = {}
    came_up: set[int] = set()
    batches: list[list[int]] = []
    killed_at = failover_s = None
    done = False
    for iteration in range(MAX_ITERATIONS):
        assert all(len(g.action_states) == 1 for g in view.action_group_states), view
        granted = performed_nodes(view)
        broken = inv.violations(granted, "strong", recently_started=came_up)
        assert not broken, f"iteration {iteration}: {sorted(granted)} breaks {broken}"
        batch = []
        for g in view.action_group_states:
            s = g.action_states[0]
            if s.status != PERFORMED:
                assert s.details, f"a waiting action without details: {s}"
                continue
            node = s.action.lock_action.scope.node_id
            assert node in node_map, s
            assert uid_of.setdefault(node, s.action_uid) == s.action_uid, "action uid changed"
            batch.append((node, s.action_uid))
        retry = 20.0 if killed_at else 0.0
        if batch:
            batches.append([n for n, _ in batch])
            for node, _ in batch:
                for state, reason in ((NODE_STATE_DOWN, "restart"), (NODE_STATE_UP, "done")):
                    agent.rpc("SetNodeState",
                              lambda c: c.set_node_state(node, state, reason), retry=retry)
                came_up.add(node)
                restarts[node] += 1
            completed = y.rpc("CompleteAction", lambda c: c.complete([u for _, u in batch]),
                              retry=retry).expect().result
            assert [st.status for st in completed.action_statuses] == [SUCCESS] * len(batch)
            done = len(completed.action_statuses) == len(view.action_group_states)
        if done:
            break
        if len(batches) == 2 and killed_at is None:
            # Two batches restarted: the leader dies; ydbops goes on through its endpoint.
            leader_srv.kill9()
            killed_at = time.monotonic()
            retry = 20.0
        view = y.rpc("RefreshMaintenanceTask", lambda c: c.refresh(task_uid),
                     retry=retry).expect().result
        if killed_at and failover_s is None:
            failover_s = time.monotonic() - killed_at
            print(f"failover: the survivor answered ydbops {failover_s:.2f}s after kill -9 of "
                  f"the leader (lease {LEASE_S}s, {y.retried} retried calls)")
        assert performed_nodes(view), "nothing granted although the cluster is whole again: " + \
            "; ".join(s.details for s in states(view))
        listed = y.rpc("ListClusterNodes", lambda c: c.list_nodes(), retry=retry).expect().result
        assert all(n.state == m.ItemState.ITEM_STATE_UP for n in listed.nodes), listed
    else:
        raise AssertionError(f"not done after {MAX_ITERATIONS} iterations; batches {batches}")

    # ---- the outcome ----
    assert killed_at is not None and failover_s is not None, f"no failover happened: {batches}"
    assert failover_s < 2 * LEASE_S, f"the survivor served only {failover_s:.2f}s after the kill"
    assert restarts == {n: 1 for n in targets}, restarts
    assert health(follower, LEADER_SERVICE) == SERVING, "the survivor leads"
    admin = follower.client(AGENT_TOKEN)
    admin.get(task_uid).expect_error(BAD_REQUEST, "Task not found")
    admin.get(leftover).expect_error(BAD_REQUEST, "Task not found")
    assert admin.task_uids() == []
    final = {n.node_id: n.state for n in admin.list_nodes().expect().result.nodes}
    assert set(final.values()) == {m.ItemState.ITEM_STATE_UP}
    assert y.calls[:8] == ["Login", "ListClusterNodes", "ListDatabases", "WhoAmI",
                           "ListMaintenanceTasks", "GetMaintenanceTask", "DropMaintenanceTask",
                           "CreateMaintenanceTask"]
    assert y.calls[8:11] == ["CompleteAction", "RefreshMaintenanceTask", "ListClusterNodes"]
    assert y.calls[-1] == "CompleteAction"
    # The survivor stops cleanly (the fixture asserts exit 0 on SIGTERM) while etcd still runs.
    follower.stop()

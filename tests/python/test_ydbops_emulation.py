"""A rolling restart of 16 storage nodes driven exactly as ydbops drives it (shared/reference/
real-clients.md 1.3-1.6), with a node agent that marks each restarted node down and up again.

An independent checker (failure_model.Inventory, which reads the inventory itself and never asks
the server) asserts after every reply that grants something that the unavailable nodes (locked by
any task, or down) never break the strong failure model or the node limits. At the end every node
was restarted exactly once, the task is gone and the cluster is all up.
"""

from __future__ import annotations

import math
import uuid

from arbiter_testlib import (
    BAD_REQUEST, INVENTORIES, NODE_STATE_DOWN, NODE_STATE_UP, PERFORMED, STRONG, SUCCESS, Client,
    groups, m, states, summary,
)
from failure_model import Inventory

INVENTORY = INVENTORIES / "rolling-16.toml"
USER, PASSWORD = "rolling", "rolling-restart-password"
AGENT_TOKEN = "node-agent-token-00000000000000001"
OTHER_TOKEN = "other-operator-token-0000000000001"
MAX_ITERATIONS = 200
MAX_STATIC_NODE_ID = 50000  # ydbops --max-static-node-id
RESTART_BUDGET_S = 181  # ydbops: duration 60 s x 3 retries + 1 s delay, per node


def auth_file(tmp_path):
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

[[users]]
name = "other"
token = "{OTHER_TOKEN}"
role = "operator"
''')
    return path


class Ydbops:
    """The client side of `ydbops restart --storage` with static credentials: a new connection for
    every RPC, only the x-ydb-auth-ticket header, the token from one Login."""

    def __init__(self, srv):
        self.srv = srv
        self.token = None
        self.calls: list[str] = []

    def rpc(self, name, fn):
        self.calls.append(name)
        channel = self.srv.channel()
        try:
            return fn(Client(channel, ticket=self.token))
        finally:
            channel.close()


class Cluster:
    """What the test knows for itself: who holds which node, which nodes are down."""

    def __init__(self, inventory: Inventory):
        self.inv = inventory
        self.other_locks: set[int] = set()
        self.down: set[int] = set()
        self.came_up: set[int] = set()  # restarted during the test (within the 2-minute window)
        self.checks = 0

    def check(self, performed: set[int], when: str) -> None:
        unavailable = performed | self.other_locks | self.down
        broken = self.inv.violations(unavailable, "strong", recently_started=self.came_up)
        assert not broken, f"{when}: unavailable {sorted(unavailable)} breaks {broken}"
        self.checks += 1


def performed_nodes(result) -> set[int]:
    return {s.action.lock_action.scope.node_id for s in states(result) if s.status == PERFORMED}


def test_rolling_restart_of_16_storage_nodes(server_factory, tmp_path):
    inv = Inventory(INVENTORY)
    srv = server_factory(INVENTORY, auth=auth_file(tmp_path))
    agent = srv.client(AGENT_TOKEN)
    cluster = Cluster(inv)

    # ---- what a previous run and another operator left behind ----
    old_token = srv.client(None).login(USER, PASSWORD).expect().result.token
    leftover = f"rolling-restart-{uuid.uuid4()}"
    r = srv.client(old_token).create(leftover, groups(5, 6, duration=3600)).expect().result
    assert summary(r) == [(5, "performed"), (6, "pending")]
    other = srv.client(OTHER_TOKEN)
    r = other.create("other-maintenance", groups(17, duration=3600)).expect().result
    assert summary(r) == [(17, "performed")]
    cluster.other_locks = {17}
    other_view = other.get("other-maintenance").expect().result

    # ---- ydbops: login, discovery, cleanup ----
    y = Ydbops(srv)
    login = y.rpc("Login", lambda c: c.login(USER, PASSWORD)).expect().result
    assert len(login.token) >= 20, "ydbops logs token[:20] and panics on shorter tokens"
    y.token = login.token

    nodes = y.rpc("ListClusterNodes", lambda c: c.list_nodes()).expect().result.nodes
    node_map = {n.node_id: n for n in nodes if n.state == m.ItemState.ITEM_STATE_UP}
    targets = sorted(n.node_id for n in node_map.values()
                     if n.WhichOneof("type") == "storage" and n.node_id < MAX_STATIC_NODE_ID)
    assert targets == inv.storage_nodes() == list(range(1, 17))

    paths = y.rpc("ListDatabases", lambda c: c.list_databases()).expect().result.paths
    assert "/Root/db1" in paths
    user = y.rpc("WhoAmI", lambda c: c.whoami()).expect().result.user
    assert user == USER

    mine = y.rpc("ListMaintenanceTasks", lambda c: c.list_tasks(user)).expect().result.tasks_uids
    assert list(mine) == [leftover], "only this user's tasks may be listed"
    for uid in mine:
        y.rpc("GetMaintenanceTask", lambda c: c.get(uid)).expect()
    for uid in mine:
        y.rpc("DropMaintenanceTask", lambda c: c.drop(uid)).expect()

    # ---- ydbops: create, then process / complete / refresh until done ----
    task_uid = f"rolling-restart-{uuid.uuid4()}"
    duration = len(targets) * RESTART_BUDGET_S
    create = m.CreateMaintenanceTaskRequest(
        task_options=m.MaintenanceTaskOptions(
            task_uid=task_uid, description="Rolling restart maintenance task",
            availability_mode=STRONG, priority=0),
        action_groups=groups(*targets, duration=duration))
    view = y.rpc("CreateMaintenanceTask", lambda c: c.create_raw(create)).expect().result
    assert view.task_uid == task_uid

    restarts = {n: 0 for n in targets}
    uid_of: dict[int, object] = {}
    batches: list[list[int]] = []
    done = False
    for iteration in range(MAX_ITERATIONS):
        # the view ydbops processes: one state per group, only action_states[0] is read
        assert all(len(g.action_states) == 1 for g in view.action_group_states), view
        granted = performed_nodes(view)
        cluster.check(granted, f"iteration {iteration}, {sorted(granted)} performed")

        batch = []
        for g in view.action_group_states:
            s = g.action_states[0]
            if s.status != PERFORMED:
                assert s.details, f"a waiting action without details: {s}"
                continue
            assert s.action.WhichOneof("action") == "lock_action", s
            node = s.action.lock_action.scope.node_id
            assert node in node_map, f"PERFORMED for a node ydbops does not know: {s}"
            assert s.action_uid.task_uid == task_uid and s.action_uid.action_id, s
            assert uid_of.setdefault(node, s.action_uid) == s.action_uid, "action uid changed"
            batch.append((node, s.action_uid))

        if batch:
            batches.append([n for n, _ in batch])
            for node, _ in batch:  # restart: the node agent sees it go down and come back
                agent.set_node_state(node, NODE_STATE_DOWN, "ydbops restart")
                cluster.down.add(node)
                cluster.check(granted, f"node {node} down")
                agent.set_node_state(node, NODE_STATE_UP, "ydbops restart done")
                cluster.down.discard(node)
                cluster.came_up.add(node)
                restarts[node] += 1
            completed = y.rpc("CompleteAction",
                              lambda c: c.complete([u for _, u in batch])).expect().result
            assert len(completed.action_statuses) == len(batch)
            assert all(st.status == SUCCESS for st in completed.action_statuses)
            done = len(completed.action_statuses) == len(view.action_group_states)
        if done:
            break

        # --cms-query-interval 0: no sleep
        view = y.rpc("RefreshMaintenanceTask", lambda c: c.refresh(task_uid)).expect().result
        assert performed_nodes(view), (
            "nothing granted although the cluster is whole again: "
            + "; ".join(s.details for s in states(view)))
        listed = y.rpc("ListClusterNodes", lambda c: c.list_nodes()).expect().result.nodes
        assert all(n.state == m.ItemState.ITEM_STATE_UP for n in listed), listed
    else:
        raise AssertionError(f"not done after {MAX_ITERATIONS} iterations; batches {batches}")

    # ---- the outcome ----
    assert restarts == {n: 1 for n in targets}, restarts
    assert max(len(b) for b in batches) == 2, (
        f"the node limit (3 of 19, one held by another task) allows two at once: {batches}")
    assert math.ceil(len(targets) / 2) <= len(batches) <= len(targets), batches
    assert cluster.checks >= len(batches)

    admin = srv.client(AGENT_TOKEN)
    admin.get(task_uid).expect_error(BAD_REQUEST, "Task not found")
    admin.get(leftover).expect_error(BAD_REQUEST, "Task not found")
    assert admin.task_uids(USER) == []
    assert admin.task_uids() == ["other-maintenance"]
    assert admin.get("other-maintenance").expect().result == other_view
    final = {n.node_id: n.state for n in admin.list_nodes().expect().result.nodes}
    assert set(final.values()) == {m.ItemState.ITEM_STATE_UP}

    # the ydbops call sequence (ydbops's own mock tests expect this order)
    assert y.calls[:8] == ["Login", "ListClusterNodes", "ListDatabases", "WhoAmI",
                           "ListMaintenanceTasks", "GetMaintenanceTask", "DropMaintenanceTask",
                           "CreateMaintenanceTask"]
    assert y.calls[8:11] == ["CompleteAction", "RefreshMaintenanceTask", "ListClusterNodes"]
    assert y.calls[-1] == "CompleteAction"

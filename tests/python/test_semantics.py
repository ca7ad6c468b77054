"""Task semantics through the wire: dry runs, priorities, node limits, strong vs weak on the
example's block-4-2 / mirror-3-dc groups, completing and withdrawing actions, drop, lock expiry,
and nodes marked down through arbiter.v1 SetNodeState."""

from __future__ import annotations

import time

from arbiter_testlib import (
    BAD_REQUEST, NODE_STATE_DOWN, NODE_STATE_UP, PENDING, PERFORMED, SUCCESS, WEAK, groups, lock, m, states, summary, ts_seconds,
)
from conftest import derive_inventory
from failure_model import Inventory

R = m.ActionState


def node_states(client) -> dict[int, int]:
    return {n.node_id: n.state for n in client.list_nodes().expect().result.nodes}


# ----- dry run ---------------------------------------------------------------------------------------


def test_dry_run_stores_nothing(server):
    c = server.client("dry")
    r = c.create("dry-1", groups(10, 11), dry_run=True).expect().result
    assert summary(r) == [(10, "performed"), (11, "pending")]
    assert all(s.action_uid.action_id == "" for s in states(r)), states(r)
    c.get("dry-1").expect_error(BAD_REQUEST, "Task not found")
    c.refresh("dry-1").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == []
    # node 10 was not locked by the dry run: a real task gets it, and the same uid is free
    real = c.create("dry-1", groups(10)).expect().result
    assert summary(real) == [(10, "performed")]
    assert states(real)[0].action_uid.action_id != ""
    # a dry run now sees the real lock (cluster limit: 1 of 12 nodes) and still stores nothing
    r2 = c.create("dry-2", groups(11), dry_run=True).expect().result
    assert summary(r2) == [(11, "pending")]
    assert c.task_uids() == ["dry-1"]


# ----- priorities -----------------------------------------------------------------------------------


def test_higher_priority_pending_task_blocks_lower(server):
    c = server.client("prio")
    x = c.create("x", groups(1, duration=600)).expect().result
    assert summary(x) == [(1, "performed")]
    hi = c.create("hi", groups(1), priority=-50).expect().result
    assert summary(hi) == [(1, "pending")]
    assert "'x'" in states(hi)[0].details, states(hi)[0].details
    c.complete([states(x)[0].action_uid]).expect()  # node 1 is free now, "hi" still waits
    assert c.task_uids() == ["hi"]

    # a lower-priority task may not take what "hi" wants...
    lo = c.create("lo", groups(1), priority=50).expect().result
    assert summary(lo) == [(1, "pending")]
    assert "'hi'" in states(lo)[0].details, states(lo)[0].details
    # ...nor the cluster's single unavailable-node slot that "hi" reserves (limit 1 of 12 nodes)
    lo10 = c.create("lo10", groups(10), priority=50).expect().result
    assert summary(lo10) == [(10, "pending")]
    assert states(lo10)[0].reason == R.ACTION_REASON_DISABLED_NODES_LIMIT_REACHED, states(lo10)[0]

    # once "hi" is gone the lower-priority task gets node 1
    c.drop("hi").expect()
    assert summary(c.refresh("lo").expect().result) == [(1, "performed")]


def test_higher_priority_task_is_granted_over_lower_pending(server):
    c = server.client("prio2")
    hold = c.create("hold", groups(1, duration=600)).expect().result
    lo = c.create("lo", groups(1), priority=10).expect().result
    hi = c.create("hi", groups(1), priority=-10).expect().result
    assert summary(lo) == summary(hi) == [(1, "pending")]
    c.complete([states(hold)[0].action_uid]).expect()
    # the lower-priority task refreshes first but must leave node 1 to "hi"
    assert summary(c.refresh("lo").expect().result) == [(1, "pending")]
    assert summary(c.refresh("hi").expect().result) == [(1, "performed")]


# ----- node limits ----------------------------------------------------------------------------------


def test_cluster_ratio_limit_example(server):
    """Example: 13% of 12 nodes = 1 unavailable node (always one when nothing else is)."""
    c = server.client("limits")
    assert summary(c.create("l1", groups(10)).expect().result) == [(10, "performed")]
    for uid, node in (("l2", 4), ("l3", 11)):
        s = states(c.create(uid, groups(node)).expect().result)[0]
        assert s.status == PENDING
        assert s.reason == R.ACTION_REASON_DISABLED_NODES_LIMIT_REACHED, s
        assert "too many unavailable nodes in the cluster" in s.details, s.details


def test_tenant_ratio_limit(server_factory, tmp_path):
    """The example's tenant limit (34% of 3 dynamic nodes = 1) with the cluster limit turned off
    (with it on, the tighter cluster limit answers first)."""
    inv = derive_inventory(tmp_path, "tenant-only.toml",
                           {"max_unavailable_ratio = 13 ": "max_unavailable_ratio = 0 "})
    srv = server_factory(inv)
    c = srv.client("tenant")
    assert summary(c.create("t1", groups(10)).expect().result) == [(10, "performed")]
    s = states(c.create("t2", groups(11, 12)).expect().result)
    assert [x.status for x in s] == [PENDING, PENDING]
    for x in s:
        assert x.reason == R.ACTION_REASON_TENANT_DISABLED_NODES_LIMIT_REACHED, x
        assert "/Root/db1" in x.details, x.details
    # storage nodes are not in the tenant: one is granted while node 10 is locked
    assert summary(c.create("t3", groups(1)).expect().result) == [(1, "performed")]


# ----- strong vs weak -------------------------------------------------------------------------------


def test_strong_vs_weak_on_example_groups(server_factory, nolimits_inventory):
    """Example groups: mirror-3-dc 1-2 over nodes 1-9 (dc-1: 1-3, dc-2: 4-6, dc-3: 7-9), block-4-2
    3-4 over nodes 1-8; node limits off. Node 1 is locked by a strong task."""
    srv = server_factory(nolimits_inventory)
    inv = Inventory(nolimits_inventory)
    c = srv.client("modes")
    locked = {1}
    assert summary(c.create("a", groups(1, duration=600)).expect().result) == [(1, "performed")]

    # strong: node 9 shares the mirror-3-dc groups with node 1 -> at most one unavailable member
    s = states(c.create("b-strong-9", groups(9)).expect().result)[0]
    assert s.status == PENDING and s.reason == R.ACTION_REASON_TOO_MANY_UNAVAILABLE_VDISKS, s
    assert inv.violations(locked | {9}, "strong") and not inv.violations(locked | {9}, "weak")

    # weak: mirror-3-dc tolerates dc-1 + one member of dc-3
    assert summary(c.create("c-weak-9", groups(9), mode=WEAK).expect().result) == [(9, "performed")]
    locked.add(9)

    # weak: node 4 (dc-2) would make 3 data centers unavailable in the mirror-3-dc groups
    s = states(c.create("d-weak-4", groups(4), mode=WEAK).expect().result)[0]
    assert s.status == PENDING and s.reason == R.ACTION_REASON_TOO_MANY_UNAVAILABLE_VDISKS, s
    assert "data center" in s.details, s.details
    assert inv.violations(locked | {4}, "weak")

    # weak: node 2 (dc-1): block-4-2 has 2 unavailable (parity 2), mirror-3-dc dc-1 x2 + dc-3 x1
    assert not inv.violations(locked | {2}, "weak")
    assert summary(c.create("e-weak-2", groups(2), mode=WEAK).expect().result) == [(2, "performed")]
    locked.add(2)

    # weak: node 3 would be a third unavailable block-4-2 member
    s = states(c.create("f-weak-3", groups(3), mode=WEAK).expect().result)[0]
    assert s.status == PENDING and s.reason == R.ACTION_REASON_TOO_MANY_UNAVAILABLE_VDISKS, s
    assert "block-4-2" in s.details, s.details
    assert inv.violations(locked | {3}, "weak")

    # the strong task still waits; dynamic node 10 (no vdisks) is granted even in strong mode
    assert summary(c.refresh("b-strong-9").expect().result) == [(9, "pending")]
    assert summary(c.create("g-strong-10", groups(10)).expect().result) == [(10, "performed")]


def test_one_member_per_group_per_check_round(server_factory, nolimits_inventory):
    """Even in weak mode one check round of a multi-group task takes one member per group; the
    next refresh may take a second (parity 2), never a third."""
    srv = server_factory(nolimits_inventory)
    c = srv.client("rounds")
    r = c.create("w", groups(4, 5, 6), mode=WEAK).expect().result
    assert summary(r) == [(4, "performed"), (5, "pending"), (6, "pending")]
    r = c.refresh("w").expect().result
    assert summary(r) == [(4, "performed"), (5, "performed"), (6, "pending")]
    r = c.refresh("w").expect().result
    assert summary(r) == [(4, "performed"), (5, "performed"), (6, "pending")]


# ----- complete, withdraw, drop ---------------------------------------------------------------------


def test_complete_and_withdraw(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("cw")
    r = c.create("w", groups(1, 2, 3, duration=600)).expect().result
    assert summary(r) == [(1, "performed"), (2, "pending"), (3, "pending")]
    u1, u2, u3 = [s.action_uid for s in states(r)]

    # withdrawing a pending action: one SUCCESS status, the action is gone, the others keep uids
    done = c.complete([u2]).expect().result
    assert [(s.action_uid, s.status) for s in done.action_statuses] == [(u2, SUCCESS)]
    g = c.get("w").expect().result
    assert summary(g) == [(1, "performed"), (3, "pending")]
    assert [s.action_uid for s in states(g)] == [u1, u3]
    c.complete([u2]).expect_error(BAD_REQUEST)  # already gone

    # completing the performed one releases node 1: node 3 can be granted
    c.complete([u1]).expect()
    r = c.refresh("w").expect().result
    assert summary(r) == [(3, "performed")]
    assert [s.action_uid for s in states(r)] == [u3]

    # completing the last action deletes the task
    c.complete([u3]).expect()
    for call in (c.get, c.refresh, c.drop):
        call("w").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == []
    assert all(st == m.ItemState.ITEM_STATE_UP for st in node_states(c).values())


def test_complete_several_in_one_call(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("multi")
    r = c.create("m", groups(1, 10, 11, 2, duration=600)).expect().result
    assert summary(r) == [(1, "performed"), (10, "performed"), (11, "performed"), (2, "pending")]
    uids = [s.action_uid for s in states(r)]
    done = c.complete(uids[:3]).expect().result
    assert [(s.action_uid, s.status) for s in done.action_statuses] == [(u, SUCCESS) for u in uids[:3]]
    assert summary(c.refresh("m").expect().result) == [(2, "performed")]


def test_drop_releases_everything(server):
    c = server.client("dropper")
    d = c.create("d", groups(1, 2, duration=600)).expect().result
    assert summary(d) == [(1, "performed"), (2, "pending")]
    y = c.with_ticket("waiter").create("y", groups(1)).expect().result
    assert summary(y) == [(1, "pending")]
    assert "'d'" in states(y)[0].details, states(y)[0].details
    dropped = c.drop("d").expect()
    assert not dropped.operation.HasField("result")
    c.get("d").expect_error(BAD_REQUEST, "Task not found")
    c.drop("d").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == ["y"]
    assert summary(c.with_ticket("waiter").refresh("y").expect().result) == [(1, "performed")]


# ----- expiry ---------------------------------------------------------------------------------------


def test_expired_lock_is_released_pending_kept(server):
    c = server.client("expiry")
    r = c.create("e", groups(1, duration=2) + groups(2)).expect().result
    assert summary(r) == [(1, "performed"), (2, "pending")]
    deadline = ts_seconds(states(r)[0].deadline)
    assert abs(deadline - (ts_seconds(r.create_time) + 2)) <= 0.5

    seen_gone = None
    end = time.monotonic() + 8.0  # bounded: 2 s lock + generous slack
    while time.monotonic() < end:
        g = c.get("e").expect().result
        if summary(g) != [(1, "performed"), (2, "pending")]:
            seen_gone = time.time()
            break
        time.sleep(0.1)
    assert seen_gone is not None, "the 2 s lock was not released within 8 s"
    assert seen_gone >= deadline - 0.2, "released before its deadline"
    assert summary(g) == [(2, "pending")], "expiry must keep the task's pending actions"
    # node 1 is free: the pending action is granted now, with the default duration (10m)
    r = c.refresh("e").expect().result
    assert summary(r) == [(2, "performed")]
    s = states(r)[0]
    assert abs(ts_seconds(s.deadline) - (ts_seconds(r.last_refresh_time) + 600)) <= 1.0


# ----- node state -----------------------------------------------------------------------------------


def test_down_node_blocks_grant(server):
    """Nodes 3 and 6 are in no state-storage ring (a ring replica that comes back up counts as
    recently started for 2 minutes) and share the example's storage groups."""
    agent, c = server.client("agent"), server.client("ops")
    agent.set_node_state(3, NODE_STATE_DOWN, "disk failure")
    assert node_states(c)[3] == m.ItemState.ITEM_STATE_DOWN
    r = c.create("n6", groups(6, duration=600)).expect().result
    assert summary(r) == [(6, "pending")], "node 3 is down: node 6 shares its storage groups"
    assert r.HasField("retry_after")

    agent.set_node_state(3, NODE_STATE_UP, "repaired")
    assert node_states(c)[3] == m.ItemState.ITEM_STATE_UP
    r = c.refresh("n6").expect().result
    assert summary(r) == [(6, "performed")]

    # a locked node that goes down is in maintenance; back up it is UP (and still locked)
    agent.set_node_state(6, NODE_STATE_DOWN, "rebooting")
    assert node_states(c)[6] == m.ItemState.ITEM_STATE_MAINTENANCE
    agent.set_node_state(6, NODE_STATE_UP, "rebooted")
    assert node_states(c)[6] == m.ItemState.ITEM_STATE_UP
    assert summary(c.get("n6").expect().result) == [(6, "performed")]


def test_ring_replica_back_up_counts_as_recently_started(server_factory, nolimits_inventory):
    """Strong mode: a state-storage replica that just came back up keeps its ring unavailable
    (2 minutes in YDB), so a replica of another ring waits."""
    srv = server_factory(nolimits_inventory)
    agent, c = srv.client("agent"), srv.client("ops")
    agent.set_node_state(10, NODE_STATE_DOWN, "not a replica")
    agent.set_node_state(10, NODE_STATE_UP, "not a replica")
    assert summary(c.create("dyn", groups(11)).expect().result) == [(11, "performed")]
    agent.set_node_state(2, NODE_STATE_DOWN, "replica of ring 3")
    agent.set_node_state(2, NODE_STATE_UP, "replica of ring 3")
    s = states(c.create("r1", groups(1)).expect().result)[0]
    assert s.status == PENDING, s
    assert s.reason == R.ACTION_REASON_TOO_MANY_UNAVAILABLE_STATE_STORAGE_RINGS, s
    # weak mode allows (5 - 1) / 2 = 2 unavailable rings
    assert summary(c.create("r1w", groups(1), mode=WEAK).expect().result) == [(1, "performed")]


def test_down_dynamic_node_counts_against_limits(server):
    agent, c = server.client("agent"), server.client("ops")
    agent.set_node_state(12, NODE_STATE_DOWN, "off-schedule")
    s = states(c.create("dyn", groups(10)).expect().result)[0]
    assert s.status == PENDING and s.reason in (
        R.ACTION_REASON_DISABLED_NODES_LIMIT_REACHED,
        R.ACTION_REASON_TENANT_DISABLED_NODES_LIMIT_REACHED), s
    # the down node itself may always be locked ("allow to maintain a down node")
    assert summary(c.create("fix-12", groups(12)).expect().result) == [(12, "performed")]


# ----- scopes, exclusivity ----------------------------------------------------------------------------


def test_host_and_pdisk_scopes(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("scopes")
    host = c.create("by-host", [m.ActionGroup(actions=[lock(host="storage-1.dc1.example")])]).expect()
    s = states(host.result)[0]
    assert s.status == PERFORMED and s.action.lock_action.scope.host == "storage-1.dc1.example", s
    # node 1 is locked through its host
    s = states(c.create("node-1", groups(1)).expect().result)[0]
    assert s.status == PENDING and "by-host" in s.details, s

    pd = c.create("by-pdisk", [m.ActionGroup(actions=[lock(pdisk=(9, 1))])]).expect().result
    s = states(pd)[0]
    assert s.status == PENDING, "pdisk 9:1 carries mirror-3-dc vdisks with node 1's"
    c.drop("by-host").expect()
    s = states(c.refresh("by-pdisk").expect().result)[0]
    assert s.status == PERFORMED, s
    assert (s.action.lock_action.scope.pdisk.pdisk_id.node_id,
            s.action.lock_action.scope.pdisk.pdisk_id.pdisk_id) == (9, 1)
    # the same disk by host and path is the same lock
    s = states(c.create("by-path", [m.ActionGroup(actions=[
        lock(pdisk_path=("storage-9.dc3.example", "/dev/nvme0n1"))])]).expect().result)[0]
    assert s.status == PENDING and "by-pdisk" in s.details, s


def test_concurrent_creates_for_one_node_grant_once(server):
    import threading

    replies = {}

    def go(i):
        replies[i] = server.client(f"racer-{i}").create(f"race-{i}", groups(1, duration=60))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(replies) == 8
    outcomes = sorted(summary(r.expect().result)[0][1] for r in replies.values())
    assert outcomes == ["pending"] * 7 + ["performed"], outcomes


def test_expiry_of_the_last_action_deletes_the_task(server):
    c = server.client("expiry2")
    c.create("solo", groups(10, duration=1)).expect()
    end = time.monotonic() + 6.0
    while time.monotonic() < end and c.get("solo").status == SUCCESS:
        time.sleep(0.1)
    c.get("solo").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == []
    # node 10 is free again
    assert summary(c.create("after", groups(10)).expect().result) == [(10, "performed")]


def test_refresh_of_fully_performed_task(server):
    c = server.client("full")
    first = c.create("full", groups(10, duration=600)).expect().result
    again = c.refresh("full").expect().result
    assert list(again.action_group_states) == list(first.action_group_states)
    assert not again.HasField("retry_after")


def test_completed_lock_of_a_down_node_keeps_it_unavailable(server):
    """ydbops completes a lock right after `systemctl restart`, before the node is back: the node
    stays unavailable (down) until its agent reports it up, so the next grant waits."""
    agent, c = server.client("agent"), server.client("ydbops")
    r = c.create("roll", groups(6, 3, duration=600)).expect().result
    assert summary(r) == [(6, "performed"), (3, "pending")]
    agent.set_node_state(6, NODE_STATE_DOWN, "restarting")
    c.complete([states(r)[0].action_uid]).expect()
    assert node_states(c)[6] == m.ItemState.ITEM_STATE_DOWN
    assert summary(c.refresh("roll").expect().result) == [(3, "pending")]
    agent.set_node_state(6, NODE_STATE_UP, "booted")
    assert summary(c.refresh("roll").expect().result) == [(3, "performed")]


def test_withdrawing_the_last_pending_action_deletes_the_task(server):
    c = server.client("w")
    hold = c.create("hold", groups(10)).expect().result
    r = c.create("only-pending", groups(11)).expect().result
    assert summary(r) == [(11, "pending")]
    c.complete([states(r)[0].action_uid]).expect()
    c.get("only-pending").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == ["hold"]
    assert summary(c.get("hold").expect().result) == summary(hold)


def test_initially_down_node_from_inventory(server_factory, tmp_path):
    inv = derive_inventory(tmp_path, "node-3-down.toml", {
        'host = "storage-3.dc1.example"': 'host = "storage-3.dc1.example"\nstate = "down"'})
    srv = server_factory(inv)
    agent, c = srv.client("agent"), srv.client("ops")
    assert node_states(c)[3] == m.ItemState.ITEM_STATE_DOWN
    assert summary(c.create("n6", groups(6)).expect().result) == [(6, "pending")]
    agent.set_node_state(3, NODE_STATE_UP, "fixed")
    assert summary(c.refresh("n6").expect().result) == [(6, "performed")]


def test_force_mode_ignores_the_failure_model(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("f")
    assert summary(c.create("a", groups(1)).expect().result) == [(1, "performed")]
    assert summary(c.create("b", groups(2)).expect().result) == [(2, "pending")]
    r = c.create("c", groups(2, 3), mode=m.AVAILABILITY_MODE_FORCE).expect().result
    assert summary(r) == [(2, "performed"), (3, "performed")]
    # but never a node that is already locked (exclusivity)
    assert summary(c.create("d", groups(1), mode=m.AVAILABILITY_MODE_FORCE).expect().result) == [
        (1, "pending")]

"""Every RPC once, open mode, example inventory: the YDB envelope (ready, status, exact result type
URLs), the node list against the inventory, databases, identity, task listing filters, health."""

from __future__ import annotations

import grpc
import pytest

from arbiter_testlib import (
    EXAMPLE_INVENTORY, NODE_STATE_DOWN, PENDING, PERFORMED, STRONG, SUCCESS, TYPE_PREFIX, WEAK,
    dur, groups, lock, m, states, summary, ts_seconds,
)
from failure_model import Inventory


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory(EXAMPLE_INVENTORY, name="envelope")


def test_list_cluster_nodes_matches_inventory(srv):
    inv = Inventory(EXAMPLE_INVENTORY)
    reply = srv.client("viewer-ticket").list_nodes().expect()
    assert reply.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.ListClusterNodesResult"
    got = {n.node_id: n for n in reply.result.nodes}
    assert sorted(got) == sorted(inv.nodes)
    for nid, want in inv.nodes.items():
        node = got[nid]
        assert node.host == want.host
        assert node.port == want.port
        assert node.location.data_center == want.data_center
        assert node.state == m.ItemState.ITEM_STATE_UP
        assert node.version == want.version
        if want.tenant:
            assert node.WhichOneof("type") == "dynamic", node
            assert node.dynamic.tenant == want.tenant
        else:
            assert node.WhichOneof("type") == "storage", node


def test_list_databases_names_the_inventory_tenants(srv):
    reply = srv.client("someone").list_databases().expect()
    assert reply.operation.result.type_url == TYPE_PREFIX + "Ydb.Cms.ListDatabasesResult"
    assert sorted(reply.result.paths) == Inventory(EXAMPLE_INVENTORY).tenants() == ["/Root/db1"]


def test_whoami_open_mode_user_is_the_ticket(srv):
    reply = srv.client("alice-ticket").whoami().expect()
    assert reply.operation.result.type_url == TYPE_PREFIX + "Ydb.Discovery.WhoAmIResult"
    assert reply.result.user == "alice-ticket"
    assert srv.client("bob-ticket", bearer=True).whoami().expect().result.user == "bob-ticket"
    assert srv.client(None).whoami().expect().result.user == "anonymous"


def test_health_overall_serving(srv):
    assert srv.client().health("") == 1  # SERVING


def test_login_open_mode_maps_token_to_user(srv):
    reply = srv.client(None).login("carol", "whatever").expect()
    assert reply.operation.result.type_url == TYPE_PREFIX + "Ydb.Auth.LoginResult"
    token = reply.result.token
    assert len(token) >= 20, token
    assert srv.client(token).whoami().expect().result.user == "carol"


def test_every_maintenance_rpc(srv):
    c = srv.client("env-user")
    created = c.create("env-every", groups(10, 11, duration=120), description="every rpc",
                       priority=7).expect()
    assert created.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.MaintenanceTaskResult"
    r = created.result
    assert r.task_uid == "env-every"
    # one group per request group, in request order, one state each
    assert [len(g.action_states) for g in r.action_group_states] == [1, 1]
    first, second = states(r)
    assert first.action.lock_action.scope.node_id == 10
    assert second.action.lock_action.scope.node_id == 11
    assert first.status == PERFORMED and second.status == PENDING
    assert r.HasField("create_time") and r.HasField("last_refresh_time")

    refreshed = c.refresh("env-every").expect()
    assert refreshed.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.MaintenanceTaskResult"
    assert [s.action_uid for s in states(refreshed.result)] == [s.action_uid for s in states(r)]
    assert ts_seconds(refreshed.result.last_refresh_time) >= ts_seconds(r.last_refresh_time)
    assert refreshed.result.create_time == r.create_time

    got = c.get("env-every").expect()
    assert got.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.GetMaintenanceTaskResult"
    opts = got.result.task_options
    assert opts.task_uid == "env-every"
    assert opts.description == "every rpc"
    assert opts.availability_mode == STRONG
    assert opts.priority == 7
    assert [s.action_uid for s in states(got.result)] == [s.action_uid for s in states(r)]
    assert got.result.create_time == r.create_time

    listed = c.list_tasks().expect()
    assert listed.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.ListMaintenanceTasksResult"
    assert "env-every" in listed.result.tasks_uids

    done = c.complete([first.action_uid]).expect()
    assert done.operation.result.type_url == TYPE_PREFIX + "Ydb.Maintenance.ManageActionResult"
    assert [(s.action_uid, s.status) for s in done.result.action_statuses] == [
        (first.action_uid, SUCCESS)]

    dropped = c.drop("env-every").expect()
    assert not dropped.operation.HasField("result")  # DropMaintenanceTask packs no result
    assert "env-every" not in c.task_uids()


def test_list_tasks_user_filter(srv):
    alice, bob = srv.client("list-alice"), srv.client("list-bob")
    alice.create("list-a1", groups(1), priority=100).expect()
    try:
        bob.create("list-b1", groups(2), priority=100).expect()
        alice.create("list-a2", groups(3), priority=100).expect()
        assert alice.task_uids("list-alice") == ["list-a1", "list-a2"]
        assert alice.task_uids("list-bob") == ["list-b1"]
        assert alice.task_uids("list-nobody") == []
        everything = alice.task_uids()
        assert {"list-a1", "list-a2", "list-b1"} <= set(everything)
        # an unset user lists everything; anyone may list anyone's tasks
        assert bob.task_uids("list-alice") == ["list-a1", "list-a2"]
    finally:
        for uid in ("list-a1", "list-a2"):
            alice.drop(uid)
        bob.drop("list-b1")


def test_action_states_uids_deadlines_retry_after(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("states-user")
    # node 1 for 90 s, node 2 (shares storage groups with 1: pending), node 10 without a duration
    r = c.create("st", [m.ActionGroup(actions=[lock(node=1, duration=90)]),
                        m.ActionGroup(actions=[lock(node=2, duration=90)]),
                        m.ActionGroup(actions=[lock(node=10)])]).expect().result
    s1, s2, s3 = states(r)
    assert [s.status for s in (s1, s2, s3)] == [PERFORMED, PENDING, PERFORMED]
    # every action has a uid from creation: the task, its group index, a unique id
    assert [(s.action_uid.task_uid, s.action_uid.group_id) for s in (s1, s2, s3)] == [
        ("st", "0"), ("st", "1"), ("st", "2")]
    ids = [s.action_uid.action_id for s in (s1, s2, s3)]
    assert all(ids) and len(set(ids)) == 3, ids
    # the action is echoed
    assert s1.action == lock(node=1, duration=90)
    assert s2.action == lock(node=2, duration=90)
    # PERFORMED: reason OK, deadline = grant + duration, no details
    created = ts_seconds(r.create_time)
    assert s1.reason == m.ActionState.ACTION_REASON_OK and not s1.details
    assert abs(ts_seconds(s1.deadline) - (created + 90)) <= 1.0
    # no duration: the inventory's default lock duration (10m), not an immediate expiry
    assert abs(ts_seconds(s3.deadline) - (created + 600)) <= 1.0
    # PENDING: a reason and details naming the blocker
    assert s2.reason == m.ActionState.ACTION_REASON_TOO_MANY_UNAVAILABLE_VDISKS, s2
    assert "node 1" in s2.details, s2.details
    assert not s2.HasField("deadline")
    # something was granted: no retry_after
    assert not r.HasField("retry_after")

    # nothing granted and something waits: retry_after set (inventory retry_after = 1m)
    w = c.create("wait", groups(3)).expect().result
    assert [s.status for s in states(w)] == [PENDING]
    assert w.HasField("retry_after")
    assert 0 < ts_seconds(w.retry_after) - ts_seconds(w.create_time) <= 600


def test_weak_mode_echoed_in_get(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY)
    c = srv.client("u")
    c.create("weak-task", groups(10), mode=WEAK, priority=-3, description="d").expect()
    opts = c.get("weak-task").expect().result.task_options
    assert (opts.availability_mode, opts.priority, opts.description) == (WEAK, -3, "d")


def test_set_node_state_reported_by_list_cluster_nodes(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY)
    c = srv.client("agent")
    assert c.set_node_state(4, NODE_STATE_DOWN, "maintenance test") == b""
    nodes = {n.node_id: n.state for n in c.list_nodes().expect().result.nodes}
    assert nodes[4] == m.ItemState.ITEM_STATE_DOWN
    assert all(st == m.ItemState.ITEM_STATE_UP for nid, st in nodes.items() if nid != 4)
    with pytest.raises(grpc.RpcError) as err:
        c.set_node_state(999, NODE_STATE_DOWN, "no such node")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_zero_duration_and_smart_mode(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    c = srv.client("u")
    zero = m.ActionGroup(actions=[m.Action(lock_action=m.LockAction(
        scope=m.ActionScope(node_id=10), duration=dur(0)))])
    r = c.create("zero", [zero]).expect().result
    # an explicit zero duration means "the default" (10m), not an immediate expiry
    assert abs(ts_seconds(states(r)[0].deadline) - (ts_seconds(r.create_time) + 600)) <= 1.0
    # ydbops v0.0.25 sends SMART (4): accepted (or BAD_REQUEST "Unknown availability mode")
    r = c.create("smart", groups(11), mode=m.AVAILABILITY_MODE_SMART).expect().result
    assert summary(r) == [(11, "performed")]
    assert c.get("smart").expect().result.task_options.availability_mode == m.AVAILABILITY_MODE_SMART


def test_list_with_empty_user_lists_all(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY)
    srv.client("a").create("ta", groups(10)).expect()
    srv.client("b").create("tb", groups(11)).expect()
    assert srv.client("a").task_uids("") == ["ta", "tb"]


def test_open_mode_everyone_may_do_everything(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY)
    r = srv.client("alice").create("alices", groups(10, 11)).expect().result
    bob = srv.client("bob")
    bob.refresh("alices").expect()
    bob.complete([states(r)[1].action_uid]).expect()
    bob.drop("alices").expect()
    assert bob.task_uids() == []
    # anonymous callers own their tasks as "anonymous"
    srv.client(None).create("anon", groups(10)).expect()
    assert srv.client("x").task_uids("anonymous") == ["anon"]


@pytest.mark.parametrize("state", [0, 3])
def test_set_node_state_rejects_unknown_states(server_factory, state):
    srv = server_factory(EXAMPLE_INVENTORY)
    with pytest.raises(grpc.RpcError) as err:
        srv.client("agent").set_node_state(3, state, "bad")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    nodes = {n.node_id: n.state for n in srv.client("x").list_nodes().expect().result.nodes}
    assert nodes[3] == m.ItemState.ITEM_STATE_UP

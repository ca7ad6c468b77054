"""Every error path of the maintenance API: the status code, exactly one issue (severity ERROR) with
the documented text where there is one, an empty result of the exact result type, and no change at
all (task list, every task's view and every node's state are compared before and after)."""

from __future__ import annotations

import pytest

from arbiter_testlib import (
    BAD_REQUEST, EXAMPLE_INVENTORY, PENDING, PERFORMED, STRONG, UNSUPPORTED, WEAK, groups, lock,
    m, states,
)

MAX_LOCK_S = 3600  # the module server runs with --max-lock-duration 1h


@pytest.fixture(scope="module")
def srv(module_server_factory):
    srv = module_server_factory(EXAMPLE_INVENTORY, extra_args=["--max-lock-duration", "1h"],
                                name="errors")
    owner, other = srv.client("owner"), srv.client("other")
    base = owner.create("base", groups(1, 2, duration=1800)).expect().result
    assert [s.status for s in states(base)] == [PERFORMED, PENDING]
    pend = other.create("other-task", groups(10, duration=1800)).expect().result
    assert [s.status for s in states(pend)] == [PENDING]
    return srv


def snapshot(srv):
    """Everything a rejected request must leave alone."""
    c = srv.client("snapshot")
    uids = c.task_uids()
    tasks = {u: c.get(u).expect().result.SerializeToString(deterministic=True) for u in uids}
    nodes = c.list_nodes().expect().result.SerializeToString(deterministic=True)
    return uids, tasks, nodes


@pytest.fixture
def unchanged(srv):
    before = snapshot(srv)
    yield
    assert snapshot(srv) == before, "a rejected request changed the state"


def node_group(node=4, **kw):
    return m.ActionGroup(actions=[lock(node=node, **kw)])


CREATE_ERRORS = [
    # id, request changes, status, issue text
    ("mode-unspecified", dict(mode=m.AVAILABILITY_MODE_UNSPECIFIED), BAD_REQUEST,
     "Unknown availability mode"),
    ("mode-unknown-number", dict(mode=77), BAD_REQUEST, "Unknown availability mode"),
    ("no-groups", dict(action_groups=[]), BAD_REQUEST, None),
    ("empty-group", dict(action_groups=[m.ActionGroup()]), BAD_REQUEST, "Empty actions"),
    ("empty-second-group", dict(action_groups=[node_group(4), m.ActionGroup()]), BAD_REQUEST,
     "Empty actions"),
    ("unset-action", dict(action_groups=[m.ActionGroup(actions=[m.Action()])]), BAD_REQUEST,
     "Unknown action"),
    ("unset-scope", dict(action_groups=[m.ActionGroup(actions=[
        m.Action(lock_action=m.LockAction(duration={"seconds": 60}))])]), BAD_REQUEST, None),
    ("uid-129-bytes", dict(uid="u" * 129), BAD_REQUEST, None),
    ("description-too-long", dict(description="d" * 1000), BAD_REQUEST, None),
    ("host-256-bytes", dict(action_groups=[m.ActionGroup(actions=[lock(host="h" * 256)])]),
     BAD_REQUEST, None),
    ("pdisk-path-256-bytes", dict(action_groups=[m.ActionGroup(actions=[
        lock(pdisk_path=("storage-4.dc2.example", "/dev/" + "p" * 251))])]), BAD_REQUEST, None),
    ("priority-101", dict(priority=101), BAD_REQUEST, "Priority value is out of range"),
    ("priority-minus-101", dict(priority=-101), BAD_REQUEST, "Priority value is out of range"),
    ("negative-duration", dict(action_groups=[node_group(4, duration=-5)]), BAD_REQUEST, None),
    ("duration-over-max", dict(action_groups=[node_group(4, duration=MAX_LOCK_S + 1)]),
     BAD_REQUEST, None),
    ("duplicate-uid", dict(uid="base"), BAD_REQUEST, "Maintenance task already exists"),
    ("duplicate-uid-dry-run", dict(uid="base", dry_run=True), BAD_REQUEST,
     "Maintenance task already exists"),
    ("unknown-node", dict(action_groups=[node_group(99)]), BAD_REQUEST, "Unknown node 99"),
    ("unknown-node-among-good", dict(action_groups=[node_group(11), node_group(99)]),
     BAD_REQUEST, "Unknown node 99"),
    ("unknown-host", dict(action_groups=[m.ActionGroup(actions=[lock(host="nope.example")])]),
     BAD_REQUEST, "Unknown host 'nope.example'"),
    ("unknown-pdisk-id", dict(action_groups=[m.ActionGroup(actions=[lock(pdisk=(4, 99))])]),
     BAD_REQUEST, "Unknown device"),
    ("unknown-pdisk-path", dict(action_groups=[m.ActionGroup(actions=[
        lock(pdisk_path=("storage-4.dc2.example", "/dev/nope"))])]), BAD_REQUEST,
     "Unknown device"),
    ("drain-by-host", dict(action_groups=[m.ActionGroup(actions=[
        m.Action(drain_action=m.DrainAction(scope=m.ActionScope(host="storage-4.dc2.example")))])]),
     BAD_REQUEST, "Unsupported scope: a drain action takes a node_id scope"),
    ("cordon-without-scope", dict(action_groups=[m.ActionGroup(actions=[
        m.Action(cordon_action=m.CordonAction())])]),
     BAD_REQUEST, "Unsupported scope"),
    ("composite-among-many", dict(action_groups=[
        m.ActionGroup(actions=[lock(node=4), lock(node=5)]), node_group(6)]), UNSUPPORTED, None),
]


@pytest.mark.parametrize("case,changes,status,text", CREATE_ERRORS,
                         ids=[c[0] for c in CREATE_ERRORS])
def test_create_rejected(srv, unchanged, case, changes, status, text):
    req = m.CreateMaintenanceTaskRequest(
        task_options=m.MaintenanceTaskOptions(
            task_uid=changes.get("uid", f"rejected-{case}"),
            description=changes.get("description", ""),
            availability_mode=changes.get("mode", STRONG),
            dry_run=changes.get("dry_run", False),
            priority=changes.get("priority", 0)),
        action_groups=changes.get("action_groups", [node_group(4)]))
    c = srv.client("rejected-user")
    c.create_raw(req).expect_error(status, text)
    if req.task_options.task_uid != "base":
        c.get(req.task_options.task_uid).expect_error(BAD_REQUEST, "Task not found")


@pytest.mark.parametrize("rpc", ["refresh", "get", "drop"])
def test_unknown_task(srv, unchanged, rpc):
    getattr(srv.client("owner"), rpc)("no-such-task").expect_error(BAD_REQUEST, "Task not found")


def test_complete_unknown_task(srv, unchanged):
    uid = m.ActionUid(task_uid="no-such-task", group_id="0", action_id="a-1")
    srv.client("owner").complete([uid]).expect_error(BAD_REQUEST, "Task not found")


def base_uids(srv):
    return [s.action_uid for s in states(srv.client("owner").get("base").expect().result)]


def test_complete_unknown_action(srv, unchanged):
    bogus = m.ActionUid(task_uid="base", group_id="0", action_id="a-999999")
    srv.client("owner").complete([bogus]).expect_error(BAD_REQUEST, "Action not found")


def test_complete_is_all_or_nothing(srv, unchanged):
    good = base_uids(srv)[0]
    bogus = m.ActionUid(task_uid="base", group_id="0", action_id="a-999999")
    srv.client("owner").complete([good, bogus]).expect_error(BAD_REQUEST, "Action not found")
    missing = m.ActionUid(task_uid="no-such-task", group_id="0", action_id="a-1")
    srv.client("owner").complete([good, missing]).expect_error(BAD_REQUEST, "Task not found")


def test_complete_without_uids(srv, unchanged):
    srv.client("owner").complete([]).expect_error(BAD_REQUEST)


def test_complete_actions_of_two_owners(srv, unchanged):
    other = states(srv.client("other").get("other-task").expect().result)[0].action_uid
    mine = base_uids(srv)[1]
    srv.client("owner").complete([mine, other]).expect_error(UNSUPPORTED)


def test_boundaries_are_accepted(srv, unchanged):
    """The edges of the ranges are valid (dry runs, so nothing is stored)."""
    c = srv.client("edge-user")
    for kw in (dict(priority=100), dict(priority=-100)):
        c.create("edge-priority", groups(11), dry_run=True, **kw).expect()
    c.create("u" * 128, groups(11), dry_run=True).expect()
    c.create("edge-description", groups(11), dry_run=True, description="d" * 128).expect()
    c.create("edge-duration", [node_group(11, duration=MAX_LOCK_S)], dry_run=True).expect()
    for uid in ("edge-priority", "u" * 128, "edge-description", "edge-duration"):
        c.get(uid).expect_error(BAD_REQUEST, "Task not found")


def test_composite_group_breaking_a_storage_group_is_permanent(server_factory, nolimits_inventory):
    """One group with two nodes of the same block-4-2/mirror-3-dc groups can never be granted in
    strong mode: BAD_REQUEST, nothing stored. Weak mode allows two (parity 2)."""
    srv = server_factory(nolimits_inventory)
    c = srv.client("composite")
    one_group = [m.ActionGroup(actions=[lock(node=1), lock(node=2)])]
    c.create("comp-strong", one_group, mode=STRONG).expect_error(BAD_REQUEST)
    c.get("comp-strong").expect_error(BAD_REQUEST, "Task not found")
    assert c.task_uids() == []
    weak = c.create("comp-weak", one_group, mode=WEAK).expect().result
    assert [len(g.action_states) for g in weak.action_group_states] == [2]
    assert [s.status for s in states(weak)] == [PERFORMED, PERFORMED]

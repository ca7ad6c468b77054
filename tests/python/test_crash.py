"""Durability: every change is on disk before its reply. After kill -9 and a restart on the same
data directory the tasks, locks, deadlines, action uids and node states are exactly as before, new
action ids keep increasing, and new checks respect the restored locks."""

from __future__ import annotations

from arbiter_testlib import (
    NODE_STATE_DOWN, PENDING, action_number, groups, m, states, summary, ts_seconds,
)


def full_view(srv):
    c = srv.client("inspector")
    uids = c.task_uids()
    return {
        "tasks": uids,
        "by_user": {u: c.task_uids(u) for u in ("alice", "bob", "carol", "nobody")},
        "views": {u: c.get(u).expect().result.SerializeToString(deterministic=True) for u in uids},
        "nodes": sorted((n.node_id, n.state) for n in c.list_nodes().expect().result.nodes),
    }


def seen_action_numbers(*results) -> set[int]:
    return {action_number(s.action_uid.action_id) for r in results for s in states(r)}


def test_kill9_restart_keeps_everything(server_factory, nolimits_inventory):
    srv = server_factory(nolimits_inventory)
    alice, bob, carol = srv.client("alice"), srv.client("bob"), srv.client("carol")

    t1 = alice.create("t1", groups(1, duration=3600) + groups(2)).expect().result
    assert summary(t1) == [(1, "performed"), (2, "pending")]
    t2 = bob.create("t2", groups(10, duration=1800), description="bob's", priority=-5).expect().result
    assert summary(t2) == [(10, "performed")]
    t3 = carol.create("t3", groups(3), mode=m.AVAILABILITY_MODE_WEAK, priority=5).expect().result
    assert summary(t3) == [(3, "pending")]
    t4 = alice.create("t4", groups(11)).expect().result  # completed below: its id is never shown again
    alice.complete([states(t4)[0].action_uid]).expect()
    alice.set_node_state(12, NODE_STATE_DOWN, "broken before the crash")
    issued = seen_action_numbers(t1, t2, t3, t4)

    before = full_view(srv)
    assert before["tasks"] == ["t1", "t2", "t3"]
    srv.kill9()
    srv.restart()
    assert full_view(srv) == before, "state after kill -9 differs from the state before it"

    # new ids are never reused
    t5 = bob.create("t5", groups(11)).expect().result
    assert min(seen_action_numbers(t5)) > max(issued), (seen_action_numbers(t5), issued)

    # the restored lock on node 1 still blocks its storage groups
    t6 = carol.create("t6", groups(5)).expect().result
    s = states(t6)[0]
    assert s.status == PENDING and "'t1'" in s.details, s
    assert summary(alice.refresh("t1").expect().result) == [(1, "performed"), (2, "pending")]

    # restored uids are usable: completing node 1 lets node 2 go
    restored = alice.get("t1").expect().result
    assert [s.action_uid for s in states(restored)] == [s.action_uid for s in states(t1)]
    alice.complete([states(restored)[0].action_uid]).expect()
    assert summary(alice.refresh("t1").expect().result) == [(2, "performed")]

    # and a graceful stop + start keeps the newer state too
    after = full_view(srv)
    srv.stop()
    srv.restart()
    assert full_view(srv) == after


def test_kill9_right_after_each_change(server_factory, nolimits_inventory):
    """Crash immediately after every kind of acknowledged change: it must survive."""
    srv = server_factory(nolimits_inventory)
    c = srv.client("crashy")

    created = c.create("k", groups(1, 2, 3, duration=900)).expect().result
    srv.kill9(); srv.restart()
    got = c.get("k").expect().result
    assert [s.action_uid for s in states(got)] == [s.action_uid for s in states(created)]
    assert [s.deadline for s in states(got)] == [s.deadline for s in states(created)]

    c.complete([states(created)[0].action_uid]).expect()
    srv.kill9(); srv.restart()
    assert summary(c.get("k").expect().result) == [(2, "pending"), (3, "pending")]

    refreshed = c.refresh("k").expect().result
    assert summary(refreshed) == [(2, "performed"), (3, "pending")]
    srv.kill9(); srv.restart()
    got = c.get("k").expect().result
    assert summary(got) == [(2, "performed"), (3, "pending")]
    assert states(got)[0].deadline == states(refreshed)[0].deadline

    c.drop("k").expect()
    srv.kill9(); srv.restart()
    assert c.task_uids() == []
    assert summary(c.create("k2", groups(2, 3)).expect().result) == [(2, "performed"), (3, "pending")]


def test_kill9_during_concurrent_creates_keeps_every_acknowledged_one(server_factory):
    """Four clients create tasks as fast as they can; the server is killed in the middle. Every
    create that got its reply must be there after the restart, exactly as the reply showed it."""
    import threading

    import grpc

    srv = server_factory()
    acked: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()
    errors: list[str] = []

    def worker(w: int):
        c = srv.client(f"writer-{w}")
        for i in range(60):  # bounded
            if stop.is_set():
                return
            uid = f"w{w}-{i}"
            try:
                r = c.create(uid, groups(1 + (i % 12), duration=3600), priority=i % 7).expect().result
            except (grpc.RpcError, ValueError):
                return  # the server is gone: this create was never acknowledged
            except BaseException as e:  # noqa: BLE001 (reported by the main thread)
                errors.append(f"{uid}: {e!r}")
                return
            with lock:
                acked[uid] = r.SerializeToString(deterministic=True)
                if len(acked) >= 24:
                    enough.set()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(timeout=30), f"only {len(acked)} creates acknowledged in 30 s"
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    with lock:
        survivors = dict(acked)

    srv.restart()
    c = srv.client("checker")
    listed = set(c.task_uids())
    assert set(survivors) <= listed, f"lost acknowledged tasks: {sorted(set(survivors) - listed)}"
    for uid, reply in survivors.items():
        got = c.get(uid).expect().result
        want = m.MaintenanceTaskResult.FromString(reply)
        assert list(got.action_group_states) == list(want.action_group_states), uid
        assert got.create_time == want.create_time, uid
    # at most one lock per node, whatever the interleaving (exclusivity)
    holders: dict[int, list[str]] = {}
    for uid in listed:
        for s in states(c.get(uid).expect().result):
            if s.status == m.ActionState.ACTION_STATUS_PERFORMED:
                holders.setdefault(s.action.lock_action.scope.node_id, []).append(uid)
    assert all(len(v) == 1 for v in holders.values()), holders


def test_lock_expiring_while_server_is_down(server_factory):
    """A deadline that passes while the server is down is honoured right after the restart."""
    import time

    srv = server_factory()
    c = srv.client("sleeper")
    r = c.create("short", groups(1, duration=1) + groups(2)).expect().result
    deadline = ts_seconds(states(r)[0].deadline)
    srv.kill9()
    time.sleep(max(0.0, deadline - time.time()) + 0.3)  # no signal exists for "time has passed"
    srv.restart()
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        if summary(c.get("short").expect().result) == [(2, "pending")]:
            break
        time.sleep(0.05)
    assert summary(c.get("short").expect().result) == [(2, "pending")]
    assert summary(c.refresh("short").expect().result) == [(2, "performed")]

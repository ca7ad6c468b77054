"""Identity and roles with --auth FILE: static tokens in both header forms, Login with a plaintext
password and with an argon2 PHC hash made by argon2-cffi (an independent implementation),
UNAUTHORIZED for missing/unknown tokens on every maintenance RPC, viewer / operator / admin."""

from __future__ import annotations

import grpc
import pytest
from argon2 import PasswordHasher

from arbiter_testlib import (
    BAD_REQUEST, EXAMPLE_INVENTORY, NODE_STATE_DOWN, UNAUTHORIZED, groups, m, states, summary,
)

TOKENS = {
    "vera": "vera-viewer-token-0000000000000001",
    "olga": "olga-operator-token-000000000000001",
    "oscar": "oscar-operator-token-00000000000001",
    "adam": "adam-admin-token-0000000000000000001",
}
PAT_PASSWORD = "pat-plain-password"
HANK_PASSWORD = "hank-hashed-secret"


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    # cheap parameters keep the server's verification fast; they travel inside the PHC string
    hank_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(HANK_PASSWORD)
    assert hank_hash.startswith("$argon2id$")
    auth = tmp_path_factory.mktemp("auth") / "users.toml"
    auth.write_text(f'''
[[users]]
name = "vera"
token = "{TOKENS['vera']}"
role = "viewer"

[[users]]
name = "olga"
token = "{TOKENS['olga']}"
role = "operator"

[[users]]
name = "oscar"
token = "{TOKENS['oscar']}"
role = "operator"

[[users]]
name = "adam"
token = "{TOKENS['adam']}"
role = "admin"

[[users]]
name = "pat"
password = "{PAT_PASSWORD}"
role = "operator"

[[users]]
name = "hank"
password_hash = "{hank_hash}"
role = "admin"
''')
    return module_server_factory(EXAMPLE_INVENTORY, auth=auth, name="auth")


def as_user(srv, name, bearer=False):
    return srv.client(TOKENS[name], bearer=bearer)


@pytest.fixture
def seed(srv):
    """A task of olga's holding node 10 plus a pending action; removed after the test."""
    olga = as_user(srv, "olga")
    uid = "seed-task"
    r = olga.create(uid, groups(10, 11, duration=600)).expect().result
    assert summary(r) == [(10, "performed"), (11, "pending")]
    yield uid, [s.action_uid for s in states(r)]
    admin = as_user(srv, "adam")
    for u in admin.task_uids():
        admin.drop(u).expect()


def view(srv):
    admin = as_user(srv, "adam")
    uids = admin.task_uids()
    return uids, [admin.get(u).expect().result.SerializeToString(deterministic=True) for u in uids]


def maintenance_calls(uid, action_uids):
    """Every maintenance RPC once, as (name, call(client))."""
    return [
        ("ListClusterNodes", lambda c: c.list_nodes()),
        ("CreateMaintenanceTask", lambda c: c.create("unauth-new", groups(12))),
        ("RefreshMaintenanceTask", lambda c: c.refresh(uid)),
        ("GetMaintenanceTask", lambda c: c.get(uid)),
        ("ListMaintenanceTasks", lambda c: c.list_tasks()),
        ("DropMaintenanceTask", lambda c: c.drop(uid)),
        ("CompleteAction", lambda c: c.complete(action_uids[:1])),
    ]


@pytest.mark.parametrize("ticket,bearer", [
    (None, False),
    ("unknown-token-00000000000000000000", False),
    ("unknown-token-00000000000000000000", True),
    ("", False),
], ids=["missing", "unknown", "unknown-bearer", "empty"])
def test_missing_or_unknown_token_is_unauthorized(srv, seed, ticket, bearer):
    uid, action_uids = seed
    before = view(srv)
    c = srv.client(ticket, bearer=bearer)
    for name, call in maintenance_calls(uid, action_uids):
        reply = call(c)
        assert reply.status == UNAUTHORIZED, f"{name}: {reply}"
        reply.expect_error(UNAUTHORIZED)
    assert view(srv) == before


def test_viewer_reads_but_cannot_change(srv, seed):
    uid, action_uids = seed
    vera = as_user(srv, "vera")
    before = view(srv)
    assert vera.whoami().expect().result.user == "vera"
    assert vera.list_databases().expect().result.paths == ["/Root/db1"]
    assert len(vera.list_nodes().expect().result.nodes) == 12
    assert vera.task_uids() == [uid]
    assert vera.task_uids("olga") == [uid]
    assert summary(vera.get(uid).expect().result) == [(10, "performed"), (11, "pending")]
    vera.create("vera-task", groups(12)).expect_error(UNAUTHORIZED)
    vera.create("vera-dry", groups(12), dry_run=True).expect_error(UNAUTHORIZED)
    vera.refresh(uid).expect_error(UNAUTHORIZED)
    vera.drop(uid).expect_error(UNAUTHORIZED)
    vera.complete(action_uids).expect_error(UNAUTHORIZED)
    assert view(srv) == before


def test_operator_manages_only_own_tasks(srv, seed):
    uid, action_uids = seed
    oscar, olga, adam = as_user(srv, "oscar"), as_user(srv, "olga"), as_user(srv, "adam")
    before = view(srv)
    oscar.refresh(uid).expect_error(UNAUTHORIZED)
    oscar.drop(uid).expect_error(UNAUTHORIZED)
    oscar.complete(action_uids[:1]).expect_error(UNAUTHORIZED)
    oscar.complete(action_uids[1:]).expect_error(UNAUTHORIZED)  # withdrawing counts too
    assert view(srv) == before
    # reading is fine
    assert summary(oscar.get(uid).expect().result) == [(10, "performed"), (11, "pending")]
    # the owner may
    olga.refresh(uid).expect()
    # an operator's own task: owner is the user name, not the token
    oscar.create("oscar-task", groups(1), priority=100).expect()
    assert adam.task_uids("oscar") == ["oscar-task"]
    assert adam.task_uids("olga") == [uid]
    olga.drop("oscar-task").expect_error(UNAUTHORIZED)
    # an admin may do everything to anyone's task
    adam.refresh(uid).expect()
    adam.complete(action_uids[1:]).expect()
    assert summary(adam.get(uid).expect().result) == [(10, "performed")]
    adam.complete(action_uids[:1]).expect()
    adam.get(uid).expect_error(BAD_REQUEST, "Task not found")
    adam.drop("oscar-task").expect()
    assert adam.task_uids() == []


def test_admin_task_is_safe_from_operators(srv):
    adam, olga = as_user(srv, "adam"), as_user(srv, "olga")
    r = adam.create("admin-task", groups(1, duration=60)).expect().result
    olga.complete([states(r)[0].action_uid]).expect_error(UNAUTHORIZED)
    olga.drop("admin-task").expect_error(UNAUTHORIZED)
    adam.drop("admin-task").expect()


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_static_token_in_both_header_forms(srv, name):
    assert as_user(srv, name).whoami().expect().result.user == name
    assert as_user(srv, name, bearer=True).whoami().expect().result.user == name


def test_login_plaintext_password(srv):
    anonymous = srv.client(None)
    token = anonymous.login("pat", PAT_PASSWORD).expect().result.token
    assert len(token) >= 20, token
    for bearer in (False, True):
        assert srv.client(token, bearer=bearer).whoami().expect().result.user == "pat"
    pat = srv.client(token)
    pat.create("pat-task", groups(1), priority=100).expect()
    adam = as_user(srv, "adam")
    assert adam.task_uids("pat") == ["pat-task"]
    pat.drop("pat-task").expect()


def test_login_argon2_hash(srv):
    token = srv.client(None).login("hank", HANK_PASSWORD).expect().result.token
    assert len(token) >= 20, token
    assert srv.client(token).whoami().expect().result.user == "hank"
    # hank is an admin: may drop other users' tasks
    as_user(srv, "olga").create("olga-for-hank", groups(1), priority=100).expect()
    srv.client(token).drop("olga-for-hank").expect()


@pytest.mark.parametrize("user,password", [
    ("pat", "wrong-password"),
    ("pat", ""),
    ("hank", PAT_PASSWORD),
    ("nobody", PAT_PASSWORD),
    ("olga", TOKENS["olga"]),  # a token-only user has no password
], ids=["wrong", "empty", "other-users-password", "unknown-user", "token-only-user"])
def test_login_refused(srv, user, password):
    reply = srv.client(None).login(user, password)
    reply.expect_error(UNAUTHORIZED)
    assert not reply.result.token


def test_login_token_is_not_a_password(srv):
    """Each login's token works on its own; a truncated token is unknown."""
    a = srv.client(None).login("pat", PAT_PASSWORD).expect().result.token
    b = srv.client(None).login("pat", PAT_PASSWORD).expect().result.token
    assert srv.client(a).whoami().expect().result.user == "pat"
    assert srv.client(b).whoami().expect().result.user == "pat"
    assert srv.client(a[:-1]).list_tasks().status == UNAUTHORIZED


def test_set_node_state_needs_a_writer(srv):
    """Marking nodes down or up changes what may be granted: viewers and unknown callers may not."""
    for client in (as_user(srv, "vera"), srv.client(None), srv.client("unknown-token-0000000000000")):
        with pytest.raises(grpc.RpcError) as err:
            client.set_node_state(5, NODE_STATE_DOWN, "not allowed")
        assert err.value.code() in (grpc.StatusCode.PERMISSION_DENIED,
                                    grpc.StatusCode.UNAUTHENTICATED), err.value
    nodes = {n.node_id: n.state for n in as_user(srv, "adam").list_nodes().expect().result.nodes}
    assert nodes[5] == m.ItemState.ITEM_STATE_UP


def test_operator_completes_and_drops_own_task(srv):
    olga = as_user(srv, "olga")
    r = olga.create("olga-own", groups(1, 2, duration=60)).expect().result
    u1, u2 = [s.action_uid for s in states(r)]
    olga.complete([u2]).expect()
    olga.complete([u1]).expect()
    olga.get("olga-own").expect_error(BAD_REQUEST, "Task not found")
    olga.create("olga-own-2", groups(1)).expect()
    olga.drop("olga-own-2").expect()

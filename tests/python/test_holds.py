"""Rate budgets as YDB's own Python SDK stubs see them.

A task held back by a used-up rate budget (`max_grants` in the inventory) is, on YDB's wire,
ACTION_STATUS_PENDING with ACTION_REASON_GENERIC and the budget in the details. Arbiter's own
`ActionState.hold` (field 10002) says RATE_BUDGET, but YDB's stubs do not know that field: they
parse the answer fine, keep the field as an unknown one, and a re-serialised state still carries
it. A tenant's budget paces only the tenant's nodes, in every mode, and a lock that could never
fit it is refused.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from arbiter_testlib import (
    BAD_REQUEST, FORCE, PENDING, PERFORMED, decode_fields, groups, lock, m, states, summary,
)

R = m.ActionState
HOLD_FIELD = 10002

NODES = "".join(
    f'\n[[nodes]]\nid = {i}\nhost = "node-{i}"\nport = 1\n' for i in range(1, 5))

CLUSTER_BUDGET = f"""
[defaults]
lock_duration = "1h"

[limits]
max_unavailable_nodes = 4
max_unavailable_ratio = 0
max_grants = {{ count = 2, every = "10m" }}
{NODES}"""

TENANT_BUDGET = """
[defaults]
lock_duration = "1h"

[limits]
max_unavailable_ratio = 0

[tenants."/db"]
max_unavailable_ratio = 0
max_grants = { count = 1, every = "1h" }

[[nodes]]
id = 1
host = "storage-1"
port = 1
[[nodes]]
id = 2
host = "storage-2"
port = 1
[[nodes]]
id = 3
host = "dyn-a"
port = 1
tenant = "/db"
[[nodes]]
id = 4
host = "dyn-a"
port = 2
tenant = "/db"
[[nodes]]
id = 5
host = "dyn-b"
port = 1
tenant = "/db"
[[nodes]]
id = 6
host = "dyn-c"
port = 1
tenant = "/db"
"""


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hold_on_the_wire(state) -> list:
    """Field 10002 of a state as YDB's stubs serialise it again (from their unknown fields)."""
    return decode_fields(state.SerializeToString()).get(HOLD_FIELD, [])


def assert_budget_held(state, details: str) -> None:
    assert state.status == PENDING, state
    assert state.reason == R.ACTION_REASON_GENERIC, state
    assert details in state.details, (state.details, details)
    assert hold_on_the_wire(state) == [b"RATE_BUDGET"], state


def test_ydb_stubs_see_a_budget_hold_as_pending_generic_with_the_budget_in_details(
        server_factory, tmp_path):
    # The premise: YDB's own stubs have no field 10002, so nothing below can read it by name.
    assert HOLD_FIELD not in R.DESCRIPTOR.fields_by_number
    assert "hold" not in R.DESCRIPTOR.fields_by_name
    inventory = tmp_path / "budget.toml"
    inventory.write_text(CLUSTER_BUDGET)
    c = server_factory(inventory).client("alice")

    before = int(time.time())
    h1 = c.create("h-1", groups(1)).expect().result
    after = int(time.time())
    assert summary(h1) == [(1, "performed")]
    assert hold_on_the_wire(states(h1)[0]) == [], "a grant has no hold"
    assert summary(c.create("h-2", groups(2)).expect().result) == [(2, "performed")]

    # Unpacked by YDB's stubs (unpack_operation checks the type URL and parses it).
    h3 = c.create("h-3", groups(3)).expect().result
    retry = h3.retry_after.seconds
    assert before + 600 <= retry <= after + 601, (before, after, retry)
    want = ("rate budget of the cluster used up: at most 2 nodes newly granted per 10m; "
            "2 granted in the last 10m (nodes 1, 2); "
            f"the next slot frees at {rfc3339(retry)}")
    (s,) = states(h3)
    assert s.details == want
    assert_budget_held(s, want)

    # Completing a lock frees capacity, not budget; force mode is paced too.
    c.complete([states(h1)[0].action_uid]).expect()
    assert_budget_held(states(c.refresh("h-3").expect().result)[0], want)
    assert_budget_held(states(c.get("h-3").expect().result)[0], want)
    h4 = c.create("h-4", groups(4), mode=FORCE).expect().result
    assert_budget_held(states(h4)[0], want)


def test_a_tenant_budget_paces_only_its_nodes_and_refuses_what_never_fits(
        server_factory, tmp_path):
    inventory = tmp_path / "tenant.toml"
    inventory.write_text(TENANT_BUDGET)
    c = server_factory(inventory).client("alice")

    c.create("t-1", [m.ActionGroup(actions=[lock(host="dyn-a")])]).expect_error(
        BAD_REQUEST,
        "this action takes 2 nodes of tenant '/db' at once, more than its rate budget allows "
        "(at most 1 node newly granted per 1h)")
    assert c.task_uids() == []

    assert summary(c.create("t-2", groups(5)).expect().result) == [(5, "performed")]
    t3 = c.create("t-3", groups(6)).expect().result
    assert_budget_held(
        states(t3)[0],
        "rate budget of tenant '/db' used up: at most 1 node newly granted per 1h; "
        "1 granted in the last 1h (node 5); "
        f"the next slot frees at {rfc3339(t3.retry_after.seconds)}")
    # A storage node outside the tenant is not paced.
    t4 = c.create("t-4", groups(1)).expect().result
    assert summary(t4) == [(1, "performed")]
    assert states(t4)[0].status == PERFORMED
    t5 = c.create("t-5", groups(3), mode=FORCE).expect().result
    assert_budget_held(states(t5)[0], "rate budget of tenant '/db' used up")

"""What the server answers, through the YDB SDK's own stubs: retry_after as the proto documents it
(set only while no action of the task is performed), an empty create told its missing task uid
first, bytes that are not a request refused with INVALID_ARGUMENT, and refusal wording."""

from __future__ import annotations

import grpc
import pytest

from arbiter_testlib import (
    BAD_REQUEST, EXAMPLE_INVENTORY, PENDING, PERFORMED, RPC_TIMEOUT_S, groups, lock, m, states,
)

FIVE_NODES = """
[defaults]
lock_duration = "10m"
retry_after = "1m"

[limits]
max_unavailable_nodes = 2
max_unavailable_ratio = 0
""" + "".join(f'\n[[nodes]]\nid = {n}\nhost = "node-{n}.example"\nport = 19001\n'
              for n in range(1, 6))


@pytest.fixture
def five(server_factory, tmp_path):
    path = tmp_path / "five.toml"
    path.write_text(FIVE_NODES)
    return server_factory(path)


def test_refresh_of_a_task_holding_a_lock_has_no_retry_after(five):
    c = five.client("answers")
    r = c.create("part", groups(1, 2, 3)).expect().result
    assert [s.status for s in states(r)] == [PERFORMED, PERFORMED, PENDING]
    assert not r.HasField("retry_after")
    again = c.refresh("part").expect().result
    assert [s.status for s in states(again)] == [PERFORMED, PERFORMED, PENDING]
    assert not again.HasField("retry_after"), "a performed action: no retry_after"
    # nothing performed: the hint is there, on create and on refresh
    w = c.create("waits", groups(4)).expect().result
    assert [s.status for s in states(w)] == [PENDING]
    assert w.HasField("retry_after")
    assert c.refresh("waits").expect().result.HasField("retry_after")


def test_an_empty_create_is_told_the_task_uid_first(server):
    c = server.client("answers")
    c.create_raw(m.CreateMaintenanceTaskRequest()).expect_error(BAD_REQUEST, "task_uid")
    c.create_raw(m.CreateMaintenanceTaskRequest(
        task_options=m.MaintenanceTaskOptions())).expect_error(BAD_REQUEST, "task_uid")


@pytest.mark.parametrize("path,message,body", [
    ("/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask",
     "Ydb.Maintenance.CreateMaintenanceTaskRequest", b"\xff" * 32),
    ("/Ydb.Maintenance.V1.MaintenanceService/GetMaintenanceTask",
     "Ydb.Maintenance.GetMaintenanceTaskRequest", b"\x0f\x01\x02"),
    ("/Ydb.Discovery.V1.DiscoveryService/WhoAmI", "Ydb.Discovery.WhoAmIRequest", b"\xff"),
    ("/arbiter.v1.ArbiterService/SetNodeState", "arbiter.v1.SetNodeStateRequest", b"\x0f"),
], ids=["create", "get", "whoami", "set-node-state"])
def test_bytes_that_are_not_a_request_are_invalid_argument(server, path, message, body):
    call = server.shared_channel().unary_unary(
        path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        call(body, timeout=RPC_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert err.value.details().startswith(f"request body is not a valid {message}: "), \
        err.value.details()
    # the server still serves
    server.client("answers").list_nodes().expect()


def test_a_negative_duration_is_told_as_a_duration(server):
    c = server.client("answers")
    c.create("neg", groups(lock(node=3, duration=-5))).expect_error(
        BAD_REQUEST, "invalid lock duration -5s")
    c.create("neg", groups(lock(node=3, duration=-1.5))).expect_error(
        BAD_REQUEST, "invalid lock duration -1s 500ms")


def test_an_operator_is_an_operator(server_factory, tmp_path):
    auth = tmp_path / "auth.toml"
    auth.write_text('[[users]]\nname = "olga"\ntoken = "olga-token-0000000000001"\n'
                    'role = "operator"\n')
    srv = server_factory(EXAMPLE_INVENTORY, auth=auth)
    c = srv.client("olga-token-0000000000001")
    reload = srv.shared_channel().unary_unary(
        "/arbiter.v1.ArbiterService/ReloadInventory",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        reload(b"", timeout=RPC_TIMEOUT_S, metadata=c.metadata())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'olga' is an operator and may not reload the inventory" in err.value.details()

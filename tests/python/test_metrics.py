"""/metrics as Prometheus scrapes it, checked against what the test did.

The real server binary with `--http-listen 127.0.0.1:0`; real calls through YDB's stubs (and
hand-encoded arbiter.v1 calls); every scrape parsed by the Prometheus project's own parsers
(`prometheus_client`: the classic text parser, and the strict OpenMetrics one, since the server
answers in OpenMetrics). Also: the sample Grafana dashboard and the alert rules in deploy/ only
name metrics the server exports, and the rules are the three alerts the docs promise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from arbiter_testlib import (
    BAD_REQUEST, PENDING, REPO, UNAUTHORIZED, _field_bytes, _field_varint, groups, states, summary,
)

DEPLOY = REPO / "deploy"

# Four nodes, one may be unavailable at a time: a second lock waits on the limit.
INVENTORY = """
[defaults]
lock_duration = "1h"

[limits]
max_unavailable_nodes = 1
max_unavailable_ratio = 0
""" + "".join(f'\n[[nodes]]\nid = {i}\nhost = "node-{i}"\nport = 1\n' for i in range(1, 5))

MAINTENANCE = "Ydb.Maintenance.V1.MaintenanceService"
WATCH = "arbiter.v1.ArbiterService/WatchMaintenanceTask"
REASONS = {
    "GENERIC", "TOO_MANY_UNAVAILABLE_VDISKS", "TOO_MANY_UNAVAILABLE_STATE_STORAGE_RINGS",
    "DISABLED_NODES_LIMIT_REACHED", "TENANT_DISABLED_NODES_LIMIT_REACHED",
    "SYS_TABLETS_NODE_LIMIT_REACHED", "FROZEN", "OUTSIDE_WINDOW", "RATE_BUDGET",
}


class Scrape:
    """One scrape of /metrics, parsed."""

    def __init__(self, srv):
        with urllib.request.urlopen(srv.http_url + "/metrics", timeout=10) as r:
            assert r.status == 200
            self.content_type = r.headers["Content-Type"]
            self.text = r.read().decode()
        self.families = list(text_string_to_metric_families(self.text))
        # The strict OpenMetrics parser accepts it too (it refuses a missing `# EOF`, a
        # counter without `_total`, duplicate series, ...).
        self.openmetrics = list(openmetrics_families(self.text))

    def samples(self, name: str, **labels) -> list:
        return [s for f in self.families for s in f.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels) -> float:
        """The one sample `name` with exactly these labels (no others)."""
        found = [s for s in self.samples(name, **labels) if set(s.labels) == set(labels)]
        assert len(found) == 1, (name, labels, found, self.text)
        return found[0].value

    def by(self, name: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.samples(name)}

    def names(self) -> set[str]:
        """Every series name this scrape shows, with the suffixes of counters and histograms."""
        out = set()
        for f in self.families:
            out.add(f.name)
            out.update(s.name for s in f.samples)
            if f.type == "counter":
                out.add(f.name + "_total")
            if f.type == "histogram":
                out.update(f.name + x for x in ("_bucket", "_sum", "_count"))
        return out


def http_get(srv, path: str) -> int:
    try:
        with urllib.request.urlopen(srv.http_url + path, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def heartbeat(srv, node: int) -> None:
    call = srv.shared_channel().unary_unary("/arbiter.v1.ArbiterService/Heartbeat")
    call(_field_varint(1, node), timeout=10)


def start(server_factory, tmp_path, *extra):
    inventory = tmp_path / "four.toml"
    inventory.write_text(INVENTORY)
    return server_factory(inventory, extra_args=["--http-listen", "127.0.0.1:0", *extra])


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_metrics_count_grants_pending_reasons_locks_and_calls(server_factory, tmp_path):
    srv = start(server_factory, tmp_path)
    c = srv.client("alice")

    first = Scrape(srv)
    assert first.content_type.startswith("application/openmetrics-text"), first.content_type
    assert first.value("arbiter_leader") == 1
    assert first.value("arbiter_epoch") == 0
    assert first.value("arbiter_state_read_ok") == 1
    assert first.value("arbiter_grants_total") == 0
    assert first.value("arbiter_live_locks") == 0
    assert first.by("arbiter_nodes", "state") == {
        "up": 4, "entering": 0, "in_maintenance": 0, "restarting": 0, "settling": 0, "down": 0, "unknown": 0}

    t1 = c.create("m-1", groups(1)).expect().result
    assert summary(t1) == [(1, "performed")]
    t2 = c.create("m-2", groups(2)).expect().result
    assert states(t2)[0].status == PENDING
    t3 = c.create("m-3", groups(1)).expect().result
    assert states(t3)[0].status == PENDING
    c.create("m-1", groups(3)).expect_error(BAD_REQUEST, "already exists")
    heartbeat(srv, 4)
    before = time.time()

    s = Scrape(srv)
    assert s.value("arbiter_grants_total") == 1
    assert s.value("arbiter_live_locks") == 1
    assert s.value("arbiter_tasks") == 3
    assert s.value("arbiter_pending_tasks") == 2
    pending = s.by("arbiter_pending_actions", "reason")
    assert set(pending) == REASONS, pending
    # m-2 waits on the node limit, m-3 on m-1's lock of node 1 (a conflict: GENERIC).
    assert pending["DISABLED_NODES_LIMIT_REACHED"] == 1, pending
    assert pending["GENERIC"] == 1, pending
    assert sum(pending.values()) == 2, pending
    assert s.by("arbiter_nodes", "state") == {
        "up": 3, "entering": 0, "in_maintenance": 1, "restarting": 0, "settling": 0, "down": 0, "unknown": 0}
    assert s.value("arbiter_monitored_nodes") == 1
    assert 0 <= s.value("arbiter_heartbeat_age_max_seconds") < 30
    assert 0 <= s.value("arbiter_heartbeat_age_min_seconds") <= s.value(
        "arbiter_heartbeat_age_max_seconds")
    assert 0 <= s.value("arbiter_pending_task_oldest_age_seconds") < 60
    assert s.value("arbiter_freezes") == 0
    assert s.value("arbiter_read_only") == 0
    assert s.value("arbiter_refusals_total", reason="bad_request") == 1
    # YDB's refusals travel inside the Operation: gRPC says OK for all four creates.
    create = f"{MAINTENANCE}/CreateMaintenanceTask"
    assert s.value("arbiter_grpc_requests_total", call=create, code="OK") == 4
    assert s.value("arbiter_grpc_requests_total", call="arbiter.v1.ArbiterService/Heartbeat",
                   code="OK") == 1
    # The lock's deadline is an hour away (the inventory's default duration).
    deadline = s.value("arbiter_lock_earliest_deadline_timestamp_seconds")
    assert before + 3600 - 30 < deadline < before + 3600 + 5, (before, deadline)
    assert abs(s.value("arbiter_writer_last_batch_timestamp_seconds") - time.time()) < 10
    assert s.value("arbiter_writer_queue_depth") == 0
    commits = s.value("arbiter_store_commits_total", result="ok")
    assert commits >= 4, commits  # three creates, the heartbeat (a refused create may share one)
    assert s.value("arbiter_store_commit_seconds_count") == commits
    assert s.value("arbiter_store_commit_seconds_sum") > 0
    assert s.value("arbiter_writer_batch_size_count") >= 5
    assert s.value("arbiter_writer_batch_size_bucket", le="+Inf") == s.value(
        "arbiter_writer_batch_size_count")
    # The first scrape was counted by route template.
    assert s.value("arbiter_http_requests_total", route="/metrics", method="GET",
                   code="200") == 1
    assert s.value("arbiter_open_watches") == 0

    # Complete m-1: node 1 comes back (unmonitored, no settle time), so m-2 passes the limit.
    c.complete([states(t1)[0].action_uid]).expect()
    assert summary(c.refresh("m-2").expect().result) == [(2, "performed")]
    s = Scrape(srv)
    assert s.value("arbiter_grants_total") == 2
    assert s.value("arbiter_live_locks") == 1
    assert s.value("arbiter_tasks") == 2
    assert s.value("arbiter_pending_tasks") == 1
    assert sum(s.by("arbiter_pending_actions", "reason").values()) == 1
    assert s.by("arbiter_nodes", "state")["in_maintenance"] == 1
    assert s.value("arbiter_grpc_requests_total", call=f"{MAINTENANCE}/CompleteAction",
                   code="OK") == 1
    assert s.value("arbiter_grpc_requests_total",
                   call=f"{MAINTENANCE}/RefreshMaintenanceTask", code="OK") == 1

    # Paths nobody serves stay one bounded series each side.
    with pytest.raises(grpc.RpcError) as e:
        srv.shared_channel().unary_unary(f"/{MAINTENANCE}/NoSuchCall")(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert http_get(srv, "/no/such/page") == 404
    s = Scrape(srv)
    assert s.value("arbiter_grpc_requests_total", call="unknown", code="UNIMPLEMENTED") == 1
    calls = {x.labels["call"] for x in s.samples("arbiter_grpc_requests_total")}
    assert not [c for c in calls if "NoSuchCall" in c], calls
    assert s.value("arbiter_http_requests_total", route="unmatched", method="GET",
                   code="404") == 1
    # No task uid in any label.
    assert "m-2" not in s.text and "m-3" not in s.text


def test_open_watches_and_a_cancelled_stream(server_factory, tmp_path):
    srv = start(server_factory, tmp_path)
    c = srv.client("alice")
    assert summary(c.create("w-1", groups(1)).expect().result) == [(1, "performed")]
    watch = srv.shared_channel().unary_stream(f"/{WATCH}")
    stream = watch(_field_bytes(1, b"w-1"), timeout=30)
    next(stream)  # the task's current state: the watch is open
    s = Scrape(srv)
    assert s.value("arbiter_open_watches") == 1
    stream.cancel()

    def closed():
        s = Scrape(srv)
        assert s.value("arbiter_open_watches") == 0
        assert s.value("arbiter_grpc_requests_total", call=WATCH, code="CANCELLED") == 1
    eventually(closed)


def test_metrics_need_no_token_and_show_none(server_factory, tmp_path):
    token = "s3cret-token-of-olga-0123456789"
    auth = tmp_path / "users.toml"
    auth.write_text(f'[[users]]\nname = "olga"\ntoken = "{token}"\nrole = "operator"\n')
    inventory = tmp_path / "four.toml"
    inventory.write_text(INVENTORY)
    srv = server_factory(inventory, auth=auth, extra_args=["--http-listen", "127.0.0.1:0"])
    olga = srv.client(token)
    assert summary(olga.create("olga-1", groups(1)).expect().result) == [(1, "performed")]
    srv.client("wrong-token").create("x-1", groups(2)).expect_error(UNAUTHORIZED)
    s = Scrape(srv)  # no Authorization header
    assert s.value("arbiter_grants_total") == 1
    assert s.value("arbiter_refusals_total", reason="unauthenticated") == 1
    for secret in (token, "wrong-token", "olga", "olga-1"):
        assert secret not in s.text, secret


def exprs_of_dashboard(dashboard: dict) -> list[str]:
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))
    walk(dashboard["panels"])
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        out.append(q["query"] if isinstance(q, dict) else q or "")
    return out


METRIC = re.compile(r"\barbiter_[a-z0-9_]+")


@pytest.fixture
def exported_names(server_factory, tmp_path) -> set[str]:
    """Every name a busy leader exports: a grant, a pending task, a refusal, a heartbeat."""
    srv = start(server_factory, tmp_path)
    c = srv.client("alice")
    c.create("n-1", groups(1)).expect()
    c.create("n-2", groups(2)).expect()
    c.create("n-1", groups(3)).expect_error(BAD_REQUEST)
    heartbeat(srv, 3)
    assert http_get(srv, "/healthz") == 200
    return Scrape(srv).names()


def test_the_grafana_dashboard_names_only_exported_metrics(exported_names):
    dashboard = json.loads((DEPLOY / "grafana" / "arbiter-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["panels"]
    exprs = exprs_of_dashboard(dashboard)
    used = {n for e in exprs for n in METRIC.findall(e)}
    assert len(used) >= 20, used
    assert used <= exported_names, sorted(used - exported_names)
    # Every panel has a query, and ids are unique.
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p.get("targets") for p in dashboard["panels"])


def test_the_alert_rules_are_the_three_promised_on_exported_metrics(exported_names):
    path = DEPLOY / "prometheus" / "alerts.yml"
    rules = yaml.safe_load(path.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "ArbiterLockPastDeadline", "ArbiterTaskPendingForAnHour", "ArbiterWriterStalled"}
    for name, r in alerts.items():
        used = set(METRIC.findall(r["expr"]))
        assert used and used <= exported_names, (name, sorted(used - exported_names))
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["for"]
    assert "3600" in alerts["ArbiterTaskPendingForAnHour"]["expr"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "scrape.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["job_name"] == "arbiter" and job["metrics_path"] == "/metrics"
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package: the real rule checker, when installed
        out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_instance_serves_metrics_and_only_the_leader_the_state(server_factory, tmp_path):
    """High availability on etcd: a follower's /metrics says it does not lead and counts the
    calls it relayed; the leader's has the state and its epoch."""
    from test_ha import LEADER_SERVICE, SERVING, Etcd, ha_args, health, wait_for

    etcd = Etcd(tmp_path / "etcd").start()
    try:
        inventory = tmp_path / "four.toml"
        inventory.write_text(INVENTORY)
        http = ["--http-listen", "127.0.0.1:0"]
        servers = {name: server_factory(inventory, extra_args=ha_args(etcd, name) + http,
                                        name=name) for name in ("a", "b")}

        def leader():
            on = [n for n, s in servers.items() if health(s, LEADER_SERVICE) == SERVING]
            return on[0] if len(on) == 1 else None
        lead = wait_for("a leader", 20.0, leader)
        leader_srv = servers[lead]
        follower = servers["b" if lead == "a" else "a"]
        wait_for("the follower knows the leader", 10.0, lambda: health(follower) == SERVING)

        relayed = follower.client("alice").create("ha-1", groups(1)).expect().result
        assert summary(relayed) == [(1, "performed")]

        f = Scrape(follower)
        assert f.value("arbiter_leader") == 0
        assert f.value("arbiter_state_read_ok") == 0
        assert not f.samples("arbiter_nodes") and not f.samples("arbiter_pending_actions")
        create = f"{MAINTENANCE}/CreateMaintenanceTask"
        assert f.value("arbiter_grpc_requests_total", call=create, code="OK") == 1
        assert f.value("arbiter_grants_total") == 0

        s = Scrape(leader_srv)
        assert s.value("arbiter_leader") == 1
        assert s.value("arbiter_epoch") > 0
        assert s.value("arbiter_state_read_ok") == 1
        assert s.value("arbiter_grants_total") == 1
        assert s.value("arbiter_live_locks") == 1
        assert s.by("arbiter_nodes", "state")["in_maintenance"] == 1
        assert s.value("arbiter_grpc_requests_total", call=create, code="OK") == 1
        # The fenced etcd transaction is the commit that is timed.
        assert s.value("arbiter_store_commits_total", result="ok") >= 1
        for srv in servers.values():
            srv.stop()
    finally:
        etcd.kill()

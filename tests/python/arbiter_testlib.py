"""Shared helpers of the end-to-end suite: the server process, a typed client over the YDB SDK's
generated stubs, and request builders.

Nothing here knows how the server decides; it only starts it, talks to it and checks the reply
envelope that every YDB RPC must have (ready, one issue on error, the exact result type).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import grpc
import ydb  # noqa: F401  (selects the stub flavour matching the installed protobuf)
from google.protobuf import duration_pb2
from ydb._grpc.common import (
    ydb_auth_v1_pb2_grpc,
    ydb_cms_v1_pb2_grpc,
    ydb_discovery_v1_pb2_grpc,
)
from ydb._grpc.common.draft import ydb_maintenance_v1_pb2_grpc
from ydb._grpc.common.draft.protos import ydb_maintenance_pb2 as m
from ydb._grpc.common.protos import (
    ydb_auth_pb2,
    ydb_cms_pb2,
    ydb_discovery_pb2,
    ydb_operation_pb2,
    ydb_status_codes_pb2,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_INVENTORY = REPO / "examples" / "cluster-12.toml"
INVENTORIES = Path(__file__).resolve().parent / "inventories"

S = ydb_status_codes_pb2.StatusIds
SUCCESS = S.SUCCESS
BAD_REQUEST = S.BAD_REQUEST
UNAUTHORIZED = S.UNAUTHORIZED
UNSUPPORTED = S.UNSUPPORTED

STRONG = m.AVAILABILITY_MODE_STRONG
WEAK = m.AVAILABILITY_MODE_WEAK
FORCE = m.AVAILABILITY_MODE_FORCE

PERFORMED = m.ActionState.ACTION_STATUS_PERFORMED
PENDING = m.ActionState.ACTION_STATUS_PENDING

NODE_STATE_UP = 1
NODE_STATE_DOWN = 2

TYPE_PREFIX = "type.googleapis.com/"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
RPC_TIMEOUT_S = 10.0


def status_name(code: int) -> str:
    try:
        return S.StatusCode.Name(code)
    except ValueError:
        return str(code)


def server_binary() -> Path:
    """The server binary: $ARBITER_SERVER_BIN, else <repo>/target/debug/arbiter-server."""
    env = os.environ.get("ARBITER_SERVER_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "arbiter-server"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"arbiter-server binary not found at {path}. Build it with "
            "`cargo build -p arbiter-server --bin arbiter-server` or set ARBITER_SERVER_BIN."
        )
    return path


def server_env() -> dict[str, str]:
    """The environment without ARBITER_* settings (every server option has one), so that only the
    command line of a test configures the server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}


# ----- the server process -----------------------------------------------------------------------

LISTEN_RE = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
HTTP_LISTEN_RE = re.compile(r"^http listening on 127\.0\.0\.1:(\d+)$")


class Server:
    """One arbiter-server process on an ephemeral port with its own data directory.

    The start signal is the single `listening on 127.0.0.1:PORT` line on stdout; the stop signal is
    the process exit. stderr (the logs) goes to a file, shown when a test fails.
    """

    registry: list["Server"] = []  # every server ever started in this pytest run

    def __init__(self, workdir: Path, inventory: Path, auth: Optional[Path] = None,
                 extra_args: Iterable[str] = (), name: str = "server"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.inventory = Path(inventory)
        self.auth = Path(auth) if auth else None
        self.extra_args = list(extra_args)
        self.name = name
        self.data_dir = self.workdir / "data"
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.http_port: Optional[int] = None
        self.starts = 0
        self.log_paths: list[Path] = []
        self.owner_test: Optional[str] = None
        self._channel: Optional[grpc.Channel] = None
        self._channel_port: Optional[int] = None
        Server.registry.append(self)

    # -- lifecycle --

    def argv(self) -> list[str]:
        argv = [str(server_binary()), "--inventory", str(self.inventory),
                "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.auth:
            argv += ["--auth", str(self.auth)]
        return argv + self.extra_args

    def start(self) -> "Server":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.starts += 1
        log_path = self.workdir / f"{self.name}-stderr-{self.starts}.log"
        self.log_paths.append(log_path)
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL, env=server_env())
        log.close()
        want_http = self._serves_http()
        lines = self._read_listen_lines(2 if want_http else 1)
        match = LISTEN_RE.match(lines[0])
        if not match:
            self.kill9()
            raise AssertionError(f"unexpected first stdout line {lines[0]!r}\n{self.logs()}")
        self.port = int(match.group(1))
        if want_http:
            http = HTTP_LISTEN_RE.match(lines[1])
            if not http:
                self.kill9()
                raise AssertionError(f"unexpected second stdout line {lines[1]!r}\n{self.logs()}")
            self.http_port = int(http.group(1))
        return self

    def _serves_http(self) -> bool:
        args = self.extra_args
        return any(a == "--http-listen" and i + 1 < len(args) and args[i + 1] != "off"
                   for i, a in enumerate(args))

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP listener (started with `--http-listen 127.0.0.1:0`)."""
        assert self.http_port, "server not started with --http-listen"
        return f"http://127.0.0.1:{self.http_port}"

    def _read_listen_lines(self, count: int) -> list[str]:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while buf.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill9()
                raise AssertionError(
                    f"server printed no listening line within {START_TIMEOUT_S}s\n{self.logs()}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the process closed stdout (usually: it exited)
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
                raise AssertionError(
                    f"server exited with code {code} before listening; stdout {buf!r}\n"
                    f"{self.logs()}")
            buf += chunk
        return [line.decode() for line in buf.split(b"\n")[:count]]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self) -> str:
        assert self.port, "server not started"
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        """SIGTERM and wait; a graceful shutdown must exit 0."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
        code = self.proc.returncode
        self._close_pipes()
        assert code == 0, f"server exited with code {code} after SIGTERM\n{self.logs()}"
        return code

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._close_pipes()

    def restart(self) -> "Server":
        """Start again on the same data directory (after stop() or kill9())."""
        assert not self.running
        return self.start()

    def _close_pipes(self) -> None:
        self._close_channel()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def logs(self, tail: int = 200) -> str:
        out = []
        for p in self.log_paths:
            try:
                lines = p.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                continue
            cut = lines[-tail:]
            out.append(f"--- {p} ({len(lines)} lines, last {len(cut)}) ---")
            out.extend(cut)
        return "\n".join(out)

    # -- clients --

    def channel(self) -> grpc.Channel:
        """A new channel (a new connection) to this server."""
        return grpc.insecure_channel(self.address)

    def shared_channel(self) -> grpc.Channel:
        """This server's shared channel (reopened after a restart, which changes the port)."""
        if self._channel is None or self._channel_port != self.port:
            self._close_channel()
            self._channel, self._channel_port = self.channel(), self.port
        return self._channel

    def client(self, ticket: Optional[str] = None, bearer: bool = False) -> "Client":
        """A client on the shared channel; it follows the server across restarts."""
        return Client(self.shared_channel, ticket=ticket, bearer=bearer)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def run_server_expect_exit(argv: list[str], timeout: float = STOP_TIMEOUT_S):
    """Run the binary with arguments that must make it exit (not listen). Returns (code, out, err)."""
    proc = subprocess.run([str(server_binary())] + argv, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=server_env())
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


# ----- request builders ---------------------------------------------------------------------------


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def lock(node: Optional[int] = None, host: Optional[str] = None,
         pdisk: Optional[tuple[int, int]] = None, pdisk_path: Optional[tuple[str, str]] = None,
         duration: Optional[float] = None) -> m.Action:
    scope = m.ActionScope()
    if node is not None:
        scope.node_id = node
    elif host is not None:
        scope.host = host
    elif pdisk is not None:
        scope.pdisk.pdisk_id.node_id, scope.pdisk.pdisk_id.pdisk_id = pdisk
    elif pdisk_path is not None:
        scope.pdisk.pdisk_location.host, scope.pdisk.pdisk_location.path = pdisk_path
    la = m.LockAction(scope=scope)
    if duration is not None:
        la.duration.CopyFrom(dur(duration))
    return m.Action(lock_action=la)


def groups(*nodes_or_actions, duration: Optional[float] = None) -> list[m.ActionGroup]:
    """One single-action group per item; an int is a node-scope lock."""
    out = []
    for x in nodes_or_actions:
        action = lock(node=x, duration=duration) if isinstance(x, int) else x
        out.append(m.ActionGroup(actions=[action]))
    return out


def sync_params() -> ydb_operation_pb2.OperationParams:
    return ydb_operation_pb2.OperationParams(
        operation_mode=ydb_operation_pb2.OperationParams.SYNC,
        operation_timeout=dur(60), cancel_after=dur(60))


# ----- replies --------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    issues: list
    result: object  # the unpacked result message (None when the reply has no result)
    operation: object = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    @property
    def message(self) -> str:
        return " | ".join(i.message for i in self.issues)

    def expect(self, status: int = SUCCESS, contains: Optional[str] = None) -> "Reply":
        assert self.status == status, (
            f"expected {status_name(status)}, got {status_name(self.status)}: {self.message!r}")
        if contains is not None:
            assert contains in self.message, f"issue {self.message!r} lacks {contains!r}"
        return self

    def expect_error(self, status: int, contains: Optional[str] = None) -> "Reply":
        """A logical error: the status, exactly one issue (severity ERROR) and an empty result."""
        self.expect(status, contains)
        assert len(self.issues) == 1, f"expected exactly one issue, got {list(self.issues)}"
        assert self.issues[0].severity == 1, f"issue severity {self.issues[0].severity} != 1"
        if self.result is not None:
            assert self.result.ByteSize() == 0, f"error reply carries a non-empty result: {self.result}"
        return self


def unpack_operation(op, result_cls) -> Reply:
    """Checks the envelope every YDB RPC must have and unpacks the result."""
    assert op.ready, f"operation not ready: {op}"
    result = None
    if result_cls is None:
        assert not op.HasField("result"), f"unexpected result {op.result.type_url}"
    else:
        want = TYPE_PREFIX + result_cls.DESCRIPTOR.full_name
        assert op.HasField("result"), (
            f"no result (want {want}); status {status_name(op.status)} {list(op.issues)}")
        assert op.result.type_url == want, f"result type {op.result.type_url!r} != {want!r}"
        result = result_cls()
        assert op.result.Unpack(result)
    if op.status != SUCCESS:
        assert op.issues, f"error status {status_name(op.status)} without issues"
    return Reply(op.status, list(op.issues), result, op)


# ----- the client ----------------------------------------------------------------------------------


class Client:
    """The YDB-compatible API through the SDK's generated stubs, plus arbiter.v1 SetNodeState."""

    def __init__(self, channel, ticket: Optional[str] = None, bearer: bool = False):
        """`channel` is a grpc.Channel or a function returning the current one."""
        self._channel_source = channel if callable(channel) else (lambda: channel)
        self._bound: Optional[grpc.Channel] = None
        self.ticket = ticket
        self.bearer = bearer

    @property
    def channel(self) -> grpc.Channel:
        ch = self._channel_source()
        if ch is not self._bound:
            self._bound = ch
            self.maint = ydb_maintenance_v1_pb2_grpc.MaintenanceServiceStub(ch)
            self.discovery = ydb_discovery_v1_pb2_grpc.DiscoveryServiceStub(ch)
            self.cms = ydb_cms_v1_pb2_grpc.CmsServiceStub(ch)
            self.auth = ydb_auth_v1_pb2_grpc.AuthServiceStub(ch)
            self._set_node_state = ch.unary_unary(
                "/arbiter.v1.ArbiterService/SetNodeState",
                request_serializer=lambda b: b, response_deserializer=lambda b: b)
            self._health = ch.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return ch

    def with_ticket(self, ticket: Optional[str], bearer: bool = False) -> "Client":
        return Client(self._channel_source, ticket=ticket, bearer=bearer)

    def close(self) -> None:
        self.channel.close()

    def metadata(self):
        if self.ticket is None:
            return []
        if self.bearer:
            return [("authorization", f"Bearer {self.ticket}")]
        return [("x-ydb-auth-ticket", self.ticket)]

    def _call(self, method_name: str, request, result_cls) -> Reply:
        service, name = method_name.split(".")
        self.channel  # (re)binds the stubs
        method = getattr(getattr(self, service), name)
        resp = method(request, timeout=RPC_TIMEOUT_S, metadata=self.metadata())
        return unpack_operation(resp.operation, result_cls)

    # -- Ydb.Maintenance.V1 --

    def list_nodes(self) -> Reply:
        return self._call("maint.ListClusterNodes",
                          m.ListClusterNodesRequest(operation_params=sync_params()),
                          m.ListClusterNodesResult)

    def create(self, uid: str, action_groups, mode=STRONG, priority: int = 0,
               dry_run: bool = False, description: str = "") -> Reply:
        req = m.CreateMaintenanceTaskRequest(
            operation_params=sync_params(),
            task_options=m.MaintenanceTaskOptions(
                task_uid=uid, description=description, availability_mode=mode,
                dry_run=dry_run, priority=priority),
            action_groups=list(action_groups))
        return self.create_raw(req)

    def create_raw(self, req: m.CreateMaintenanceTaskRequest) -> Reply:
        return self._call("maint.CreateMaintenanceTask", req, m.MaintenanceTaskResult)

    def refresh(self, uid: str) -> Reply:
        return self._call("maint.RefreshMaintenanceTask",
                          m.RefreshMaintenanceTaskRequest(operation_params=sync_params(),
                                                          task_uid=uid),
                          m.MaintenanceTaskResult)

    def get(self, uid: str) -> Reply:
        return self._call("maint.GetMaintenanceTask",
                          m.GetMaintenanceTaskRequest(operation_params=sync_params(),
                                                      task_uid=uid),
                          m.GetMaintenanceTaskResult)

    def list_tasks(self, user: Optional[str] = None) -> Reply:
        req = m.ListMaintenanceTasksRequest(operation_params=sync_params())
        if user is not None:
            req.user = user
        return self._call("maint.ListMaintenanceTasks", req, m.ListMaintenanceTasksResult)

    def task_uids(self, user: Optional[str] = None) -> list[str]:
        return sorted(self.list_tasks(user).expect().result.tasks_uids)

    def drop(self, uid: str) -> Reply:
        return self._call("maint.DropMaintenanceTask",
                          m.DropMaintenanceTaskRequest(operation_params=sync_params(),
                                                       task_uid=uid),
                          None)

    def complete(self, uids) -> Reply:
        return self._call("maint.CompleteAction",
                          m.CompleteActionRequest(operation_params=sync_params(),
                                                  action_uids=list(uids)),
                          m.ManageActionResult)

    # -- Discovery, CMS, Auth --

    def whoami(self) -> Reply:
        return self._call("discovery.WhoAmI", ydb_discovery_pb2.WhoAmIRequest(),
                          ydb_discovery_pb2.WhoAmIResult)

    def list_databases(self) -> Reply:
        return self._call("cms.ListDatabases",
                          ydb_cms_pb2.ListDatabasesRequest(operation_params=sync_params()),
                          ydb_cms_pb2.ListDatabasesResult)

    def login(self, user: str, password: str) -> Reply:
        return self._call("auth.Login",
                          ydb_auth_pb2.LoginRequest(operation_params=sync_params(), user=user,
                                                    password=password),
                          ydb_auth_pb2.LoginResult)

    # -- arbiter.v1 and health (no Python stubs: hand-encoded) --

    def set_node_state(self, node_id: int, state: int, reason: str = "") -> bytes:
        self.channel  # (re)binds the stubs
        return self._set_node_state(encode_set_node_state(node_id, state, reason),
                                    timeout=RPC_TIMEOUT_S, metadata=self.metadata())

    def health(self, service: str = "") -> int:
        """grpc.health.v1.Health/Check; returns the ServingStatus number (1 = SERVING)."""
        req = _field_bytes(1, service.encode()) if service else b""
        self.channel  # (re)binds the stubs
        resp = self._health(req, timeout=RPC_TIMEOUT_S)
        fields = decode_fields(resp)
        return fields.get(1, [0])[0]


# ----- tiny protobuf wire encoding for the messages without stubs ----------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def _field_bytes(num: int, value: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(value)) + value


def encode_set_node_state(node_id: int, state: int, reason: str = "") -> bytes:
    out = _field_varint(1, node_id) + _field_varint(2, state)
    if reason:
        out += _field_bytes(3, reason.encode())
    return out


def decode_fields(data: bytes) -> dict[int, list]:
    """Decodes varint and length-delimited fields (enough for health replies)."""
    out: dict[int, list] = {}
    i = 0

    def read_varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        key = read_varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.setdefault(num, []).append(read_varint())
        elif wt == 2:
            n = read_varint()
            out.setdefault(num, []).append(data[i:i + n])
            i += n
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return out


# ----- reading task views ----------------------------------------------------------------------------


def states(result) -> list:
    """Every ActionState of a MaintenanceTaskResult / GetMaintenanceTaskResult, in order."""
    return [s for g in result.action_group_states for s in g.action_states]


def summary(result) -> list[tuple[int, str]]:
    """[(node_id, 'performed'|'pending'), ...] in result order (node-scope actions)."""
    out = []
    for s in states(result):
        st = {PERFORMED: "performed", PENDING: "pending"}.get(s.status, str(s.status))
        out.append((s.action.lock_action.scope.node_id, st))
    return out


def uid_key(uid) -> tuple[str, str, str]:
    return (uid.task_uid, uid.group_id, uid.action_id)


def action_number(action_id: str) -> int:
    """The N of an action id 'a-N' (the server's documented id format)."""
    match = re.fullmatch(r"a-(\d+)", action_id)
    assert match, f"action id {action_id!r} is not of the form a-N"
    return int(match.group(1))


def ts_seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9

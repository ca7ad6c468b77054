"""The server's inputs: a bad inventory, a bad auth file or a bad option makes it exit with code 2
and a message naming the file and the key; a JSON inventory works like its TOML twin; SIGINT and
SIGTERM stop it gracefully (exit 0)."""

from __future__ import annotations

import json
import signal
import subprocess
import tomllib

import pytest

from arbiter_testlib import (
    EXAMPLE_INVENTORY, NODE_STATE_DOWN, groups, run_server_expect_exit, states, summary,
    ts_seconds,
)
from conftest import derive_inventory, require_binary

GOOD_USER = '[[users]]\nname = "ok"\ntoken = "ok-token-000000000000000000001"\nrole = "admin"\n'


def expect_exit_2(argv) -> str:
    require_binary()
    try:
        code, out, err = run_server_expect_exit(argv)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server kept running with {argv}")
    assert code == 2, f"exit code {code} (want 2)\nstdout: {out}\nstderr: {err}"
    assert "listening on" not in out
    return err


def start_args(tmp_path, inventory, *extra):
    return ["--inventory", str(inventory), "--listen", "127.0.0.1:0",
            "--data-dir", str(tmp_path / "data"), *extra]


BAD_INVENTORIES = [
    # id, replacements in the example, key path, message fragment
    ("unknown-node-in-group",
     {"nodes = [1, 2, 3, 4, 5, 6, 7, 8, 9]\n\n[[storage_groups]]\nid = 2":
      "nodes = [1, 2, 3, 4, 5, 6, 7, 8, 99]\n\n[[storage_groups]]\nid = 2"},
     "storage_groups[0] (id 1).nodes[8]", "unknown node 99"),
    ("duplicate-node-id", {"id = 2\nhost = \"storage-2": "id = 1\nhost = \"storage-2"},
     "nodes[1] (id 1).id", "duplicate node id 1"),
    ("ratio-over-100", {"max_unavailable_ratio = 13 ": "max_unavailable_ratio = 130 "},
     "limits.max_unavailable_ratio", "100"),
    ("unknown-pdisk-in-vdisks", {"{ node = 8, pdisk = 2 } ]\n\n[[storage_groups]]\nid = 4":
                                 "{ node = 8, pdisk = 7 } ]\n\n[[storage_groups]]\nid = 4"},
     "storage_groups[2] (id 3).vdisks[7].pdisk", "7"),
    ("ring-with-unknown-node", {"rings = [ [1], [4], [7], [2], [5] ]":
                                "rings = [ [1], [4], [77], [2], [5] ]"},
     "state_storage.rings[2]", "77"),
]


@pytest.mark.parametrize("case,replacements,key,fragment", BAD_INVENTORIES,
                         ids=[c[0] for c in BAD_INVENTORIES])
def test_bad_inventory_exits_2_naming_file_and_key(tmp_path, case, replacements, key, fragment):
    inv = derive_inventory(tmp_path, f"{case}.toml", replacements)
    err = expect_exit_2(start_args(tmp_path, inv))
    assert str(inv) in err, err
    assert key in err, err
    assert fragment in err, err


def test_json_inventory_with_a_duplicate_key_exits_2(tmp_path):
    # json.dumps cannot write a duplicate key: splice one into the example's JSON twin.
    doc = tomllib.loads(EXAMPLE_INVENTORY.read_text())
    text = json.dumps(doc)
    host = '"host": "storage-4.dc2.example"'
    assert text.count(host) == 1
    inv = tmp_path / "duplicate-key.json"
    inv.write_text(text.replace(host, host + ', "host": "storage-40.dc2.example"'))
    err = expect_exit_2(start_args(tmp_path, inv))
    assert str(inv) in err, err
    assert "nodes[3] (id 4).host: duplicate key" in err, err


def test_missing_inventory_file(tmp_path):
    missing = tmp_path / "no-such-inventory.toml"
    err = expect_exit_2(start_args(tmp_path, missing))
    assert str(missing) in err, err


BAD_AUTH = [
    ("unknown-role", GOOD_USER + '[[users]]\nname = "x"\ntoken = "x-token-0000000000000000001"\nrole = "superuser"\n',
     "users[1].role"),
    ("bad-password-hash", GOOD_USER + '[[users]]\nname = "y"\npassword_hash = "not-a-phc-string"\nrole = "admin"\n',
     "users[1].password_hash"),
    ("duplicate-user", GOOD_USER + GOOD_USER.replace("000000000001", "000000000002"), "users[1].name"),
    ("not-toml", "[[users]\nname = ", None),
]


@pytest.mark.parametrize("case,text,key", BAD_AUTH, ids=[c[0] for c in BAD_AUTH])
def test_bad_auth_file_exits_2_naming_file_and_key(tmp_path, case, text, key):
    auth = tmp_path / f"{case}-users.toml"
    auth.write_text(text)
    err = expect_exit_2(start_args(tmp_path, EXAMPLE_INVENTORY, "--auth", str(auth)))
    assert str(auth) in err, err
    if key:
        assert key in err, err


GOOD_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
             "oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM")

UNUSABLE_HASHES = [
    ("memory-cost-0", GOOD_HASH.replace("m=19456", "m=0"), "m=0"),
    ("short-salt", GOOD_HASH.replace("c29tZXNhbHRzb21lc2FsdA", "c2FsdA"), "salt"),
    ("no-hash", GOOD_HASH.rsplit("$", 1)[0], "no hash"),
    ("garbage", "$argon2id$garbage", "salt"),
]


@pytest.mark.parametrize("case,phc,fragment", UNUSABLE_HASHES, ids=[c[0] for c in UNUSABLE_HASHES])
def test_unusable_password_hash_exits_2_naming_the_user(tmp_path, case, phc, fragment):
    auth = tmp_path / f"{case}-users.toml"
    auth.write_text(GOOD_USER + f"[[users]]\nname = \"yves\"\npassword_hash = '{phc}'\nrole = \"admin\"\n")
    err = expect_exit_2(start_args(tmp_path, EXAMPLE_INVENTORY, "--auth", str(auth)))
    assert str(auth) in err, err
    assert "users[1].password_hash: unusable for user 'yves'" in err, err
    assert fragment in err, err


@pytest.mark.parametrize("argv", [
    ["--no-such-flag"],
    ["--max-lock-duration", "banana"],
    ["--default-lock-duration", "-5m"],
    ["--log-format", "xml"],
], ids=["unknown-flag", "bad-duration", "negative-duration", "bad-log-format"])
def test_bad_option_exits_2(tmp_path, argv):
    expect_exit_2(start_args(tmp_path, EXAMPLE_INVENTORY, *argv))


def test_missing_inventory_option_exits_2(tmp_path):
    expect_exit_2(["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")])


def test_json_inventory_equals_toml(server_factory, tmp_path):
    doc = tomllib.loads(EXAMPLE_INVENTORY.read_text())
    inv_json = tmp_path / "cluster-12.json"
    inv_json.write_text(json.dumps(doc))
    a = server_factory(EXAMPLE_INVENTORY).client("x").list_nodes().expect().result
    b = server_factory(inv_json).client("x").list_nodes().expect().result
    strip = lambda r: sorted((n.node_id, n.host, n.port, n.location.SerializeToString(), n.state,
                              n.WhichOneof("type"), n.dynamic.tenant, n.version) for n in r.nodes)
    assert strip(a) == strip(b)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_graceful_shutdown(server_factory, sig):
    srv = server_factory(EXAMPLE_INVENTORY)
    srv.client("x").list_nodes().expect()
    srv.proc.send_signal(sig)
    assert srv.proc.wait(timeout=15) == 0, srv.logs()


def test_default_duration_options_override_inventory(server_factory):
    srv = server_factory(EXAMPLE_INVENTORY, extra_args=[
        "--default-lock-duration", "90s", "--default-retry-after", "20s"])
    agent, c = srv.client("agent"), srv.client("ops")
    r = c.create("no-duration", groups(10)).expect().result
    s = states(r)[0]
    assert abs(ts_seconds(s.deadline) - (ts_seconds(r.create_time) + 90)) <= 1.0
    c.drop("no-duration").expect()
    # nothing granted because a node is down (no lock to wait for): the default retry hint
    agent.set_node_state(3, NODE_STATE_DOWN, "broken")
    r = c.create("waits", groups(6)).expect().result
    assert summary(r) == [(6, "pending")]
    assert abs(ts_seconds(r.retry_after) - (ts_seconds(r.create_time) + 20)) <= 1.0

"""Fixtures of the end-to-end suite: real arbiter-server processes on ephemeral ports."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import pytest

from arbiter_testlib import EXAMPLE_INVENTORY, Server, server_binary

_current_test: list[Optional[str]] = [None]


def require_binary() -> Path:
    try:
        return server_binary()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


class ServerFactory:
    """Starts servers under one directory and stops them all (each must exit 0 on SIGTERM)."""

    def __init__(self, base: Path):
        self.base = base
        self.servers: list[Server] = []

    def __call__(self, inventory: Path = EXAMPLE_INVENTORY, auth: Optional[Path] = None,
                 extra_args: Iterable[str] = (), name: Optional[str] = None) -> Server:
        require_binary()
        name = name or f"server{len(self.servers) + 1}"
        srv = Server(self.base / name, inventory, auth=auth, extra_args=extra_args, name=name)
        srv.owner_test = _current_test[0]
        self.servers.append(srv)
        return srv.start()

    def close(self) -> None:
        errors = []
        for srv in self.servers:
            if srv.running:
                try:
                    srv.stop()
                except AssertionError as e:  # keep stopping the others
                    errors.append(f"{srv.name}: {e}")
        if errors:
            pytest.fail("graceful shutdown failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def server_factory(tmp_path):
    """A function that starts a server: server_factory(inventory, auth=None, extra_args=())."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def server(server_factory):
    """One open-mode server on the example inventory."""
    return server_factory(EXAMPLE_INVENTORY)


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    factory = ServerFactory(tmp_path_factory.mktemp("module-servers"))
    yield factory
    factory.close()


def derive_inventory(directory: Path, name: str, replacements: dict[str, str],
                     source: Path = EXAMPLE_INVENTORY) -> Path:
    """A copy of `source` with exact text replacements (each must occur)."""
    text = source.read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {source}"
        text = text.replace(old, new)
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def nolimits_inventory(tmp_path_factory) -> Path:
    """The example inventory with the cluster and tenant node limits turned off, so that the
    storage-group, ring and tablet rules decide alone."""
    return derive_inventory(
        tmp_path_factory.mktemp("inventories"), "cluster-12-nolimits.toml",
        {"max_unavailable_ratio = 13 ": "max_unavailable_ratio = 0 ",
         "max_unavailable_ratio = 34 ": "max_unavailable_ratio = 0 "})


# ----- server logs on failure -----------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _current_test[0] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for srv in Server.registry:
        if srv.running or srv.owner_test == item.nodeid:
            rep.sections.append((f"arbiter-server {srv.name} stderr", srv.logs()))

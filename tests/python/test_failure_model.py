"""The independent checker itself (no server): it must flag what the reference forbids, so that
the emulation's "no violation" means something."""

from __future__ import annotations

from arbiter_testlib import EXAMPLE_INVENTORY, INVENTORIES
from failure_model import Inventory

ROLLING = Inventory(INVENTORIES / "rolling-16.toml")
EXAMPLE = Inventory(EXAMPLE_INVENTORY)


def test_rolling_inventory_shape():
    assert ROLLING.storage_nodes() == list(range(1, 17))
    assert ROLLING.tenants() == ["/Root/db1"]
    assert [(g.erasure, len(g.members)) for g in ROLLING.groups] == [
        ("mirror-3-dc", 9), ("mirror-3-dc", 9)] + [("block-4-2", 8)] * 4


def test_strong_allows_one_member_per_group():
    assert ROLLING.violations({1, 10}, "strong") == []
    assert ROLLING.violations({1}, "strong") == []
    broken = ROLLING.violations({1, 2}, "strong")
    assert any("group 1 (mirror-3-dc)" in b for b in broken)
    assert any("block-4-2" in b for b in broken)
    assert ROLLING.violations({8, 9}, "strong")  # both runs' mirror-3-dc group 2


def test_weak_rules():
    # block-4-2 tolerates 2, not 3
    assert not any("block-4-2" in b for b in EXAMPLE.violations({1, 2}, "weak"))
    assert any("block-4-2" in b for b in EXAMPLE.violations({1, 2, 3}, "weak"))
    # mirror-3-dc: one data center, or two with one of them at most one member
    assert not any("mirror" in b for b in EXAMPLE.violations({1, 2, 9}, "weak"))
    assert any("mirror" in b for b in EXAMPLE.violations({1, 4, 9}, "weak"))
    assert any("mirror" in b for b in EXAMPLE.violations({1, 2, 4, 5}, "weak"))


def test_tablets_and_limits():
    assert any("HIVE" in b for b in ROLLING.violations({2, 11}, "strong"))
    assert ROLLING.violations({1, 10, 17}, "strong") == []  # 3 of 19 at 16%
    broken = ROLLING.violations({1, 10, 17, 18}, "strong")
    assert any(b.startswith("cluster") for b in broken)
    assert any(b.startswith("tenant /Root/db1") for b in broken)
    # the example: 13% of 12 nodes -> one at a time, but always one
    assert EXAMPLE.violations({10}, "strong") == []
    assert any(b.startswith("cluster") for b in EXAMPLE.violations({10, 11}, "weak"))


def test_rings():
    # example rings [1] [4] [7] [2] [5]: strong allows one ring, weak (5 - 1) / 2 = 2
    assert not any("state storage" in b for b in EXAMPLE.violations({1}, "strong"))
    assert any("state storage" in b for b in EXAMPLE.violations({1}, "strong", recently_started={4}))
    assert not any("state storage" in b for b in EXAMPLE.violations({1, 4}, "weak"))
    assert any("state storage" in b for b in EXAMPLE.violations({1, 4, 7}, "weak"))

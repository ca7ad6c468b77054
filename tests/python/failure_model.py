"""An independent model of a cluster's failure model, read straight from an inventory file.

It does not ask the server anything: given the set of unavailable nodes (locked or down) it says
which rule of the availability mode that set breaks. The rules follow the reference
(shared/reference/ydb-maintenance-api.md section 3):
- storage groups (3.4): strong: at most one unavailable member per group, whatever the erasure;
  weak: block-4-2 / mirror-3 at most 2 (parity parts); mirror-3-dc at most 2 affected data
  centers, and when 2, one of them with at most 1 unavailable member; quorum floor((n-1)/2) weak,
  1 strong (design.md); erasure none: nothing may be unavailable (no parity);
- state-storage rings (3.5): strong: restarting rings + recently started rings <= 1; weak:
  restarting + recent + disabled <= (nto_select - 1) / 2; disabled rings never count as the own
  ring;
- system tablets (3.6): strong: unavailable * 2 <= N; weak: unavailable < N;
- node limits (3.3): k unavailable nodes are fine when k <= 1 ("always allow one"), else when
  k <= max_unavailable_nodes (0 = off) and k * 100 <= total * max_unavailable_ratio (0 = off);
  the same per tenant over its dynamic nodes.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RATIO = 13  # percent, YDB's default and the inventory's


@dataclass
class NodeInfo:
    id: int
    host: str
    port: int
    data_center: str = ""
    tenant: str = ""
    version: str = ""
    state: str = "up"
    pdisks: dict = field(default_factory=dict)  # pdisk id -> path

    @property
    def is_storage(self) -> bool:
        return not self.tenant


@dataclass
class Group:
    id: int
    erasure: str
    members: list  # [(node, pdisk)]


@dataclass
class Limits:
    max_nodes: int = 0
    ratio: int = DEFAULT_RATIO


class Inventory:
    def __init__(self, path: Path):
        path = Path(path)
        raw = path.read_bytes()
        doc = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
        self.path = path
        self.defaults = doc.get("defaults", {})
        self.limits = self._limits(doc.get("limits", {}))
        self.tenant_limits = {name: self._limits(v) for name, v in doc.get("tenants", {}).items()}
        self.nodes: dict[int, NodeInfo] = {}
        for n in doc.get("nodes", []):
            node = NodeInfo(
                id=n["id"], host=n["host"], port=n["port"],
                data_center=n.get("data_center", ""), tenant=n.get("tenant", ""),
                version=n.get("version", ""), state=n.get("state", "up"),
                pdisks={p["id"]: p["path"] for p in n.get("pdisks", [])})
            assert node.id not in self.nodes, f"duplicate node {node.id}"
            self.nodes[node.id] = node
        self.groups: list[Group] = []
        for g in doc.get("storage_groups", []):
            if "vdisks" in g:
                members = [(v["node"], v["pdisk"]) for v in g["vdisks"]]
            else:
                members = [(n, min(self.nodes[n].pdisks)) for n in g["nodes"]]
            self.groups.append(Group(g["id"], g["erasure"], members))
        ss = doc.get("state_storage", {})
        self.nto_select = ss.get("nto_select", 0)
        self.rings: list[list[int]] = [r if isinstance(r, list) else [r] for r in ss.get("rings", [])]
        self.disabled_rings = set(ss.get("disabled_rings", []))
        self.sys_tablets = [(t["type"], list(t["nodes"])) for t in doc.get("sys_tablets", [])]

    @staticmethod
    def _limits(v: dict) -> Limits:
        return Limits(v.get("max_unavailable_nodes", 0), v.get("max_unavailable_ratio", DEFAULT_RATIO))

    # -- views --

    def storage_nodes(self) -> list[int]:
        return sorted(n.id for n in self.nodes.values() if n.is_storage)

    def tenants(self) -> list[str]:
        return sorted({n.tenant for n in self.nodes.values() if n.tenant} | set(self.tenant_limits))

    def groups_of(self, node: int) -> list[Group]:
        return [g for g in self.groups if any(m[0] == node for m in g.members)]

    # -- the check --

    def violations(self, unavailable: set[int], mode: str = "strong",
                   recently_started: set[int] = frozenset()) -> list[str]:
        """Every rule of `mode` ('strong' or 'weak') that this set of unavailable nodes breaks."""
        assert mode in ("strong", "weak")
        out = []
        for g in self.groups:
            out += self._group_violation(g, unavailable, mode)
        out += self._ring_violation(unavailable, mode, recently_started)
        for kind, nodes in self.sys_tablets:
            k = sum(1 for n in nodes if n in unavailable)
            ok = k == 0 or (k * 2 <= len(nodes) if mode == "strong" else k < len(nodes))
            if not ok:
                out.append(f"system tablet {kind}: {k} of {len(nodes)} nodes unavailable")
        out += self._limit_violation("cluster", sorted(self.nodes), self.limits, unavailable)
        for tenant in self.tenants():
            members = sorted(n.id for n in self.nodes.values() if n.tenant == tenant)
            limits = self.tenant_limits.get(tenant, Limits())
            out += self._limit_violation(f"tenant {tenant}", members, limits, unavailable)
        return out

    def _group_violation(self, g: Group, unavailable: set[int], mode: str) -> list[str]:
        bad = [m for m in g.members if m[0] in unavailable]
        k = len(bad)
        if k == 0:
            return []
        text = f"group {g.id} ({g.erasure}): unavailable members {bad}"
        if g.erasure == "none":
            return [text + " (no redundancy)"]
        if mode == "strong":
            return [text] if k > 1 else []
        if g.erasure == "mirror-3-dc":
            per_dc: dict[str, int] = {}
            for node, _ in bad:
                dc = self.nodes[node].data_center
                per_dc[dc] = per_dc.get(dc, 0) + 1
            ok = len(per_dc) <= 1 or (len(per_dc) == 2 and min(per_dc.values()) <= 1)
            return [] if ok else [text + f" over data centers {per_dc}"]
        if g.erasure == "quorum":
            return [text] if k > (len(g.members) - 1) // 2 else []
        return [text] if k > 2 else []  # block-4-2, mirror-3: two parity parts

    def _ring_violation(self, unavailable: set[int], mode: str, recent: set[int]) -> list[str]:
        if not self.rings:
            return []
        restarting = fresh = 0
        disabled = len(self.disabled_rings)
        for i, ring in enumerate(self.rings):
            if i in self.disabled_rings:
                continue
            if any(n in unavailable for n in ring):
                restarting += 1
            elif any(n in recent for n in ring):
                fresh += 1
        if restarting == 0:
            return []
        if mode == "strong":
            ok = restarting + fresh <= 1
        else:
            ok = restarting + fresh + disabled <= (self.nto_select - 1) // 2
        return [] if ok else [
            f"state storage: {restarting} restarting + {fresh} recently started rings ({mode})"]

    @staticmethod
    def _limit_violation(what: str, members: list[int], limits: Limits,
                         unavailable: set[int]) -> list[str]:
        k = sum(1 for n in members if n in unavailable)
        if k <= 1:
            return []
        if limits.max_nodes and k > limits.max_nodes:
            return [f"{what}: {k} unavailable nodes > limit {limits.max_nodes}"]
        if limits.ratio and k * 100 > len(members) * limits.ratio:
            return [f"{what}: {k} unavailable of {len(members)} nodes > {limits.ratio}%"]
        return []

"""Which nodes share CPUs, so one node's benchmark does not slow another's numbers.

Test nodes in network namespaces, containers and VMs on one host run on the same CPUs: two
of them benchmarking at once measure each other as much as themselves. Two nodes share
hardware when

- they report the same kernel boot id (one running kernel, so one machine) and CPU sets
  that overlap (`sched_getaffinity` of the node's session; nodes pinned to disjoint cores
  still share caches and memory bandwidth, but not cores, and count as apart), or
- the inventory says so: the same `fleet_shared_host` on both (VMs on one hypervisor report
  different boot ids; only their administrator knows).

`waves` orders such nodes' benchmarks one at a time (a sweep's default,
`shared_hardware: one-at-a-time`); with `together`, the results are marked as measured
while sharing (history `shared_with`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ONE_AT_A_TIME = "one-at-a-time"
TOGETHER = "together"
SHARED_HARDWARE = (ONE_AT_A_TIME, TOGETHER)


def cpu_set(value: Any) -> frozenset[int] | None:
    """The node's CPUs from its facts ("0,1,3" or a lone number); None when unknown."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        return None


def _share_cpus(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if not a.get("boot_id") or a.get("boot_id") != b.get("boot_id"):
        return False
    cpus_a, cpus_b = cpu_set(a.get("cpus")), cpu_set(b.get("cpus"))
    return cpus_a is None or cpus_b is None or bool(cpus_a & cpus_b)


def sharing_groups(
    facts: Mapping[str, Mapping[str, Any]], declared: Mapping[str, str | None]
) -> list[list[str]]:
    """Groups (two or more hosts each, sorted) of hosts that share hardware, by facts or inventory."""
    hosts = sorted(facts)
    parent = {h: h for h in hosts}

    def root(h: str) -> str:
        while parent[h] != h:
            parent[h] = parent[parent[h]]
            h = parent[h]
        return h

    for i, a in enumerate(hosts):
        for b in hosts[i + 1 :]:
            same_box = declared.get(a) and declared.get(a) == declared.get(b)
            if same_box or _share_cpus(facts[a], facts[b]):
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for h in hosts:
        groups.setdefault(root(h), []).append(h)
    return sorted(g for g in groups.values() if len(g) > 1)


def partners(groups: Iterable[Sequence[str]]) -> dict[str, list[str]]:
    """host -> the other hosts of its group."""
    return {h: [o for o in group if o != h] for group in groups for h in group}


def waves(hosts: Sequence[str], groups: Iterable[Sequence[str]]) -> list[list[str]]:
    """`hosts` in rounds where no two of a group run at once: every host that shares nothing and
    each group's first host, then each group's second host, and so on (order kept)."""
    rank: dict[str, int] = {}
    for group in groups:
        for i, host in enumerate(h for h in group if h in hosts):
            rank[host] = i
    count = max(rank.values(), default=0) + 1
    return [[h for h in hosts if rank.get(h, 0) == i] for i in range(count)]


def sharing_line(group: Sequence[str], facts: Mapping[str, Mapping[str, Any]], mode: str) -> str:
    """One line for the log: who shares, how it was found, what the run does about it."""
    found = all(_share_cpus(facts[group[0]], facts[h]) for h in group[1:])
    how = "one kernel, overlapping CPUs" if found else "the inventory's fleet_shared_host"
    then = ("their benchmarks run one at a time" if mode == ONE_AT_A_TIME
            else "their results are marked as measured while sharing (shared_hardware: together)")
    return f"{', '.join(group)} share hardware ({how}): {then}"

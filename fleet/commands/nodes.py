"""`fleet nodes`: what the controller can see of each node, without changing anything.

Reachability, category, a facts summary, and whether the node is provisioned (venv) and
deployed (harness installed, and with which wheel). Exit status 1 if any node is unreachable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fleet.ansible_driver import OK, AnsibleDriver
from fleet.config import default_inventory
from fleet.inventory import load_inventory


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "nodes",
        help="reachability, category, facts and provisioning state of every node",
        description="Check every node of an inventory: reachable, category, facts, provisioned or not.",
    )
    p.add_argument("--inventory", "-i", help="Ansible inventory (default: this machine as an edge node)")
    p.add_argument("--limit", default="", help="comma list of inventory hosts")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    inventory = load_inventory(
        args.inventory or default_inventory(), [h for h in args.limit.split(",") if h] or None
    )
    with tempfile.TemporaryDirectory(prefix="fleet-nodes-") as tmp:
        driver = AnsibleDriver(Path(tmp), inventory.path)
        try:
            result = driver.run_stage("nodes", [n.name for n in inventory])
        finally:
            driver.close()
    rows = []
    for node in inventory:
        outcome = result.hosts[node.name]
        info = outcome.published.get("nodes_publish") or {}
        facts = info.get("facts") or {}
        if outcome.status != OK:
            rows.append(
                [node.name, node.category, outcome.status, "", "", "", "", (outcome.message or "")[:80]]
            )
            continue
        cpu = f"{facts.get('logical_cpus', '?')}x {facts.get('cpu_model', '')}".strip()
        mem = f"{int(facts['memory_mb']) // 1024} GiB" if str(facts.get("memory_mb", "")).isdigit() else ""
        deployed = info.get("wheel_keys") or []
        state = (
            "deployed"
            if deployed and info.get("deps_keys")
            else ("provisioned" if info.get("venv") else "no")
        )
        rows.append([node.name, node.category, "ok", cpu, mem, str(facts.get("os", "")), state,
                     info.get("workdir", "")])  # fmt: skip
    _print(["node", "category", "reachable", "cpu", "memory", "os", "provisioned", "workdir / error"], rows)
    return 0 if all(r[2] == "ok" for r in rows) else 1


def _print(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=sys.stdout)

"""End to end over real SSH test nodes: three nightly sweeps, the third on a slowed node.

Two edge nodes, each pinned to its own core. While a node benchmarks, its cgroup carries a
CFS quota and a CPU weight a hundred times the default: the weight wins it the CPU against
whatever else the machine is doing and the quota caps it, so its speed stays steady on a busy
machine. Provisioning and deployment run at the default weight, unthrottled. Two sweeps fill
the history; in the third, node2 benchmarks under a sixth of its usual quota and must be
flagged, node1 not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from testnodes import CGROUP_ROOT, TestNodes, free_slot, why_unavailable

from fleet.cli import main
from fleet.history.api import view
from fleet.history.store import HistoryStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FREE_PCT, BENCH_PCT, SLOWED_PCT = 100, 90, 15
V2 = (CGROUP_ROOT / "cgroup.controllers").exists()
WEIGHT_FILE, DEFAULT_WEIGHT = ("cpu.weight", 100) if V2 else ("cpu.shares", 1024)


@pytest.fixture(scope="module")
def nodes():
    why = why_unavailable()
    if why:
        pytest.skip(why)
    tn = TestNodes(slot=free_slot()).up(2, [f"0:{FREE_PCT}", f"1:{FREE_PCT}"])
    try:
        yield tn
    finally:
        tn.down()


def _set_cpu(tn: TestNodes, name: str, pct: int, weight: int) -> None:
    """Change a running node's CFS quota and CPU weight, as an admin throttling a box would."""
    period = 100_000
    for cg in map(Path, tn.node(name).cgroups):
        if V2:
            (cg / "cpu.max").write_text(f"{period * pct // 100} {period}")
        else:
            (cg / "cpu.cfs_quota_us").write_text(str(period * pct // 100))
        (cg / WEIGHT_FILE).write_text(str(weight))


@contextmanager
def throttled_bench(tn: TestNodes, runs: Path, quotas: Mapping[str, int]) -> Iterator[dict[str, int]]:
    """Throttle each node as soon as run.json shows its benchmark job running; yields what was
    applied (host -> quota) so the test can check every node really ran throttled."""
    before = set(runs.glob("*/run.json"))
    done = threading.Event()
    applied: dict[str, int] = {}

    def watch() -> None:
        pending = dict(quotas)
        while pending and not done.wait(0.05):
            for path in set(runs.glob("*/run.json")) - before:
                try:
                    jobs = json.loads(path.read_text())["jobs"].values()
                except (OSError, ValueError, KeyError):
                    continue  # written atomically, but it may not exist yet
                for job in jobs:
                    if job["status"] == "running" and job["host"] in pending:
                        applied[job["host"]] = pending.pop(job["host"])
                        _set_cpu(tn, job["host"], applied[job["host"]], 100 * DEFAULT_WEIGHT)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield applied
    finally:
        done.set()
        watcher.join()
        for name in quotas:
            _set_cpu(tn, name, FREE_PCT, DEFAULT_WEIGHT)


def test_three_sweeps_flag_the_slowed_node_only(nodes: TestNodes, tmp_path: Path, capsys) -> None:
    matrix = tmp_path / "nightly.yaml"
    matrix.write_text(
        f"inventory: {nodes.inventory}\n"
        "tasks: [resnet50]\nscenarios: [Offline]\nmodes: [performance]\nprofile: smoke\n"
        "synthetic_variant: small\nsynthetic_samples: 64\n"
        "regression: {threshold: 60%, baseline_runs: 5}\n"  # a sixth of the quota: about -83%
    )
    runs = tmp_path / "runs"
    sweep = ["sweep", "--matrix", str(matrix), "--runs-dir", str(runs)]
    usual = {"node1": BENCH_PCT, "node2": BENCH_PCT}
    for _ in range(2):
        with throttled_bench(nodes, runs, usual) as applied:
            assert main(sweep) == 0, capsys.readouterr()
        assert applied == usual
    with HistoryStore(runs / "history.sqlite") as store:
        rows = store.results()
    assert len({r.run_id for r in rows}) == 2
    systems = {r.host: r.system for r in rows}
    assert sorted(systems) == ["node1", "node2"]
    assert all(r.outcome == "ok" and r.value for r in rows)

    slowed = {**usual, "node2": SLOWED_PCT}
    with throttled_bench(nodes, runs, slowed) as applied:
        assert main(sweep) == 3, capsys.readouterr()
    assert applied == slowed
    report = view(runs / "history.sqlite").report
    flagged = {v.system: {f.kind for f in v.flags} for v in report.verdicts if v.regression}
    assert list(flagged) == [systems["node2"]], report.verdicts
    assert flagged[systems["node2"]] & {"slower", "invalid"}
    assert main(["history", "--runs-dir", str(runs), "--html"]) == 3
    assert (runs / "history.html").is_file() and (runs / report.run_id / "sweep.html").is_file()

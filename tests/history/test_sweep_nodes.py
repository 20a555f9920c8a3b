"""End to end over real SSH test nodes: five nightly sweeps, the last two with a planted slowdown.

Two edge nodes, each pinned to its own core, on the null backend with a stand-in model cost
(`null_sample_ms`: each batch sleeps that long per sample, so a node's speed is known and a
busy machine barely moves it). Each night measures two repeats beside the job's own run.
Three unchanged nights fill the history with no alarm; then node2's stand-in cost rises by a
quarter (20 % less throughput), as a slower build would: its first slow night must be
`suspect` (exit 0) and its second a confirmed `regression` (exit 3), node1 neither.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testnodes import TestNodes, free_slot, why_unavailable

from fleet.cli import main
from fleet.history.api import view
from fleet.history.store import HistoryStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLE_MS, SLOWED_MS = 1.0, 1.25  # 1000 samples/s, then 800


@pytest.fixture(scope="module")
def nodes():
    why = why_unavailable()
    if why:
        pytest.skip(why)
    tn = TestNodes(slot=free_slot()).up(2, ["0:100", "1:100"])
    try:
        yield tn
    finally:
        tn.down()


def _null_inventory(tn: TestNodes, slowed: bool, shared: bool) -> Path:
    """The lab's inventory on the null backend at the usual stand-in cost, node2's planted slower;
    `shared` declares both nodes VMs of one host (fleet_shared_host)."""
    text = tn.inventory.read_text().replace(
        "[all:vars]\n", f"[all:vars]\nfleet_backend=null\nfleet_tuning={{null_sample_ms: {SAMPLE_MS}}}\n"
        + ("fleet_shared_host=box1\n" if shared else "")
    )
    if slowed:
        text = text.replace("fleet_system_name=test_node2", "fleet_system_name=test_node2 "
                            f"fleet_tuning='{{\"null_sample_ms\": {SLOWED_MS}}}'")
    path = tn.inventory.with_name("null.ini")  # beside group_vars/, which ansible reads
    path.write_text(text)
    return path


def test_unchanged_nights_stay_quiet_and_a_slowdown_is_suspect_then_confirmed(
    nodes: TestNodes, tmp_path: Path, capsys
) -> None:
    matrix = tmp_path / "nightly.yaml"
    runs = tmp_path / "runs"
    sweep = ["sweep", "--matrix", str(matrix), "--runs-dir", str(runs)]
    states: list[dict[str, str]] = []
    # Night 0 declares the nodes VMs of one host (benchmarked one at a time, the default);
    # night 1 too, with `shared_hardware: together` (measured side by side, and marked so).
    nights = [(False, True, "one-at-a-time"), (False, True, "together"), (False, False, "together"),
              (True, False, "together"), (True, False, "together")]  # fmt: skip
    for night, (slowed, shared, mode) in enumerate(nights):
        matrix.write_text(
            f"inventory: {_null_inventory(nodes, slowed, shared)}\n"
            "tasks: [resnet50]\nscenarios: [Offline]\nmodes: [performance]\nprofile: smoke\n"
            f"synthetic_variant: small\nsynthetic_samples: 64\nrepeats: 2\nshared_hardware: {mode}\n"
            "regression: {threshold: 10%, min_runs: 3}\n"
        )
        rc = main(sweep)
        out = capsys.readouterr().out
        report = view(runs / "history.sqlite").report
        states.append({v.system.removeprefix("test_"): v.state for v in report.verdicts})
        assert rc == (3 if night == 4 else 0), out
        if night < 4:
            assert not report.regressions, out
    assert states[:3] == [{"node1": "no-baseline", "node2": "no-baseline"}] * 3, states
    assert states[3] == {"node1": "ok", "node2": "suspect"}, states
    assert states[4] == {"node1": "ok", "node2": "regression"}, states

    first, second = sorted(p for p in runs.iterdir() if p.name.startswith("sweep-"))[:2]
    jobs = json.loads((first / "run.json").read_text())["jobs"].values()
    node1_done = max(j["finished"] for j in jobs if j["host"] == "node1")
    assert all(j["started"] >= node1_done for j in jobs if j["host"] == "node2")  # node2 waited its turn
    for host in ("node1", "node2"):
        node = json.loads((first / "raw" / host / "node.json").read_text())
        assert node["facts"]["boot_id"] and str(node["facts"]["cpus"]) in ("0", "1")  # pinned apart
        other = {"node1": "node2", "node2": "node1"}[host]
        assert node["shares_with"] == [other] and node["benched_with"] == []

    with HistoryStore(runs / "history.sqlite") as store:
        rows = store.results()
    assert {(r.run_id, r.shared_with) for r in rows if r.run_id in (first.name, second.name)} == {
        (first.name, None), (second.name, "node2"), (second.name, "node1")}
    assert len(rows) == 10 and all(r.outcome == "ok" and r.validity == "VALID" for r in rows)
    assert all(len(json.loads(r.repeat_values or "[]")) == 2 for r in rows)  # each night: 2 measured repeats
    last = next(v for v in report.verdicts if v.state == "regression")
    assert last.change is not None and -0.25 < last.change < -0.15, last  # planted: -20 %
    assert main(["history", "--runs-dir", str(runs), "--html"]) == 3
    page = (runs / "history.html").read_text()
    assert "since run" in page and "baseline ± bar" not in page  # the band is drawn, not written
    # The submission tree of the night holds the job's own run only, never a repeat.
    tree = runs / report.run_id / "submission"
    assert not list(tree.rglob("repeats")) and list(tree.rglob("mlperf_log_summary.txt"))

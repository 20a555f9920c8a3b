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


def _null_inventory(tn: TestNodes, slowed: bool) -> Path:
    """The lab's inventory on the null backend at the usual stand-in cost, node2's planted slower."""
    text = tn.inventory.read_text().replace(
        "[all:vars]\n", f"[all:vars]\nfleet_backend=null\nfleet_tuning={{null_sample_ms: {SAMPLE_MS}}}\n"
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
    matrix.write_text(
        f"inventory: {nodes.state / 'null.ini'}\n"
        "tasks: [resnet50]\nscenarios: [Offline]\nmodes: [performance]\nprofile: smoke\n"
        "synthetic_variant: small\nsynthetic_samples: 64\nrepeats: 2\n"
        "regression: {threshold: 10%, min_runs: 3}\n"
    )
    runs = tmp_path / "runs"
    sweep = ["sweep", "--matrix", str(matrix), "--runs-dir", str(runs)]
    states: list[dict[str, str]] = []
    for night, slowed in enumerate([False, False, False, True, True]):
        _null_inventory(nodes, slowed)
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

    with HistoryStore(runs / "history.sqlite") as store:
        rows = store.results()
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

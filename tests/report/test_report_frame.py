"""The results frame and its CSV / Markdown publications, from real LoadGen logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import rawtree

from fleet.errors import ConfigError
from fleet.report import plots
from fleet.report.frame import COLUMNS, collect_rows, results_frame
from fleet.report.publish import write_reports


def _mllog(path: Path, key: str):
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG") and f'"key": "{key}"' in line:
            return json.loads(line[len(":::MLLOG") :])["value"]
    raise AssertionError(f"{key} not in {path}")


@pytest.fixture(scope="module")
def frame(report_run) -> pd.DataFrame:
    return results_frame(collect_rows(report_run, "run-report"))


def test_one_row_per_run_with_every_column(frame, report_run):
    assert list(frame.columns) == list(COLUMNS)
    manifests = [json.loads(p.read_text()) for p in sorted((report_run / "raw").glob("*/manifest.json"))]
    assert len(frame) == sum(len(m["runs"]) for m in manifests) == 38  # 2 x 15 (resnet50) + 8 (retinanet)
    assert set(frame["system"]) == {"node1_cpu", "edge_box_2", "dc-server"}
    assert frame["synthetic"].all() and (frame["profile"] == "smoke").all()
    assert set(frame["mode"]) == {"performance", "accuracy", "TEST01", "TEST04", "TEST05"}


def test_values_are_what_the_logs_say(frame, report_run):
    raw = report_run / "raw/node1"
    row = frame[
        (frame.system == "node1_cpu") & (frame.scenario == "Offline") & (frame["mode"] == "performance")
    ].iloc[0]
    detail = raw / "resnet50/Offline/performance/run_1/mlperf_log_detail.txt"
    assert row.value == pytest.approx(_mllog(detail, "result_samples_per_second"))
    assert row.unit == "Samples/s" and row.validity == "VALID"
    assert row.p99_ms == pytest.approx(_mllog(detail, "result_99.00_percentile_latency_ns") / 1e6)
    ss = frame[
        (frame.system == "node1_cpu") & (frame.scenario == "SingleStream") & (frame["mode"] == "performance")
    ]
    ss_detail = raw / "resnet50/SingleStream/performance/run_1/mlperf_log_detail.txt"
    assert ss.iloc[0].value == pytest.approx(_mllog(ss_detail, "early_stopping_latency_ss") / 1e6)
    assert ss.iloc[0].unit == "Latency (ms)"
    acc = frame[
        (frame.system == "node1_cpu") & (frame.scenario == "Offline") & (frame["mode"] == "accuracy")
    ].iloc[0]
    assert acc.accuracy == 100.0 and acc.accuracy_target == pytest.approx(75.6954) and bool(acc.accuracy_ok)
    comp = frame[(frame.system == "dc-server") & (frame["mode"] == "TEST05")]
    assert set(comp["verify"]) == {"TEST PASS"}


def test_csv_and_markdown(report_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_run, run)
    (run / "check.txt").write_text("...\nVERDICT: PASS under smoke thresholds\n")
    written = write_reports(run, ("csv", "md"))
    assert [p.name for p in written] == ["summary.csv", "summary.md"]
    csv = pd.read_csv(run / "report/summary.csv")
    assert list(csv.columns) == list(COLUMNS) and len(csv) == 38
    assert csv["synthetic"].all()
    md = (run / "report/summary.md").read_text()
    assert "38 of 38 rows come from synthetic models" in md
    assert "VERDICT: PASS under smoke thresholds" in md
    assert md.count("| SYNTHETIC ") == 38
    assert not (run / "report/index.html").exists()


def test_real_and_synthetic_results_are_told_apart(logset, tmp_path):
    hosts = [
        rawtree.Host("n1", "real-box", synthetic=False, profile="submission"),
        rawtree.Host("n2", "toy-box"),
    ]
    run = rawtree.build_run(tmp_path / "run", logset, hosts)
    frame = results_frame(collect_rows(run))
    assert not frame[frame.system == "real-box"]["synthetic"].any()
    assert frame[frame.system == "toy-box"]["synthetic"].all()
    md = write_reports(run, ("md",))[0].read_text()
    assert "15 of 30 rows come from synthetic" in md and "15 of 30 rows are smoke-profile runs" in md


def test_unknown_format_is_refused(report_run):
    with pytest.raises(ConfigError, match="unknown report format"):
        write_reports(report_run, ("pdf",))


def test_plot_tables(frame):
    throughput = {title: (unit, table) for title, unit, table in plots.throughput_tables(frame)}
    assert set(throughput) == {"Offline throughput", "Server throughput"}
    unit, offline = throughput["Offline throughput"]
    assert unit == "Samples/s" and sorted(offline.index) == ["dc-server", "edge_box_2", "node1_cpu"]
    perf = frame[(frame["mode"] == "performance") & (frame.scenario == "Offline")]
    for row in perf.itertuples():
        assert offline.loc[row.system, row.task] == pytest.approx(row.value)
    assert list(offline.columns) == ["resnet50", "retinanet"]
    assert list(throughput["Server throughput"][1].index) == ["dc-server"]
    latency = dict(plots.latency_tables(frame))
    assert sorted(latency) == [f"{s} latency" for s in ("MultiStream", "Offline", "Server", "SingleStream")]
    assert list(latency["SingleStream latency"].index) == ["edge_box_2 resnet50", "node1_cpu resnet50"]
    assert list(latency["SingleStream latency"].columns) == ["p50", "p90", "p99"]
    many = dict(plots.latency_tables(frame, max_groups=1))
    median = many["SingleStream latency (median of 2 systems)"]
    ss = frame[(frame["mode"] == "performance") & (frame.scenario == "SingleStream")]
    assert list(median.index) == ["resnet50"]
    assert median.loc["resnet50", "p99"] == pytest.approx(ss["p99_ms"].median())

"""Bad inputs end in one line `fleet: error: ...`, exit 1, no traceback, nothing started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LAB = "[edge]\ne1 ansible_host=192.0.2.1\n[datacenter]\nd1 ansible_host=192.0.2.2\n"


@pytest.mark.parametrize(
    "inventory, args, message",
    [
        (LAB, ["--task", "resnet51"], "unknown task 'resnet51'"),
        (LAB, ["--task", "dlrm-v2-99", "--limit", "e1"],
         "dlrm-v2-99 runs on no host of this run (e1 (edge)): in MLPerf Inference v3.1 it is a benchmark "
         "for datacenter systems only; add such a host to the inventory or --limit"),
        (
            LAB,
            ["--task", "resnet50", "--scenario", "Server"],
            "scenario Server is not allowed for resnet50 on edge host e1",
        ),
        ("[edge\ne1 = =\n", ["--task", "resnet50"], "cannot parse inventory"),
        ("[web]\nw1\n", ["--task", "resnet50"], "neither group edge nor datacenter"),
        (LAB, ["--task", "resnet50", "--modes", "TEST09"], "unknown mode 'TEST09'"),
        (LAB, ["--task", "resnet50", "--artifacts", "/nonexistent"], "is not a directory"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, inventory, args, message):
    inv = tmp_path / "lab.ini"
    inv.write_text(inventory)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "run", "--inventory", str(inv), "--runs-dir", str(runs), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fleet: error: ") and message in lines[0], proc.stderr
    assert not runs.exists()


def test_resume_of_unknown_run(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "run", "--runs-dir", str(tmp_path), "--resume", "nope"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"fleet: error: no run 'nope': {tmp_path}/nope/run.json does not exist"
    ]


@pytest.mark.parametrize(
    "run_json, extra, message",
    [
        ('{"version": 1}', None, "is corrupt (no usable 'run_id'); cannot resume"),
        ("[1, 2]", None, "is corrupt (not a JSON object); cannot resume"),
        ('{"version": 7}', None, "has run.json version 7; expected 1"),
        ('{"version": 1, "run_id": "r1", "settings": [], "specs": {}, "jobs": {}, "nodes": {}}', None,
         "is corrupt (settings: AttributeError"),
        ('{"version": 1}', "tune.json", "is a tuning run: resume it with fleet tune"),
    ],
)
def test_resume_of_a_run_that_cannot_be_resumed(tmp_path: Path, run_json, extra, message):
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(run_json)
    if extra:
        (run_dir / extra).write_text("{}")
    before = sorted(p.name for p in run_dir.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "run", "--runs-dir", str(tmp_path), "--resume", "r1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fleet: error: ") and message in lines[0], proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_resume_takes_a_new_cache_dir_and_keeps_the_rest(tmp_path: Path):
    import argparse

    from fleet.commands.run import _resume
    from fleet.config import RunSettings
    from fleet.runstate import RunState

    inv = tmp_path / "lab.ini"
    inv.write_text(LAB)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    settings = RunSettings(inventory=str(inv), tasks=["resnet50"], cache_dir=str(tmp_path / "old-cache"))
    RunState(run_id="r1", settings=settings.to_dict(), specs={}, jobs={}, nodes={}).save(run_dir / "run.json")

    def resume(cache_dir: str) -> RunSettings:
        args = argparse.Namespace(resume="r1", runs_dir=str(tmp_path / "runs"), task=[], scenario=[],
                                  inventory=None, artifacts=None, cache_dir=cache_dir)
        return _resume(args)[1]

    assert resume("").cache_dir == str(tmp_path / "old-cache")
    moved = resume(str(tmp_path / "new-cache"))
    assert moved.cache_dir == str((tmp_path / "new-cache").resolve()) and moved.inventory == str(inv)

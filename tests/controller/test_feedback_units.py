"""What the user reads while and after a run: stage failures in the node's own words, and the
progress of long jobs (pure logic; the real-node versions are in test_fleet_run.py)."""

from __future__ import annotations

import io
import json

import pytest

from fleet import orchestrate
from fleet import progress as progress_mod
from fleet.ansible_driver import _message
from fleet.progress import NodeStatus, Progress, format_elapsed, parse_node_status

SYNTH_FAILED_ITEM = {
    "failed": True,
    "rc": 1,
    "msg": "non-zero return code",
    "stdout": "",
    "stderr": "Traceback noise\nfleet.harness: error: synthetic dataset: two samples share a label with "
    "chance 31.0% (8 distinct labels over 1024 samples; need at most 5%); try another --seed\n",
    "item": {"task": "resnet50", "dir": "/w/assets/resnet50-synthetic-full-1024", "synthetic": True},
    "_ansible_item_label": "resnet50",
}


def test_a_failed_loop_says_which_item_and_the_nodes_own_last_line():
    res = {"msg": "One or more items failed", "failed": True, "changed": False,
           "results": [{"failed": False, "rc": 0, "item": {"task": "bert-99"},
                        "_ansible_item_label": "bert-99"}, SYNTH_FAILED_ITEM]}  # fmt: skip
    assert _message(res) == (
        "item resnet50: fleet.harness: error: synthetic dataset: two samples share a label with chance "
        "31.0% (8 distinct labels over 1024 samples; need at most 5%); try another --seed"
    )


def test_a_failed_command_is_its_last_stderr_line_not_non_zero_return_code():
    res = {"rc": 1, "msg": "non-zero return code", "stdout": "",
           "stderr": "ERROR: Could not find a version that satisfies the requirement tokenizers>=0.15\n"
                     "ERROR: No matching distribution found for tokenizers>=0.15\n"}  # fmt: skip
    assert _message(res) == "ERROR: No matching distribution found for tokenizers>=0.15"
    assert _message({"rc": 2, "msg": "non-zero return code", "stdout": "tar: bad archive\n", "stderr": ""}) \
        == "tar: bad archive"


def test_module_messages_are_kept_and_joined_with_what_the_node_said():
    assert _message({"msg": "Could not find or access '/x.tar'"}) == "Could not find or access '/x.tar'"
    assert _message({"msg": "sha256 mismatch", "stderr": "a.jpg: FAILED\n", "rc": 1}) == \
        "sha256 mismatch: a.jpg: FAILED"
    assert _message({"rc": 4}) == "exit code 4"


def test_the_bench_waits_output_is_parsed_into_what_runs_and_for_how_long():
    status = {"task": "resnet50", "scenario": "Server", "mode": "TEST05", "started": 1000.0}
    out = f"state=running\nnow=1250\n{json.dumps(status)}\n"
    assert parse_node_status(out) == NodeStatus("resnet50 Server TEST05", 250.0)
    assert parse_node_status("state=running\nnow=1250\n") is None  # the harness has not started yet
    assert parse_node_status("state=running\nnow=x\n{}") is None
    assert parse_node_status('now=5\n{"task": "resnet50", "mode": "acc') is None  # half-written


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.9, "59s"), (250, "4m10s"), (3725, "1h02m")])
def test_elapsed_is_short(seconds, text):
    assert format_elapsed(seconds) == text


def test_plain_progress_prints_a_mode_change_at_once_and_a_running_mode_every_heartbeat(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    prog = Progress(["node2"], live=False, stream=out)
    prog.job_started("node2", "node2/resnet50/Server")
    prog.job_status("node2", NodeStatus("resnet50 Server performance", 5))
    clock[0] += 12.5
    prog.job_status("node2", NodeStatus("resnet50 Server performance", 17.5))  # same mode, one report later
    clock[0] += 12.5
    prog.job_status("node2", NodeStatus("resnet50 Server performance", 30))  # 25 s since the last line
    clock[0] += 1
    prog.job_status("node2", NodeStatus("resnet50 Server TEST05", 1))  # a new mode: at once
    lines = [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == ["node2 resnet50 Server performance 5s", "node2 resnet50 Server performance 30s",
                     "node2 resnet50 Server TEST05 1s"]  # fmt: skip
    # With a report every STATUS_EVERY_S (+ ~1 s), a running mode shows at least every 30 s.
    every = orchestrate.STATUS_EVERY_S
    assert 2 * every >= progress_mod.HEARTBEAT_S and 2 * (every + 1) < 30
    row = prog.rows["node2"]
    assert row.activity == "resnet50 Server TEST05" and clock[0] - row.since == 1


def test_a_failed_compliance_test_fails_the_job_with_the_scores(tmp_path):
    """What the submission-profile run found: TEST05 FAIL passed as an ok job, exit 0."""
    from fleet.orchestrate import compliance_failure
    from fleet.runstate import JobState

    job = JobState("node1/resnet50/Offline", "node1", "resnet50", "Offline",
                   ["performance", "accuracy", "TEST01", "TEST04", "TEST05"])  # fmt: skip
    job.verify = {"TEST01": "TEST PASS", "TEST04": "TEST PASS"}
    assert compliance_failure(tmp_path, job) is None
    job.verify["TEST05"] = "TEST FAIL"
    test05 = tmp_path / "resnet50" / "Offline" / "TEST05"
    test05.mkdir(parents=True)
    (test05 / "verify_performance.txt").write_text(  # as the harness writes it (compliance/verify.py)
        "Verifying performance.\nreference score = 1626.07\ntest score = 1507.7\nthreshold = 0.05\n"
        "TEST FAIL: Test score invalid\n")
    why = compliance_failure(tmp_path, job)
    assert why is not None and why.startswith(
        "TEST05 FAIL: score 1507.7 against the performance run's 1626.07 (threshold 0.05)")
    assert why.endswith("(fleet run --resume)")
    job.verify["TEST01"] = "TEST FAIL"  # no verify file collected: the verdict alone
    assert compliance_failure(tmp_path, job).startswith("TEST01 FAIL: TEST FAIL; TEST05 FAIL: score")

"""Reading the MLCommons checker's output (captured text of reference section 10.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.errors import SubmissionError
from fleet.submission.official import parse_output, run_official

OK_TEXT = """\
[2023-09-26 10:00:00,001 submission_checker.py:3304 INFO] ---
[2023-09-26 10:00:00,002 submission_checker.py:3310 INFO] Results closed/ExampleOrg/results/fixture_dc_1xacc/gptj-99/Offline 2.71
[2023-09-26 10:00:00,003 submission_checker.py:3310 INFO] Results closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Server 18001.4
[2023-09-26 10:00:00,004 submission_checker.py:3310 INFO] Results open/ExampleOrg/results/fixture_edge_cpu/resnet50-int4-fixture/SingleStream 4.95
[2023-09-26 10:00:00,005 submission_checker.py:3317 INFO] ---
[2023-09-26 10:00:00,006 submission_checker.py:3318 INFO] Results=5, NoResults=0, Power Results=0
[2023-09-26 10:00:00,007 submission_checker.py:3320 INFO] Closed Results=4, Closed Power Results=0
[2023-09-26 10:00:00,008 submission_checker.py:3322 INFO] Open Results=1, Open Power Results=0
[2023-09-26 10:00:00,009 submission_checker.py:3324 INFO] Network Results=0, Network Power Results=0
[2023-09-26 10:00:00,010 submission_checker.py:3326 INFO] Systems=2, Power Systems=0
[2023-09-26 10:00:00,011 submission_checker.py:3442 INFO] SUMMARY: submission looks OK
"""  # noqa: E501

FAIL_TEXT = """\
[2023-09-26 10:00:00,001 submission_checker.py:1200 ERROR] closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Offline/performance/run_1/mlperf_log_detail.txt qsl_rng_seed is wrong, expected=148687905518835231, found=1
[2023-09-26 10:00:00,002 submission_checker.py:2700 ERROR] closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Offline/performance/run_1 has issues
[2023-09-26 10:00:00,003 submission_checker.py:2900 ERROR] closed/ExampleOrg/results/fixture_dc_1xacc/resnet does not have all required scenarios, missing {'Offline'}
[2023-09-26 10:00:00,004 submission_checker.py:3290 ERROR] NoResults closed/ExampleOrg/results/fixture_dc_1xacc/resnet
[2023-09-26 10:00:00,005 submission_checker.py:3290 ERROR] NoResults closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Offline
[2023-09-26 10:00:00,006 submission_checker.py:3310 INFO] Results closed/ExampleOrg/results/fixture_dc_1xacc/gptj-99/Offline 2.71
[2023-09-26 10:00:00,007 submission_checker.py:3318 INFO] Results=4, NoResults=2, Power Results=0
[2023-09-26 10:00:00,008 submission_checker.py:3444 ERROR] SUMMARY: submission has errors
"""  # noqa: E501


def test_passing_output():
    verdict = parse_output(OK_TEXT, 0)
    assert verdict.summary_ok is True
    assert verdict.total_results == 5 and verdict.total_no_results == 0
    assert verdict.results["closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Server"] == "18001.4"
    assert len(verdict.results) == 3
    assert verdict.ok(expected=5)
    assert not verdict.ok(expected=6), "exit 0 is not enough: the Results count must match"
    assert "OFFICIAL VERDICT: FAIL" in verdict.render(expected=6)
    assert "but 6 results are expected" in verdict.render(expected=6)


def test_failing_output():
    verdict = parse_output(FAIL_TEXT, 1)
    assert verdict.summary_ok is False
    assert verdict.total_results == 4 and verdict.total_no_results == 2
    assert verdict.no_results == [
        "closed/ExampleOrg/results/fixture_dc_1xacc/resnet",
        "closed/ExampleOrg/results/fixture_dc_1xacc/resnet/Offline",
    ]
    assert any("qsl_rng_seed is wrong" in e for e in verdict.errors)
    assert not verdict.ok()
    assert "OFFICIAL VERDICT: FAIL" in verdict.render()


def test_a_crash_without_summary_fails():
    verdict = parse_output(
        "Traceback (most recent call last):\nUnboundLocalError: compliance_perf_valid\n", 1
    )
    assert verdict.summary_ok is None and not verdict.ok()
    assert "crashed" in verdict.render()


def test_missing_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(
        SubmissionError, match=r"tools/submission/submission_checker\.py does not exist.*tag v3\.1"
    ):
        run_official(tmp_path / "inference", tmp_path)


def test_runs_the_checker_script_as_a_subprocess(tmp_path: Path):
    """A stand-in script at the official path: the command line and stderr plumbing are real."""
    script = tmp_path / "inference/tools/submission/submission_checker.py"
    script.parent.mkdir(parents=True)
    args_file = tmp_path / "args.json"
    script.write_text(
        "import json, sys\n"
        f"json.dump(sys.argv[1:], open({str(args_file)!r}, 'w'))\n"
        f"sys.stderr.write({FAIL_TEXT!r})\n"
        "sys.exit(1)\n"
    )
    tree = tmp_path / "tree"
    tree.mkdir()
    verdict = run_official(tmp_path / "inference", tree, submitter="ExampleOrg")
    assert verdict.returncode == 1 and verdict.summary_ok is False and verdict.total_results == 4
    args = json.loads(args_file.read_text())
    assert args[args.index("--input") + 1] == str(tree.resolve())
    assert args[args.index("--version") + 1] == "v3.1"
    assert args[args.index("--submitter") + 1] == "ExampleOrg"
    assert not Path(args[args.index("--csv") + 1]).exists(), "the CSV goes to a scratch directory"

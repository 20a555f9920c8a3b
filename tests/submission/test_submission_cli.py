"""fleet submit / check / report through the real command line entry point."""

from __future__ import annotations

import json

import rawtree

from fleet.cli import main


def test_submit_check_report_on_a_run_id(make_run, capsys):
    run = make_run(run_id="run-7")
    runs_dir = str(run.parent)
    assert main(["submit", "run-7", "--submitter", "ExampleOrg", "--runs-dir", runs_dir]) == 0
    out = capsys.readouterr().out
    assert "synthetic assets" in out and "open division" in out
    assert (run / "submission/open/ExampleOrg/systems/node1_cpu.json").is_file()

    assert main(["check", "run-7", "--runs-dir", runs_dir]) == 1
    text = capsys.readouterr().out
    assert "VERDICT: FAIL under the full v3.1 rules" in text
    assert (run / "check.txt").read_text() == text

    assert main(["check", "run-7", "--runs-dir", runs_dir, "--profile", "smoke"]) == 0
    assert "VERDICT: PASS under smoke thresholds" in capsys.readouterr().out
    assert main(["check", str(run / "submission"), "--profile", "smoke"]) == 0

    assert main(["report", str(run), "--format", "csv,md"]) == 0
    assert sorted(p.name for p in (run / "report").iterdir()) == ["summary.csv", "summary.md"]
    assert "VERDICT: PASS" in (run / "report/summary.md").read_text()


def test_explicit_closed_with_synthetic_is_a_one_line_error(make_run, capsys):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    assert main(["submit", str(run), "--submitter", "ExampleOrg", "--division", "closed"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fleet: error: ") and err.count("\n") == 1 and "--division open" in err
    assert (
        main(
            [
                "submit",
                str(run),
                "--submitter",
                "ExampleOrg",
                "--division",
                "closed",
                "--allow-synthetic-in-closed",
            ]
        )
        == 0
    )
    assert (run / "submission/closed/ExampleOrg").is_dir()


def test_submitter_from_run_json_or_error(make_run, capsys):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    assert main(["submit", str(run)]) == 1
    assert "--submitter ORG" in capsys.readouterr().err
    (run / "run.json").write_text(json.dumps({"run_id": "run-test", "submitter": "LabOrg"}))
    assert main(["submit", str(run)]) == 0
    assert (run / "submission/open/LabOrg").is_dir()


def test_check_errors_are_one_line(tmp_path, make_run, capsys):
    assert main(["check", "nope", "--runs-dir", str(tmp_path)]) == 1
    assert "no run directory 'nope'" in capsys.readouterr().err
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    assert main(["check", str(run)]) == 1
    assert "run `fleet submit" in capsys.readouterr().err
    assert main(["submit", str(run), "--submitter", "ExampleOrg"]) == 0
    assert main(["check", str(run), "--official", str(tmp_path / "no-inference")]) == 1
    assert "git clone --branch v3.1" in capsys.readouterr().err
    assert main(["report", str(run), "--format", "pdf"]) == 1
    assert "unknown report format" in capsys.readouterr().err


def test_check_of_a_run_assembled_elsewhere_uses_its_record(make_run, tmp_path, capsys):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    out = tmp_path / "elsewhere" / "tree"
    assert main(["submit", str(run), "--submitter", "ExampleOrg", "--out", str(out)]) == 0
    assert (out / "open/ExampleOrg").is_dir() and not (run / "submission").exists()
    capsys.readouterr()
    assert main(["check", str(run), "--profile", "smoke"]) == 0
    text = capsys.readouterr().out
    assert "Smoke-profile results: 3 of 3" in text and "3 of 3 expected results pass" in text

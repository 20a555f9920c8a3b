"""Nightly entries against the real `crontab` program, in a throwaway user's crontab.

As root the tests create a system user that exists only for the test (no real crontab is
ever touched); otherwise they use the current user's crontab and restore it byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from fleet import schedule
from fleet.cli import main
from fleet.errors import ConfigError

pytestmark = pytest.mark.skipif(shutil.which("crontab") is None, reason="cron is not installed")

FOREIGN = "MAILTO=ops@example.org\n# backups, not ours\n30 3 * * * /usr/local/bin/backup --all  # keep\n"


def _crontab_l(user: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(["crontab", *(["-u", user] if user else []), "-l"], capture_output=True, text=True)


@pytest.fixture
def cron_user():
    """A crontab nobody else uses: a throwaway system user as root, else ours with save/restore."""
    if os.geteuid() == 0 and shutil.which("useradd"):
        name = f"fltcron{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield name
        finally:
            subprocess.run(["crontab", "-u", name, "-r"], capture_output=True)
            subprocess.run(["userdel", name], check=True, capture_output=True)
        return
    saved = _crontab_l(None)
    try:
        yield None
    finally:
        if saved.returncode == 0:
            subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "lab.ini").write_text("[edge]\nlocalhost ansible_connection=local\n")
    (tmp_path / "nightly.yaml").write_text("inventory: lab.ini\ntasks: [resnet50]\n")
    (tmp_path / "weekly.yaml").write_text("inventory: lab.ini\ntasks: [retinanet]\nruns_dir: weekly-runs\n")
    return tmp_path


def _fleet(*args: str) -> int:
    return main(["schedule", *args])


def _user_args(user: str | None) -> list[str]:
    return ["--user", user] if user else []


def test_install_list_remove_round_trip(cron_user, lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    u = _user_args(cron_user)
    schedule.write_crontab(FOREIGN, cron_user)
    assert _fleet("install", "--matrix", str(lab / "nightly.yaml"), "--at", "02:30", *u) == 0
    assert _fleet("install", "--matrix", str(lab / "nightly.yaml"), "--at", "01:05", *u) == 0  # replaces
    assert _fleet("install", "--matrix", str(lab / "weekly.yaml"), "--cron", "0 4 * * 6", *u) == 0
    text = _crontab_l(cron_user).stdout
    assert text.startswith(FOREIGN)
    ours = [ln for ln in text.splitlines() if schedule.TAG in ln]
    assert len(ours) == 2
    nightly = schedule.entry_id(lab / "nightly.yaml")
    assert ours[0].startswith("5 1 * * * ") and ours[0].endswith(f"{schedule.TAG}{nightly}")
    assert "\\%Y\\%m\\%d" in ours[0] and "sweep --matrix " in ours[0]
    assert f"--runs-dir {lab / 'weekly-runs'}" in ours[1]  # the matrix's runs_dir, made absolute
    capsys.readouterr()
    assert _fleet("list", *u) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == [nightly, schedule.entry_id(lab / "weekly.yaml")]
    assert _fleet("remove", "--matrix", str(lab / "nightly.yaml"), *u) == 0
    assert nightly not in _crontab_l(cron_user).stdout
    assert _fleet("remove", "--all", *u) == 0
    assert _crontab_l(cron_user).stdout == FOREIGN  # other lines byte for byte


def test_remove_leaves_no_trace(cron_user, lab: Path) -> None:
    u = _user_args(cron_user)
    schedule.write_crontab("", cron_user)
    assert _fleet("install", "--matrix", str(lab / "nightly.yaml"), *u) == 0
    assert _crontab_l(cron_user).returncode == 0
    assert _fleet("remove", schedule.entry_id(lab / "nightly.yaml"), *u) == 0
    gone = _crontab_l(cron_user)
    assert gone.returncode != 0 and "no crontab" in gone.stderr  # not even an empty crontab


def test_installed_line_runs_and_logs_to_the_runs_folder(cron_user, lab: Path) -> None:
    """Run the crontab command the way cron would (sh, bare environment, % unescaped)."""
    (lab / "nightly.yaml").write_text("inventory: lab.ini\ntasks: [resnet50]\n")
    u = _user_args(cron_user)
    assert _fleet("install", "--matrix", str(lab / "nightly.yaml"), "--runs-dir", str(lab / "r"), *u) == 0
    (lab / "nightly.yaml").write_text("inventory: lab.ini\ntasks: [resnet]\n")  # broken after install
    line = next(ln for ln in _crontab_l(cron_user).stdout.splitlines() if schedule.TAG in ln)
    command = line.split(None, 5)[5].rpartition(schedule.TAG)[0].replace("\\%", "%")
    proc = subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(lab), "SHELL": "/bin/sh",
                          "PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    logs = list((lab / "r" / "logs").glob(f"sweep-{schedule.entry_id(lab / 'nightly.yaml')}-*.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert log.startswith("fleet: error: ") and "nightly.yaml: tasks: unknown task 'resnet'" in log


def test_install_refuses_a_broken_matrix(cron_user, lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (lab / "bad.yaml").write_text("inventory: lab.ini\ntasks: [resnet50]\nscenarios: [Server]\n")
    assert _fleet("install", "--matrix", str(lab / "bad.yaml"), *_user_args(cron_user)) == 1
    assert "scenario Server is not allowed" in capsys.readouterr().err
    assert schedule.TAG not in _crontab_l(cron_user).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["install", "--at", "25:00"], "--at '25:00': give a time of day as HH:MM"),
        (["install", "--cron", "0 2 * *"], "--cron '0 2 * *': give five crontab fields"),
        (["remove"], "say which entry to remove"),
        (["remove", "no-such-entry"], "no nightly sweep no-such-entry is installed"),
    ],
)
def test_bad_requests_are_one_line(cron_user, lab, capsys, args: list[str], message: str) -> None:
    if args[0] == "install":
        args = [*args, "--matrix", str(lab / "nightly.yaml")]
    assert _fleet(*args, *_user_args(cron_user)) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_systemd_units_keep_percent_and_dollar_literal(lab: Path) -> None:
    ident = schedule.entry_id(lab / "nightly.yaml")
    command = schedule.sweep_command(lab / "nightly.yaml", lab / "runs", ident)
    units = schedule.systemd_units(ident, "02:00", command, lab / "nightly.yaml")
    timer = units[f"{schedule.UNIT_PREFIX}{ident}.timer"]
    service = units[f"{schedule.UNIT_PREFIX}{ident}.service"]
    assert "OnCalendar=*-*-* 02:00:00" in timer and "Persistent=true" in timer
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M).group(1)
    assert "%%Y%%m%%d" in exec_start and "$$(date" in exec_start


def test_systemd_install_succeeds_or_leaves_nothing(tmp_path: Path, lab: Path, monkeypatch) -> None:
    """Without a user systemd (CI containers) install must fail in one line and write nothing."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    ident = schedule.entry_id(lab / "nightly.yaml")
    units = schedule.systemd_units(ident, "02:00", "true", lab / "nightly.yaml")
    try:
        schedule.install_systemd(ident, units)
    except ConfigError as exc:
        assert "systemctl --user" in str(exc) and "\n" not in str(exc)
        assert list(schedule.unit_dir().iterdir()) == []
        return
    assert [e.id for e in schedule.systemd_entries()] == [ident]
    assert schedule.remove_systemd(ident) == [ident]
    assert list(schedule.unit_dir().iterdir()) == []

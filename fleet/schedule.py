"""Nightly sweeps as a real crontab line (default) or a systemd user timer.

Every entry carries a tag with an id derived from the matrix file's path, so installing the
same matrix again replaces its entry, and `remove` deletes exactly the lines it made: other
lines of the crontab stay byte for byte, and other users' crontabs are never read. The
entry runs `fleet sweep`, whose own flock on `<runs>/.sweep.lock` keeps two sweeps from
overlapping (a cron sweep, a timer sweep and one started by hand alike), and appends its
output to `<runs>/logs/sweep-<id>-<date>.log`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ConfigError

TAG = "# mlperf-fleet-sweep id="
UNIT_PREFIX = "mlperf-fleet-sweep-"
_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str  # cron | systemd
    when: str  # cron expression or systemd OnCalendar
    command: str


def entry_id(matrix: Path) -> str:
    """Stable per matrix file: its stem plus a digest of its absolute path."""
    path = Path(matrix).expanduser().resolve()
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "matrix"
    return f"{stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def parse_at(at: str) -> tuple[int, int]:
    """`HH:MM` (24 h) -> (hour, minute)."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
    if not m:
        raise ConfigError(f"--at {at!r}: give a time of day as HH:MM, e.g. 02:00")
    return int(m.group(1)), int(m.group(2))


def cron_when(at: str | None = None, cron: str | None = None) -> str:
    if cron:
        fields = cron.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9*,/\-A-Za-z]+", f) for f in fields):
            raise ConfigError(f"--cron {cron!r}: give five crontab fields, e.g. '0 2 * * 1-5'")
        return " ".join(fields)
    hour, minute = parse_at(at or "02:00")
    return f"{minute} {hour} * * *"


def sweep_command(matrix: Path, runs_dir: Path, ident: str, python: str | None = None) -> str:
    """The shell command an entry runs (plain `%`; crontab escaping is applied by cron_line)."""
    python = python or sys.executable
    bindir = str(Path(python).parent)
    logs = Path(runs_dir) / "logs"
    log = shlex.quote(str(logs / f"sweep-{ident}-")) + '"$(date +%Y%m%d-%H%M%S).log"'
    return (
        f"mkdir -p {shlex.quote(str(logs))} && "
        f"PATH={shlex.quote(bindir)}:/usr/local/bin:/usr/bin:/bin "
        f"{shlex.quote(python)} -m fleet.cli sweep --matrix {shlex.quote(str(matrix))} "
        f"--runs-dir {shlex.quote(str(runs_dir))} >> {log} 2>&1"
    )


def cron_line(when: str, command: str, ident: str) -> str:
    # In a crontab command an unescaped % ends the command: escape every one.
    escaped = command.replace("%", "\\%")
    return f"{when} {escaped} {TAG}{ident}"


# --- crontab -------------------------------------------------------------------------------


def _crontab(args: list[str], user: str | None, stdin: str | None = None) -> subprocess.CompletedProcess:
    argv = ["crontab", *(["-u", user] if user else []), *args]
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ConfigError("crontab is not installed (apt-get install cron); or use --systemd") from None


def read_crontab(user: str | None = None) -> str:
    proc = _crontab(["-l"], user)
    if proc.returncode != 0:
        if "no crontab for" in proc.stderr:
            return ""
        raise ConfigError(f"crontab -l failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def write_crontab(text: str, user: str | None = None) -> None:
    """Install `text`; an empty crontab is removed rather than left behind as an empty file."""
    proc = _crontab(["-r"], user) if not text.strip() else _crontab(["-"], user, text)
    if proc.returncode != 0 and "no crontab for" not in proc.stderr:
        raise ConfigError(f"crontab failed: {proc.stderr.strip() or proc.returncode}")


def _is_ours(line: str, ident: str | None = None) -> bool:
    marker = line.rpartition(TAG)
    if not marker[1]:
        return False
    return ident is None or marker[2].strip() == ident


def cron_entries(user: str | None = None) -> list[Entry]:
    out = []
    for line in read_crontab(user).splitlines():
        if _is_ours(line):
            body, _, ident = line.rpartition(TAG)
            fields = body.split(None, 5)
            out.append(Entry(ident.strip(), "cron", " ".join(fields[:5]), fields[5].strip()))
    return out


def install_cron(line: str, ident: str, user: str | None = None) -> None:
    kept = [ln for ln in read_crontab(user).splitlines() if not _is_ours(ln, ident)]
    write_crontab("\n".join([*kept, line]) + "\n", user)


def remove_cron(ident: str | None, user: str | None = None) -> list[str]:
    """Delete our lines (one id, or all of ours); returns the ids removed."""
    lines = read_crontab(user).splitlines()
    gone = [ln for ln in lines if _is_ours(ln, ident)]
    if gone:
        kept = [ln for ln in lines if not _is_ours(ln, ident)]
        write_crontab("\n".join(kept) + "\n" if kept else "", user)
    return [ln.rpartition(TAG)[2].strip() for ln in gone]


# --- systemd user timers -------------------------------------------------------------------


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "systemd" / "user"


def systemd_units(ident: str, at: str, command: str, matrix: Path) -> dict[str, str]:
    """File name -> content of the service and timer for one entry."""
    hour, minute = parse_at(at)
    name = f"{UNIT_PREFIX}{ident}"
    service = (
        "[Unit]\n"
        f"Description=mlperf-fleet nightly sweep of {matrix}\n\n"
        "[Service]\nType=oneshot\n"
        # systemd expands % specifiers and $VARIABLES itself: double both to keep them literal.
        f"ExecStart=/bin/sh -c {shlex.quote(command.replace('%', '%%').replace('$', '$$'))}\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=mlperf-fleet nightly sweep of {matrix}\n\n"
        f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(args, 127, "", "systemctl is not installed")


def install_systemd(ident: str, units: dict[str, str]) -> None:
    """Write the units and enable the timer; on failure nothing is left behind."""
    folder = unit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    timer = f"{UNIT_PREFIX}{ident}.timer"
    for args in (("daemon-reload",), ("enable", "--now", timer)):
        proc = _systemctl(*args)
        if proc.returncode != 0:
            for path in written:
                path.unlink(missing_ok=True)
            _systemctl("daemon-reload")
            reason = (proc.stderr.strip().splitlines() or [str(proc.returncode)])[0]
            raise ConfigError(
                f"systemctl --user {' '.join(args)} failed ({reason}); a user systemd must be running "
                "(log in, or `loginctl enable-linger`), or schedule with cron instead"
            )


def _unit_value(path: Path, key: str) -> str:
    if not path.exists():
        return ""
    return next((ln.split("=", 1)[1] for ln in path.read_text().splitlines() if ln.startswith(f"{key}=")), "")


def systemd_entries() -> list[Entry]:
    out = []
    for timer in sorted(unit_dir().glob(f"{UNIT_PREFIX}*.timer")):
        ident = timer.name[len(UNIT_PREFIX) : -len(".timer")]
        when = _unit_value(timer, "OnCalendar")
        out.append(Entry(ident, "systemd", when, _unit_value(timer.with_suffix(".service"), "ExecStart")))
    return out


def remove_systemd(ident: str | None) -> list[str]:
    gone = [e.id for e in systemd_entries() if ident is None or e.id == ident]
    for name in gone:
        _systemctl("disable", "--now", f"{UNIT_PREFIX}{name}.timer")
        for suffix in (".timer", ".service"):
            (unit_dir() / f"{UNIT_PREFIX}{name}{suffix}").unlink(missing_ok=True)
    if gone:
        _systemctl("daemon-reload")
    return gone


def check_id(ident: str) -> str:
    if not _ID.fullmatch(ident):
        raise ConfigError(f"schedule id {ident!r}: use letters, digits, '.', '_' or '-'")
    return ident

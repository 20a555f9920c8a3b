"""`fleet schedule install|list|remove`: nightly sweeps from cron or a systemd user timer."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet import schedule
from fleet.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "schedule",
        help="run a sweep every night (cron or systemd user timer)",
        description="Install, list or remove nightly `fleet sweep` entries. Entries are tagged, so "
        "remove deletes exactly what install wrote and nothing else.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    inst = sub.add_parser("install", help="add (or replace) the nightly entry of a matrix")
    inst.add_argument("--matrix", required=True, help="the sweep's matrix file")
    when = inst.add_mutually_exclusive_group()
    when.add_argument("--at", default="02:00", help="time of day, HH:MM (default 02:00)")
    when.add_argument("--cron", help="five crontab fields instead of --at, e.g. '0 2 * * 1-5'")
    inst.add_argument("--systemd", action="store_true", help="a systemd user timer instead of crontab")
    inst.add_argument("--runs-dir", help="runs folder (default: the matrix's runs_dir, else ./runs)")
    inst.add_argument("--user", help="install in this user's crontab (root only)")
    inst.set_defaults(func=install)
    lst = sub.add_parser("list", help="show the nightly entries fleet installed")
    lst.add_argument("--user", help="that user's crontab (root only)")
    lst.set_defaults(func=list_entries)
    rem = sub.add_parser("remove", help="delete nightly entries fleet installed")
    rem.add_argument("id", nargs="?", help="entry id (see `fleet schedule list`)")
    rem.add_argument("--matrix", help="the entry of this matrix file")
    rem.add_argument("--all", action="store_true", help="every entry fleet installed")
    rem.add_argument("--user", help="that user's crontab (root only)")
    rem.set_defaults(func=remove)


def install(args: argparse.Namespace) -> int:
    from fleet.sweep import prepare

    if args.systemd and (args.cron or args.user):
        raise ConfigError("--systemd takes --at only (no --cron, no --user)")
    if args.systemd:
        schedule.parse_at(args.at)
        when = f"daily at {args.at}"
    else:
        when = schedule.cron_when(args.at, args.cron)
    matrix_path = Path(args.matrix).expanduser().resolve()
    matrix = prepare(matrix_path).matrix  # refuse a broken matrix now, not at 02:00
    runs_dir = Path(args.runs_dir or matrix.runs_dir or "runs").expanduser().resolve()
    ident = schedule.entry_id(matrix_path)
    command = schedule.sweep_command(matrix_path, runs_dir, ident)
    if args.systemd:
        schedule.install_systemd(ident, schedule.systemd_units(ident, args.at, command, matrix_path))
        print(f"installed systemd user timer {schedule.UNIT_PREFIX}{ident}.timer ({when})")
    else:
        schedule.install_cron(schedule.cron_line(when, command, ident), ident, args.user)
        print(f"installed crontab entry {ident} ({when})")
    print(f"logs: {runs_dir / 'logs'}/sweep-{ident}-*.log")
    return 0


def list_entries(args: argparse.Namespace) -> int:
    entries = [*schedule.cron_entries(args.user), *([] if args.user else schedule.systemd_entries())]
    if not entries:
        print("no nightly sweeps installed")
    for e in entries:
        print(f"{e.id}  {e.kind}  {e.when}  {e.command}")
    return 0


def remove(args: argparse.Namespace) -> int:
    chosen = [x for x in (args.id, args.matrix, args.all or None) if x]
    if len(chosen) != 1:
        raise ConfigError("say which entry to remove: an ID, --matrix FILE, or --all")
    ident = None if args.all else schedule.check_id(args.id or schedule.entry_id(Path(args.matrix)))
    gone = schedule.remove_cron(ident, args.user)
    if not args.user:
        gone += schedule.remove_systemd(ident)
    if not gone and ident is not None:
        raise ConfigError(f"no nightly sweep {ident} is installed (see `fleet schedule list`)")
    for name in gone:
        print(f"removed {name}")
    return 0

"""Bring a node's results home into runs/<run>/raw/<host>/, safely.

- The node lists its result tree with sizes and sha256 (a small Python program run there,
  without following symlinks); every file is verified again on arrival.
- Entries that are symlinks, not regular files, or whose path would land outside
  raw/<host>/ (absolute, `..`) are refused and reported, never written.
- Files go to a staging dir first. Only when everything verified does it replace
  raw/<host>/, merged with what an earlier attempt already brought home: jobs not rerun in
  this attempt keep their earlier files, so a later partial attempt never overwrites a
  completed node's results.
- SSH hosts: paramiko SFTP, host key checked against the same known_hosts ansible uses
  (RejectPolicy). `ansible_connection=local` hosts: the same checks on a local copy.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from fleet.errors import CollectError
from fleet.harness.jsonfile import write_json
from fleet.inventory import Node, SshTarget

MANIFEST = "manifest.json"
CHUNK = 1 << 20

# Run on the node: list `root` as JSON [[relpath, kind, size, sha256], ...]; never follows links.
LISTING_SCRIPT = r"""
import hashlib, json, os, stat, sys
root = sys.argv[1]
if not os.path.isdir(root):
    print(json.dumps({"files": [], "missing": True})); sys.exit(0)
out = []
for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
    for name in sorted(dirnames + filenames):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out.append([rel, "symlink", 0, None])
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out.append([rel, "file", st.st_size, h.hexdigest()])
        elif not stat.S_ISDIR(st.st_mode):
            out.append([rel, "special", 0, None])
print(json.dumps({"files": out, "missing": False}))
"""


@dataclass(frozen=True)
class Entry:
    rel: str
    kind: str  # file | symlink | special
    size: int
    sha256: str | None


@dataclass
class CollectResult:
    host: str
    ok: bool = False
    files: int = 0
    bytes: int = 0
    refused: list[str] = field(default_factory=list)  # "path (why)"
    error: str | None = None
    missing: bool = False  # the node had no results directory


class Source(Protocol):
    """Where results are read from: a node over SFTP, or a local directory."""

    def listing(self, root: str) -> tuple[list[Entry], bool]: ...
    def open(self, path: str) -> IO[bytes]: ...
    def close(self) -> None: ...


def _parse_listing(text: str) -> tuple[list[Entry], bool]:
    try:
        data = json.loads(text)
        entries = [Entry(str(r), str(k), int(s), h) for r, k, s, h in data["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectError(f"the node's file listing is unreadable: {exc}") from None
    return entries, bool(data.get("missing"))


class LocalSource:
    """An ansible_connection=local host: same listing program, plain file reads."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python if python and os.path.exists(python) else sys.executable

    def listing(self, root: str) -> tuple[list[Entry], bool]:
        proc = subprocess.run(
            [self.python, "-c", LISTING_SCRIPT, root], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise CollectError(f"listing {root} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return _parse_listing(proc.stdout)

    def open(self, path: str) -> IO[bytes]:
        return open(path, "rb")

    def close(self) -> None:
        pass


class SftpSource:
    """A node over SSH: the listing runs there, files come over SFTP."""

    def __init__(self, target: SshTarget, python: str = "python3", timeout: float = 15.0) -> None:
        self.client = connect(target, timeout=timeout)
        self.python = python
        self.timeout = timeout
        self._sftp = None

    def listing(self, root: str) -> tuple[list[Entry], bool]:
        cmd = f"{shlex.quote(self.python)} -c {shlex.quote(LISTING_SCRIPT)} {shlex.quote(root)}"
        _stdin, stdout, stderr = self.client.exec_command(cmd, timeout=600)
        out = stdout.read().decode()
        rc = stdout.channel.recv_exit_status()
        if rc != 0:
            err = stderr.read().decode().strip().splitlines()
            raise CollectError(f"listing {root} on the node failed (exit {rc}): {err[-1] if err else ''}")
        return _parse_listing(out)

    def open(self, path: str) -> IO[bytes]:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        fh = self._sftp.open(path, "rb")
        fh.prefetch()
        return fh

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.client.close()


def connect(target: SshTarget, timeout: float = 15.0) -> Any:
    """A paramiko client configured like ansible's ssh: same ssh_config, same known_hosts."""
    import paramiko

    config = paramiko.SSHConfig()
    cfg_path = Path(target.ssh_config or "~/.ssh/config").expanduser()
    if cfg_path.is_file():
        config = paramiko.SSHConfig.from_path(str(cfg_path))
    elif target.ssh_config:
        raise CollectError(f"ssh config {cfg_path} does not exist")
    look = config.lookup(target.host)
    hostname = look.get("hostname", target.host)
    port = target.port or int(look.get("port", 22))
    user = target.user or look.get("user") or getpass.getuser()
    keys = [target.key_file] if target.key_file else list(look.get("identityfile", []))
    keys = [str(Path(k).expanduser()) for k in keys]
    known = target.known_hosts or (look.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    client = paramiko.SSHClient()
    known_path = Path(known).expanduser()
    if known_path.is_file():
        client.load_host_keys(str(known_path))
    if not target.known_hosts and not look.get("userknownhostsfile"):
        client.load_system_host_keys()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    only_keys = str(look.get("identitiesonly", "no")).lower() == "yes"
    try:
        client.connect(
            hostname,
            port=port,
            username=user,
            key_filename=keys or None,
            look_for_keys=not (keys and only_keys),
            allow_agent=not only_keys,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except paramiko.SSHException as exc:
        client.close()
        raise CollectError(f"ssh to {user}@{hostname}:{port} refused: {exc}") from None
    except OSError as exc:
        client.close()
        raise CollectError(f"cannot reach {hostname}:{port}: {exc.strerror or exc}") from None
    return client


def safe_relpath(rel: str) -> PurePosixPath | None:
    """`rel` as a path that stays inside its root, or None (absolute, `..`, empty, odd)."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    path = PurePosixPath(rel)
    if any(part in ("..", ".", "") for part in path.parts) or posixpath.normpath(rel) != rel:
        return None
    return path


def fetch_tree(source: Source, remote_root: str, staging: Path) -> CollectResult:
    """Copy every safe, regular file of `remote_root` into `staging`, verifying each sha256."""
    result = CollectResult(host="")
    entries, result.missing = source.listing(remote_root)
    root = staging.resolve()
    for entry in entries:
        rel = safe_relpath(entry.rel)
        if rel is None:
            result.refused.append(f"{entry.rel} (path outside the results directory)")
            continue
        if entry.kind != "file" or not entry.sha256:
            result.refused.append(f"{entry.rel} ({entry.kind}, not a regular file)")
            continue
        dest = staging.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.parent.resolve().is_relative_to(root) or dest.is_symlink():
            result.refused.append(f"{entry.rel} (would land outside the results directory)")
            continue
        digest, size = hashlib.sha256(), 0
        with source.open(posixpath.join(remote_root, entry.rel)) as src, open(dest, "xb") as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != entry.sha256 or size != entry.size:
            raise CollectError(f"{entry.rel} changed in transit (sha256 or size differs from the node's)")
        result.files += 1
        result.bytes += size
    return result


def collect_node(
    node: Node,
    remote_root: str,
    raw_dir: Path,
    rerun: Iterable[tuple[str, str]],
    python: str | None = None,
) -> CollectResult:
    """Collect one node into raw_dir/<host>/; `rerun`: (task, scenario) pairs run this attempt."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{node.name}-", dir=raw_dir))
    source: Source | None = None
    try:
        if node.is_local:
            source = LocalSource(python)
        elif node.ssh is not None:
            source = SftpSource(node.ssh, python=python or "python3")
        else:
            raise CollectError(f"no way to reach {node.name} (connection {node.connection})")
        result = fetch_tree(source, remote_root, staging)
        result.host = node.name
        install(staging, raw_dir / node.name, set(rerun))
        result.ok = True
        return result
    except CollectError as exc:
        return CollectResult(host=node.name, error=str(exc))
    except OSError as exc:
        return CollectResult(host=node.name, error=f"collect failed: {exc}")
    finally:
        if source is not None:
            source.close()
        shutil.rmtree(staging, ignore_errors=True)


def install(staging: Path, final: Path, rerun: set[tuple[str, str]]) -> None:
    """Replace `final` with `staging`, keeping earlier results of jobs not rerun now.

    `<task>/<scenario>/` of a job not in `rerun` comes from `final` when it has it; the
    manifest's runs are merged the same way. The swap is two renames; a crash in between
    leaves `.old-<host>` with the complete earlier results.
    """
    if final.exists():
        for task_dir in (p for p in final.iterdir() if p.is_dir() and not p.is_symlink()):
            for scen_dir in (p for p in task_dir.iterdir() if p.is_dir() and not p.is_symlink()):
                key = (task_dir.name, scen_dir.name)
                if key in rerun:
                    continue
                target = staging / task_dir.name / scen_dir.name
                if target.exists():
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(scen_dir, target, symlinks=True)
        merged = merge_manifests(_read_json(final / MANIFEST), _read_json(staging / MANIFEST), rerun)
        if merged is not None:
            write_json(staging / MANIFEST, merged)
    os.chmod(staging, 0o755)
    old = final.with_name(f".old-{final.name}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def merge_manifests(
    old: dict[str, Any] | None, new: dict[str, Any] | None, rerun: set[tuple[str, str]]
) -> dict[str, Any] | None:
    """New manifest, whose runs of jobs not rerun come from the old one when it has them."""
    if old is None:
        return new
    if new is None:
        new = {k: v for k, v in old.items() if k != "runs"}
        new["runs"] = []

    def key(run: dict[str, Any]) -> tuple[str, str]:
        return (str(run.get("task")), str(run.get("scenario")))

    kept = [r for r in old.get("runs", []) if key(r) not in rerun]
    kept_keys = {key(r) for r in kept}
    fresh = [r for r in new.get("runs", []) if key(r) not in kept_keys]
    merged = dict(new)
    merged["runs"] = kept + fresh
    return merged


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None



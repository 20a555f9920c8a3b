"""Keep the lab's inventory out of the published tree.

The tree may name a machine only by its chosen system name. Everything else the controller
knows about a node (inventory host name, address, login user, key paths, work directories,
the machine's own hostname) is private: collected here and searched for in every file of the
built tree before it is moved into place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from fleet.submission.rawrun import RawHost

# node.json keys that are meant to be published (facts, overrides) or are the chosen name.
_PUBLIC_NODE_KEYS = {"system_name", "category", "system_overrides", "facts"}
_MIN_LENGTH = 3
_GENERIC_DIRS = {"/", "/home", "/root", "/tmp", "/srv", "/opt", "/var", "/usr", "/mnt", "/data", "/work"}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _path_prefixes(path: str) -> Iterable[str]:
    """A private path and its parents that still say something (/home/alice, /srv/lab)."""
    if not path.startswith("/"):
        return
    pure = PurePosixPath(path)
    for candidate in (pure, *pure.parents):
        if len(candidate.parts) >= 3 and str(candidate) not in _GENERIC_DIRS:
            yield str(candidate)


def private_strings(hosts: list[RawHost], run_dir: Path) -> dict[str, str]:
    """Private value -> where it comes from (for the error message)."""
    found: dict[str, str] = {}
    system_names = {h.system_name for h in hosts}

    def add(value: str, origin: str) -> None:
        value = value.strip()
        if len(value) >= _MIN_LENGTH and value not in system_names:
            found.setdefault(value, origin)

    for host in hosts:
        add(host.name, f"inventory host name of {host.system_name}")
        add(str(host.node.get("inventory_hostname") or ""), f"inventory host name of {host.system_name}")
        hostname = str(host.host_facts.get("hostname") or "")
        add(hostname, f"hostname of {host.system_name}")
        add(hostname.split(".")[0], f"hostname of {host.system_name}")
        for key, value in host.node.items():
            if key in _PUBLIC_NODE_KEYS or key == "inventory_hostname":
                continue
            for text in _strings(value):
                add(text, f"inventory variable {key} of {host.system_name}")
                for prefix in _path_prefixes(text):
                    add(prefix, f"inventory variable {key} of {host.system_name}")
        for run in host.runs:
            for key in ("model_path", "dataset_path"):
                text = str(run.get(key) or "")
                for prefix in _path_prefixes(text):
                    add(prefix, f"{key} on {host.system_name}")
    for prefix in _path_prefixes(str(Path(run_dir).resolve())):
        add(prefix, "the controller's run directory")
    return found


_WORD = re.compile(rb"[A-Za-z0-9_\-]+")


def _pattern(secret: str) -> re.Pattern[bytes]:
    # A secret inside a longer name (node1 in node1_cpu) is not a leak; as a word it is.
    word = rb"[A-Za-z0-9_\-]"
    return re.compile(rb"(?<!" + word + rb")" + re.escape(secret.encode()) + rb"(?!" + word + rb")")


class LeakScanner:
    """Finds secrets as whole words in bytes, fast enough for thousands of log files.

    Each secret is indexed by its longest word (for 10.1.2.3 or /home/alice: a part of it);
    a file is tokenized once, and only secrets whose key word occurs are confirmed by regex.
    """

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.by_key: dict[bytes, list[tuple[str, bytes, re.Pattern[bytes]]]] = {}
        for secret in secrets:
            raw = secret.encode()
            words = _WORD.findall(raw)
            if words:
                key = max(words, key=len)
                self.by_key.setdefault(key, []).append((secret, raw, _pattern(secret)))

    def scan(self, data: bytes) -> list[str]:
        hits = set(_WORD.findall(data)).intersection(self.by_key)
        return sorted(
            s for key in hits for s, raw, pattern in self.by_key[key] if raw in data and pattern.search(data)
        )


def find_leaks(root: Path, secrets: dict[str, str]) -> list[tuple[Path, str, str]]:
    """(file, secret, origin) for every secret that occurs in a file's name or content."""
    scanner = LeakScanner(secrets)
    leaks: list[tuple[Path, str, str]] = []
    root = Path(root)
    for path in sorted(root.rglob("*")):
        found = set(scanner.scan(path.relative_to(root).as_posix().encode()))
        if path.is_file() and not path.is_symlink():
            found.update(scanner.scan(path.read_bytes()))
        leaks.extend((path, secret, secrets[secret]) for secret in sorted(found))
    return leaks

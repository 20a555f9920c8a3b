"""Host facts for the manifest (and `python -m fleet.harness facts`): what ran the benchmark.

Read from lscpu (when present), /proc, /etc/os-release, nvidia-smi (when present) and the
cgroup; every fact is best-effort and missing ones are null, never an error. The submission
assembler builds systems/<sys>.json from these.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from fleet.harness.nodeinfo import cgroup_cpu_quota, usable_cpus


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _lscpu() -> dict[str, str]:
    out = _run(["lscpu"]) or ""
    facts = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _cpuinfo() -> dict[str, Any]:
    """Model and topology from /proc/cpuinfo, for nodes without lscpu."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = None
    sockets: set[str] = set()
    cores: set[tuple[str, str]] = set()
    logical = 0
    phys = "0"
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys = value
            sockets.add(value)
        elif key == "core id":
            cores.add((phys, value))
    n_sockets = len(sockets) or 1
    facts: dict[str, Any] = {"Model name": model, "Socket(s)": str(n_sockets)}
    if cores:
        facts["Core(s) per socket"] = str(len(cores) // n_sockets)
        facts["Thread(s) per core"] = str(max(1, logical // len(cores)))
    return facts


def meminfo_bytes(field: str = "MemTotal") -> int | None:
    """A /proc/meminfo figure in bytes (MemTotal, MemAvailable, ...); None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _os_name() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _accelerators() -> list[dict[str, Any]]:
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    groups: dict[tuple[str, int], int] = {}
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0]:
            continue
        mem = _int(parts[1])
        key = (parts[0], (mem or 0) * 1024 * 1024)
        groups[key] = groups.get(key, 0) + 1
    return [{"name": name, "memory_bytes": mem, "count": count} for (name, mem), count in groups.items()]


def host_facts() -> dict[str, Any]:
    cpu = _lscpu() or {k: v for k, v in _cpuinfo().items() if v is not None}
    libc = platform.libc_ver()
    levels = ("L1d cache", "L1i cache", "L2 cache", "L3 cache")
    caches = ", ".join(f"{k}: {cpu[k]}" for k in levels if k in cpu)
    return {
        "hostname": socket.gethostname(),
        "architecture": platform.machine(),
        "cpu_model": cpu.get("Model name") or _cpuinfo().get("Model name"),
        "sockets": _int(cpu.get("Socket(s)")),
        "cores_per_socket": _int(cpu.get("Core(s) per socket")),
        "threads_per_core": _int(cpu.get("Thread(s) per core")),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "cpu_max_mhz": cpu.get("CPU max MHz"),
        "caches": caches or None,
        "memory_bytes": meminfo_bytes(),
        "os": _os_name(),
        "kernel": platform.release(),
        "libc": f"{libc[0]} {libc[1]}".strip() or None,
        "accelerators": _accelerators(),
        "cpu_quota": cgroup_cpu_quota(),
    }

"""The host-facts digest a tuning is tied to: a changed machine must not reuse old settings.

Tuned values (threads, batch, target QPS) are only right for the machine they were measured
on. The digest covers what changes performance: CPU model and counts, the CPUs this process
may use (affinity and cgroup quota), memory, accelerators, and the versions of the software
in the timed path. It leaves out what does not (hostname, kernel build, caches text).
Computed on the node by `tune` and by every `run` of tuned values, and on the controller
from a collected manifest (`host` + `versions`), with the same function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

HOST_KEYS = ("architecture", "cpu_model", "sockets", "cores_per_socket", "threads_per_core",
             "logical_cpus", "usable_cpus", "cpu_quota")
VERSION_KEYS = ("python", "fleet", "loadgen", "onnxruntime", "torch", "numpy")
GIB = 1 << 30


def digest_fields(host: Mapping[str, Any], versions: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the digest covers, normalised (memory in whole GiB, accelerators sorted)."""
    fields: dict[str, Any] = {key: host.get(key) for key in HOST_KEYS}
    memory = host.get("memory_bytes")
    fields["memory_gib"] = round(memory / GIB) if isinstance(memory, (int, float)) else None
    accelerators = host.get("accelerators") or []
    fields["accelerators"] = sorted(
        f"{a.get('count', 1)}x {a.get('name')} ({round((a.get('memory_bytes') or 0) / GIB)} GiB)"
        for a in accelerators if isinstance(a, Mapping)
    )
    for key in VERSION_KEYS:
        fields[f"version_{key}"] = versions.get(key)
    return fields


def facts_digest(host: Mapping[str, Any], versions: Mapping[str, Any]) -> str:
    """sha256 (hex, 16 chars) of `digest_fields`."""
    text = json.dumps(digest_fields(host, versions), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for every digest field that differs (for warnings)."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]

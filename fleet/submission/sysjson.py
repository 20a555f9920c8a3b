"""systems/<sys>.json from facts: the 35 v3.1 fields, every value a string.

Facts come from the node's manifest (host facts, versions) and from raw/<host>/node.json
(ansible facts, inventory `fleet_system` overrides). Fields that no fact can provide
(storage, networking, cooling, memory layout, availability) are left empty unless the
inventory sets them: `fleet check` reports them as "needs a person" instead of the tree
carrying invented values.
"""

from __future__ import annotations

from typing import Any

from fleet.errors import SubmissionError
from fleet.submission.rawrun import RawHost

# Present and non-empty (the checker's "meaningful" fields).
MEANINGFUL_FIELDS: tuple[str, ...] = (
    "division",
    "submitter",
    "system_type",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_memory_configuration",
    "host_storage_capacity",
    "host_storage_type",
    "host_networking",
    "host_network_card_count",
    "host_networking_topology",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "accelerator_host_interconnect",
    "accelerator_memory_configuration",
    "accelerator_interconnect",
    "cooling",
    "framework",
    "operating_system",
    "other_software_stack",
)
# Present, may be empty.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "host_processor_frequency",
    "host_processor_caches",
    "host_processor_interconnect",
    "accelerator_frequency",
    "accelerator_interconnect_topology",
    "accelerator_on-chip_memories",
    "hw_notes",
    "sw_notes",
    "system_type_detail",
)
REQUIRED_FIELDS: tuple[str, ...] = MEANINGFUL_FIELDS + OPTIONAL_FIELDS
POWER_FIELDS: tuple[str, ...] = (
    "power_management",
    "filesystem",
    "boot_firmware_version",
    "management_firmware_version",
    "other_hardware",
    "number_of_type_nics_installed",
    "nics_enabled_firmware",
    "nics_enabled_os",
    "nics_enabled_connected",
    "network_speed_mbit",
    "power_supply_quantity_and_rating_watts",
    "power_supply_details",
    "disk_drives",
    "disk_controllers",
)
NETWORK_FIELDS: tuple[str, ...] = (
    "is_network",
    "network_type",
    "network_media",
    "network_rate",
    "nic_loadgen",
    "number_nic_loadgen",
    "net_software_stack_loadgen",
    "network_protocol",
    "number_connections",
    "nic_sut",
    "number_nic_sut",
    "net_software_stack_sut",
    "network_topology",
)
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + POWER_FIELDS + NETWORK_FIELDS)
STATUSES = ("available", "preview", "rdi")
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
# Meaningful fields only a person can fill (inventory: fleet_system: {field: value}).
NEEDS_A_PERSON: tuple[str, ...] = (
    "status",
    "host_memory_configuration",
    "host_storage_capacity",
    "host_storage_type",
    "host_networking",
    "host_network_card_count",
    "host_networking_topology",
    "cooling",
)
# Accelerator fields a person fills when the node has accelerators ("N/A" when it has none).
ACCELERATOR_PERSON_FIELDS: tuple[str, ...] = (
    "accelerator_host_interconnect",
    "accelerator_memory_configuration",
    "accelerator_interconnect",
)
_BACKEND_NAMES = {
    "onnxruntime": "ONNX Runtime",
    "tensorrt": "TensorRT",
    "pytorch": "PyTorch",
    "torch": "PyTorch",
}
_EP_NAMES = {
    "CPUExecutionProvider": "CPU",
    "CUDAExecutionProvider": "CUDA",
    "TensorrtExecutionProvider": "TensorRT",
}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _gb(num_bytes: Any) -> str:
    try:
        return f"{round(float(num_bytes) / 2**30)} GB"
    except (TypeError, ValueError):
        return ""


def _fact(host: RawHost, key: str) -> Any:
    """A host fact: the node's own manifest first, then the controller's ansible facts."""
    value = host.host_facts.get(key)
    if value in (None, ""):
        value = (host.node.get("facts") or {}).get(key)
    return value


def _memory(host: RawHost) -> str:
    if host.host_facts.get("memory_bytes"):
        return _gb(host.host_facts["memory_bytes"])
    memory_mb = (host.node.get("facts") or {}).get("memory_mb")
    return _gb(float(memory_mb) * 2**20) if memory_mb else ""


def _accelerators(host: RawHost) -> list[dict[str, Any]]:
    return [a for a in host.host_facts.get("accelerators") or [] if isinstance(a, dict) and a.get("name")]


def _framework(host: RawHost) -> str:
    versions = host.versions
    names = []
    for backend in sorted({str(r.get("backend") or "") for r in host.runs} - {""}):
        label = _BACKEND_NAMES.get(backend, backend)
        version = versions.get(backend) or versions.get("torch" if backend == "pytorch" else backend)
        eps = sorted({_EP_NAMES.get(str(r.get("execution_provider")), "") for r in host.runs} - {""})
        suffix = f" ({', '.join(eps)} execution provider)" if backend == "onnxruntime" and eps else ""
        reduced = sorted({str(r.get("precision")) for r in host.runs
                          if r.get("backend") == backend and r.get("precision") not in (None, "fp32")})
        if reduced:
            suffix += f" ({', '.join(reduced)})"
        names.append(f"{label} {version}{suffix}" if version else f"{label}{suffix}")
    return ", ".join(names)


def _software_stack(host: RawHost) -> str:
    versions = host.versions
    parts = []
    for key, label in (
        ("python", "Python"),
        ("loadgen", "MLPerf LoadGen"),
        ("numpy", "NumPy"),
        ("opencv", "OpenCV"),
        ("fleet", "mlperf-fleet"),
    ):
        if versions.get(key):
            parts.append(f"{label} {versions[key]}")
    kernel = _fact(host, "kernel")
    if kernel:
        parts.append(f"Linux kernel {kernel}")
    return ", ".join(parts)


def build_system_json(host: RawHost, division: str, submitter: str) -> dict[str, str]:
    """All 35 fields as strings; unknown facts stay "" for a person to fill."""
    accelerators = _accelerators(host)
    count = sum(int(a.get("count") or 1) for a in accelerators)
    sockets = _fact(host, "sockets")
    data: dict[str, str] = {name: "" for name in REQUIRED_FIELDS}
    data.update(
        division=division,
        submitter=submitter,
        system_type=host.category,
        system_name=host.system_name,
        number_of_nodes="1",
        host_processor_model_name=_text(_fact(host, "cpu_model")),
        host_processors_per_node=_text(sockets),
        host_processor_core_count=_text(_fact(host, "cores_per_socket")),
        host_memory_capacity=_memory(host),
        host_processor_frequency=f"{float(_fact(host, 'cpu_max_mhz')):.0f} MHz"
        if _fact(host, "cpu_max_mhz")
        else "",
        host_processor_caches=_text(_fact(host, "caches")),
        framework=_framework(host),
        operating_system=_text(_fact(host, "os")),
        other_software_stack=_software_stack(host),
        accelerators_per_node=str(count),
    )
    if accelerators:
        data["accelerator_model_name"] = ", ".join(sorted({str(a["name"]) for a in accelerators}))
        memories = sorted({_gb(a.get("memory_bytes")) for a in accelerators if a.get("memory_bytes")})
        data["accelerator_memory_capacity"] = ", ".join(memories)
    else:
        for name in (
            "accelerator_model_name",
            "accelerator_memory_capacity",
            *ACCELERATOR_PERSON_FIELDS,
        ):
            data[name] = "N/A"
    notes = []
    quota = host.host_facts.get("cpu_quota")
    if quota:
        notes.append(f"Benchmark limited to a CPU quota of {quota} CPUs.")
    data["hw_notes"] = " ".join(notes)
    sw_notes = [f"Run and merged with mlperf-fleet {host.versions.get('fleet', '')}".strip() + "."]
    if any(r.get("synthetic") for r in host.runs):
        sw_notes.append("Synthetic model and dataset (random weights, teacher labels): not a real result.")
    data["sw_notes"] = " ".join(sw_notes)
    data.update(_overrides(host))
    return data


def _overrides(host: RawHost) -> dict[str, str]:
    overrides = host.node.get("system_overrides") or {}
    if not isinstance(overrides, dict):
        raise SubmissionError(f"host {host.name}: fleet_system must be a mapping of systems-json fields")
    unknown = sorted(set(overrides) - KNOWN_FIELDS)
    if unknown:
        raise SubmissionError(
            f"system {host.system_name}: unknown systems-json field(s) in fleet_system: {', '.join(unknown)} "
            "(see the 35 v3.1 fields in the submission rules)"
        )
    # These come from `fleet submit` options and the inventory category, never from fleet_system.
    fixed = sorted({"division", "submitter", "system_type"} & set(overrides))
    if fixed:
        raise SubmissionError(
            f"system {host.system_name}: fleet_system may not set {', '.join(fixed)} "
            "(use fleet submit --division/--submitter and the inventory category)"
        )
    return {k: _text(v) for k, v in overrides.items()}

"""Ansible inventory -> Node objects.

Ansible's own parser reads the file (INI, YAML, group_vars/host_vars beside it), so an
inventory that works with `ansible-playbook` means the same thing here. Group membership
`edge` / `datacenter` decides a node's category and so its scenarios; `fleet_*` host vars
tune the node (see inventory/lab.example.ini for every variable).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning

DEFAULT_WORKDIR = "~/.cache/mlperf-fleet"
ACCELERATORS = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class SshTarget:
    """How to reach a node over SSH outside ansible (collection uses paramiko)."""

    host: str
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    ssh_config: str | None = None  # from `-F FILE` in ansible_ssh_common_args / ansible_ssh_args
    known_hosts: str | None = None  # from `-o UserKnownHostsFile=FILE`


@dataclass(frozen=True)
class Node:
    """One inventory host as the controller sees it."""

    name: str
    category: str  # edge | datacenter
    system_name: str
    connection: str = "ssh"  # ssh | local | ...
    ssh: SshTarget | None = None
    workdir: str = DEFAULT_WORKDIR
    python: str | None = None  # interpreter that creates the venv; None: the one ansible uses
    backend: str = ""  # fleet_backend; empty: each task's reference backend
    accelerator: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None
    system_overrides: Mapping[str, Any] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()  # every group the host is in, children resolved
    tuning: Mapping[str, Any] = field(default_factory=dict)  # fleet_tuning: RunSpec.tuning fields
    shared_host: str | None = None  # fleet_shared_host: the machine this node shares CPUs on (VMs)

    @property
    def is_local(self) -> bool:
        return self.connection == "local"


@dataclass(frozen=True)
class Inventory:
    path: Path
    nodes: tuple[Node, ...]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InventoryError(f"host {name!r} is not in inventory {self.path}")

    def subset(self, names: list[str]) -> Inventory:
        return Inventory(self.path, tuple(n for n in self.nodes if n.name in set(names)))


def load_inventory(path: str | Path, limit: list[str] | None = None) -> Inventory:
    """Parse an Ansible inventory with ansible itself; every problem is one InventoryError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InventoryError(f"inventory {path} does not exist")
    hosts = _ansible_hosts(path)
    if limit:
        unknown = sorted(set(limit) - {name for name, _, _ in hosts})
        if unknown:
            raise InventoryError(f"--limit names host(s) not in {path}: {', '.join(unknown)}")
        hosts = [h for h in hosts if h[0] in set(limit)]
    if not hosts:
        raise InventoryError(f"inventory {path} has no hosts")
    nodes = tuple(_node(name, groups, hostvars, path) for name, groups, hostvars in hosts)
    return Inventory(path=path.resolve(), nodes=nodes)


def _ansible_hosts(path: Path) -> list[tuple[str, set[str], dict[str, Any]]]:
    """(name, groups, resolved vars) per host, via ansible's InventoryManager + VariableManager."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    saved = (C.INVENTORY_UNPARSED_IS_FAILED, C.INVENTORY_ANY_UNPARSED_IS_FAILED)
    warnings = io.StringIO()
    try:
        C.INVENTORY_UNPARSED_IS_FAILED = C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
        loader = DataLoader()
        with contextlib.redirect_stderr(warnings):
            manager = InventoryManager(loader=loader, sources=[str(path)], parse=False)
            manager.parse_sources(cache=False)
            variables = VariableManager(loader=loader, inventory=manager)
            out = []
            for host in manager.get_hosts():
                hostvars = variables.get_vars(host=host, include_hostvars=False)
                templar = Templar(loader=loader, variables=hostvars)
                wanted = {k: v for k, v in hostvars.items() if k.startswith(("fleet_", "ansible_"))}
                wanted.update({k: hostvars[k] for k in ("system_name",) if k in hostvars})
                resolved = {k: _render(templar, v) for k, v in wanted.items()}
                out.append((host.name, {g.name for g in host.get_groups()}, resolved))
            return out
    except AnsibleError as exc:
        raise InventoryError(f"cannot parse inventory {path}: {_cause(warnings.getvalue(), exc)}") from None
    finally:
        C.INVENTORY_UNPARSED_IS_FAILED, C.INVENTORY_ANY_UNPARSED_IS_FAILED = saved


def _render(templar: Any, value: Any) -> Any:
    """Render `{{ }}` templates; leave a value ansible cannot render here (magic vars) as is."""
    if isinstance(value, str) and "{{" not in value:
        return str(value)
    try:
        return _plain(templar.template(value))
    except Exception:
        return _plain(value)


def _plain(value: Any) -> Any:
    """Ansible's tagged types -> plain Python (they do not survive json/pickle everywhere)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _cause(warnings: str, exc: Exception) -> str:
    """The most useful line of ansible's parse warnings (it hides the cause behind a summary)."""
    for line in warnings.splitlines():
        m = re.match(r"\[WARNING\]: Failed to parse inventory with '\w+' plugin: (.+)", line)
        if m:
            return m.group(1)
    return str(exc).splitlines()[0]


def _node(name: str, groups: set[str], hv: dict[str, Any], path: Path) -> Node:
    cats = [c for c in rules.CATEGORIES if c in groups]
    if len(cats) != 1:
        where = "both groups edge and datacenter" if cats else "neither group edge nor datacenter"
        raise InventoryError(f"host {name} in {path} is in {where}; put it in exactly one")
    accelerator = str(hv.get("fleet_accelerator", "cpu")).lower()
    if accelerator not in ACCELERATORS:
        raise InventoryError(
            f"host {name}: fleet_accelerator={accelerator!r} is not one of {', '.join(ACCELERATORS)}"
        )
    overrides = hv.get("fleet_system", {}) or {}
    if not isinstance(overrides, Mapping):
        raise InventoryError(f"host {name}: fleet_system must be a mapping of systems-json fields")
    tuning = hv.get("fleet_tuning", {}) or {}
    if isinstance(tuning, str):  # INI [group:vars] values arrive as strings
        import yaml

        with contextlib.suppress(yaml.YAMLError):
            tuning = yaml.safe_load(tuning) or {}
    known = {f.name for f in fields(Tuning)}
    if not isinstance(tuning, Mapping) or set(tuning) - known:
        bad = sorted(set(tuning) - known) if isinstance(tuning, Mapping) else [repr(tuning)]
        choices = ", ".join(sorted(known))
        raise InventoryError(
            f"host {name}: fleet_tuning must map tuning fields ({choices}); got {', '.join(bad)}"
        )
    connection = str(hv.get("ansible_connection", "ssh"))
    system_name = hv.get("fleet_system_name") or hv.get("system_name") or f"{name}_{accelerator}"
    return Node(
        name=name,
        category=cats[0],
        system_name=str(system_name),
        connection=connection,
        ssh=None if connection == "local" else _ssh_target(name, hv),
        workdir=str(hv.get("fleet_workdir") or DEFAULT_WORKDIR),
        python=_opt_str(hv.get("fleet_python")),
        backend=str(hv.get("fleet_backend") or ""),
        accelerator=accelerator,
        threads=_opt_int(name, "fleet_threads", hv.get("fleet_threads")),
        batch_size=_opt_int(name, "fleet_batch_size", hv.get("fleet_batch_size")),
        system_overrides=dict(overrides),
        groups=frozenset(groups),
        tuning=dict(tuning),
        shared_host=_opt_str(hv.get("fleet_shared_host")),
    )


def _ssh_target(name: str, hv: dict[str, Any]) -> SshTarget:
    args: list[str] = []
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args"):
        if hv.get(key):
            args += shlex.split(str(hv[key]))
    config = known_hosts = None
    for i, arg in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if arg == "-F":
            config = nxt
        elif arg.startswith("-F") and len(arg) > 2:
            config = arg[2:]
        elif arg == "-o" and nxt.lower().startswith("userknownhostsfile="):
            known_hosts = nxt.split("=", 1)[1]
    return SshTarget(
        host=str(hv.get("ansible_host") or hv.get("ansible_ssh_host") or name),
        port=_opt_int(name, "ansible_port", hv.get("ansible_port") or hv.get("ansible_ssh_port")),
        user=_opt_str(hv.get("ansible_user") or hv.get("ansible_ssh_user")),
        key_file=_opt_str(hv.get("ansible_ssh_private_key_file")),
        ssh_config=config,
        known_hosts=known_hosts,
    )


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _opt_int(host: str, var: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InventoryError(f"host {host}: {var}={value!r} is not a whole number") from None
    if number <= 0:
        raise InventoryError(f"host {host}: {var}={value!r} must be positive")
    return number

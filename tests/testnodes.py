#!/usr/bin/env python3
"""Real OpenSSH test nodes in Linux network namespaces (root only).

Each node is an `sshd` in its own network namespace (veth on a private bridge, no default
route, so no internet) and UTS namespace (own hostname), with an ephemeral host key and,
for `edge` nodes, a CFS CPU quota. Nodes share the host's filesystem; each gets its own
work directory. Everything lives under one short state directory (ssh ControlPath and
AF_UNIX paths must stay short) and nothing touches ~/.ssh.

    python tests/testnodes.py up 3 [--profiles edge,dc,dc] [--slot 0]
    python tests/testnodes.py status | stop node2 | start node2 | down

Generated in the state dir: client_key, known_hosts, ssh_config, inventory.ini, state.json.
A "slot" (0-9) keeps concurrent node sets apart: bridge flbr<slot>, subnet 10.250.<slot>.0/24.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
NODE_PYTHON = "/usr/bin/python3"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROFILES = {"edge": (0, 50), "dc": (None, None)}  # name -> (pinned cpu, quota percent)


def _run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def state_dir_for(slot: int) -> Path:
    return Path(f"/tmp/fltn{slot}")


@dataclass
class Node:
    name: str
    index: int
    ip: str
    netns: str
    veth: str
    category: str  # edge | datacenter
    cpu: int | None
    quota_pct: int | None
    dir: str
    workdir: str
    cgroups: list[str] = field(default_factory=list)

    @property
    def pidfile(self) -> Path:
        return Path(self.dir) / "sshd.pid"


@dataclass
class TestNodes:
    """A set of test nodes; `up()` creates them, `down()` removes every trace."""

    __test__ = False  # not a pytest test class

    slot: int = 0
    nodes: list[Node] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return state_dir_for(self.slot)

    @property
    def bridge(self) -> str:
        return f"flbr{self.slot}"

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.ini"

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.state / "ssh_config"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # ----- lifecycle -------------------------------------------------------------------
    def up(self, count: int, profiles: list[str] | None = None) -> TestNodes:
        if os.geteuid() != 0:
            raise SystemExit("testnodes: must run as root (network namespaces, sshd)")
        profiles = profiles or ["edge"] + ["dc"] * (count - 1)
        if len(profiles) < count:
            profiles = profiles + ["dc"] * (count - len(profiles))
        if self.state.exists():
            TestNodes.load(self.slot).down()
        self.state.mkdir(mode=0o700, parents=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        key = str(self.state / "client_key")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-tests", "-f", key)
        shutil.copy(self.state / "client_key.pub", self.state / "authorized_keys")
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"10.250.{self.slot}.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        self._save()
        for i, prof in enumerate(profiles[:count], start=1):
            cpu, quota = _parse_profile(prof)
            node_dir = self.state / f"node{i}"
            node = Node(
                name=f"node{i}",
                index=i,
                ip=f"10.250.{self.slot}.{10 + i}",
                netns=f"fl{self.slot}-node{i}",
                veth=f"fl{self.slot}v{i}",
                category="edge" if prof == "edge" or quota else "datacenter",
                cpu=cpu,
                quota_pct=quota,
                dir=str(node_dir),
                workdir=str(node_dir / "work"),
            )
            self.nodes.append(node)
            self._save()
            self._make_node(node)
        self._write_client_files()
        self._save()
        for node in self.nodes:
            self.start(node.name)
        return self

    def _make_node(self, node: Node) -> None:
        ndir = Path(node.dir)
        (ndir / "work").mkdir(parents=True)
        (ndir / "tmp").mkdir()
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", str(ndir / "host_key"))
        _run("ip", "netns", "add", node.netns)
        _run("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _run("ip", "link", "set", node.veth, "master", self.bridge)
        _run("ip", "link", "set", node.veth, "up")
        ns = ("ip", "netns", "exec", node.netns)
        _run(*ns, "ip", "addr", "add", f"{node.ip}/24", "dev", "eth0")
        _run(*ns, "ip", "link", "set", "eth0", "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        (ndir / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {node.ip}",
                    f"HostKey {ndir / 'host_key'}",
                    f"PidFile {node.pidfile}",
                    f"AuthorizedKeysFile {self.state / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 50",
                    "Subsystem sftp internal-sftp",
                    f"SetEnv FLEET_NODE={node.name} FLEET_WORKDIR={node.workdir}",
                    "",
                ]
            )
        )
        node.cgroups = _make_cgroup(f"fltn{self.slot}-{node.name}", node.cpu, node.quota_pct)

    def _write_client_files(self) -> None:
        keys = []
        cfg = []
        for node in self.nodes:
            pub = (Path(node.dir) / "host_key.pub").read_text().split()
            keys.append(f"{node.ip} {pub[0]} {pub[1]}")
            cfg += [f"Host {node.name}", f"  HostName {node.ip}", ""]
        self.known_hosts.write_text("\n".join(keys) + "\n")
        cfg += [
            "Host *",
            "  User root",
            f"  IdentityFile {self.state / 'client_key'}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {self.known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
            "  ConnectTimeout 5",
            "",
        ]
        self.ssh_config.write_text("\n".join(cfg))
        groups: dict[str, list[str]] = {"edge": [], "datacenter": []}
        for node in self.nodes:
            groups[node.category].append(
                f"{node.name} ansible_host={node.ip} fleet_workdir={node.workdir} "
                f"ansible_remote_tmp={node.dir}/tmp ansible_async_dir={node.dir}/async "
                f"fleet_system_name=test_{node.name} fleet_threads=1"
            )
        lines = []
        for group, hosts in groups.items():
            lines += [f"[{group}]", *hosts, ""]
        lines += [
            "[all:vars]",
            "ansible_user=root",
            f"ansible_python_interpreter={NODE_PYTHON}",
            f"ansible_ssh_common_args='-F {self.ssh_config}'",
            "",
        ]
        self.inventory.write_text("\n".join(lines))
        # What only a person can say about a lab (systems json): ansible reads group_vars/
        # beside the inventory, as in a real lab repository.
        (self.state / "group_vars").mkdir(exist_ok=True)
        (self.state / "group_vars" / "all.yml").write_text(TEST_LAB_SYSTEM_FIELDS)

    def start(self, name: str, timeout: float = 20.0) -> None:
        """Start (or restart) a node's sshd inside its namespaces and cgroup; wait for a login."""
        node = self.node(name)
        if _alive(node.pidfile):
            return
        node.pidfile.unlink(missing_ok=True)
        procs = [str(Path(cg) / "cgroup.procs") for cg in node.cgroups]
        cpu = node.cpu

        def enter_cgroup() -> None:  # runs in the child before exec: sshd and its sessions inherit it
            for path in procs:
                with open(path, "w") as fh:
                    fh.write(str(os.getpid()))
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        script = f"hostname {node.name} && exec {SSHD} -f {node.dir}/sshd_config -E {node.dir}/sshd.log"
        subprocess.run(
            ["ip", "netns", "exec", node.netns, "unshare", "--uts", "sh", "-c", script],
            check=True,
            preexec_fn=enter_cgroup,
        )
        deadline = time.monotonic() + timeout
        while True:
            probe = _run(
                "ssh", "-F", str(self.ssh_config), node.name, "echo $FLEET_NODE", check=False, timeout=timeout
            )
            if probe.returncode == 0 and probe.stdout.strip() == node.name:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name}: sshd did not accept a login: {probe.stderr.strip()}")
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        """Stop a node's sshd and every ssh session into it: the node becomes unreachable.

        Other processes in the node (a detached benchmark) keep running, as on a real
        machine whose ssh daemon died.
        """
        node = self.node(name)
        for pid in _netns_pids(node.netns):
            if _comm(pid) == "sshd":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        node.pidfile.unlink(missing_ok=True)

    def run_losing(self, name: str, argv: list[str], pidfile: Path, env: dict[str, str] | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a fleet command and stop node `name` while its harness runs; start it again after.

        `pidfile` is the one the bench role writes for the node's job: the node is cut off
        mid-benchmark, not before it began.
        """
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            if not harness_alive(pidfile, proc, timeout=300):
                raise AssertionError(f"{name}'s harness never started")
            self.stop(name)
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            self.start(name)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def down(self) -> None:
        for node in self.nodes:
            pids = _netns_pids(node.netns)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _run("ip", "netns", "del", node.netns, check=False)
            _run("ip", "link", "del", node.veth, check=False)
            for cg in node.cgroups:
                _rmdir_cgroup(Path(cg))
        _run("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.state, ignore_errors=True)
        self.nodes = []

    def status(self) -> list[dict]:
        return [
            {"name": n.name, "ip": n.ip, "category": n.category, "sshd": _alive(n.pidfile)}
            for n in self.nodes
        ]

    # ----- persistence -----------------------------------------------------------------
    def _save(self) -> None:
        data = {"slot": self.slot, "nodes": [asdict(n) for n in self.nodes]}
        (self.state / "state.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, slot: int = 0) -> TestNodes:
        path = state_dir_for(slot) / "state.json"
        if not path.exists():
            tn = cls(slot=slot)
            tn.nodes = []
            return tn
        data = json.loads(path.read_text())
        return cls(slot=data["slot"], nodes=[Node(**n) for n in data["nodes"]])


TEST_LAB_SYSTEM_FIELDS = """\
fleet_system:
  status: available
  host_memory_configuration: shared with the test machine
  host_storage_capacity: shared with the test machine
  host_storage_type: virtual disk
  host_networking: veth in a network namespace
  host_network_card_count: "1"
  host_networking_topology: one Linux bridge
  cooling: shared with the test machine
"""


def harness_alive(pidfile: Path, proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the harness process named in `pidfile` is alive (False if `proc` ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if b"fleet.harness" in Path(f"/proc/{int(pidfile.read_text())}/cmdline").read_bytes():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return False


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root: what "left byte-identical" is checked against."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def why_unavailable() -> str | None:
    """Why test nodes cannot run here (a pytest skip reason), or None when they can."""
    if os.geteuid() != 0:
        return "test nodes need root (network namespaces, sshd)"
    for tool in ("ip", "ssh", "ssh-keygen", "unshare"):
        if shutil.which(tool) is None:
            return f"test nodes need {tool}"
    if not os.path.exists(SSHD):
        return "test nodes need openssh-server (sshd)"
    return None


def free_slot() -> int:
    """The first slot whose bridge does not exist; claimed by creating its state dir."""
    for slot in range(1, 10):
        if Path(f"/sys/class/net/flbr{slot}").exists():
            continue
        try:
            state_dir_for(slot).mkdir(mode=0o700)
        except FileExistsError:
            continue
        state_dir_for(slot).rmdir()
        return slot
    raise RuntimeError("no free test node slot (flbr1..flbr9 all in use)")


def _parse_profile(prof: str) -> tuple[int | None, int | None]:
    if prof in PROFILES:
        return PROFILES[prof]
    cpus, _, pct = prof.partition(":")
    return (int(cpus) if cpus else None, int(pct) if pct else None)


def _make_cgroup(name: str, cpu: int | None, quota_pct: int | None) -> list[str]:
    """cgroup(s) for a CPU quota: v1 (cpu controller) or v2 (cpu.max); [] without a quota."""
    if not quota_pct:
        return []
    period = 100_000
    quota = period * quota_pct // 100
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "cgroup.subtree_control").write_text("+cpu")
        cg = CGROUP_ROOT / name
        cg.mkdir(exist_ok=True)
        (cg / "cpu.max").write_text(f"{quota} {period}")
        return [str(cg)]
    cg = CGROUP_ROOT / "cpu" / name
    cg.mkdir(exist_ok=True)
    (cg / "cpu.cfs_period_us").write_text(str(period))
    (cg / "cpu.cfs_quota_us").write_text(str(quota))
    return [str(cg)]


def _rmdir_cgroup(cg: Path) -> None:
    if not cg.exists():
        return
    deadline = time.monotonic() + 5
    while True:
        try:
            cg.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _netns_pids(netns: str) -> list[int]:
    out = _run("ip", "netns", "pids", netns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return _comm(pid) == "sshd"


def wait_port(ip: str, port: int = 22, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testnodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--slot", type=int, default=int(os.environ.get("FLEET_TESTNODES_SLOT", "0")))
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("count", type=int, nargs="?", default=3)
    up.add_argument("--profiles", default=os.environ.get("FLEET_PROFILES", ""))
    sub.add_parser("down")
    sub.add_parser("status")
    for verb in ("stop", "start"):
        sub.add_parser(verb).add_argument("node")
    args = parser.parse_args(argv)
    if args.cmd == "up":
        profiles = [p for p in args.profiles.split(",") if p] or None
        tn = TestNodes(slot=args.slot).up(args.count, profiles)
        print(f"inventory: {tn.inventory}\nssh_config: {tn.ssh_config}")
        return 0
    tn = TestNodes.load(args.slot)
    if args.cmd == "down":
        tn.down()
    elif args.cmd == "status":
        print(json.dumps(tn.status(), indent=1))
    elif args.cmd == "stop":
        tn.stop(args.node)
    elif args.cmd == "start":
        tn.start(args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collection: checksums, refusal of symlinks and escaping paths, no overwrite by partial attempts.

Real SFTP to a real sshd test node (host key checked), plus the same checks on local hosts.
A node cannot produce a `../` entry in a real directory walk, so the hostile-node tests run a
fake "python" on the node that lists whatever a compromised node might claim.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.collect import CollectResult, collect_node, merge_manifests, safe_relpath
from fleet.inventory import Node, SshTarget, load_inventory


def manifest(*runs: tuple[str, str, str]) -> str:
    return json.dumps(
        {
            "manifest_version": 1,
            "runs": [{"task": t, "scenario": s, "mode": "performance", "outcome": o} for t, s, o in runs],
        }
    )


def make_results(root: Path, runs: list[tuple[str, str, str]], marker: str = "x") -> None:
    for task, scen, _ in runs:
        d = root / task / scen / "performance" / "run_1"
        d.mkdir(parents=True, exist_ok=True)
        (d / "mlperf_log_summary.txt").write_text(f"{task} {scen} {marker}\n")
    (root / "manifest.json").write_text(manifest(*runs))


def local_node(name: str = "local1") -> Node:
    return Node(name=name, category="edge", system_name=f"{name}_cpu", connection="local")


@pytest.mark.parametrize(
    "rel, ok",
    [
        ("a/b.txt", True),
        ("manifest.json", True),
        ("../x", False),
        ("a/../../x", False),
        ("/etc/passwd", False),
        ("a//b", False),
        ("./a", False),
        ("", False),
        ("a\\..\\b", False),
    ],
)
def test_safe_relpath(rel, ok):
    assert (safe_relpath(rel) is not None) is ok


def test_local_collect_refuses_symlinks_and_verifies(tmp_path):
    out = tmp_path / "node" / "out"
    make_results(out, [("resnet50", "Offline", "ok")])
    (tmp_path / "secret.txt").write_text("controller secret\n")
    (out / "resnet50" / "Offline" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (out / "linkdir").symlink_to(tmp_path)
    raw = tmp_path / "raw"
    res = collect_node(local_node(), str(out), raw, rerun={("resnet50", "Offline")})
    assert res.ok, res.error
    assert res.files == 2
    assert sorted(r.split(" ")[0] for r in res.refused) == ["linkdir", "resnet50/Offline/leak.txt"]
    host = raw / "local1"
    assert (
        host / "resnet50/Offline/performance/run_1/mlperf_log_summary.txt"
    ).read_text() == "resnet50 Offline x\n"
    assert not any(p.is_symlink() for p in host.rglob("*"))
    assert not list(raw.glob(".*")), "staging dirs are cleaned up"


def test_partial_attempt_never_overwrites_completed_jobs(tmp_path):
    out = tmp_path / "out"
    raw = tmp_path / "raw"
    runs = [("resnet50", "SingleStream", "ok"), ("resnet50", "Offline", "failed")]
    make_results(out, runs, marker="first")
    assert collect_node(
        local_node(), str(out), raw, rerun={("resnet50", "SingleStream"), ("resnet50", "Offline")}
    ).ok
    # The node lost its results (say, a wiped work dir); the resume reran only Offline.
    subprocess.run(["rm", "-rf", str(out)], check=True)
    make_results(out, [("resnet50", "Offline", "ok")], marker="second")
    assert collect_node(local_node(), str(out), raw, rerun={("resnet50", "Offline")}).ok
    host = raw / "local1"
    ss = host / "resnet50/SingleStream/performance/run_1/mlperf_log_summary.txt"
    off = host / "resnet50/Offline/performance/run_1/mlperf_log_summary.txt"
    assert ss.read_text().endswith("first\n") and off.read_text().endswith("second\n")
    merged = json.loads((host / "manifest.json").read_text())
    assert {(r["scenario"], r["outcome"]) for r in merged["runs"]} == {
        ("SingleStream", "ok"),
        ("Offline", "ok"),
    }


def test_failed_collection_keeps_earlier_results(tmp_path):
    out = tmp_path / "out"
    raw = tmp_path / "raw"
    make_results(out, [("resnet50", "Offline", "ok")])
    assert collect_node(local_node(), str(out), raw, rerun={("resnet50", "Offline")}).ok
    before = sorted(p.relative_to(raw) for p in raw.rglob("*"))
    res = collect_node(local_node(), str(out), raw, rerun=set(), python="/bin/false")
    assert not res.ok and res.error
    assert sorted(p.relative_to(raw) for p in raw.rglob("*")) == before


def test_merge_manifests_prefers_new_for_rerun_jobs():
    old = {
        "host": {"h": 1},
        "runs": [
            {"task": "t", "scenario": "A", "outcome": "ok"},
            {"task": "t", "scenario": "B", "outcome": "failed"},
        ],
    }
    new = {
        "host": {"h": 2},
        "runs": [
            {"task": "t", "scenario": "B", "outcome": "ok"},
            {"task": "t", "scenario": "A", "outcome": "failed"},
        ],
    }
    merged = merge_manifests(old, new, {("t", "B")})
    assert merged["host"] == {"h": 2}
    assert [(r["scenario"], r["outcome"]) for r in merged["runs"]] == [("A", "ok"), ("B", "ok")]
    assert merge_manifests(None, new, set()) is new
    assert merge_manifests(old, None, {("t", "B")})["runs"] == [old["runs"][0]]


# ---------------------------------------------------------------------------------------
# Real SFTP against a test node.


def ssh_node(testnodes, name: str) -> Node:
    return load_inventory(testnodes.inventory).node(name)


def node_dir(testnodes, name: str, sub: str) -> Path:
    path = Path(testnodes.node(name).workdir) / "collect-test" / sub
    subprocess.run(["rm", "-rf", str(path)], check=True)
    path.mkdir(parents=True)
    return path


def lying_python(where: Path, transform: str) -> Path:
    """A "python" for the node that runs the real listing, then rewrites it (`real`) first."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "liar.py").write_text(
        "import json, subprocess, sys\n"
        "proc = subprocess.run(['/usr/bin/python3'] + sys.argv[1:], capture_output=True, text=True)\n"
        "real = json.loads(proc.stdout)\n"
        f"{transform}\n"
        "print(json.dumps(real))\n"
    )
    wrapper = where / "python"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {where / "liar.py"} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.integration
def test_sftp_collect_verifies_and_refuses(testnodes, tmp_path):
    out = node_dir(testnodes, "node2", "out")
    make_results(out, [("resnet50", "Server", "ok"), ("resnet50", "Offline", "ok")])
    (out / "resnet50" / "Server" / "passwd").symlink_to("/etc/passwd")
    (out / "big.bin").write_bytes(bytes(range(256)) * 8192)
    node = ssh_node(testnodes, "node2")
    res = collect_node(
        node, str(out), tmp_path / "raw", rerun={("resnet50", "Server")}, python="/usr/bin/python3"
    )
    assert res.ok, res.error
    assert res.files == 4 and res.refused == ["resnet50/Server/passwd (symlink, not a regular file)"]
    got = tmp_path / "raw" / "node2"
    assert (got / "big.bin").read_bytes() == (out / "big.bin").read_bytes()
    assert not (got / "resnet50/Server/passwd").exists()


@pytest.mark.integration
def test_hostile_listing_cannot_escape(testnodes, tmp_path):
    out = node_dir(testnodes, "node3", "out")
    make_results(out, [("resnet50", "Offline", "ok")])
    claims = [
        ["../../escape.txt", "file", 5, "0" * 64],
        ["/tmp/abs.txt", "file", 5, "0" * 64],
        ["resnet50/../../up.txt", "file", 5, "0" * 64],
    ]
    wrapper = lying_python(out.parent / "liar1", f"real['files'] += {claims!r}")
    raw = tmp_path / "deep" / "raw"
    res = collect_node(
        ssh_node(testnodes, "node3"), str(out), raw, rerun={("resnet50", "Offline")}, python=str(wrapper)
    )
    assert res.ok, res.error
    assert len(res.refused) == 3 and all("outside the results directory" in r for r in res.refused)
    everything = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(
        str(p).startswith("deep/raw/node3") or p in {Path("deep"), Path("deep/raw")} for p in everything
    )


@pytest.mark.integration
def test_tampered_file_is_rejected_and_nothing_lands(testnodes, tmp_path):
    out = node_dir(testnodes, "node2", "tamper")
    make_results(out, [("resnet50", "Offline", "ok")])
    wrapper = lying_python(
        out.parent / "liar2", "for f in real['files']:\n    if f[0] == 'manifest.json': f[3] = 'f' * 64"
    )
    res = collect_node(
        ssh_node(testnodes, "node2"), str(out), tmp_path / "raw", rerun=set(), python=str(wrapper)
    )
    assert not res.ok and "changed in transit" in res.error
    assert not (tmp_path / "raw" / "node2").exists()


@pytest.mark.integration
def test_unknown_host_key_is_rejected(testnodes, tmp_path):
    node = ssh_node(testnodes, "node2")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    hostile = Node(**{**node.__dict__, "ssh": SshTarget(**{**node.ssh.__dict__, "known_hosts": str(empty)})})
    res = collect_node(hostile, "/tmp", tmp_path / "raw", rerun=set())
    assert isinstance(res, CollectResult) and not res.ok
    assert "not found in known_hosts" in res.error

"""Nothing private from the lab's inventory may appear anywhere in an assembled tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rawtree

from fleet.errors import SubmissionError
from fleet.submission.assemble import assemble_submission
from fleet.submission.privacy import LeakScanner


def _occurs(secret: str, data: bytes) -> bool:
    # As a word: "node1" inside the chosen system name "node1_cpu" is that name, not a leak.
    return re.search(rb"(?<![\w-])" + re.escape(secret.encode()) + rb"(?![\w-])", data) is not None


def test_no_inventory_secret_appears_in_any_file_or_name(make_run, tmp_path):
    hosts = rawtree.three_hosts()
    hosts[1].user, hosts[1].key_path, hosts[1].workdir = "opsuser", "/root/keys/id_lab", "/data/bench/fleet"
    run = make_run(hosts)
    root = assemble_submission(run, "ExampleOrg", division="open")
    secrets = {s for host in hosts for s in host.secrets()} | {str(run.resolve())}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 100
    for path in root.rglob("*"):
        name = str(path.relative_to(root)).encode()
        data = path.read_bytes() if path.is_file() else b""
        for secret in secrets:
            assert not _occurs(secret, name), f"{secret!r} in the name {path}"
            assert not _occurs(secret, data), f"{secret!r} in {path}"
    # The chosen system names are public and do appear.
    assert (root / "open/ExampleOrg/systems/node1_cpu.json").is_file()


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("resnet50/Offline/performance/run_1/user.conf", "# written on lab-node1.corp.example\n"),
        (
            "resnet50/Offline/accuracy/accuracy.txt",
            "accuracy=100.000%, good=256, total=256\nlog: /srv/fleet-work/x\n",
        ),
        ("resnet50/SingleStream/TEST04/verify_performance.txt", "TEST PASS\nhost 192.0.2.11\n"),
    ],
)
def test_a_leak_in_node_output_stops_the_assembly(make_run, where, text):
    run = make_run(
        [rawtree.Host("node1", "node1_cpu", address="192.0.2.11", hostname="lab-node1.corp.example")]
    )
    (run / "raw/node1" / where).write_text(text)
    with pytest.raises(SubmissionError, match="private data would be published"):
        assemble_submission(run, "ExampleOrg", division="open")
    assert not (run / "submission").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_scanner_matches_whole_words_only():
    scanner = LeakScanner({"node1": "host", "10.0.0.5": "ip", "/home/alice": "path"})
    assert scanner.scan(b"system node1_cpu at 10.0.0.50 in /home/alice2") == []
    assert scanner.scan(b"ssh node1 (10.0.0.5): /home/alice/work") == ["/home/alice", "10.0.0.5", "node1"]


def test_public_system_name_equal_to_host_name_is_allowed(make_run):
    run = make_run([rawtree.Host("benchbox", "benchbox")])
    root = assemble_submission(run, "ExampleOrg", division="open")
    assert Path(root / "open/ExampleOrg/systems/benchbox.json").is_file()

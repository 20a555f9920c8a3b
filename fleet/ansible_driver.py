"""ansible-runner, driven from Python: one private data dir per stage, events to callbacks.

The only module that imports ansible_runner. It owns the environment ansible runs in: host
key checking on (ansible-runner turns it off unless told otherwise), short ControlPath and
temp dirs, ANSIBLE_HOME inside the run dir, and the venv's bin/ on PATH so a non-activated
controller venv finds `ansible-playbook`. Stage outcomes come back per host, together with
the raw events the orchestrator interprets (job results, published facts).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.harness.errors import one_line
from fleet.resources import resource_dir

OK, FAILED, UNREACHABLE, NOT_RUN = "ok", "failed", "unreachable", "not run"

EventCallback = Callable[[str, dict[str, Any]], None]  # (stage, event dict)


@dataclass
class HostOutcome:
    """How one host came out of one stage."""

    host: str
    status: str = NOT_RUN
    message: str | None = None
    task: str | None = None  # the task that failed it
    published: dict[str, Any] = field(default_factory=dict)  # set_fact results named *_publish


@dataclass
class StageResult:
    stage: str
    hosts: dict[str, HostOutcome]
    rc: int
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    private_data_dir: Path

    def ok_hosts(self) -> list[str]:
        return [h for h, o in self.hosts.items() if o.status == OK]


class AnsibleDriver:
    """Runs the fleet's playbooks against an inventory, one stage at a time."""

    def __init__(
        self,
        run_dir: Path,
        inventory: Path,
        on_event: EventCallback | None = None,
        verbosity: int = 0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.inventory = Path(inventory)
        self.on_event = on_event
        self.verbosity = verbosity
        self.playbooks = resource_dir("playbooks")
        self.roles = resource_dir("roles")
        # ssh's ControlPath must stay under ~100 chars: a short dir in /tmp, not the run dir.
        self.control_dir = Path(tempfile.mkdtemp(prefix="flcp-", dir="/tmp"))
        atexit.register(shutil.rmtree, self.control_dir, True)  # also when close() is never called
        self._attempt = 0
        self._cancel = threading.Event()

    # ----- environment --------------------------------------------------------------------
    def envvars(self, forks: int) -> dict[str, str]:
        home = self.run_dir / "ansible" / ".home"
        tmp = self.run_dir / "ansible" / ".tmp"
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        # The strategy loop polls its workers every internal_poll_interval (1 ms by default,
        # settable only in a config file): ~11 % of a core for the whole of a long bench wait,
        # taken from the benchmarks when the controller is also a node. 50 ms costs ~1 %.
        cfg = self.run_dir / "ansible" / "ansible.cfg"
        cfg.write_text("[defaults]\ninternal_poll_interval = 0.05\n")
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])
        return {
            "PATH": path,
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(tmp),
            "ANSIBLE_REMOTE_TEMP": "~/.ansible/tmp",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
            "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_TIMEOUT": "15",
            "ANSIBLE_FORKS": str(max(1, forks)),
            "ANSIBLE_ROLES_PATH": str(self.roles),
            "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
        }

    # ----- running ------------------------------------------------------------------------
    def run_stage(
        self,
        stage: str,
        hosts: Iterable[str],
        extravars: dict[str, Any] | None = None,
        playbook: str | None = None,
        timeout: int | None = None,
    ) -> StageResult:
        """Run `playbooks/<stage>.yml` on `hosts` at once (forks = hosts)."""
        import ansible_runner

        hosts = list(hosts)
        outcomes = {h: HostOutcome(h) for h in hosts}
        pdd = self.run_dir / "ansible" / stage
        pdd.mkdir(parents=True, exist_ok=True)
        self._attempt += 1
        ident = f"{self._attempt:02d}"
        if not hosts:
            return StageResult(stage, outcomes, 0, "successful", pdd)

        def handle(event: dict[str, Any]) -> bool:
            self._record(outcomes, event)
            if self.on_event is not None:
                with contextlib.suppress(Exception):  # a display problem must never stop a run
                    self.on_event(stage, event)
            return True

        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(self.playbooks),
            playbook=str(self.playbooks / (playbook or f"{stage}.yml")),
            inventory=[str(self.inventory)],
            limit=",".join(hosts),
            extravars=extravars or {},
            envvars=self.envvars(len(hosts)),
            forks=max(1, len(hosts)),
            ident=ident,
            quiet=True,
            verbosity=self.verbosity or None,
            event_handler=handle,
            cancel_callback=self._cancel.is_set,
            timeout=timeout,
            settings={"suppress_ansible_output": True},
        )
        for outcome in outcomes.values():
            if outcome.status == NOT_RUN and runner.status == "successful":
                outcome.status = OK
            elif outcome.status == NOT_RUN:
                outcome.status = FAILED
                outcome.message = outcome.message or _runner_failure(runner, pdd, ident)
        return StageResult(stage, outcomes, runner.rc, runner.status, pdd)

    @staticmethod
    def _record(outcomes: dict[str, HostOutcome], event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "playbook_on_stats":
            for name, outcome in outcomes.items():
                if outcome.status != NOT_RUN:
                    continue
                if name in (data.get("dark") or {}):
                    outcome.status = UNREACHABLE
                elif name in (data.get("failures") or {}):
                    outcome.status = FAILED
                elif any(
                    name in (data.get(k) or {}) for k in ("ok", "changed", "skipped", "ignored", "rescued")
                ):
                    outcome.status = OK
            return
        if host not in outcomes:
            return
        outcome = outcomes[host]
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            facts = res.get("ansible_facts") or {}
            outcome.published.update({k: v for k, v in facts.items() if k.endswith("_publish")})
        elif kind == "runner_on_unreachable":
            outcome.status = UNREACHABLE
            outcome.task = data.get("task")
            outcome.message = _message(res) or "host unreachable"
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            outcome.status = FAILED
            outcome.task = data.get("task")
            outcome.message = _message(res) or "task failed"

    def cancel(self) -> None:
        """Ask a running stage to stop (Ctrl-C); ansible-runner then ends its process group."""
        self._cancel.set()

    def close(self) -> None:
        """Stop the ssh master connections this run opened and remove their sockets."""
        for sock in self.control_dir.glob("*"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "fleet-control"],
                    capture_output=True,
                    timeout=5,
                    check=False,
                )
        shutil.rmtree(self.control_dir, ignore_errors=True)


# Ansible's own words for "see the output": never the message when the node said more.
_GENERIC = ("non-zero return code", "One or more items failed", "MODULE FAILURE", "")


def _message(res: dict[str, Any]) -> str:
    """One line saying why a task failed, in the node's own words where it gave any.

    A loop's failure is its first failed item's (`item <label>: ...`), not Ansible's "One or
    more items failed"; a command's is the last line it wrote to stderr (else stdout), not
    "non-zero return code"; then msg, then the exit code.
    """
    items = res.get("results")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("failed"):
                label = item.get("_ansible_item_label", item.get("item"))
                if isinstance(label, dict):
                    label = label.get("task") or label.get("name") or json.dumps(label, sort_keys=True)[:80]
                inner = _message(item)
                return " ".join(f"item {label}: {inner}".split())[:500]
    msg = res.get("msg") or ""
    msg = msg if isinstance(msg, str) else json.dumps(msg)[:300]
    said = _last_line(res.get("stderr")) or (_last_line(res.get("stdout")) if res.get("rc") else "")
    if said and msg.strip() in _GENERIC:
        msg = said
    elif said and said not in msg:
        msg = f"{msg}: {said}"
    elif not msg and res.get("rc") is not None:
        msg = f"exit code {res.get('rc')}"
    return one_line(msg, 500)


def _last_line(text: Any) -> str:
    """The last non-blank line of a command's output ("" for none)."""
    lines = [ln for ln in str(text or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _runner_failure(runner: Any, pdd: Path, ident: str) -> str:
    """Why ansible-runner failed before a host reported anything (bad playbook, no ansible)."""
    stdout = pdd / "artifacts" / ident / "stdout"
    tail = ""
    with contextlib.suppress(OSError):
        lines = [ln for ln in stdout.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln or "error" in ln.lower()]
        tail = (errors or lines or [""])[-1]
    return f"ansible-playbook {runner.status} (rc {runner.rc}) {tail}".strip()

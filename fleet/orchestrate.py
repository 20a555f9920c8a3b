"""Stages across nodes, all at once; a failed node is an outcome, not a crash.

    state = execute(run_dir, inventory, specs, settings)      # specs: host -> [RunSpec, ...]

Each node gets a list of RunSpecs (several tasks run one after another on it; `fleet sweep`
and `fleet tune` pass their own lists). Stages: provision -> (wheelhouse on the controller)
-> deploy -> assets -> bench -> collect. Every stage runs on all remaining nodes at once
(forks = nodes); a node that fails a stage drops out with its jobs marked failed at that
stage, and the others carry on to the end. A job is one harness invocation (one task, one
scenario, all its modes); run.json records each job's outcome, and `execute(..., state=...)`
reruns only the jobs that are not ok, keeping everything already collected.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet import collect as collect_mod
from fleet import wheelhouse
from fleet.ansible_driver import OK as HOST_OK
from fleet.ansible_driver import AnsibleDriver, StageResult
from fleet.artifacts import StoredAssets, stage_task
from fleet.config import RunSettings
from fleet.errors import FleetError, RunStateError
from fleet.harness.cli import EXIT_INFEASIBLE
from fleet.harness.jsonfile import write_json
from fleet.harness.manifest import entry_key
from fleet.harness.spec import RunSpec
from fleet.inventory import Inventory, Node
from fleet.plan import Job, job_spec, jobs_of
from fleet.progress import Progress, parse_node_status
from fleet.runstate import FAILED, INFEASIBLE, OK, PENDING, RUNNING, JobState, NodeState, RunState, now

JOB_START = "Job start "  # bench task names (roles/bench/tasks/job.yml) the events are read from
JOB_WAIT = "Job wait "
JOB_RESULT = "Job result "
# How often a node reports what its harness runs now (progress, one raw ssh command a report).
STATUS_EVERY_S = 12


def status_every_s() -> int:
    """STATUS_EVERY_S, or FLEET_STATUS_EVERY_S where set (tests shorten it to see several reports)."""
    try:
        return max(1, int(os.environ.get("FLEET_STATUS_EVERY_S", STATUS_EVERY_S)))
    except ValueError:
        return STATUS_EVERY_S


def new_run_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def new_state(
    run_id: str, settings: RunSettings, inventory: Inventory, specs: Mapping[str, list[RunSpec]]
) -> RunState:
    """A fresh run.json state: every job pending."""
    jobs = {
        job.id: JobState(job.id, job.host, job.task, job.scenario, list(job.modes), repeat=job.repeat)
        for job in jobs_of(specs, settings.repeats)
    }
    nodes = {n.name: NodeState(n.name, n.category, n.system_name) for n in inventory if n.name in specs}
    return RunState(
        run_id=run_id,
        settings=settings.to_dict(),
        specs={h: [asdict(s) for s in ss] for h, ss in specs.items()},
        jobs=jobs,
        nodes=nodes,
    )


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """One controller per run directory at a time."""
    with open(run_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunStateError(f"{run_dir} is in use by another fleet process") from None
        yield


def execute(
    run_dir: Path,
    inventory: Inventory,
    specs: Mapping[str, list[RunSpec]] | None,
    settings: RunSettings,
    *,
    state: RunState | None = None,
    progress: Progress | None = None,
    verbosity: int = 0,
    commands: Mapping[str, Sequence[str]] | None = None,
) -> RunState:
    """Run (or resume) every job that is not ok; returns the updated state (saved as run.json).

    `commands`: job id -> the harness subcommand and its options for that job (default
    `run`); `fleet tune` sends `tune --budget-s N ...`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is None:
        if specs is None:
            raise RunStateError("execute() needs specs for a new run")
        state = new_state(run_dir.name, settings, inventory, specs)
    (run_dir / "plan.json").write_text(json.dumps(state.specs, indent=2) + "\n")
    state.path = run_dir / "run.json"
    with locked(run_dir):
        runner = _Run(run_dir, inventory, settings, state, progress, verbosity, commands)
        try:
            runner.go()
        finally:
            runner.close()
    return state


class _Run:
    def __init__(
        self,
        run_dir: Path,
        inventory: Inventory,
        settings: RunSettings,
        state: RunState,
        progress: Progress | None,
        verbosity: int,
        commands: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.commands = {job_id: list(argv) for job_id, argv in (commands or {}).items()}
        self.inventory = inventory
        self.settings = settings
        self.state = state
        self.todo = [j for j in state.jobs.values() if j.status != OK]
        self.hosts = list(dict.fromkeys(j.host for j in self.todo))
        self.progress = progress or Progress(self.hosts, live=False, stream=open(os.devnull, "w"))  # noqa: SIM115
        self.driver = AnsibleDriver(run_dir, inventory.path, on_event=self._on_event, verbosity=verbosity)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fleet")
        self.deploy_info: dict[str, dict[str, Any]] = {}
        self.assets: dict[str, dict[str, tuple[str, str]]] = {}  # host -> task -> (model, dataset)
        self.bench_rc: dict[str, tuple[int | None, str]] = {}  # job id -> (rc, error line)
        self.attempted: dict[str, list[JobState]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.driver.close()

    # ----- flow -------------------------------------------------------------------------
    def go(self) -> None:
        started = time.monotonic()
        attempt = {"started": now(), "jobs": [j.id for j in self.todo]}
        self.state.attempts.append(attempt)
        for job in self.todo:
            job.status, job.stage, job.error = PENDING, "", None
        for host in self.hosts:
            self.progress.totals(host, len(self.state.jobs_of(host)))
            self.state.nodes[host].error = None
        self.state.save()
        if not self.todo:
            attempt.update(finished=now(), wall_s=0.0)
            self.state.save()
            return
        # The controller-side builds overlap with provisioning.
        wheel: Future = self.pool.submit(wheelhouse.build_project_wheel, Path(self.settings.cache_dir))
        deps: dict[tuple[wheelhouse.Target, tuple[str, ...]], Future] = {
            (wheelhouse.Target.controller(), extras): self.pool.submit(
                wheelhouse.prepare_deps, Path(self.settings.cache_dir), None, None, extras
            )
            for extras in {self._extras(h) for h in self.hosts}
        }
        store: dict[str, Future] = {}
        if not self.settings.uses_synthetic:
            for task in self.settings.tasks:
                store[task] = self.pool.submit(stage_task, Path(self.settings.artifacts or ""), task,
                                               Path(self.settings.cache_dir))  # fmt: skip
        stages: dict[str, float] = {}
        attempt["stages"] = stages
        try:
            alive = self._timed(stages, "provision", self.provision, self.hosts)
            alive = self.refuse_unfit(alive)
            alive = self._timed(stages, "deploy", self.deploy, alive, wheel, deps)
            alive = self._timed(stages, "assets", self.stage_assets, alive, store)
            self._timed(stages, "bench", self.bench_all, alive)
        finally:
            reached = [h for h in self.hosts if self.state.nodes[h].workdir and h in self.attempted]
            self._timed(stages, "collect", self.collect, reached)
            for job in self.todo:
                if job.status in (PENDING, RUNNING):
                    self._fail_job(job, job.stage or "bench", job.error or "did not run")
            for host in self.hosts:
                jobs = self.state.jobs_of(host)
                self.progress.node_done(host, "ok" if all(j.status == OK for j in jobs) else "FAILED")
            attempt.update(finished=now(), wall_s=round(time.monotonic() - started, 2))
            self.state.save()

    def _extras(self, host: str) -> tuple[str, ...]:
        """The wheelhouse extras `host` needs: its jobs' tasks and backends decide (pytorch brings torch).

        Synthetic assets are made on the node in the task's own model format, so a node on
        another backend (the null backend) also gets the libraries that write that format."""
        from fleet.harness.tasks import task_class

        jobs = [(spec["task"], spec["backend"]) for spec in self.state.specs[host]]
        if self.settings.uses_synthetic:
            jobs += [(task, task_class(task).model_backends[0]) for task, _ in jobs]
        return wheelhouse.extras_for(jobs)

    # ----- stages -----------------------------------------------------------------------
    @staticmethod
    def _timed(stages: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
        """Run one stage and record its wall time in the attempt (run.json: attempts[].stages)."""
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            stages[name] = round(time.monotonic() - t0, 2)

    def _stage(self, stage: str, hosts: list[str], extravars: dict[str, Any] | None = None) -> list[str]:
        """Run one stage; fail the jobs of hosts that did not come through. Returns the rest."""
        if not hosts:
            return []
        for host in hosts:
            self.progress.stage(host, stage)
        result: StageResult = self.driver.run_stage(stage, hosts, extravars)
        alive = []
        for host in hosts:
            outcome = result.hosts[host]
            if outcome.status == HOST_OK:
                self.state.nodes[host].stage = stage
                alive.append(host)
            else:
                self._fail_node(host, stage, f"{outcome.status}: {outcome.message or 'no details'}")
        self.state.save()
        return alive

    def provision(self, hosts: list[str]) -> list[str]:
        for host in hosts:
            self.progress.stage(host, "provision")
        result = self.driver.run_stage("provision", hosts)
        alive = []
        for host in hosts:
            outcome = result.hosts[host]
            info = outcome.published.get("node_base_publish")
            if outcome.status != HOST_OK or not isinstance(info, dict):
                self._fail_node(host, "provision", f"{outcome.status}: {outcome.message or 'no facts'}")
                continue
            node = self.state.nodes[host]
            node.stage, node.workdir = "provision", str(info["workdir"])
            node.facts = _clean_facts(info.get("facts") or {})
            node.facts["python"] = str(info.get("python_version", ""))
            self.deploy_info[host] = {"workdir": node.workdir, "venv_python": str(info["venv_python"])}
            alive.append(host)
        self.state.save()
        return alive

    def refuse_unfit(self, hosts: list[str]) -> list[str]:
        """Jobs whose model the host's memory cannot hold end here, INFEASIBLE, in one line each
        (harness/capacity.py); a host left with no job goes no further. Only models in the
        artifact store are known here: synthetic ones are made, and checked, on the node."""
        from fleet.artifacts import asset_names
        from fleet.harness.capacity import memory_refusal

        if self.settings.uses_synthetic:
            return hosts
        kept = []
        for host in hosts:
            memory_mb = self.state.nodes[host].facts.get("memory_mb")
            # GPU memory is not in the facts: on a GPU host the node's backend checks it.
            if not isinstance(memory_mb, (int, float)) or self.inventory.node(host).accelerator != "cpu":
                kept.append(host)
                continue
            refused: dict[str, str] = {}
            for job in (j for j in self.todo if j.host == host and j.task not in refused):
                task_dir = Path(self.settings.artifacts or "") / job.task
                try:
                    model = task_dir / asset_names(task_dir, job.task)[0]
                except FleetError:
                    continue  # staging the assets says what is wrong
                why = memory_refusal(host, job.task, model, self._spec_of(job).tuning.precision or "fp32",
                                     int(memory_mb) * 2**20)
                if why:
                    refused[job.task] = why
            for job in (j for j in self.todo if j.host == host and j.task in refused):
                job.status, job.stage, job.error, job.finished = INFEASIBLE, "plan", refused[job.task], now()
                self.progress.job_finished(host, job.id, False, refused[job.task], "INFEASIBLE")
            if any(j.status == PENDING for j in self.todo if j.host == host):
                kept.append(host)
        self.state.save()
        return kept

    def deploy(
        self, hosts: list[str], wheel: Future, deps: dict[tuple[wheelhouse.Target, tuple[str, ...]], Future]
    ) -> list[str]:
        try:
            project = wheel.result()
        except FleetError as exc:
            for host in hosts:
                self._fail_node(host, "deploy", str(exc))
            return []
        ready = []
        for host in hosts:
            facts = self.state.nodes[host].facts
            target = wheelhouse.Target(facts.get("python") or "", str(facts.get("architecture") or "x86_64"))
            key = (target, self._extras(host))
            if key not in deps:
                deps[key] = self.pool.submit(
                    wheelhouse.prepare_deps, Path(self.settings.cache_dir), target, None, key[1]
                )
            try:
                wh = deps[key].result()
            except FleetError as exc:
                self._fail_node(host, "deploy", str(exc))
                continue
            self.deploy_info[host]["deploy"] = {
                "deps_tar": str(wh.tar),
                "deps_key": wh.key,
                "pip_wheel": wh.pip_wheel,
                "requirements": list(wh.requirements),
                "wheel": str(project.path),
                "wheel_key": project.key,
            }
            ready.append(host)
        return self._stage("deploy", ready, {"fleet_nodes": {h: self.deploy_info[h] for h in ready}})

    def stage_assets(self, hosts: list[str], store: dict[str, Future]) -> list[str]:
        stored: dict[str, StoredAssets] = {}
        for task, fut in store.items():
            try:
                stored[task] = fut.result()
            except FleetError as exc:
                for host in hosts:
                    self._fail_node(host, "assets", str(exc))
                return []
        s = self.settings
        for host in hosts:
            base = f"{self.deploy_info[host]['workdir']}/assets"
            items = []
            for task in self._tasks_of(host):
                if task in stored:
                    a = stored[task]
                    d = f"{base}/{task}-{a.key}"
                    items.append(
                        {"task": task, "dir": d, "synthetic": False, "tar": str(a.tar), "key": a.key}
                    )
                    self.assets.setdefault(host, {})[task] = (f"{d}/{a.model}", f"{d}/{a.dataset}")
                else:
                    samples = s.synthetic_samples_for(task)
                    d = f"{base}/{task}-synthetic-{s.synthetic_variant}-{samples or 'default'}"
                    items.append({"task": task, "dir": d, "synthetic": True, "variant": s.synthetic_variant,
                                  "samples": samples})  # fmt: skip
            self.deploy_info[host]["assets"] = items
        for host in hosts:
            self.progress.stage(host, "assets")
        result = self.driver.run_stage(
            "assets", hosts, {"fleet_nodes": {h: self.deploy_info[h] for h in hosts}}
        )
        alive = []
        for host in hosts:
            outcome = result.hosts[host]
            published = outcome.published.get("assets_publish") or {}
            if outcome.status != HOST_OK:
                self._fail_node(host, "assets", f"{outcome.status}: {outcome.message or 'no details'}")
                continue
            for item in self.deploy_info[host]["assets"]:
                if not item["synthetic"]:
                    continue
                marker = published.get(item["task"]) or {}
                try:
                    model, dataset = marker["model"]["file"], marker["dataset"]["dir"]
                except (KeyError, TypeError):
                    self._fail_node(host, "assets", f"synthetic {item['task']} assets have no usable marker")
                    break
                self.assets.setdefault(host, {})[item["task"]] = (
                    f"{item['dir']}/{model}",
                    f"{item['dir']}/{dataset}",
                )
            else:
                self.state.nodes[host].stage = "assets"
                alive.append(host)
        self.state.save()
        return alive

    def bench_all(self, hosts: list[str]) -> None:
        """Bench every host: all at once, except nodes that share CPUs under `one-at-a-time`,
        which take turns (sharing.waves); each node records whom it shares with and beside whom
        it measured."""
        from fleet.sharing import ONE_AT_A_TIME, partners, sharing_groups, sharing_line, waves

        facts = {h: self.state.nodes[h].facts for h in hosts}
        declared = {h: self.inventory.node(h).shared_host for h in hosts}
        groups = sharing_groups(facts, declared)
        serial = self.settings.shared_hardware == ONE_AT_A_TIME
        others = partners(groups)
        for host in hosts:
            node = self.state.nodes[host]
            node.shares_with = others.get(host, [])
            node.benched_with = [] if serial else node.shares_with
        for group in groups:
            self.progress.note(sharing_line(group, facts, self.settings.shared_hardware))
        for wave in waves(hosts, groups) if serial else [hosts]:
            self.bench(wave)

    def bench(self, hosts: list[str]) -> None:
        by_host: dict[str, list[dict[str, Any]]] = {}
        for host in hosts:
            jobs = []
            for job in (j for j in self.todo if j.host == host):
                spec = self._spec_of(job)
                model, dataset = self.assets[host][job.task]
                planned = _planned(job)
                one = job_spec(spec, planned, model, dataset)
                one.run_id = self.state.run_id
                jobs.append(
                    {
                        "id": job.id,
                        "slug": planned.slug,
                        "attempt": job.attempts + 1,
                        "spec": json.loads(one.to_json()),
                        "command": self.commands.get(job.id, ["run"]),
                    }
                )
            by_host[host] = jobs
            self.attempted[host] = [j for j in self.todo if j.host == host]
            self.deploy_info[host]["jobs"] = jobs
        extravars = {
            "fleet_run_id": self.state.run_id,
            "fleet_nodes": {h: self.deploy_info[h] for h in hosts},
            "bench_timeout_s": self.settings.job_timeout_s(),
            "bench_status_every_s": status_every_s(),
        }
        for host in hosts:
            self.progress.stage(host, "bench")
        result = self.driver.run_stage("bench", hosts, extravars)
        for host in hosts:
            outcome = result.hosts[host]
            if outcome.status != HOST_OK:
                why = f"{outcome.status} during bench: {outcome.message or 'no details'}"
                self.state.nodes[host].error = why
                self.progress.node_failed(host, "bench", why)
                for job in self.attempted[host]:
                    if job.id not in self.bench_rc:
                        self._fail_job(job, "bench", why)
            else:
                self.state.nodes[host].stage = "bench"
        self.state.save()

    def collect(self, hosts: list[str]) -> None:
        raw = self.run_dir / "raw"
        futures = {}
        for host in hosts:
            self.progress.stage(host, "collect")
            node = self.inventory.node(host)
            remote = f"{self.state.nodes[host].workdir}/runs/{self.state.run_id}/out"
            rerun = {(j.task, j.scenario) for j in self.attempted[host]}
            python = self.deploy_info.get(host, {}).get("venv_python")
            futures[host] = self.pool.submit(collect_mod.collect_node, node, remote, raw, rerun, python)
        for host, fut in futures.items():
            res: collect_mod.CollectResult = fut.result()
            if res.refused:
                self._log(host, "collect-refused.txt", "\n".join(res.refused) + "\n")
            if not res.ok:
                for job in self.attempted[host]:
                    if job.status != FAILED:
                        self._fail_job(job, "collect", f"results not collected: {res.error}")
                if not self.state.nodes[host].error:
                    self.state.nodes[host].error = f"collect: {res.error}"
                    self.progress.node_failed(host, "collect", res.error or "")
            else:
                self.state.nodes[host].stage = "collect"
            self._write_node_json(host)
            self._evaluate(host)
        self.state.save()

    # ----- results ----------------------------------------------------------------------
    def _evaluate(self, host: str) -> None:
        """Each attempted job's outcome from the collected manifest and the harness' exit."""
        manifest = collect_mod._read_json(self.run_dir / "raw" / host / collect_mod.MANIFEST) or {}
        runs = {entry_key(r): r for r in manifest.get("runs", [])}
        for job in self.attempted.get(host, []):
            if job.status == FAILED:
                continue
            rc, err = self.bench_rc.get(job.id, (None, "did not finish"))
            entries = [runs.get((job.task, job.scenario, m, job.repeat)) for m in job.modes]
            self._fill(job, [e for e in entries if e])
            infeasible = next((e for e in entries if e and e.get("outcome") == INFEASIBLE), None)
            if infeasible is not None and rc == EXIT_INFEASIBLE:
                job.status, job.stage = INFEASIBLE, "bench"
                job.error, job.finished = str(infeasible.get("error") or "cannot be VALID here"), now()
                continue
            if rc != 0:
                self._fail_job(job, "bench", err or f"harness exited with {rc}")
                continue
            missing = [m for m, e in zip(job.modes, entries, strict=True) if e is None]
            bad = [e for e in entries if e and e.get("outcome") != "ok"]
            if missing:
                self._fail_job(job, "bench", f"no result for mode {', '.join(missing)} in the manifest")
            elif bad:
                self._fail_job(job, "bench", f"{bad[0].get('mode')}: {bad[0].get('error') or 'failed'}")
            elif failed_check := compliance_failure(self.run_dir / "raw" / host, job):
                self._fail_job(job, "compliance", failed_check)
                self.progress.node_failed(host, "compliance", f"{job.id}: {failed_check}")
            else:
                job.status, job.stage, job.error = OK, "", None
                job.finished = job.finished or now()

    @staticmethod
    def _fill(job: JobState, entries: list[dict[str, Any]]) -> None:
        job.verify = {}
        durations = [float(e["duration_s"]) for e in entries if isinstance(e.get("duration_s"), (int, float))]
        job.duration_s = round(sum(durations), 3) if durations else None
        for e in entries:
            mode = e.get("mode")
            if mode == "performance":
                job.validity = e.get("result_validity")
                job.result, job.result_unit = e.get("result"), e.get("result_unit")
            elif mode == "accuracy":
                job.accuracy = e.get("accuracy")
            elif mode and e.get("verify"):
                job.verify[mode] = str(e["verify"])

    def _write_node_json(self, host: str) -> None:
        node: Node = self.inventory.node(host)
        folder = self.run_dir / "raw" / host
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "inventory_hostname": host,
            "system_name": node.system_name,
            "category": node.category,
            "system_overrides": dict(node.system_overrides),
            "facts": self.state.nodes[host].facts,
            "shares_with": self.state.nodes[host].shares_with,
            "benched_with": self.state.nodes[host].benched_with,
        }
        write_json(folder / "node.json", data)

    # ----- events -----------------------------------------------------------------------
    def _on_event(self, stage: str, event: dict[str, Any]) -> None:
        if stage != "bench":
            return
        data = event.get("event_data") or {}
        task = str(data.get("task") or "")
        prefix = next((p for p in (JOB_START, JOB_WAIT, JOB_RESULT) if task.startswith(p)), None)
        if prefix is None:
            return
        job_id = task[len(prefix) :].strip()
        job = self.state.jobs.get(job_id)
        host = data.get("host")
        if job is None or host != job.host:
            return
        kind = event.get("event")
        res = data.get("res") or {}
        if kind == "runner_retry" and prefix == JOB_WAIT:
            status = parse_node_status(str(res.get("stdout") or ""))
            if status is not None:
                self.progress.job_status(host, status)
            return
        with self._lock:
            if kind == "runner_on_start" and prefix == JOB_START:
                job.status, job.started, job.attempts = RUNNING, now(), job.attempts + 1
                self.progress.job_started(host, job_id)
                self.state.save()
            elif kind in ("runner_on_ok", "runner_on_failed") and prefix == JOB_RESULT:
                rc = res.get("rc") if res.get("finished") else None
                stderr = (res.get("stderr") or "").strip()
                line = stderr.splitlines()[-1] if stderr else (res.get("msg") or "the job did not finish")
                self.bench_rc[job_id] = (rc if isinstance(rc, int) else 1, str(line)[:500])
                job.finished = now()
                slug = _planned(job).slug
                log = f"rc={rc}\n--- stdout\n{res.get('stdout') or ''}\n--- stderr\n{stderr}\n"
                self._log(host, f"{slug}.log", log)
                note = "" if rc == 0 else str(line).removeprefix("fleet.harness: ")[:200]
                verdict = "finished" if rc == 0 else ("INFEASIBLE" if rc == EXIT_INFEASIBLE else "FAILED")
                self.progress.job_finished(host, job_id, rc == 0, note, verdict)

    # ----- helpers ----------------------------------------------------------------------
    def _tasks_of(self, host: str) -> list[str]:
        return list(dict.fromkeys(j.task for j in self.todo if j.host == host))

    def _spec_of(self, job: JobState) -> RunSpec:
        for data in self.state.specs[job.host]:
            if data["task"] == job.task and job.scenario in data["scenarios"]:
                return RunSpec.from_dict(data)
        raise RunStateError(f"run.json has no spec for {job.id}")

    def _fail_node(self, host: str, stage: str, message: str) -> None:
        self.state.nodes[host].error = f"{stage}: {message}"
        self.progress.node_failed(host, stage, message)
        for job in self.todo:
            if job.host == host and job.status != OK:
                self._fail_job(job, stage, message)

    @staticmethod
    def _fail_job(job: JobState, stage: str, message: str) -> None:
        job.status, job.stage, job.error, job.finished = FAILED, stage, " ".join(message.split())[:500], now()

    def _log(self, host: str, name: str, text: str) -> None:
        folder = self.run_dir / "logs" / host
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")


def _planned(job: JobState) -> Job:
    """The plan's Job a run.json job stands for (its slug names the node's files)."""
    return Job(job.host, job.task, job.scenario, tuple(job.modes), job.repeat)


def compliance_failure(raw_host: Path, job: JobState) -> str | None:
    """Why the job's compliance tests failed (None: none did), from the collected verify files.

    A failed TEST01/04/05 leaves a VALID performance run that the closed division cannot take,
    so the job is not ok: `fleet run --resume` runs the scenario again, reference and tests.
    """
    failed = sorted(mode for mode, verdict in job.verify.items() if "PASS" not in verdict)
    if not failed:
        return None
    reasons = []
    for mode in failed:
        folder = raw_host / job.task / job.scenario / mode
        said = {}
        for name in ("verify_performance.txt", "verify_accuracy.txt"):
            with contextlib.suppress(OSError):
                for line in (folder / name).read_text(encoding="utf-8").splitlines():
                    key, sep, value = line.partition(" = ")
                    if sep and key in ("reference score", "test score", "threshold"):
                        said.setdefault(key, value.strip())
                    elif line.startswith("TEST FAIL"):
                        said.setdefault("verdict", line.strip())
        if {"reference score", "test score", "threshold"} <= said.keys():
            reasons.append(f"{mode} FAIL: score {said['test score']} against the performance run's "
                           f"{said['reference score']} (threshold {said['threshold']})")
        else:
            reasons.append(f"{mode} FAIL: {said.get('verdict') or job.verify[mode]}")
    return ("; ".join(reasons) + "; the closed division cannot take this result: run the scenario again "
            "(fleet run --resume)")


def _clean_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """node.json facts with numbers as numbers (templated facts may arrive as strings)."""
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        elif value in ("", "None"):
            out[key] = None
        else:
            out[key] = value
    return out

"""The controller's wheelhouse: everything a node installs, so nodes need no internet.

Two parts with separate cache keys, because they change at very different rates:
- the dependencies of the node extras (`.[node]`) plus pip itself, in
  `<cache>/wheelhouse/<key>/` and one uncompressed tar beside it (one file to copy per node);
  the key hashes the requirements and the target interpreter, so it is built once and reused
  by every run until the requirements change;
- the project's own wheel, built from the source tree into `<cache>/wheels/<key>/`, keyed by
  the hash of the sources, so a code change redeploys only that wheel.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ProvisionError
from fleet.resources import source_tree

EXTRA = "node"
# Extras a host installs on top of `node` for the backends its jobs run (torch is ~190 MB:
# only the hosts that run it get it); a task's own come from its Task.node_extras.
BACKEND_EXTRAS: dict[str, tuple[str, ...]] = {"onnxruntime": ("onnxruntime",), "pytorch": ("torch",)}


# Pure-Python requirements published only as sdists (GPT-J's rouge_score): a node of another
# Python cannot take them from `pip download --only-binary`, so the controller builds their
# universal wheel first and the download finds it there.
SDIST_ONLY = frozenset({"rouge-score"})  # canonical names

SOURCE_PARTS = ("pyproject.toml", "README.md", "LICENSE", "fleet", "playbooks", "roles", "inventory")


def extras_for(jobs: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The extras a host installs for its (task, backend) jobs (sorted: one wheelhouse per set)."""
    from fleet.harness.tasks import task_class

    extras = set()
    for task, backend in jobs:
        extras.update(task_class(task).node_extras)
        extras.update(BACKEND_EXTRAS.get(backend, ()))
    return (EXTRA, *sorted(extras))


@dataclass(frozen=True)
class Target:
    """The interpreter the wheels are for (from the node's facts)."""

    python: str  # "3.11"
    machine: str = "x86_64"

    @classmethod
    def controller(cls) -> Target:
        return cls(f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine())

    @property
    def is_controller(self) -> bool:
        return self == Target.controller()


@dataclass(frozen=True)
class Deps:
    key: str
    dir: Path
    tar: Path
    pip_wheel: str
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class ProjectWheel:
    key: str
    path: Path


def node_requirements(extras: tuple[str, ...] = (EXTRA,)) -> list[str]:
    """The extras' requirements plus the base dependencies, from pyproject (or metadata)."""
    src = source_tree()
    if src is not None:
        import tomllib

        project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
        reqs = list(project.get("dependencies", []))
        for extra in extras:
            reqs += project["optional-dependencies"][extra]
        return sorted(dict.fromkeys(reqs))
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    out = []
    for line in requires("mlperf-fleet") or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in extras):
            req.marker = None
            out.append(str(req))
    return sorted(dict.fromkeys(out))


def _sdist_only(reqs: Iterable[str]) -> list[str]:
    from packaging.requirements import Requirement  # the controller's (ansible-core needs it)
    from packaging.utils import canonicalize_name

    return [r for r in reqs if canonicalize_name(Requirement(r).name) in SDIST_ONLY]


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per key at a time (two runs on one controller share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pip(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        raise ProvisionError(
            f"{what} failed: {errors[-1].strip() if errors else f'pip exit {proc.returncode}'}"
        )


def prepare_deps(
    cache_dir: Path,
    target: Target | None = None,
    requirements: list[str] | None = None,
    extras: tuple[str, ...] = (EXTRA,),
) -> Deps:
    """The dependency wheelhouse for `target` and `extras`, built once per (requirements, target)."""
    target = target or Target.controller()
    reqs = tuple(requirements if requirements is not None else node_requirements(extras))
    key = _key(reqs, target.python, target.machine)
    root = Path(cache_dir) / "wheelhouse"
    wdir, tar = root / key, root / f"{key}.tar"
    with _locked(root / f"{key}.lock"):
        if not (wdir / ".complete").exists() or not tar.exists():
            shutil.rmtree(wdir, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
            try:
                if target.is_controller:
                    # `pip wheel` also builds wheels for dependencies published only as sdists.
                    _pip(
                        ["wheel", "--quiet", "--wheel-dir", str(tmp), "pip", *reqs], "building the wheelhouse"
                    )
                else:
                    universal = _sdist_only(reqs)
                    if universal:
                        _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp), *universal],
                             "building universal wheels of sdist-only requirements")
                    plats = [f"manylinux{v}_{target.machine}" for v in ("2014", "_2_28", "_2_17")]
                    plat_args = [a for p in [*plats, f"linux_{target.machine}"] for a in ("--platform", p)]
                    _pip(
                        ["download", "--quiet", "--only-binary=:all:", "--python-version", target.python,
                         *plat_args, "--find-links", str(tmp), "--dest", str(tmp), "pip", *reqs],
                        f"downloading wheels for Python {target.python} ({target.machine})",
                    )  # fmt: skip
                os.chmod(tmp, 0o755)
                _write_tar(tmp, tar)
                (tmp / ".complete").write_text(json.dumps({"requirements": reqs, "target": target.__dict__}))
                os.replace(tmp, wdir)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    pips = sorted(p.name for p in wdir.glob("pip-*.whl"))
    if not pips:
        raise ProvisionError(f"wheelhouse {wdir} has no pip wheel; delete it and retry")
    return Deps(key=key, dir=wdir, tar=tar, pip_wheel=pips[-1], requirements=reqs)


def _write_tar(src: Path, tar: Path) -> None:
    """An uncompressed tar of the wheels (they are zips already), written atomically."""
    partial = tar.with_suffix(".tar.partial")
    with tarfile.open(partial, "w") as tf:
        for wheel in sorted(src.glob("*.whl")):
            tf.add(wheel, arcname=wheel.name)
    os.replace(partial, tar)


def _source_files(src: Path) -> list[Path]:
    files = []
    for part in SOURCE_PARTS:
        path = src / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                    files.append(f)
    return files


def build_project_wheel(cache_dir: Path) -> ProjectWheel:
    """The project's wheel from a snapshot of the source tree, cached by the sources' hash.

    `FLEET_NODE_WHEEL=/path/to/mlperf_fleet-*.whl` deploys that wheel instead (an install
    without a source tree, or one wheel pinned for a whole test session).
    """
    given = os.environ.get("FLEET_NODE_WHEEL")
    if given:
        path = Path(given).expanduser()
        if not path.is_file() or path.suffix != ".whl":
            raise ProvisionError(f"FLEET_NODE_WHEEL={given} is not a wheel file")
        return ProjectWheel(key=hashlib.sha256(path.read_bytes()).hexdigest()[:16], path=path.resolve())
    src = source_tree()
    if src is None:
        return repack_installed(Path(cache_dir))
    files = _source_files(src)
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    key = digest.hexdigest()[:16]
    root = Path(cache_dir) / "wheels"
    out = root / key
    with _locked(root / f"{key}.lock"):
        wheels = sorted(out.glob("*.whl"))
        if not wheels:
            with tempfile.TemporaryDirectory(prefix="fleet-src-") as tmp:
                snap = Path(tmp) / "src"
                for f in files:
                    dest = snap / f.relative_to(src)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest)
                build = Path(tmp) / "dist"
                _pip(
                    ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(build), str(snap)],
                    "building the fleet wheel",
                )
                out.mkdir(parents=True, exist_ok=True)
                for whl in build.glob("*.whl"):
                    shutil.move(str(whl), out / whl.name)
            wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise ProvisionError(f"building the fleet wheel produced nothing in {out}")
    return ProjectWheel(key=key, path=wheels[-1])


def repack_installed(cache_dir: Path) -> ProjectWheel:
    """The node wheel from this very installation (a regular `pip install .`, no source tree).

    A wheel is a zip of the installed package files plus its .dist-info; RECORD is rewritten
    with fresh hashes. Files pip added at install time (INSTALLER, direct_url.json) and
    anything outside site-packages (scripts, data-files) stay out: nodes need the package.
    """
    import base64
    import zipfile
    from importlib.metadata import distribution

    dist = distribution("mlperf-fleet")
    files = [f for f in (dist.files or []) if not str(f).startswith("..") and "__pycache__" not in str(f)]
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    chosen = sorted((f for f in files if f.name not in skip or ".dist-info" not in str(f)), key=str)
    digest = hashlib.sha256()
    for f in chosen:
        digest.update(str(f).encode() + b"\0" + Path(f.locate()).read_bytes())
    key = digest.hexdigest()[:16]
    info = next((str(f).split("/")[0] for f in chosen if ".dist-info/" in str(f)), None)
    if info is None:
        raise ProvisionError("the installed mlperf-fleet has no .dist-info to build the node wheel from")
    out = Path(cache_dir) / "wheels" / key / f"{info.removesuffix('.dist-info')}-py3-none-any.whl"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        records = []
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in chosen:
                data = Path(f.locate()).read_bytes()
                zf.writestr(str(f), data)
                b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                records.append(f"{f},sha256={b64},{len(data)}")
            records.append(f"{info}/RECORD,,")
            zf.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
        os.replace(partial, out)
    return ProjectWheel(key=key, path=out)

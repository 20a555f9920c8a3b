"""The node wheel when fleet was installed without a source tree (`pip install .[all]`).

Builds the project's wheel, installs it (no dependencies) into a scratch venv, and from
there: the Ansible content is found under share/mlperf-fleet, and the node wheel is repacked
from the installation itself; that wheel installs and imports in a second venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from fleet.resources import SOURCE_ROOT
from fleet.wheelhouse import build_project_wheel, node_requirements

pytestmark = pytest.mark.slow


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True,
                   capture_output=True)  # fmt: skip


def test_repack_from_a_regular_install(tmp_path):
    wheel = build_project_wheel(tmp_path / "cache")
    assert wheel.path.name.startswith("mlperf_fleet-") and build_project_wheel(tmp_path / "cache") == wheel
    first, second = tmp_path / "v1", tmp_path / "v2"
    for env in (first, second):
        venv.EnvBuilder(with_pip=False).create(env)
    pip("--python", str(first / "bin" / "python"), "install", "--no-deps", str(wheel.path))
    probe = (
        "import json; from pathlib import Path\n"
        "from fleet.resources import source_tree, resource_dir\n"
        "from fleet.wheelhouse import build_project_wheel\n"
        f"w = build_project_wheel(Path({str(tmp_path / 'cache2')!r}))\n"
        "print(json.dumps([str(source_tree()), str(resource_dir('roles')), str(w.path), w.key]))\n"
    )
    out = subprocess.run([str(first / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout  # fmt: skip
    src, roles, repacked, _key = json.loads(out)
    assert src == "None" and roles == str(first / "share" / "mlperf-fleet" / "roles")
    assert (Path(roles) / "bench" / "tasks" / "job.yml").is_file()
    pip("--python", str(second / "bin" / "python"), "install", "--no-deps", repacked)
    check = "import fleet.harness.spec, fleet.harness.rules.v3_1; print(fleet.harness.spec.SPEC_VERSION)"
    assert subprocess.run([str(second / "bin" / "python"), "-c", check], capture_output=True, text=True,
                          check=True, cwd=tmp_path).stdout.strip() == "1"  # fmt: skip


def test_node_requirements_are_the_node_extra():
    import tomllib

    project = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]
    assert set(node_requirements()) == set(project["dependencies"]) | set(
        project["optional-dependencies"]["node"]
    )


def test_hosts_get_the_extras_of_the_tasks_and_backends_they_run_and_no_others():
    from fleet.wheelhouse import extras_for

    vision_hosts = extras_for([("resnet50", "onnxruntime"), ("retinanet", "null")])
    assert vision_hosts == ("node", "onnxruntime", "vision")
    assert extras_for([("rnnt", "pytorch")]) == ("node", "librispeech", "torch")
    assert extras_for([("rnnt", "pytorch"), ("bert-99", "onnxruntime"), ("3d-unet-99.9", "onnxruntime")]) == (
        "node", "kits19", "librispeech", "onnxruntime", "squad", "torch")
    with_torch = node_requirements(extras_for([("rnnt", "pytorch")]))
    assert "torch==2.13.0" in with_torch and set(node_requirements()) < set(with_torch)
    assert not any(r.startswith(("onnxruntime", "opencv", "tokenizers", "nibabel")) for r in with_torch)
    vision = node_requirements(extras_for([("resnet50", "onnxruntime")]))
    assert not any(r.startswith(("torch", "soundfile", "tokenizers", "nibabel")) for r in vision)
    dlrm = node_requirements(extras_for([("dlrm-v2-99.9", "pytorch")]))
    assert extras_for([("dlrm-v2-99", "pytorch")]) == ("node", "criteo", "torch")
    assert "torch==2.13.0" in dlrm and any(r.startswith("scikit-learn") for r in dlrm)
    assert not any(r.startswith(("scikit-learn", "torch")) for r in vision)
    gptj = node_requirements(extras_for([("gptj-99", "pytorch")]))
    assert extras_for([("gptj-99.9", "pytorch")]) == ("node", "cnndm", "torch")
    assert {"torch==2.13.0", "transformers==5.25.0", "rouge_score==0.1.2"} <= set(gptj)
    assert not any(r.startswith(("transformers", "rouge")) for r in [*vision, *dlrm])


@pytest.mark.slow
def test_a_node_of_another_python_gets_sdist_only_requirements_as_universal_wheels(tmp_path):
    """rouge_score (GPT-J's accuracy) is published as an sdist only: `pip download --only-binary`
    for another interpreter cannot take it, so the controller builds its py3-none-any wheel."""
    from fleet.wheelhouse import Target, prepare_deps

    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    deps = prepare_deps(tmp_path, Target(other), requirements=["rouge_score==0.1.2"])
    names = {p.name for p in deps.dir.glob("*.whl")}
    assert "rouge_score-0.1.2-py3-none-any.whl" in names
    assert any(n.startswith("numpy-") and f"cp{other.replace('.', '')}" in n for n in names), names

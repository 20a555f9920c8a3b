"""Inventory parsing (through ansible), settings validation and planning: pure, no nodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleet.config import RunSettings, validate
from fleet.errors import ConfigError, InventoryError, PlanError
from fleet.inventory import load_inventory
from fleet.plan import build, jobs_of
from fleet.resources import resource_dir
from fleet.runstate import JobState, NodeState, RunState

LAB_INI = """
[edge]
e1 ansible_host=10.0.0.1 fleet_threads=2 fleet_accelerator=cuda
[datacenter]
d1 ansible_host=10.0.0.2 ansible_port=2222 ansible_user=ops fleet_system_name=big_box
[datacenter:vars]
fleet_tuning='{"server_target_qps": 12.5}'
[lab:children]
edge
datacenter
[lab:vars]
ansible_ssh_common_args='-F /etc/fleet/ssh_config -o UserKnownHostsFile=/etc/fleet/kh'
fleet_backend=onnxruntime
"""

LAB_YAML = """
all:
  children:
    datacenter:
      hosts:
        y1:
          fleet_system: {status: available, host_storage_type: NVMe SSD}
          fleet_batch_size: 32
    edge:
      hosts:
        y2:
          ansible_connection: local
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def settings(inv: Path, **kw) -> RunSettings:
    return validate(RunSettings(inventory=str(inv), tasks=kw.pop("tasks", ["resnet50"]), **kw))


def test_ini_inventory_categories_and_vars(tmp_path):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    e1, d1 = inv.node("e1"), inv.node("d1")
    assert (e1.category, d1.category) == ("edge", "datacenter")
    assert e1.threads == 2 and e1.accelerator == "cuda" and e1.system_name == "e1_cuda"
    assert d1.system_name == "big_box"
    assert d1.ssh.host == "10.0.0.2" and d1.ssh.port == 2222 and d1.ssh.user == "ops"
    assert d1.ssh.ssh_config == "/etc/fleet/ssh_config" and d1.ssh.known_hosts == "/etc/fleet/kh"


def test_yaml_inventory_and_group_vars_dir(tmp_path):
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars", "datacenter.yml", "fleet_threads: 8\n")
    inv = load_inventory(write(tmp_path, "lab.yml", LAB_YAML))
    y1, y2 = inv.node("y1"), inv.node("y2")
    assert y1.system_overrides == {"status": "available", "host_storage_type": "NVMe SSD"}
    assert y1.batch_size == 32 and y1.threads == 8
    assert y2.is_local and y2.ssh is None and y2.category == "edge"


def test_shipped_inventories_parse():
    local = load_inventory(resource_dir("inventory") / "localhost.ini")
    assert [(n.name, n.category, n.is_local) for n in local] == [("localhost", "edge", True)]
    lab = load_inventory(resource_dir("inventory") / "lab.example.ini")
    assert {n.category for n in lab} == {"edge", "datacenter"} and len(lab) == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("[edge\nn1 = =\n", "cannot parse inventory"),
        ("[web]\nn1\n", "neither group edge nor datacenter"),
        ("[edge]\nn1\n[datacenter]\nn1\n", "both groups edge and datacenter"),
        ("[edge]\nn1 fleet_threads=many\n", "fleet_threads='many' is not a whole number"),
        ("[edge]\nn1 fleet_accelerator=tpu\n", "fleet_accelerator='tpu'"),
        ("[edge]\nn1 fleet_tuning='{\"qps\": 3}'\n", "fleet_tuning must map tuning fields"),
        ("# nothing\n", "has no hosts"),
    ],
)
def test_bad_inventories_are_one_error(tmp_path, text, message):
    with pytest.raises(InventoryError, match=message) as info:
        load_inventory(write(tmp_path, "bad.ini", text))
    assert "\n" not in str(info.value)


def test_missing_inventory(tmp_path):
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "nope.ini")


def test_plan_scenarios_follow_category(tmp_path):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    specs = build(inv, settings(inv.path))
    assert specs["e1"][0].scenarios == ["SingleStream", "MultiStream", "Offline"]
    assert specs["d1"][0].scenarios == ["Server", "Offline"]
    assert specs["e1"][0].tuning.execution_provider == "cuda"
    assert specs["d1"][0].tuning.server_target_qps == 12.5 and specs["e1"][0].tuning.server_target_qps is None
    jobs = jobs_of(specs)
    assert [j.id for j in jobs] == [
        "e1/resnet50/SingleStream",
        "e1/resnet50/MultiStream",
        "e1/resnet50/Offline",
        "d1/resnet50/Server",
        "d1/resnet50/Offline",
    ]
    assert all(j.modes == ("performance", "accuracy") for j in jobs)


def test_repeats_follow_a_nodes_own_jobs_interleaved(tmp_path):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    specs = build(inv, settings(inv.path))
    jobs = [j for j in jobs_of(specs, repeats=2) if j.host == "d1"]
    assert [(j.id, j.modes) for j in jobs] == [
        ("d1/resnet50/Server", ("performance", "accuracy")),
        ("d1/resnet50/Offline", ("performance", "accuracy")),
        ("d1/resnet50/Server/repeat1", ("performance",)),  # round 1 of every job, then round 2
        ("d1/resnet50/Offline/repeat1", ("performance",)),
        ("d1/resnet50/Server/repeat2", ("performance",)),
        ("d1/resnet50/Offline/repeat2", ("performance",)),
    ]
    assert len({j.slug for j in jobs}) == len(jobs)  # each has its own spec and exit-status files
    only_accuracy = {h: [replace(s, modes=["accuracy"]) for s in ss] for h, ss in specs.items()}
    assert jobs_of(only_accuracy, repeats=2) == jobs_of(only_accuracy)  # nothing to measure again


def test_plan_modes_by_profile(tmp_path):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    sub = build(inv, settings(inv.path, profile="submission", tasks=["retinanet"]))
    assert sub["d1"][0].modes == ["performance", "accuracy", "TEST01", "TEST05"]
    explicit = build(inv, settings(inv.path, modes=["performance"]))
    assert explicit["e1"][0].modes == ["performance"]


def test_plan_subset_of_scenarios(tmp_path):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    specs = build(inv.subset(["d1"]), settings(inv.path, scenarios=["Offline"]))
    assert specs == {"d1": specs["d1"]} and specs["d1"][0].scenarios == ["Offline"]


@pytest.mark.parametrize(
    "kw, error, message",
    [
        ({"tasks": ["bert-99.9"]}, PlanError, "bert-99.9 cannot run on edge host e1"),
        ({"scenarios": ["Server"]}, PlanError, "scenario Server is not allowed for resnet50 on edge host e1"),
        ({"tasks": ["3d-unet-99"], "scenarios": ["Server"]}, PlanError,
         "scenario Server is not allowed for 3d-unet-99 on edge host e1"),
        ({"tasks": ["3d-unet-99.9"], "scenarios": ["SingleStream"]}, PlanError,
         "scenario SingleStream is not allowed for 3d-unet-99.9 on datacenter host d1"),
    ],
)
def test_plan_refuses_rule_violations(tmp_path, kw, error, message):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI))
    with pytest.raises(error, match=message):
        build(inv, settings(inv.path, **kw))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"tasks": ["resnet51"]}, "unknown task 'resnet51'"),
        ({"scenarios": ["Batch"]}, "unknown scenario 'Batch'"),
        ({"modes": ["TEST02"]}, "unknown mode 'TEST02'"),
        ({"profile": "fast"}, "unknown profile 'fast'"),
        ({"submitter": "my org"}, "--submitter"),
        ({"artifacts": "/nonexistent/store"}, "is not a directory"),
        ({"profile": "submission", "synthetic_samples": 64},
         "--synthetic-samples 64 is below the 1024 samples the submission profile needs for resnet50"),
        ({"profile": "submission", "tasks": ["retinanet", "bert-99"], "synthetic_samples": 1024},
         "below the 10833 samples the submission profile needs for bert-99"),
    ],
)
def test_bad_settings(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path / "x.ini", **kw)


def test_synthetic_datasets_are_sized_for_the_profile(tmp_path):
    sub = settings(tmp_path / "x.ini", profile="submission", tasks=["resnet50", "retinanet", "bert-99"])
    assert [sub.synthetic_samples_for(t) for t in sub.tasks] == [1024, 64, 10833]
    assert settings(tmp_path / "x.ini").synthetic_samples_for("resnet50") is None  # smoke: the generator's
    asked = settings(tmp_path / "x.ini", profile="submission", synthetic_samples=2000)
    assert asked.synthetic_samples_for("resnet50") == 2000


def test_runstate_roundtrip(tmp_path):
    state = RunState(
        run_id="r1",
        settings={"tasks": ["resnet50"]},
        specs={"n1": []},
        jobs={
            "n1/resnet50/Offline": JobState("n1/resnet50/Offline", "n1", "resnet50", "Offline", ["accuracy"])
        },
        nodes={"n1": NodeState("n1", "edge", "n1_cpu")},
    )
    path = state.save(tmp_path / "run.json")
    again = RunState.load(path)
    assert again.to_dict() == state.to_dict()
    assert [j.id for j in again.failed] == ["n1/resnet50/Offline"]


def test_each_task_runs_on_its_own_backend_unless_the_host_names_one(tmp_path):
    ini = LAB_INI.replace("fleet_backend=onnxruntime\n", "")
    inv = load_inventory(write(tmp_path, "lab.ini", ini))
    specs = build(inv, settings(inv.path, tasks=["rnnt", "resnet50"]))
    assert {(s.task, s.backend) for s in specs["e1"]} == {("rnnt", "pytorch"), ("resnet50", "onnxruntime")}


@pytest.mark.parametrize("backend, task, message", [
    ("onnxruntime", "rnnt", r"host e1 \(fleet_backend=onnxruntime\): rnnt has no onnxruntime model "
                            r"\(its reference model is for pytorch\): use backend pytorch for rnnt"),
    ("pytorch", "resnet50", r"host e1 \(fleet_backend=pytorch\): resnet50 has no pytorch model"),
    ("tensorflow", "resnet50", r"host e1 \(fleet_backend=tensorflow\): unknown backend 'tensorflow'"),
])
def test_plan_refuses_a_backend_without_a_model_for_the_task(tmp_path, backend, task, message):
    inv = load_inventory(write(tmp_path, "lab.ini", LAB_INI.replace("fleet_backend=onnxruntime",
                                                                    f"fleet_backend={backend}")))
    with pytest.raises(PlanError, match=message):
        build(inv, settings(inv.path, tasks=[task]))


@pytest.mark.parametrize("task", ["dlrm-v2-99", "dlrm-v2-99.9", "bert-99.9"])
def test_a_datacenter_only_task_skips_edge_hosts_with_one_line(tmp_path, task):
    ini = LAB_INI.replace("fleet_backend=onnxruntime\n", "")
    inv = load_inventory(write(tmp_path, "lab.ini", ini))
    said: list[str] = []
    specs = build(inv, settings(inv.path, tasks=[task, "resnet50"]), skip=said.append)
    assert said == [f"{task} skips edge host e1: in MLPerf Inference v3.1 it is a benchmark for "
                    "datacenter systems only"]
    assert [s.task for s in specs["e1"]] == ["resnet50"]
    assert (specs["d1"][0].task, specs["d1"][0].scenarios) == (task, ["Server", "Offline"])
    alone = build(inv, settings(inv.path, tasks=[task]), skip=said.append)
    assert list(alone) == ["d1"]  # a host left with nothing to run is not part of the run
    with pytest.raises(PlanError, match=rf"^{task} runs on no host of this run \(e1 \(edge\)\): in MLPerf "
                                        r"Inference v3.1 it is a benchmark for datacenter systems only; "
                                        r"add such a host to the inventory or --limit$"):
        build(inv.subset(["e1"]), settings(inv.path, tasks=[task]), skip=said.append)


def test_dlrm_runs_on_pytorch_and_a_sized_synthetic_set_says_what_it_takes(tmp_path):
    from fleet.commands.run import synthetic_needs

    ini = LAB_INI.replace("fleet_backend=onnxruntime\n", "")
    inv = load_inventory(write(tmp_path, "lab.ini", ini))
    sub = settings(inv.path, profile="submission", tasks=["dlrm-v2-99", "resnet50"])
    assert [(s.task, s.backend) for s in build(inv, sub, skip=lambda line: None)["d1"]] == [
        ("dlrm-v2-99", "pytorch"), ("resnet50", "onnxruntime")]
    assert synthetic_needs(sub) == [
        "dlrm-v2-99: a synthetic DLRM-v2 set of 204800 aggregated samples is 55,344,600 evaluation rows "
        "(110,689,200 in day_23), 100.9 GB on the node's disk, and 50.5 GB of RAM for LoadGen's loaded "
        "samples; each node that runs it checks its free disk and RAM before making it, and refuses in "
        "one line"]
    assert synthetic_needs(settings(inv.path, tasks=["dlrm-v2-99"])) == []  # smoke: the generator's small set


def test_gptj_runs_everywhere_on_pytorch_and_the_plan_says_it_has_no_audits(tmp_path):
    from fleet.commands.run import synthetic_needs
    from fleet.plan import compliance_lines

    ini = LAB_INI.replace("fleet_backend=onnxruntime\n", "")
    inv = load_inventory(write(tmp_path, "lab.ini", ini))
    sub = settings(inv.path, profile="submission", tasks=["gptj-99", "resnet50"])
    specs = build(inv, sub, skip=lambda line: pytest.fail(line))
    gptj = {host: next(s for s in listed if s.task == "gptj-99") for host, listed in specs.items()}
    assert {h: (s.backend, s.scenarios, s.modes) for h, s in gptj.items()} == {
        "e1": ("pytorch", ["SingleStream", "Offline"], ["performance", "accuracy"]),
        "d1": ("pytorch", ["Server", "Offline"], ["performance", "accuracy"])}
    assert next(s for s in specs["d1"] if s.task == "resnet50").modes[2:] == ["TEST01", "TEST04", "TEST05"]
    assert compliance_lines(sub) == ["gptj-99 has no compliance tests in MLPerf Inference v3.1: no audit "
                                     "runs, and its results need no compliance directory"]
    asked = settings(inv.path, tasks=["gptj-99.9", "bert-99"], modes=["performance", "TEST01", "TEST04"])
    assert asked.modes_for("gptj-99.9") == ["performance"]
    assert asked.modes_for("bert-99") == ["performance", "TEST01"]
    assert compliance_lines(asked) == [
        "gptj-99.9 has no compliance tests in MLPerf Inference v3.1: no audit runs, and its results need no "
        "compliance directory",
        "bert-99 has no TEST04 in MLPerf Inference v3.1 (its audits: TEST01, TEST05): those modes are left "
        "out for it"]
    assert compliance_lines(settings(inv.path, tasks=["gptj-99"])) == []  # smoke: no audits asked
    assert synthetic_needs(sub)[0].startswith(
        "gptj-99: a synthetic GPT-J set of 13,368 articles: the teacher")

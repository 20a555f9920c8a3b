"""Matrix files: validation with one-line errors, and expansion into per-node RunSpec lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.inventory import load_inventory
from fleet.matrix import expand, group_members, load_matrix
from fleet.regress import Policy

INVENTORY = """\
[edge]
e1 ansible_connection=local
e2 ansible_connection=local fleet_system_name=jetson
[datacenter]
d1 ansible_connection=local
[jetsons]
e2
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    (root / "lab.ini").write_text(INVENTORY)
    return root


def _write(lab: Path, text: str, name: str = "nightly.yaml") -> Path:
    path = lab / name
    path.write_text(text)
    return path


def _expand(lab: Path, text: str):
    path = _write(lab, text)
    matrix = load_matrix(path)
    inv = load_inventory(matrix.inventory)
    return expand(matrix, inv, group_members(matrix.inventory), run_id="s1", where=path.name)


def test_defaults_and_resolution(lab: Path) -> None:
    text = "inventory: lab.ini\ntasks: [resnet50]\nregression: {threshold: 7.5%}\n"
    matrix = load_matrix(_write(lab, text))
    assert matrix.inventory == lab / "lab.ini"
    assert matrix.scenarios == "required" and matrix.profile == "smoke"
    assert matrix.regression.policy.threshold == pytest.approx(0.075)
    assert matrix.regression.policy == Policy(threshold=0.075, baseline_runs=10, min_runs=5)
    assert matrix.repeats == 3 and matrix.run_settings().repeats == 3


def test_expand_gives_each_node_its_own_queue(lab: Path) -> None:
    specs = _expand(lab, """
inventory: lab.ini
tasks: [resnet50, bert-99]
overrides:
  bert-99: {groups: [datacenter, jetsons], scenarios: [Offline], modes: [performance]}
""")
    layout = {h: [(s.task, s.scenarios, s.modes) for s in v] for h, v in specs.items()}
    assert layout == {
        "e1": [("resnet50", ["SingleStream", "MultiStream", "Offline"], ["performance", "accuracy"])],
        "e2": [("resnet50", ["SingleStream", "MultiStream", "Offline"], ["performance", "accuracy"]),
               ("bert-99", ["Offline"], ["performance"])],
        "d1": [("resnet50", ["Server", "Offline"], ["performance", "accuracy"]),
               ("bert-99", ["Offline"], ["performance"])],
    }  # fmt: skip
    assert specs["e2"][0].system_name == "jetson" and specs["e2"][0].run_id == "s1"


def test_overlapping_groups_run_a_node_once(lab: Path) -> None:
    specs = _expand(lab, "inventory: lab.ini\ntasks: [resnet50]\ngroups: [edge, jetsons]\nhosts: [e2]\n")
    assert {h: len(v) for h, v in specs.items()} == {"e1": 1, "e2": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inventory: lab.ini\ntasks: [resnet]\n",
         "nightly.yaml: tasks: unknown task 'resnet' (choose from resnet50, retinanet,"),
        ("inventory: nowhere.ini\ntasks: [resnet50]\n", "nightly.yaml: inventory: /"),
        ("tasks: [resnet50]\n", "nightly.yaml: inventory is required"),
        ("inventory: lab.ini\ntasks: [resnet50]\nscenarios: [offline]\n",
         "nightly.yaml: scenarios: unknown scenario 'offline' (choose from SingleStream,"),
        ("inventory: lab.ini\ntasks: [resnet50]\nsenarios: required\n",
         "nightly.yaml: senarios is not a matrix key"),
        ("inventory: lab.ini\ntasks: []\n", "nightly.yaml: tasks: List should have at least 1 item"),
        ("inventory: lab.ini\ntasks: [resnet50]\nprofile: fast\n",
         "nightly.yaml: profile: unknown profile 'fast'"),
        ("inventory: lab.ini\ntasks: [resnet50]\noverrides: {retinanet: {scenarios: [Offline]}}\n",
         "nightly.yaml: overrides: 'retinanet' is not in tasks (resnet50)"),
        ("inventory: lab.ini\ntasks: [resnet50]\noverrides: {resnet50: {mode: [accuracy]}}\n",
         "nightly.yaml: overrides.resnet50.mode is not a matrix key"),
        ("inventory: lab.ini\ntasks: [resnet50]\nregression: {threshold: 120%}\n",
         "nightly.yaml: regression.threshold: '120%': must lie between 0% and 100%"),
        ("inventory: lab.ini\ntasks: [resnet50]\nregression: {min_runs: 2}\n",
         "nightly.yaml: regression.min_runs: Input should be greater than or equal to 3"),
        ("inventory: lab.ini\ntasks: [resnet50]\nregression: {baseline_runs: 4}\n",
         "nightly.yaml: regression: min_runs: 5 is more than baseline_runs (4): the baseline could never"),
        ("inventory: lab.ini\ntasks: [resnet50]\nrepeats: -1\n",
         "nightly.yaml: repeats: Input should be greater than or equal to 0"),
        ("inventory: lab.ini\ntasks: [resnet50\n", "nightly.yaml: line 3: not valid YAML"),
        ("- just\n- a list\n", "nightly.yaml: a matrix is a YAML mapping"),
        ("inventory: lab.ini\ntasks: [resnet]\nprofile: fast\n", "(and 1 more problem)"),
    ],
)  # fmt: skip
def test_malformed_matrix_gives_one_line(lab: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_matrix(_write(lab, text))
    message = str(info.value)
    assert "\n" not in message
    assert expected in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inventory: lab.ini\ntasks: [resnet50]\ngroups: [edge]\nscenarios: [Server]\n",
         "nightly.yaml: scenarios (group edge): scenario Server is not allowed for resnet50 on edge host e1; "
         "edge runs SingleStream, MultiStream, Offline"),
        ("inventory: lab.ini\ntasks: [resnet50, bert-99]\n"
         "overrides: {bert-99: {groups: [jetsons], scenarios: [MultiStream]}}\n",
         "nightly.yaml: overrides.bert-99.scenarios (group jetsons): scenario MultiStream is not allowed"),
        ("inventory: lab.ini\ntasks: [bert-99.9]\n",
         "nightly.yaml: tasks: bert-99.9 "),
        ("inventory: lab.ini\ntasks: [resnet50, bert-99.9]\noverrides: {bert-99.9: {groups: [jetsons]}}\n",
         "nightly.yaml: overrides.bert-99.9.groups (group jetsons): bert-99.9 "),
        ("inventory: lab.ini\ntasks: [resnet50]\nsubmitter: My Org\n",
         "nightly.yaml: --submitter 'My Org': use letters, digits"),
        ("inventory: lab.ini\ntasks: [resnet50]\nartifacts: store\n",
         "nightly.yaml: --artifacts /"),
        ("inventory: lab.ini\ntasks: [resnet50]\ngroups: [gpus]\n",
         "nightly.yaml: groups: no group 'gpus' in inventory"),
        ("inventory: lab.ini\ntasks: [resnet50]\noverrides: {resnet50: {hosts: [zz]}}\n",
         "nightly.yaml: overrides.resnet50.hosts: no host 'zz' in inventory"),
    ],
)  # fmt: skip
def test_matrix_against_inventory_gives_one_line(lab: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _expand(lab, text)
    message = str(info.value)
    assert "\n" not in message
    assert expected in message, message


def test_missing_matrix_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"matrix file .*nope.yaml does not exist"):
        load_matrix(tmp_path / "nope.yaml")


def test_the_example_matrix_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "nightly.yaml"
    matrix = load_matrix(example)
    specs = expand(matrix, load_inventory(matrix.inventory), group_members(matrix.inventory))
    assert {h: [s.task for s in v] for h, v in specs.items()} == {
        "jetson1": ["resnet50", "retinanet"], "nuc1": ["resnet50", "retinanet"],
        "srv1": ["resnet50", "retinanet", "bert-99"], "srv2": ["resnet50", "retinanet", "bert-99"],
    }  # fmt: skip
    assert matrix.regression.policy.threshold == pytest.approx(0.05)

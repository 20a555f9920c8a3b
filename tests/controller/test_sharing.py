"""Nodes that share CPUs: found from boot id and CPU sets or declared, and given turns. Pure."""

from __future__ import annotations

from fleet.sharing import ONE_AT_A_TIME, TOGETHER, cpu_set, partners, sharing_groups, sharing_line, waves

BOX = "6f1c2e4a-0000-4000-8000-000000000001"


def test_one_kernel_and_overlapping_cpus_share() -> None:
    facts = {
        "n1": {"boot_id": BOX, "cpus": "0,1"},
        "n2": {"boot_id": BOX, "cpus": "1"},  # overlaps n1
        "n3": {"boot_id": BOX, "cpus": 2},  # pinned apart (a lone CPU arrives as a number)
        "n4": {"boot_id": "another", "cpus": "0,1"},
    }
    assert sharing_groups(facts, {}) == [["n1", "n2"]]
    assert partners(sharing_groups(facts, {})) == {"n1": ["n2"], "n2": ["n1"]}
    unknown = {**facts, "n5": {"boot_id": BOX}}  # CPUs unknown: it may run on any of them
    assert sharing_groups(unknown, {}) == [["n1", "n2", "n3", "n5"]]


def test_the_inventory_declares_vms_on_one_host() -> None:
    facts = {"vm1": {"boot_id": "a"}, "vm2": {"boot_id": "b"}, "vm3": {"boot_id": "c"}, "x": {}}
    declared = {"vm1": "hv1", "vm2": "hv1", "vm3": "hv2", "x": None}
    assert sharing_groups(facts, declared) == [["vm1", "vm2"]]
    line = sharing_line(["vm1", "vm2"], facts, ONE_AT_A_TIME)
    assert line == ("vm1, vm2 share hardware (the inventory's fleet_shared_host): their benchmarks run one "
                    "at a time")
    assert "marked as measured while sharing" in sharing_line(["vm1", "vm2"], facts, TOGETHER)


def test_waves_give_each_group_turns_and_keep_the_rest_in_the_first() -> None:
    hosts = ["a1", "solo", "a2", "b1", "a3", "b2"]
    assert waves(hosts, [["a1", "a2", "a3"], ["b1", "b2"]]) == [["a1", "solo", "b1"], ["a2", "b2"], ["a3"]]
    assert waves(hosts, []) == [hosts]
    assert waves(["a2", "solo"], [["a1", "a2"]]) == [["a2", "solo"]]  # a1 has no jobs left


def test_cpu_sets_parse_or_say_unknown() -> None:
    assert cpu_set("0,2,3") == {0, 2, 3} and cpu_set(1) == {1}
    assert cpu_set("") is None and cpu_set(None) is None and cpu_set("0-3") is None

"""The lab's reading of `gnt-cluster info` (captured from the lab's Ganeti 3.0)."""

from pathlib import Path

from unit_helpers import DATA

from labkit import cluster

GUEST = Path("/var/cache/ganeti-ext-lab/guest")


def test_the_kvm_section_is_read_and_nothing_past_it():
    found = cluster.kvm_params_in_force((DATA / "gnt-cluster-info.txt").read_text())
    assert found["migration_bandwidth"] == "1000" and found["vnc_bind_address"] == ""
    assert found["kernel_args"] == "console=ttyS0 panic=-1"
    assert "candidate pool size" not in found and "lxc" not in found


def test_the_lab_s_parameters_are_what_the_captured_cluster_has():
    found = cluster.kvm_params_in_force((DATA / "gnt-cluster-info.txt").read_text())
    wanted = cluster.kvm_params(GUEST / "vmlinuz", GUEST / "initrd.img")
    assert {key: found[key].lower() for key in wanted} == {
        key: value.lower() for key, value in wanted.items()
    }

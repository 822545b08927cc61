"""A KVM (qemu/TCG) guest on an archipelago disk boots and sees its disk and NIC."""

from __future__ import annotations

from instances import add_instance


def test_kvm_guest_boots_with_its_ext_disk_and_nic(lab, instance_name):
    name = instance_name()
    add_instance(lab, name, hypervisor="kvm", disk_size="64M")
    out = lab.wait_console(name, "cat /sys/block/vda/size", "131072")
    assert "131072" in out  # 64 MiB in 512-byte sectors
    mac = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.mac/0", name).stdout.strip()
    out = lab.wait_console(name, "cat /sys/class/net/eth0/address", mac)
    assert mac in out

"""A KVM (qemu/TCG) guest on an archipelago disk boots and sees its disk and NIC."""

from __future__ import annotations

from instances import add_instance

from labkit import settings, vms


def test_kvm_guest_boots_with_its_ext_disk_and_nic(lab, instance_name):
    name = instance_name()
    add_instance(lab, name, hypervisor="kvm", disk_size="64M")
    out = lab.wait_console(name, "cat /sys/block/vda/size", "131072")
    assert "131072" in out  # 64 MiB in 512-byte sectors
    mac = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.mac/0", name).stdout.strip()
    out = lab.wait_console(name, "cat /sys/class/net/eth0/address", mac)
    assert mac in out


def test_small_image_vm_boots_from_its_own_disk_personalized(lab, instance_name):
    """The fast end-to-end check: the small image cloned, personalized, booted by its own
    GRUB, its lease from nfdhcpd, and a login with the injected key."""
    node = settings.NODES[1]
    name = instance_name()
    lab.gnt(*vms.add_argv(name, vms.small_image_name(), node=node, backend=vms.SMALL_BACKEND),
            timeout=900)  # fmt: skip
    ip = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.ip/0", name).stdout.strip()
    assert vms.wait_ssh(node, ip, 120) == name
    written = vms.ssh(node, ip, "cat /disk/etc/hostname /disk/root/.ssh/authorized_keys").stdout
    assert written.split() == [name, *vms.public_key().split()]

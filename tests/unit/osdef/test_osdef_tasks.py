"""Personalization tasks against a temporary guest root (the cloud-init shape): each task
runs on a tree built here, and the test reads the files it left."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from ganeti_ext.osdef import tasks
from ganeti_ext.osdef.tasks import accounts, netconf
from ganeti_ext.osdef.tasks.context import Context, Reporter, System, TaskError
from ganeti_ext.osdef.tasks.guest import Guest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="tasks set owners (chown): root only")

PASSWD = "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000:User:/home/user:/bin/bash\n"
GROUP = "root:x:0:\nshadow:x:42:\nuser:x:1000:\nstaff:x:50:\n"
SHADOW = "root:*:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n"
NIC = {
    "index": 0,
    "mac": "aa:00:01:00:00:05",
    "mtu": 1500,
    "ipv4": {
        "method": "static",
        "address": "198.51.100.5",
        "prefix": 24,
        "gateway": "198.51.100.1",
    },
    "ipv6": {"method": "slaac"},
}


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "guest"
    (base / "etc/ssh").mkdir(parents=True)
    (base / "root").mkdir()
    (base / "home/user").mkdir(parents=True)
    os.chown(base / "home/user", 1000, 1000)
    (base / "etc/passwd").write_text(PASSWD)
    (base / "etc/group").write_text(GROUP)
    (base / "etc/shadow").write_text(SHADOW)
    os.chown(base / "etc/shadow", 0, 42)  # Debian's: root:shadow 0640
    os.chmod(base / "etc/shadow", 0o640)
    (base / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost\n")
    return base


def run(name: str, root: Path, **config):
    config.setdefault("hostname", "vm1")
    lines = io.StringIO()
    ctx = Context(config, "/dev/null", System(), Reporter(lines))
    ctx.guest = Guest(str(root))
    try:
        tasks.load(name).run(ctx)
    finally:
        ctx.guest.close()
    return lines.getvalue()


def test_every_task_in_order_has_a_module_with_declared_inputs():
    for name in tasks.ORDER:
        module = tasks.load(name)
        assert name == module.NAME and isinstance(module.INPUTS, tuple) and callable(module.run)


def test_assign_hostname(root):
    run("AssignHostname", root, hostname="vm1.example.org")
    assert (root / "etc/hostname").read_text() == "vm1.example.org\n"
    hosts = (root / "etc/hosts").read_text().splitlines()
    assert hosts[:2] == ["127.0.0.1\tlocalhost", "127.0.1.1\tvm1.example.org vm1"]
    assert "::1\tlocalhost" in hosts and "debian" not in "".join(hosts)


def test_hostname_through_hostile_symlinks_stays_inside(root, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host")
    (root / "etc/hostname").symlink_to(outside)
    (root / "etc/hosts").unlink()
    (root / "etc/hosts").symlink_to("../../../../../../" + str(outside))
    run("AssignHostname", root)
    assert outside.read_text() == "host"
    assert (
        not (root / "etc/hostname").is_symlink() and (root / "etc/hostname").read_text() == "vm1\n"
    )


def test_change_password_keeps_aging_and_owner(root):
    run("ChangePassword", root, password_hash="$6$salt$hash", auth_keys=["ssh-ed25519 AAAA k1"])
    shadow = (root / "etc/shadow").read_text().splitlines()
    fields = shadow[0].split(":")
    assert fields[:2] == ["root", "$6$salt$hash"] and fields[3:] == ["0", "99999", "7", "", "", ""]
    assert shadow[1] == "user:!:19000:0:99999:7:::"
    assert (root / "etc/shadow").stat().st_gid == 42 and (
        root / "etc/shadow"
    ).stat().st_mode & 0o777 == 0o640
    keys = root / "root/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA k1\n" and keys.stat().st_mode & 0o777 == 0o600
    assert (root / "root/.ssh").stat().st_mode & 0o777 == 0o700


def test_keys_follow_sshd_config_and_users(root):
    (root / "etc/ssh/sshd_config").write_text("AuthorizedKeysFile .ssh/keys_%u\nMatch User x\n")
    out = run(
        "ChangePassword",
        root,
        auth_keys=["ssh-rsa AAAA a", "ssh-rsa AAAA a"],
        properties={"USERS": "user ghost"},
    )
    keys = root / "home/user/.ssh/keys_user"
    assert keys.read_text() == "ssh-rsa AAAA a\n" and keys.stat().st_uid == 1000
    assert "WARNING no such user in /etc/passwd: ghost" in out


def test_a_symlinked_ssh_directory_is_left_alone(root, tmp_path):
    (root / "root/.ssh").symlink_to("/etc")
    out = run("ChangePassword", root, auth_keys=["ssh-rsa AAAA a"])
    assert "symbolic link" in out and not (root / "etc/authorized_keys").exists()


def test_personality_with_owners_modes_and_refusals(root):
    files = [
        {
            "path": "/etc/motd",
            "contents": base64.b64encode(b"hi").decode(),
            "owner": "user",
            "group": "staff",
            "mode": 0o640,
        },
        {"path": "/opt/new/dir/f", "contents": base64.b64encode(b"x").decode()},
    ]
    run("EnforcePersonality", root, personality=files)
    motd = (root / "etc/motd").stat()
    assert (root / "etc/motd").read_bytes() == b"hi" and (
        motd.st_uid,
        motd.st_gid,
        motd.st_mode & 0o777,
    ) == (1000, 50, 0o640)
    assert (root / "opt/new/dir/f").stat().st_mode & 0o777 == 0o440
    with pytest.raises(TaskError, match="no user 'nobody'"):
        run("EnforcePersonality", root, personality=[{**files[0], "owner": "nobody"}])
    with pytest.raises(TaskError, match=r"without '\.\.'"):
        run("EnforcePersonality", root, personality=[{**files[1], "path": "/etc/../../x"}])


def test_machine_id_and_selinux(root):
    (root / "var/lib/dbus").mkdir(parents=True)
    (root / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    run("ChangeMachineId", root, machine_id="0123456789abcdef0123456789abcdef")
    assert (root / "etc/machine-id").read_text() == "0123456789abcdef0123456789abcdef\n"
    assert (root / "var/lib/dbus/machine-id").is_symlink()
    (root / "etc/selinux").mkdir()
    (root / "etc/selinux/config").write_text("SELINUX=enforcing\n")
    run("SELinuxAutorelabel", root)
    assert (root / ".autorelabel").exists()


def test_new_ssh_host_keys_replace_the_images(root):
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("image's key")
    (root / "etc/ssh/ssh_host_ed25519_key.pub").write_text("image's key")
    keys = {
        kind: {"private": f"PRIVATE {kind}\n", "public": f"{kind} key root@vm1\n"}
        for kind in ("ecdsa", "ed25519", "rsa")
    }
    run("DeleteSSHKeys", root, ssh_host_keys=keys)
    assert sorted(os.listdir(root / "etc/ssh")) == [
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ]
    assert (root / "etc/ssh/ssh_host_ed25519_key").read_text() == "PRIVATE ed25519\n"
    assert (root / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().endswith("root@vm1\n")
    (root / "etc/ssh/ssh_host_ed25519_key").unlink()
    (root / "etc/ssh/ssh_host_ed25519_key.pub").unlink()
    run("DeleteSSHKeys", root, ssh_host_keys=keys)
    assert len(os.listdir(root / "etc/ssh")) == 6  # an image without keys gets all three


@pytest.mark.parametrize(
    ("marker", "written"),
    [
        ("etc/netplan", "etc/netplan/50-snf-image.yaml"),
        (
            "etc/NetworkManager/NetworkManager.conf",
            "etc/NetworkManager/system-connections/snf-image-nic0.nmconnection",
        ),
        (
            "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "etc/systemd/network/50-snf-image-nic0.network",
        ),
        ("etc/network/interfaces", "etc/network/interfaces.d/50-snf-image"),
    ],
)
def test_network_for_each_stack(root, marker, written):
    path = root / marker
    if "." in path.name or path.name == "interfaces":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    else:
        path.mkdir(parents=True)
    run("ConfigureNetwork", root, network={"nics": [NIC], "nameservers": ["198.51.100.1"]})
    text = (root / written).read_text()
    assert "198.51.100.5" in text
    if "netplan" in written:
        data = json.loads(text)["network"]["ethernets"]["nic0"]
        assert data["addresses"] == ["198.51.100.5/24"] and data["accept-ra"] is True
        assert data["match"] == {"macaddress": "aa:00:01:00:00:05"}


def test_cloud_init_seed_has_static_v4_and_v6(root):
    (root / "etc/cloud").mkdir()
    (root / "etc/cloud/cloud.cfg").write_text("")
    nic = {
        **NIC,
        "ipv6": {
            "method": "static",
            "address": "2001:db8:100::5",
            "prefix": 64,
            "gateway": "2001:db8:100::1",
        },
    }
    run(
        "InitializeDatasource",
        root,
        instance_id="uuid-1",
        cloud_userdata="#cloud-config\nx: 1\n",
        network={"nics": [nic]},
    )
    seed = root / "var/lib/cloud/seed/nocloud"
    assert json.loads((seed / "meta-data").read_text()) == {
        "instance-id": "uuid-1",
        "local-hostname": "vm1",
    }
    network = json.loads((seed / "network-config").read_text())["ethernets"]["nic0"]
    assert network["addresses"] == ["198.51.100.5/24", "2001:db8:100::5/64"]
    assert {"to": "::/0", "via": "2001:db8:100::1"} in network["routes"]
    assert (seed / "user-data").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("before", "after"), [(0o000, 0o000), (0o666, 0o640)])
def test_change_password_keeps_a_stricter_shadow_mode_never_a_looser_one(root, before, after):
    os.chown(root / "etc/shadow", 1000, 0)  # and never an owner but root
    os.chmod(root / "etc/shadow", before)
    run("ChangePassword", root, password_hash="$6$salt$hash")
    written = (root / "etc/shadow").stat()
    assert (written.st_mode & 0o777, written.st_uid, written.st_gid) == (after, 0, 0)


def test_shadow_editing_refuses_corrupting_hashes():
    with pytest.raises(TaskError):
        accounts.set_password_hashes(SHADOW, ["root"], "bad:hash", 1)
    text, missing = accounts.set_password_hashes(SHADOW, ["root", "x"], "$6$a$b", 20000)
    assert text.startswith("root:$6$a$b:20000:0:") and missing == ["x"]


def test_ifupdown_rendering():
    text = netconf.ifupdown([{**NIC, "ipv4": {"method": "dhcp"}, "ipv6": {"method": "dhcpv6"}}], [])
    assert "iface eth0 inet dhcp" in text and "iface eth0 inet6 dhcp" in text


def test_other_ifupdown_stanzas_for_our_nics_are_commented_out(root):
    (root / "etc/network/interfaces.d").mkdir(parents=True)
    (root / "etc/network/interfaces").write_text(
        "source /etc/network/interfaces.d/*\nauto lo eth0\niface lo inet loopback\n"
        "iface eth0 inet static\n    address 10.0.0.1/8\n"
    )
    (root / "etc/network/interfaces.d/eth0").write_text(
        "allow-hotplug eth0\niface eth0 inet dhcp\n"
    )
    run("ConfigureNetwork", root, network={"nics": [NIC], "nameservers": []})
    main = (root / "etc/network/interfaces").read_text()
    assert "auto lo\n" in main and "# iface eth0 inet static" in main and "#     address" in main
    assert "iface lo inet loopback" in main
    other = (root / "etc/network/interfaces.d/eth0").read_text()
    assert all(line.startswith("#") for line in other.splitlines())
    assert "iface eth0 inet static" in (root / "etc/network/interfaces.d/50-snf-image").read_text()


def test_planted_temporary_files_are_replaced_never_opened(root, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host")
    os.mkfifo(root / "etc/.hostname.snf-image.tmp")  # opening it would block the task
    os.link(outside, root / "etc/.hosts.snf-image.tmp")  # writing it would change the host's
    run("AssignHostname", root, hostname="vm1")
    assert (root / "etc/hostname").read_text() == "vm1\n"
    assert outside.read_text() == "host" and outside.stat().st_nlink == 1

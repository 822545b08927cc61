"""ConfigureNetwork: the instance's NICs in the image's own network stack (netplan,
NetworkManager, systemd-networkd or ifupdown), DHCP or static and SLAAC or DHCPv6 as the
host chose from the networks' tags. Images seeded for cloud-init configure themselves."""

from __future__ import annotations

from ganeti_ext.osdef.tasks import netconf
from ganeti_ext.osdef.tasks.guest import Owner

ROOT = Owner(0, 0)

NAME = "ConfigureNetwork"
INPUTS = ("network",)


def run(ctx) -> None:
    guest = ctx.require_guest()
    network = ctx.config.get("network") or {}
    nics = network.get("nics") or []
    nameservers = network.get("nameservers") or []
    if not nics:
        return
    if ctx.config.get("cloud_init_seeded"):
        ctx.report.info("network left to cloud-init (its seed has the configuration)")
        return
    stack = netconf.detect(guest)
    if stack is None:
        ctx.report.warning("no known network stack in the image: network not configured")
        return
    if stack == "netplan":
        guest.write_file(
            "/etc/netplan/50-snf-image.yaml",
            netconf.netplan(nics, nameservers),
            mode=0o600,
            make_parents=ROOT,
        )
    elif stack == "networkmanager":
        for nic in nics:
            guest.write_file(
                f"/etc/NetworkManager/system-connections/snf-image-nic{nic['index']}.nmconnection",
                netconf.networkmanager(nic, nameservers),
                mode=0o600,
                make_parents=ROOT,
            )
    elif stack == "networkd":
        for nic in nics:
            guest.write_file(
                f"/etc/systemd/network/50-snf-image-nic{nic['index']}.network",
                netconf.networkd(nic, nameservers),
                make_parents=ROOT,
            )
    else:
        names = {f"eth{nic['index']}" for nic in nics}
        _disable_other_stanzas(guest, names)
        guest.write_file(
            "/etc/network/interfaces.d/50-snf-image",
            netconf.ifupdown(nics, nameservers),
            make_parents=ROOT,
        )
        _source_interfaces_d(guest)
    ctx.report.info(f"network configured for {stack}")


def _disable_other_stanzas(guest, names: set) -> None:
    paths = ["/etc/network/interfaces"]
    paths += [f"/etc/network/interfaces.d/{n}" for n in guest.listdir("/etc/network/interfaces.d")]
    for path in paths:
        if path.endswith("/50-snf-image") or guest.symlink_or_file(path) != "file":
            continue
        text = guest.read_text(path) or ""
        changed = netconf.ifupdown_without(text, names)
        if changed != text and changed.rstrip("\n") != text.rstrip("\n"):
            guest.write_file(path, changed)


def _source_interfaces_d(guest) -> None:
    interfaces = guest.read_text("/etc/network/interfaces") or ""
    if "interfaces.d" not in interfaces:
        guest.write_file(
            "/etc/network/interfaces",
            interfaces.rstrip("\n") + "\n\nsource /etc/network/interfaces.d/*\n",
        )

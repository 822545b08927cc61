"""Network configuration for the guest's own network stack, from the NICs Ganeti gave it.

Each NIC arrives as {"index", "mac", "mtu", "ipv4": {...}, "ipv6": {...}} where a
family's "method" is dhcp | static | none (IPv4) or slaac | dhcpv6 | static | none
(IPv6), static ones with "address", "prefix" and "gateway". Renderers are pure; every
stack but ifupdown matches NICs by MAC address, so the guest's interface naming does not
matter (ifupdown gets eth<index>, the names Debian cloud images use).
"""

from __future__ import annotations

import json

STACKS = ("netplan", "networkmanager", "networkd", "ifupdown")


def detect(guest) -> str | None:
    """The stack that configures this image's network (the first that applies)."""
    if guest.is_dir("/etc/netplan"):
        return "netplan"
    if guest.exists("/etc/NetworkManager/NetworkManager.conf"):
        return "networkmanager"
    if guest.exists("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"):
        return "networkd"
    if guest.exists("/etc/network/interfaces"):
        return "ifupdown"
    return None


def _cidr(family: dict) -> str:
    return f"{family['address']}/{family['prefix']}"


def ifupdown(nics: list, nameservers: list) -> str:
    lines = ["# Written by snf-image at deployment; edit freely."]
    for nic in nics:
        name = f"eth{nic['index']}"
        v4, v6 = nic["ipv4"], nic["ipv6"]
        lines += ["", f"auto {name}", f"allow-hotplug {name}"]
        if v4["method"] == "dhcp":
            lines.append(f"iface {name} inet dhcp")
        elif v4["method"] == "static":
            lines += [f"iface {name} inet static", f"    address {_cidr(v4)}"]
            if v4.get("gateway"):
                lines.append(f"    gateway {v4['gateway']}")
            if nameservers:
                lines.append(f"    dns-nameservers {' '.join(nameservers)}")
        else:
            lines.append(f"iface {name} inet manual")
        if nic.get("mtu") and v4["method"] != "manual":
            lines.append(f"    mtu {nic['mtu']}")
        if v6["method"] == "slaac":
            lines.append(f"iface {name} inet6 auto")
        elif v6["method"] == "dhcpv6":
            lines.append(f"iface {name} inet6 dhcp")
        elif v6["method"] == "static":
            lines += [f"iface {name} inet6 static", f"    address {_cidr(v6)}"]
            if v6.get("gateway"):
                lines.append(f"    gateway {v6['gateway']}")
    return "\n".join(lines) + "\n"


def ifupdown_without(text: str, names: set) -> str:
    """An ifupdown file with every stanza for `names` commented out, so ours alone
    configures them (ifupdown refuses a second `iface eth0 inet` definition)."""
    out = []
    inside = False
    for line in text.splitlines():
        words = line.split()
        if words and not line[:1].isspace():
            inside = False
            if words[0] == "iface" and len(words) > 1 and words[1] in names:
                inside = True
            elif words[0] in ("auto", "allow-hotplug", "allow-auto") or words[0].startswith(
                "allow-"
            ):
                kept = [word for word in words[1:] if word not in names]
                if len(kept) != len(words) - 1:
                    out.append(f"# {line}  (snf-image: configured in 50-snf-image)")
                    if kept:
                        out.append(" ".join([words[0], *kept]))
                    continue
        if inside:
            out.append(f"# {line}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def networkd(nic: dict, nameservers: list) -> str:
    v4, v6 = nic["ipv4"], nic["ipv6"]
    dhcp = {("dhcp", "dhcpv6"): "yes", ("dhcp",): "ipv4", ("dhcpv6",): "ipv6"}
    wanted = tuple(m for m in (v4["method"], v6["method"]) if m in ("dhcp", "dhcpv6"))
    lines = ["[Match]", f"MACAddress={nic['mac']}", "", "[Network]"]
    lines.append(f"DHCP={dhcp.get(wanted, 'no')}")
    lines.append(f"IPv6AcceptRA={'yes' if v6['method'] in ('slaac', 'dhcpv6') else 'no'}")
    for family in (v4, v6):
        if family["method"] == "static":
            lines.append(f"Address={_cidr(family)}")
            if family.get("gateway"):
                lines.append(f"Gateway={family['gateway']}")
    lines += [
        f"DNS={server}" for server in nameservers if any(f["method"] == "static" for f in (v4, v6))
    ]
    if nic.get("mtu"):
        lines += ["", "[Link]", f"MTUBytes={nic['mtu']}"]
    return "\n".join(lines) + "\n"


def networkmanager(nic: dict, nameservers: list) -> str:
    v4, v6 = nic["ipv4"], nic["ipv6"]
    method4 = {"dhcp": "auto", "static": "manual"}.get(v4["method"], "disabled")
    method6 = {"slaac": "auto", "dhcpv6": "dhcp", "static": "manual"}.get(v6["method"], "ignore")
    lines = [
        "[connection]",
        f"id=snf-image-nic{nic['index']}",
        "type=ethernet",
        "",
        "[ethernet]",
        f"mac-address={nic['mac']}",
    ]
    if nic.get("mtu"):
        lines.append(f"mtu={nic['mtu']}")
    lines += ["", "[ipv4]", f"method={method4}"]
    if v4["method"] == "static":
        gateway = f",{v4['gateway']}" if v4.get("gateway") else ""
        lines.append(f"address1={_cidr(v4)}{gateway}")
        if nameservers:
            lines.append("dns=" + ";".join(nameservers) + ";")
    lines += ["", "[ipv6]", f"method={method6}"]
    if v6["method"] == "static":
        gateway = f",{v6['gateway']}" if v6.get("gateway") else ""
        lines.append(f"address1={_cidr(v6)}{gateway}")
    return "\n".join(lines) + "\n"


def version2(nics: list, nameservers: list) -> dict:
    """Netplan's (and cloud-init's network-config) version 2 document, as data."""
    ethernets = {}
    for nic in nics:
        v4, v6 = nic["ipv4"], nic["ipv6"]
        entry: dict = {"match": {"macaddress": nic["mac"]}, "set-name": f"eth{nic['index']}"}
        entry["dhcp4"] = v4["method"] == "dhcp"
        entry["dhcp6"] = v6["method"] == "dhcpv6"
        if v6["method"] in ("slaac", "dhcpv6"):
            entry["accept-ra"] = True
        addresses = [_cidr(f) for f in (v4, v6) if f["method"] == "static"]
        if addresses:
            entry["addresses"] = addresses
            routes = [
                {"to": "default" if f is v4 else "::/0", "via": f["gateway"]}
                for f in (v4, v6)
                if f["method"] == "static" and f.get("gateway")
            ]
            if routes:
                entry["routes"] = routes
            if nameservers:
                entry["nameservers"] = {"addresses": list(nameservers)}
        if nic.get("mtu"):
            entry["mtu"] = nic["mtu"]
        ethernets[f"nic{nic['index']}"] = entry
    return {"version": 2, "ethernets": ethernets}


def netplan(nics: list, nameservers: list) -> str:
    # JSON is YAML: no YAML library needed, and no quoting surprises.
    return json.dumps({"network": version2(nics, nameservers)}, indent=2) + "\n"

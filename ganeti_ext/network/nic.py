"""Up and down of one NIC, and the clean-up hooks call: the orchestration.

Order on up: the nft filters first, anti-spoofing and firewall profile in one
transaction (the VM never runs unprotected: qemu gets `cont` only after this script),
then the wiring (bridge port or routes), then the nfdhcpd binding and the state file;
announcements last, outside the lock. Everything is idempotent: up twice equals up once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ganeti_ext import bindings
from ganeti_ext.environ import nic as nic_env
from ganeti_ext.environ.hooks import HookNic
from ganeti_ext.errors import CommandError, GanetiExtError, ValidationError
from ganeti_ext.network import announce, links, nftrules, state
from ganeti_ext.network.host import Host
from ganeti_ext.network.plan import NicPlan, plan_nic
from ganeti_ext.network.settings import Settings

log = logging.getLogger(__name__)

# The variables worth keeping to re-apply a NIC later (what kvm-ifup passes).
_KEPT_PREFIXES = ("INTERFACE", "INSTANCE", "MAC", "IP", "MODE", "LINK", "BRIDGE", "VLAN")
_KEPT_PREFIXES_NET = ("NETWORK_", "TAGS", "INTERFACE_")


@dataclass(frozen=True)
class Context:
    settings: Settings
    host: Host


def kept_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in env.items()
        if key in _KEPT_PREFIXES or key.startswith(_KEPT_PREFIXES_NET)
    }


def up(env: Mapping[str, str], ctx: Context) -> NicPlan:
    plan = plan_nic(nic_env.parse(env), ctx.settings)
    if plan.mode == "bridged" and plan.vlan:
        raise ValidationError(f"{plan.tap}: VLANs on bridged NICs are not supported yet")
    host = ctx.host
    uplinks: tuple[str, ...] = ()
    with host.locked():
        old = state.load(ctx.settings.state_dir, plan.tap)
        if old is not None and old.routed is not None:
            # The tap name may have been reused, or the NIC changed: drop the old routes.
            _routed_down(host, plan.tap, old.routed)
        _filters_up(host, plan, ctx.settings, old)
        if plan.firewalled and plan.mode == "bridged":
            _ensure_bridge_netfilter(host)
        routed = None
        mtu: int | None = None
        if plan.mode == "bridged":
            mtu = int(host.link_attr(str(plan.link), "mtu"))
            mac = host.link_attr(plan.tap, "address")
            host.ip_batch(links.bridged_lines(plan, mtu, None if mac.startswith("fe") else mac))
        elif plan.mode == "routed" and not plan.ip_less_routed:
            # Upstream's routed NIC without the tag: the tap up with the constant MAC,
            # nothing routed or proxied (see plan.plan_nic).
            mtu = int(host.link_attr(plan.tap, "mtu"))
            host.ip_batch([links.routed_tap_line(plan, ctx.settings.tap_constant_mac)])
        elif plan.mode == "routed":
            uplinks = _uplinks(host, str(plan.link))
            routed = links.routed_setup(plan, uplinks)
            host.sysctl(links.routed_sysctls(plan.tap, uplinks))
            # The VM's MTU is the uplink's (the smallest, with several); a tap bigger
            # than what it is routed to would only make the host fragment.
            mtus = [int(host.link_attr(uplink, "mtu")) for uplink in uplinks]
            mtu = min(mtus) if mtus else int(host.link_attr(plan.tap, "mtu"))
            for family in (4, 6):  # `ip rule add` appends duplicates: delete first
                host.ip_batch(
                    [links.rule_line("del", plan.tap, routed.table)], force=True, family=family
                )
            host.ip_batch(links.routed_up_lines(plan, routed, ctx.settings.tap_constant_mac, mtu))
            for family in links.rule_families(routed):
                host.ip_batch([links.rule_line("add", plan.tap, routed.table)], family=family)
        else:
            for argv in links.ovs_commands(plan):
                host.run(argv)
        if plan.nfdhcpd:
            bindings.write_binding(ctx.settings.nfdhcpd_state_dir, _binding(plan, mtu))
        elif old is not None and old.binding:
            bindings.remove_binding(ctx.settings.nfdhcpd_state_dir, plan.tap)
        state.save(
            ctx.settings.state_dir,
            state.TapState(
                tap=plan.tap,
                instance=plan.instance,
                mode=plan.mode,
                profile=plan.profile,
                binding=plan.nfdhcpd,
                routed=routed,
                env=kept_env(env),
                masq=nftrules.masq_of(plan),
            ),
        )
    if routed is not None:
        _announce(ctx.host, plan, uplinks)
    log.info(
        "%s up: %s %s on %s, profile %s",
        plan.instance,
        plan.tap,
        plan.mode,
        plan.link,
        plan.profile or "none",
    )
    return plan


def down(tap: str, ctx: Context) -> None:
    """Remove everything up added for `tap`, whether the tap still exists or not."""
    nic_env.check_ifname("INTERFACE", tap)
    host = ctx.host
    with host.locked():
        old = state.load(ctx.settings.state_dir, tap)
        _filters_down(host, tap, ctx.settings, old.masq if old else None)
        if old is not None and old.routed is not None:
            _routed_down(host, tap, old.routed)
        bindings.remove_binding(ctx.settings.nfdhcpd_state_dir, tap)
        state.remove(ctx.settings.state_dir, tap)
    log.info("%s down: %s", old.instance if old else "?", tap)


def reconcile(
    ctx: Context,
    instance: str | None = None,
    tags: tuple[str, ...] | None = None,
    nics: Sequence[HookNic] = (),
) -> list[str]:
    """Take down every recorded tap that no longer exists (Ganeti has no ifdown for a
    removed or hot-unplugged NIC); with `instance` and `tags`, re-apply that instance's
    live taps with the new tags and, from `nics` (the instance's NICs now), each one's
    index and name now. Returns the taps acted on."""
    done = []
    for tap in state.taps(ctx.settings.state_dir):
        if not ctx.host.exists(tap):
            down(tap, ctx)
            done.append(tap)
            continue
        if instance is None or tags is None:
            continue
        recorded = state.load(ctx.settings.state_dir, tap)
        if recorded is None or recorded.instance != instance or not recorded.env:
            continue
        up(current_env(recorded.env, tags, nics), ctx)
        done.append(tap)
    return done


def current_env(
    recorded: Mapping[str, str], tags: tuple[str, ...], nics: Sequence[HookNic]
) -> dict[str, str]:
    """A tap's recorded NIC script environment brought up to date after a modify (pure).

    Firewall tags name a NIC by index or name; removing a NIC renumbers those after it,
    so the NIC is looked up among the instance's NICs now (by UUID, else by MAC) and its
    index and name taken from there. A NIC no longer listed (removed without hotplug: its
    tap lives until the instance stops) keeps what it had.
    """
    env = dict(recorded)
    env["TAGS"] = " ".join(tags)
    uuid = recorded.get("INTERFACE_UUID")
    mac = recorded.get("MAC", "").lower()
    nic = next((nic for nic in nics if uuid and nic.uuid == uuid), None) or next(
        (nic for nic in nics if mac and (nic.mac or "").lower() == mac), None
    )
    if nic is not None:
        env["INTERFACE_INDEX"] = str(nic.index)
        if nic.name:
            env["INTERFACE_NAME"] = nic.name
        else:
            env.pop("INTERFACE_NAME", None)
    return env


def _routed_down(host: Host, tap: str, setup: links.RoutedSetup) -> None:
    host.ip_batch(links.routed_down_lines(tap, setup), force=True)
    for family in (4, 6):
        host.ip_batch([links.rule_line("del", tap, setup.table)], force=True, family=family)


def _filters_up(host: Host, plan: NicPlan, settings: Settings, old: state.TapState | None) -> None:
    """Anti-spoofing, firewall profile, private filtering and masquerading in one nft
    transaction: adds only for a fresh tap (cheap however many NICs the node has), the
    full idempotent batch otherwise or when the fresh one is refused."""
    if old is None:
        try:
            host.nft(nftrules.fresh_up_batch(plan, settings.mac_mask))
            return
        except CommandError as err:
            log.info("%s: not a fresh tap for nft, re-making its rules (%s)", plan.tap, err)
    old_masq = old.masq if old else None
    batch = nftrules.up_batch(plan, settings.mac_mask, settings.firewall_mark_mask, old_masq)
    host.retried(lambda: host.nft(batch), "nft")


def _filters_down(host: Host, tap: str, settings: Settings, masq: nftrules.Masq | None) -> None:
    exists = host.exists(tap)
    try:
        host.nft(nftrules.down_batch(tap, tap_exists=exists, masq=masq))
    except CommandError:
        # The skeleton is missing (a rebooted node, say): make it so the batch holds.
        mark_mask = settings.firewall_mark_mask
        batch = nftrules.down_batch(tap, tap_exists=exists, mark_mask=mark_mask, masq=masq)
        host.retried(lambda: host.nft(batch), "nft")
    if not exists:
        host.nft_if_present(nftrules.delete_ingress(tap))


def ensure_skeleton(ctx: Context) -> None:
    """(Re)make the shared tables and chains, e.g. after FIREWALL_MARK_MASK changed."""
    batch = nftrules.skeleton_batch(ctx.settings.firewall_mark_mask)
    with ctx.host.locked():
        ctx.host.retried(lambda: ctx.host.nft(batch), "nft")


def _ensure_bridge_netfilter(host: Host) -> None:
    """Bridged traffic reaches the inet firewall only when br_netfilter hands it over."""
    for key in ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"):
        value = host.read_sysctl(key)
        if value is None:
            raise ValidationError(
                f"/proc/sys/{key} is missing: load br_netfilter for bridged firewall profiles"
            )
        if value != "1":
            log.warning("setting %s to 1 for bridged firewall profiles", key)
            host.sysctl({key: "1"})


def _uplinks(host: Host, table: str) -> tuple[str, ...]:
    found: list[str] = []
    for family in ("-4", "-6"):
        result = host.run(["ip", family, "-o", "route", "show", "table", table], check=False)
        for dev in links.parse_uplinks(result.stdout_text):
            if dev not in found:
                found.append(dev)
    return tuple(found)


def _binding(plan: NicPlan, mtu: int | None) -> bindings.Binding:
    assert plan.mac is not None
    return bindings.Binding(
        tap=plan.tap,
        mac=plan.mac,
        hostname=plan.instance or plan.tap,
        indev=plan.link if plan.mode == "bridged" else plan.tap,
        ip=plan.ipv4,
        tags=plan.network_tags,
        gateway=plan.gateway,
        subnet=plan.subnet,
        gateway6=plan.gateway6,
        subnet6=plan.subnet6,
        eui64=plan.ipv6,
        private=plan.private_filtered,
        mtu=mtu,
    )


def _announce(host: Host, plan: NicPlan, uplinks: tuple[str, ...]) -> None:
    for uplink in uplinks:
        try:
            mac = host.link_attr(uplink, "address")
            frames = []
            if plan.ipv4:
                frames.append(announce.garp_frame(mac, plan.ipv4))
            if plan.ipv6:
                frames.append(announce.unsolicited_na_frame(mac, plan.ipv6, plan.ipv6))
            host.send_frames(uplink, frames)
        except (OSError, GanetiExtError) as err:  # an optimisation, never a failure
            log.warning("%s: cannot announce on %s: %s", plan.tap, uplink, err)

"""From a queued packet to a verdict and reply frames: binding lookup and per-protocol logic.

No sockets and no NFQUEUE here: the daemon hands in the packet's bytes, its device
names and hardware source address, and sends the frames this returns. That keeps the
decision "answer or let it through" testable on captured frames.

Verdicts: a packet from a device with no binding is ACCEPTed untouched; from a bound
device it is DROPped, with the answer frames (none for malformed or spoofed packets).
The one exception is an NS for a target nfdhcpd does not answer for (a neighbour on a
bridge, the guest's own duplicate address detection): it is accepted, so the real
owner answers.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable

from ganeti_ext.bindings import Binding
from ganeti_ext.nfdhcpd import dhcpv4, dhcpv6, ndp
from ganeti_ext.nfdhcpd.packets import Malformed, mac_text, parse_ipv4_udp

log = logging.getLogger(__name__)

ACCEPT = "accept"
DROP = "drop"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str
    frames: tuple[tuple[str, bytes], ...] = ()  # (device to send on, Ethernet frame)


_ACCEPT = Outcome(ACCEPT)
_DROP = Outcome(DROP)


class Responder:
    """Answers for every binding in `table`. `mac_of(device)` gives a device's MAC (the
    tap's, the source of every reply), or None if the device is gone."""

    def __init__(
        self,
        table,
        dhcp: dhcpv4.Settings | None,
        ipv6: ndp.Settings | None,
        mac_of: Callable[[str], bytes | None],
    ) -> None:
        self.table = table
        self.dhcp = dhcp
        self.ipv6 = ipv6
        self.mac_of = mac_of
        self.leases: dict[str, dhcpv4.Lease] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        self._warned: set[tuple[str, bytes]] = set()

    def _find(
        self, indev: str | None, physindev: str | None, key_mac: bytes | None
    ) -> tuple[Binding | None, str | None, bool]:
        """(binding, device the packet came from, whether by MAC fallback)."""
        device = physindev or indev
        if device is None:
            return None, None, False
        binding = self.table.get(device)
        if binding is not None:
            return binding, device, False
        if key_mac is not None:
            for name in (physindev, indev):
                if name is not None:
                    binding = self.table.by_mac(name, key_mac)
                    if binding is not None:
                        return binding, device, True
        return None, device, False

    # --- DHCPv4 -------------------------------------------------------------------------

    def dhcpv4(
        self, packet: bytes, indev: str | None, physindev: str | None, hw_src: bytes | None
    ) -> Outcome:
        try:
            _src, _dst, _sport, dport, payload = parse_ipv4_udp(packet)
            request = dhcpv4.parse(payload)
        except Malformed as err:
            return self._malformed("dhcpv4", err, indev, physindev, hw_src)
        binding, device, fallback = self._find(indev, physindev, request.chaddr)
        if binding is None or device is None:
            self.stats["dhcpv4-unbound"] += 1
            return _ACCEPT
        if self.dhcp is None or dport != dhcpv4.SERVER_PORT:
            return _DROP
        spoofed = request.chaddr != binding.mac_bytes or (
            fallback and hw_src is not None and hw_src != request.chaddr
        )
        if spoofed and not binding.macspoof:
            self.stats["dhcpv4-spoofed"] += 1
            # Once per device and MAC: a spoofing guest must not flood the log.
            level = logging.DEBUG if (device, request.chaddr) in self._warned else logging.WARNING
            self._warned.add((device, request.chaddr))
            log.log(
                level,
                "%s: %s with chaddr %s, bound MAC is %s: dropped",
                device,
                request.name,
                mac_text(request.chaddr),
                binding.mac,
            )
            return _DROP
        answer = dhcpv4.decide(request, binding, self.dhcp, self.leases)
        self.stats["dhcpv4-" + request.name.lower()] += 1
        if answer is None:
            return _DROP
        tap_mac = self.mac_of(device)
        if tap_mac is None:
            return _DROP
        frame = dhcpv4.build_frame(request, answer, tap_mac, hw_src)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: %s from %s -> %s %s",
                device,
                request.name,
                binding.mac,
                dhcpv4.MESSAGE_NAMES[answer.msg_type],
                binding.ip,
            )
        return Outcome(DROP, ((device, frame),))

    # --- IPv6 ---------------------------------------------------------------------------

    def icmpv6(
        self, packet: bytes, indev: str | None, physindev: str | None, hw_src: bytes | None
    ) -> Outcome:
        """Router and neighbour solicitations (queues 43 and 44)."""
        try:
            message = ndp.parse(packet)
        except Malformed as err:
            return self._malformed("icmpv6", err, indev, physindev, hw_src)
        binding, device, _fallback = self._find(indev, physindev, hw_src)
        if binding is None or device is None:
            self.stats["icmpv6-unbound"] += 1
            return _ACCEPT
        if self.ipv6 is None or binding.subnet6 is None:
            # No IPv6 on this NIC: let the kernel (or a real router) deal with it.
            return _ACCEPT if message.type == ndp.NEIGHBOR_SOLICITATION else _DROP
        if not self._l2_ok(binding, hw_src, message.source_lladdr):
            self.stats["icmpv6-spoofed"] += 1
            return _DROP
        tap_mac = self.mac_of(device)
        if tap_mac is None:
            return _DROP
        if message.type == ndp.ROUTER_SOLICITATION:
            self.stats["rs"] += 1
            return Outcome(DROP, ((device, ndp.router_advertisement(binding, self.ipv6, tap_mac)),))
        assert message.target is not None
        routed = physindev is None
        if message.src == ndp.UNSPECIFIED or not ndp.answers_for(
            binding, tap_mac, routed, message.target
        ):
            self.stats["ns-passed"] += 1
            return _ACCEPT
        self.stats["ns"] += 1
        client_mac = hw_src or binding.mac_bytes
        return Outcome(DROP, ((device, ndp.neighbor_advertisement(message, tap_mac, client_mac)),))

    def dhcpv6(
        self, packet: bytes, indev: str | None, physindev: str | None, hw_src: bytes | None
    ) -> Outcome:
        try:
            message = dhcpv6.parse(packet)
        except Malformed as err:
            return self._malformed("dhcpv6", err, indev, physindev, hw_src)
        binding, device, _fallback = self._find(indev, physindev, hw_src)
        if binding is None or device is None:
            self.stats["dhcpv6-unbound"] += 1
            return _ACCEPT
        if self.ipv6 is None or binding.subnet6 is None:
            return _DROP
        if not self._l2_ok(binding, hw_src, None):
            self.stats["dhcpv6-spoofed"] += 1
            return _DROP
        tap_mac = self.mac_of(device)
        if tap_mac is None:
            return _DROP
        payload = dhcpv6.answer(message, binding, self.ipv6, tap_mac)
        self.stats["dhcpv6-" + message.name.lower()] += 1
        if payload is None:
            return _DROP
        frame = dhcpv6.build_frame(message, payload, tap_mac, hw_src or binding.mac_bytes)
        return Outcome(DROP, ((device, frame),))

    def router_advertisement(self, binding: Binding) -> tuple[str, bytes] | None:
        """The periodic RA for one binding (None when it has no IPv6 or no tap)."""
        if self.ipv6 is None or binding.subnet6 is None:
            return None
        tap_mac = self.mac_of(binding.tap)
        if tap_mac is None:
            return None
        return binding.tap, ndp.router_advertisement(binding, self.ipv6, tap_mac)

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _l2_ok(binding: Binding, hw_src: bytes | None, lladdr: bytes | None) -> bool:
        if binding.macspoof:
            return True
        mine = binding.mac_bytes
        return (hw_src is None or hw_src == mine) and (lladdr is None or lladdr == mine)

    def _malformed(
        self,
        kind: str,
        err: Malformed,
        indev: str | None,
        physindev: str | None,
        hw_src: bytes | None,
    ) -> Outcome:
        self.stats[kind + "-malformed"] += 1
        binding, device, _ = self._find(indev, physindev, hw_src)
        if binding is None:
            return _ACCEPT
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: malformed %s packet dropped: %s", device, kind, err)
        return _DROP

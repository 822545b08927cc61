"""The suite's configuration files as an admin would set them for the lab's network."""

from __future__ import annotations

from pathlib import Path

from labkit import rabbit

# DNS settings nfdhcpd hands out in the lab (no server answers there: tests check them).
DNS4 = "198.51.100.53"
DNS6 = "2001:db8:100::53"
DOMAIN = "lab.test"

EVENTD_CONF = Path("/etc/ganeti-ext/eventd.conf")
NFDHCPD_CONF = Path("/etc/nfdhcpd/nfdhcpd.conf")
SNF_IMAGE_CONF = Path("/etc/snf-image/snf-image.conf")


def snf_image_conf() -> str:
    # /dev/kvm on this machine kind is PVM, under which ordinary guest kernels hang: emulate.
    return "# ganeti-ext lab: the helper VM under software emulation\n[helper]\naccel = tcg\n"


def nfdhcpd_conf() -> str:
    return (
        "# ganeti-ext lab: DNS settings nfdhcpd hands out (tests check them in answers)\n"
        f"[general]\n[dhcp]\nnameservers = {DNS4}\ndomain = {DOMAIN}\n"
        f"[ipv6]\nnameservers = {DNS6}\ndomains = {DOMAIN}\n"
    )


def eventd_conf() -> str:
    return (
        "# ganeti-ext lab: the lab's RabbitMQ, reachable from every lab node\n"
        f"[amqp]\nurls = {rabbit.node_url()}\n\n[eventd]\n"
    )


def configure() -> bool:
    """Write the lab's settings where they differ; True when any file changed."""
    changed = False
    for path, text, mode in (
        (EVENTD_CONF, eventd_conf(), 0o640),  # holds the broker password
        (NFDHCPD_CONF, nfdhcpd_conf(), 0o644),
        (SNF_IMAGE_CONF, snf_image_conf(), 0o644),
    ):
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        changed = True
    return changed

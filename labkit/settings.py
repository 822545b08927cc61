"""Every name, address and path the lab uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent

# Lab state (removed by `down`) and the cache (kept: downloads and builds).
STATE_DIR = Path("/var/lib/ganeti-ext-lab")
RUN_DIR = STATE_DIR / "run"
LOG_FILE = Path("/var/log/ganeti-ext-lab.log")
GUARD_DIR = STATE_DIR / "host-guard"
RAPI_PASSWORD_FILE = STATE_DIR / "rapi-password"
NODES_FILE = STATE_DIR / "nodes"
INSTALLED_BUILD_FILE = STATE_DIR / "installed-build"
CACHE_DIR = Path("/var/cache/ganeti-ext-lab")
LOCK_FILE = Path("/run/lock/ganeti-ext-lab.lock")  # outside STATE_DIR, which down removes
GUEST_DIR = CACHE_DIR / "guest"
IMAGES_DIR = CACHE_DIR / "images"  # disk images the lab builds (labkit.images, VM images)
BUILD_DIR = CACHE_DIR / "build"
TOOLS_VENV = CACHE_DIR / "tools-venv"
RUFF_VERSION = "0.17.5"

DOMAIN = "ganeti.test"
CLUSTER_NAME = f"cluster.{DOMAIN}"
CLUSTER_IP = "198.51.100.10"
BRIDGE = "br0"
PREFIX_LEN = 24
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Node:
    index: int
    short: str
    netns: str
    ip: str
    ip6: str

    @property
    def name(self) -> str:
        return f"{self.short}.{DOMAIN}"

    @property
    def private_root(self) -> Path:
        """Where a secondary node keeps the directories it must not share with the master."""
        return STATE_DIR / self.short

    @property
    def sshd_pidfile(self) -> Path:
        return RUN_DIR / f"sshd-{self.short}.pid"


NODES = {
    1: Node(1, "node1", "gnt", "198.51.100.11", "2001:db8:100::11"),
    2: Node(2, "node2", "gnt2", "198.51.100.12", "2001:db8:100::12"),
}
MASTER = NODES[1]

# Directories a secondary node gets privately (Ganeti state is per node,
# /etc/ganeti and /srv stay shared, like shared storage between real nodes).
NODE_PRIVATE_DIRS = ("/var/lib/ganeti", "/run/ganeti", "/var/log/ganeti", "/etc/ssh", "/root/.ssh")
# The suite's node-local state: a secondary node gets these empty (same directory tree,
# no files), as a separate machine would; otherwise two nodes' daemons share a spool.
NODE_LOCAL_STATE_DIRS = (
    "/var/lib/snf-ganeti-eventd",
    "/var/log/ganeti-ext",
    "/var/lib/nfdhcpd",
    "/var/log/nfdhcpd",
    "/run/nfdhcpd",
    "/var/lib/snf-network",
)

FILE_STORAGE_DIR = "/srv/ganeti/file-storage"
SHARED_FILE_STORAGE_DIR = "/srv/ganeti/shared-file-storage"
FILE_STORAGE_PATHS = Path("/etc/ganeti/file-storage-paths")
# The archipelago store: an XFS with reflinks on a sparse file (the host's root is ext4,
# which cannot share extents), mounted where both nodes see it, as shared storage.
ARCHIPELAGO_STORE = "/srv/archipelago"
ARCHIPELAGO_XFS_IMAGE = STATE_DIR / "archipelago.xfs"
ARCHIPELAGO_XFS_SIZE = "64G"  # sparse: takes only what is written


# Host directories the lab (or Ganeti and RabbitMQ on its behalf) writes into. `up`
# records them as found; `down` puts them back, sparing files that dpkg owns.
GUARDED_DIRS = (
    "/var/lib/ganeti",
    "/run/ganeti",
    "/var/log/ganeti",
    "/etc/ganeti",
    "/srv/ganeti",
    "/srv/archipelago",
    "/root/.ssh",
    "/etc/rabbitmq",
    "/var/lib/rabbitmq",
    "/var/log/rabbitmq",
    "/etc/netns",
    "/etc/ganeti-ext",
    "/var/lib/snf-ganeti-eventd",
    "/var/log/ganeti-ext",
)


@dataclass(frozen=True)
class LabNetwork:
    name: str = "net1"
    subnet: str = "198.51.100.0/24"
    gateway: str = "198.51.100.1"
    subnet6: str = "2001:db8:100::/64"
    gateway6: str = "2001:db8:100::1"
    mac_prefix: str = "aa:00:01"
    tags: str = "nfdhcpd"


NETWORK = LabNetwork()

RAPI_USER = "lab-tests"
RAPI_PORT = 5080
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"  # tests, from the master's namespace
AMQP_USER = "ganeti-ext"  # the suite's daemons, from any node
AMQP_PASSWORD_FILE = STATE_DIR / "amqp-password"
AMQP_CLOUD_USER = "ganeti-ext-cloud"  # the cloud layer's consumer (snf-events)
AMQP_CLOUD_PASSWORD_FILE = STATE_DIR / "amqp-cloud-password"

# The suite's daemons the lab runs on every node, from their systemd units.
LAB_SERVICES = ("snf-ganeti-eventd", "nfdhcpd")

DEMO_INSTANCE = "snf-debian1"
GUEST_MEMORY_MB = 128

# Debian packages: what Ganeti and the lab run on, what the .debs build with,
# and what the tests use. Checked with dpkg-query; only missing ones are installed.
HOST_PACKAGES = (
    # the cluster: `ganeti` is 3.0 on Debian 12 and 3.1 on 13 (no ganeti-3.0 there)
    "ganeti",
    "openssh-server",
    "fping",
    "iputils-arping",
    "socat",
    "bridge-utils",
    "iproute2",
    "util-linux",
    "kmod",
    "qemu-system-x86",
    "qemu-utils",
    "rabbitmq-server",
    "busybox-static",
    "cpio",
    "curl",
    "iptables",  # nfdhcpd's queue rules
    "nftables",  # snf-network's filters
    "xfsprogs",
    "btrfs-progs",
    "openssh-client",
    # the lab's VM images: Debian built offline, and a small busybox + dropbear one
    "mmdebstrap",
    "grub-pc-bin",
    "dropbear-bin",
    "fdisk",  # sfdisk: partition tables of test and demo images
    "e2fsprogs",
    "zstd",
    "xz-utils",
    # the suite's runtime dependencies
    "python3-kombu",
    "python3-pyinotify",
    "python3-scapy",
    "python3-zstandard",
    # building the .debs (ours and python3-netfilterqueue)
    "build-essential",
    "dpkg-dev",
    "debhelper",
    "dh-python",
    "python3-all",
    "python3-all-dev",
    "python3-setuptools",
    "pybuild-plugin-pyproject",
    "fakeroot",
    "lintian",  # ./lab test checks the built packages with it
    "libnetfilter-queue-dev",
    "cython3",
    "python3-wheel",
    "python3-pip",
    "python3-venv",
    # tests
    "python3-pytest",
    "python3-jsonschema",
    # nfdhcpd's tests and bench/dhcp: real DHCP/IPv6 clients and peer servers
    "isc-dhcp-client",
    "ndisc6",
    "dnsmasq-base",
    "kea-dhcp4-server",
    "kea-admin",
    # bench/storage
    "fio",
)

# The binary packages the suite's source package builds.
SUITE_PACKAGES = (
    "python3-ganeti-ext",
    "snf-image",
    "ganeti-extstorage-archipelago",
    "snf-network",
    "nfdhcpd",
    "snf-ganeti-eventd",
)

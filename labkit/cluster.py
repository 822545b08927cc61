"""The Ganeti side of the lab: cluster init and settings, RAPI user, network, nodes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from labkit import ganeti_release, settings, xfs
from labkit.settings import Node
from labkit.sh import LabError, checked, on_master, read_pidfile, run, stored_secret

GANETI_TIMEOUT = 300


def gnt(*argv: str, timeout: float = GANETI_TIMEOUT, check: bool = True):
    """A gnt-* command on the master (a guest stop retried past Ganeti 3.1 rc2's QMP bug)."""
    proc = ganeti_release.stop_retried(
        argv, lambda: on_master(list(argv), timeout=timeout, check=False)
    )
    return checked(proc) if check else proc


def master_answers() -> bool:
    """True when the master daemons (luxid, wconfd) answer a query within seconds.

    `gnt-cluster getmaster` is no test: it only reads ssconf files, which outlive the
    daemons when a lab is killed.
    """
    # A dead luxid makes every gnt-* client retry for ~20 s: look at the pidfiles first.
    for daemon in ("ganeti-luxid", "ganeti-wconfd"):
        if read_pidfile(f"/run/ganeti/{daemon}.pid") is None:
            return False
    try:
        proc = gnt("gnt-node", "list", "--no-headers", "-o", "name", timeout=30, check=False)
    except LabError:
        return False
    return proc.returncode == 0 and settings.MASTER.name in proc.stdout.split()


def node_names() -> list[str]:
    proc = gnt("gnt-node", "list", "--no-headers", "-o", "name", timeout=60)
    return proc.stdout.split()


def prepare_storage_dirs() -> None:
    for path in (settings.FILE_STORAGE_DIR, settings.SHARED_FILE_STORAGE_DIR):
        Path(path).mkdir(parents=True, exist_ok=True)
    settings.FILE_STORAGE_PATHS.write_text(
        f"{settings.FILE_STORAGE_DIR}\n{settings.SHARED_FILE_STORAGE_DIR}\n"
    )
    for sub in ("os", "extstorage"):
        Path("/var/log/ganeti", sub).mkdir(parents=True, exist_ok=True)
    ensure_store()


def ensure_store() -> None:
    """The archipelago store: mounted before node 2's private mount namespace is made,
    so both nodes see it (/srv is not private), and initialized by the installed tool."""
    xfs.make(
        settings.ARCHIPELAGO_XFS_IMAGE,
        Path(settings.ARCHIPELAGO_STORE),
        settings.ARCHIPELAGO_XFS_SIZE,
    )
    if not Path(settings.ARCHIPELAGO_STORE, "archipelago-store.json").exists():
        run(["archipelago", "store", "init", settings.ARCHIPELAGO_STORE])


def store_ready() -> bool:
    return (
        xfs.mounted_fs(Path(settings.ARCHIPELAGO_STORE)) == "xfs"
        and Path(settings.ARCHIPELAGO_STORE, "archipelago-store.json").exists()
    )


def kvm_params(kernel: Path, initrd: Path) -> dict[str, str]:
    # qemu-system-x86_64, not /usr/bin/kvm: the latter turns KVM on by its own name and
    # /dev/kvm on this machine kind is PVM, under which ordinary guest kernels hang. TCG works.
    params = {
        "kvm_path": "/usr/bin/qemu-system-x86_64",
        "kernel_path": str(kernel),
        "initrd_path": str(initrd),
        "kernel_args": "console=ttyS0 panic=-1",
        "serial_console": "true",
        "vnc_bind_address": "",
        # Ganeti 3.1 defaults to vhost_net and opens /dev/vhost-net before qemu starts;
        # kernels without it (this machine kind's) then fail every NIC. Valid on 3.0 too.
        "vhost_net": "false",
        # Ganeti's defaults (32 MiB/s, 30 ms) make qemu 7.2 copy a busy TCG guest's
        # memory in many passes, and here 5 of 11 such live migrations left the guest's
        # memory corrupt (kernel panics on its console right after the move). In one
        # or two passes (the nodes share a host: 1000 MiB/s, qemu's own 300 ms): 0 of 14.
        "migration_bandwidth": "1000",
        "migration_downtime": "300",
    }
    return params


def kvm_hvparams(kernel: Path, initrd: Path) -> str:
    """The lab's kvm parameters as `gnt-cluster -H` takes them."""
    params = kvm_params(kernel, initrd)
    return "kvm:" + ",".join(f"{key}={value}" for key, value in params.items())


def kvm_params_in_force(info: str) -> dict[str, str]:
    """The kvm section of `gnt-cluster info` (pure): `    key: value` lines after `  kvm:`."""
    found: dict[str, str] = {}
    lines = iter(info.splitlines())
    for line in lines:
        if line.strip() == "kvm:" and line.startswith("  ") and not line.startswith("   "):
            break
    for line in lines:
        if not line.startswith("    "):
            break
        key, _, value = line.strip().partition(":")
        found[key] = value.strip()
    return found


def init_cluster(kernel: Path, initrd: Path) -> None:
    gnt(
        "gnt-cluster",
        "init",
        "--enabled-hypervisors=fake,kvm",
        "--enabled-disk-templates=diskless,file,sharedfile,ext",
        "--ipolicy-disk-templates=diskless,file,sharedfile,ext",
        "--no-etc-hosts",
        f"--master-netdev={settings.BRIDGE}",
        f"--nic-parameters=mode=bridged,link={settings.BRIDGE}",
        f"--file-storage-dir={settings.FILE_STORAGE_DIR}",
        f"--shared-file-storage-dir={settings.SHARED_FILE_STORAGE_DIR}",
        "--ssh-key-type=rsa",
        f"--hypervisor-parameters={kvm_hvparams(kernel, initrd)}",
        settings.CLUSTER_NAME,
    )


def apply_kvm_hvparams(kernel: Path, initrd: Path) -> None:
    """The lab's kvm parameters on a cluster made earlier too (init sets them only once);
    nothing is submitted when they are in force already (a modify is a job eventd reports)."""
    now = kvm_params_in_force(gnt("gnt-cluster", "info").stdout)
    wanted = kvm_params(kernel, initrd)
    if any(now.get(key, "").lower() != value.lower() for key, value in wanted.items()):
        gnt("gnt-cluster", "modify", "-H", kvm_hvparams(kernel, initrd))


def relax_instance_policy() -> None:
    """Tiny test instances: the default policy wants disks of at least 1 GiB."""
    gnt(
        "gnt-cluster",
        "modify",
        "--ipolicy-bounds-specs",
        "min:disk-size=1,cpu-count=1,disk-count=1,memory-size=32,nic-count=0,spindle-use=0"
        "/max:disk-size=1048576,cpu-count=8,disk-count=16,memory-size=32768,nic-count=8,"
        "spindle-use=12",
        "--ipolicy-std-specs",
        "disk-size=64,cpu-count=1,disk-count=1,memory-size=128,nic-count=1,spindle-use=1",
    )


def rapi_password() -> str:
    return stored_secret(settings.RAPI_PASSWORD_FILE)


def ensure_rapi_user() -> None:
    """A RAPI user for tests (ganeti-rapi reads the users file live)."""
    realm = f"{settings.RAPI_USER}:Ganeti Remote API:{rapi_password()}"
    ha1 = hashlib.md5(realm.encode()).hexdigest()
    users = Path("/var/lib/ganeti/rapi/users")
    users.parent.mkdir(parents=True, exist_ok=True)
    line = f"{settings.RAPI_USER} {{HA1}}{ha1} write\n"
    if not users.exists() or users.read_text() != line:
        users.write_text(line)
    run(["chown", "-R", "gnt-rapi:gnt-masterd", str(users.parent)], check=False)
    users.chmod(0o640)


def ensure_network() -> None:
    net = settings.NETWORK
    listing = gnt("gnt-network", "list", "--no-headers", "-o", "name,group_list").stdout
    names = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    if net.name not in names:
        gnt(
            "gnt-network",
            "add",
            f"--network={net.subnet}",
            f"--gateway={net.gateway}",
            f"--network6={net.subnet6}",
            f"--gateway6={net.gateway6}",
            f"--mac-prefix={net.mac_prefix}",
            f"--tags={net.tags}",
            net.name,
        )
    if "default" not in names.get(net.name, ""):
        gnt(
            "gnt-network",
            "connect",
            "--no-conflicts-check",
            f"--nic-parameters=mode=bridged,link={settings.BRIDGE}",
            net.name,
            "default",
        )


def add_node(node: Node) -> None:
    gnt("gnt-node", "add", "--no-ssh-key-check", node.name, timeout=600)


def remove_node(node: Node) -> None:
    gnt("gnt-node", "remove", node.name, timeout=300, check=False)


def instances() -> list[dict[str, str]]:
    proc = gnt(
        "gnt-instance",
        "list",
        "--no-headers",
        "--separator=|",
        "-o",
        "name,status,pnode",
        timeout=60,
    )
    rows = []
    for line in proc.stdout.splitlines():
        if line.strip():
            name, status, pnode = line.split("|")
            rows.append({"name": name, "status": status, "pnode": pnode})
    return rows


def remove_all_instances() -> None:
    for inst in instances():
        gnt(
            "gnt-instance",
            "remove",
            "-f",
            "--shutdown-timeout=0",
            inst["name"],
            timeout=300,
            check=False,
        )


def destroy_cluster() -> None:
    gnt("gnt-cluster", "destroy", "--yes-do-it", timeout=300, check=False)


def verify() -> str:
    proc = gnt(
        "gnt-cluster",
        "verify",
        "--error-codes",
        "--ignore-errors=ENODESETUP",
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"gnt-cluster verify failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def diagnose(kind: str) -> str:
    """`gnt-os diagnose` / `gnt-storage diagnose` output (raises if the command fails)."""
    return gnt(f"gnt-{kind}", "diagnose", timeout=120).stdout

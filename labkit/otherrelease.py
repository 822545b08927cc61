"""The other supported Debian release, proved in a root built from Debian's packages.

The lab runs on the machine's own release (Debian 12 with Ganeti 3.0, or 13 with 3.1).
The other one is proved here, in a root that mmdebstrap builds from the machine's own
mirrors (cached by its package list) and that every run sees through a throw-away
overlay, in private mount, UTS and PID namespaces (everything started there dies with
it):

1. the suite's source package built with that release's toolchain (dpkg-buildpackage);
2. its binary packages installed by apt, with that release's dependencies;
3. the unit suite under that release's Python;
4. in a private network namespace: a one-node Ganeti cluster of that release initialised,
   the suite's OS and ExtStorage provider diagnosed valid by Ganeti, and the NIC script
   run by hand the way Ganeti runs it for a tap on a bridge (its nftables rules seen);
   then a KVM guest under that release's Ganeti and qemu, a NIC hotplugged into it and
   NIC 0 out of it (rules, state and firewall profiles checked after each), and the
   guest, which ignores ACPI, stopped;
5. the second tier, on a fresh overlay that shares the machine's network namespace (for
   apt): the README's two commands as on a machine of that release: `./lab demo` (host
   packages, images, the lab, a Debian VM from an image reached by ssh), then `./lab
   test` with two nodes: lint, lintian and every integration test. The machine's own
   lab goes down first: both would name the store's loop device by the same file path.

The README ("Debian 12 and Debian 13") says what differs from a real machine of that
release (the kernel is this machine's) and what is known to fail there and why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from labkit import guest, settings
from labkit.debian_image import INDEX_FORMAT, debian_mirrors, host_codename
from labkit.debs import source_files
from labkit.progress import say
from labkit.sh import LabError, clean_env, run
from labkit.xfs import detach_loops_under

OTHER = {"bookworm": "trixie", "trixie": "bookworm"}
RELEASE_NUMBER = {"bookworm": "12", "trixie": "13"}
WORK = settings.CACHE_DIR / "other-release"
LOG = Path("/var/log/ganeti-ext-lab-other-release.log")
# What the root holds before the suite's packages come: the build and test tools.
# The suite's own dependencies come with its packages, as an admin's apt would take them.
PACKAGES = (
    "build-essential",
    "dpkg-dev",
    "debhelper",
    "dh-python",
    "pybuild-plugin-pyproject",
    "python3-all",
    "python3-setuptools",
    "fakeroot",
    "python3-pytest",
    "python3-jsonschema",
    "python3-scapy",  # the nfdhcpd tests check packets with it (nfdhcpd does not need it)
    "iproute2",
    "ca-certificates",
    # The hypervisor of step 4's guest (Ganeti only recommends it); socat for its console.
    "qemu-system-x86",
    "socat",
    "git",  # step 5: the lab builds the packages `git ls-files` lists
)
POLICY_RC_D = (
    "#!/bin/sh\n# ganeti-ext lab: no daemon starts when a package is installed\nexit 101\n"
)
# The private network of step 4 (no link leaves its namespace).
NODE_IP = "198.51.100.71"
CLUSTER_IP = "198.51.100.70"
NODE_NAME = "node1.other.test"
CLUSTER_NAME = "cluster.other.test"

BUILD_AND_UNIT = """\
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
echo "== $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 --version)"
apt-get update -q
cd /build/ganeti-ext
echo "== dpkg-buildpackage"
dpkg-buildpackage -us -uc -b > /build/dpkg-buildpackage.log 2>&1 \
    || { tail -40 /build/dpkg-buildpackage.log; exit 1; }
ls /build/*.deb
echo "== apt install the suite's packages"
# An admin's own NIC script where snf-network links its own: kept aside, not lost.
mkdir -p /etc/ganeti
printf '#!/bin/sh\n# the admin'"'"'s own NIC script\n' > /etc/ganeti/kvm-vif-bridge
chmod 755 /etc/ganeti/kvm-vif-bridge
# Without recommends: the proof needs the dependencies, not qemu's desktop stack.
apt-get install -y -q --no-install-recommends /build/*.deb
test "$(readlink /etc/ganeti/kvm-vif-bridge)" = /usr/lib/snf-network/snf-network-nic
grep -q "the admin's own" /etc/ganeti/kvm-vif-bridge.pre-snf-network
echo "== unit tests"
python3 -m pytest -q -p no:cacheprovider tests/unit
"""

# A KVM guest (the lab's busybox one, which ignores ACPI) under that release's Ganeti
# and qemu: NICs hotplugged in and out (3.1 does it by default, through QMP), then the
# guest stopped the way the lab stops guests (ganeti_release: 3.1 rc2's QMP bug).
GUEST = r"""
echo "== a KVM guest: NIC hotplug, then its stop"
gnt-cluster modify -H kvm:kvm_path=/usr/bin/qemu-system-x86_64,kernel_path=/var/tmp/guest/vmlinuz,\
initrd_path=/var/tmp/guest/initrd.img,kernel_args="console=ttyS0 panic=-1",serial_console=true,\
vnc_bind_address=
gnt-instance add -t diskless -o snf-image+default --no-install -H kvm -B memory=128 \
    --net 0:link=br0,mode=bridged --tags synnefo:network:0:protected,synnefo:network:1:limited \
    -n "$(hostname)" inst1
gnt-instance start inst1
SERIAL=/run/ganeti/kvm-hypervisor/ctrl/inst1.serial
wait_console() {  # COMMAND EXPECTED SECONDS: type COMMAND until the guest prints EXPECTED
    local deadline=$((SECONDS + $3)) out=""
    while ((SECONDS < deadline)); do
        out=$( (sleep 0.5; printf '\r%s\r' "$1"; sleep 2) \
            | timeout 8 socat - "UNIX-CONNECT:$SERIAL" || true)
        case "$out" in *"$2"*) return 0 ;; esac
    done
    echo "the guest never printed $2 for $1; last output: $out"
    return 1
}
absent() {  # COMMAND...: fails when COMMAND succeeds (`! COMMAND` never stops set -e)
    if "$@" > /dev/null 2>&1; then echo "still there: $*"; return 1; fi
}
nic_mac() { gnt-instance list --no-headers -o "nic.mac/$1" inst1; }
taps() { for f in /run/ganeti/kvm-hypervisor/nic/inst1/*; do cat "$f"; echo; done; }
in_profile() { nft list set inet snf_network "fw_$1" | grep -c "\"$2\"" > /dev/null; }
wait_console 'cat /sys/class/net/eth0/address' "$(nic_mac 0)" 240  # booted
first=$(taps)
in_profile protected "$first"
gnt-instance modify --net add:link=br0,mode=bridged inst1  # 3.1: hotplugged by default
second=$(taps | grep -vx "$first")
ip -o link show "$second" | grep -o 'master br0'
in_profile limited "$second"
wait_console 'cat /sys/class/net/*/address' "$(nic_mac 1)" 60
echo "hotplugged in: $second (limited), next to $first (protected)"
gnt-instance modify --net 0:remove inst1
test "$(taps)" = "$second"
absent ip link show "$first"
absent test -e "/var/lib/snf-network/$first.json"
in_profile protected "$second"  # NIC 1 is NIC 0 now: the tag for NIC 0 names it
absent in_profile limited "$second"
echo "hotplugged out: $first (rules and state gone); $second is NIC 0, protected"
(cd /build/ganeti-ext && python3 -m labkit.ganeti_release gnt-instance shutdown --timeout=30 inst1)
gnt-instance list --no-headers -o status inst1 | grep -x ADMIN_down
absent test -e "/var/lib/snf-network/$second.json"
"""

CLUSTER_INIT = f"""\
set -euo pipefail
export LC_ALL=C.UTF-8
ip link set lo up
ip link add eth0 type veth peer name eth0-peer  # a link of its own, as a node's NIC
ip link set eth0-peer up
ip addr add {NODE_IP}/24 dev eth0
ip link set eth0 up
printf '%s\\n' '127.0.0.1 localhost' '{NODE_IP} {NODE_NAME} node1' \\
    '{CLUSTER_IP} {CLUSTER_NAME}' > /etc/hosts
echo "== $(dpkg-query -W -f='${{Package}} ${{Version}}' ganeti) cluster init"
gnt-cluster init --enabled-hypervisors=kvm,fake \\
    --enabled-disk-templates=diskless,ext --ipolicy-disk-templates=diskless,ext \\
    --no-etc-hosts --no-ssh-init --master-netdev=eth0 \\
    --nic-parameters=mode=bridged,link=br0 \\
    --hypervisor-parameters=kvm:vhost_net=false {CLUSTER_NAME}
echo "== gnt-os diagnose"
gnt-os diagnose
gnt-os list --no-headers | grep -x 'snf-image+default'
echo "== gnt-storage diagnose"
gnt-storage diagnose
gnt-storage diagnose | grep 'status: valid (path: /usr/share/ganeti/extstorage/archipelago)'
echo "== the NIC script, as Ganeti runs it for a tap on a bridge"
ip link add br0 type bridge
ip link set br0 up
ip tuntap add tap0 mode tap
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin INTERFACE=tap0 INTERFACE_INDEX=0 \\
    INSTANCE=snf-1 MAC=aa:00:00:11:22:33 MODE=bridged LINK=br0 BRIDGE=br0 \\
    TAGS='synnefo:network:0:protected' /etc/ganeti/kvm-vif-bridge
ip -o link show tap0 | grep -o 'master br0'
nft list ruleset | grep -c tap0  # no grep -q: pipefail would see nft's SIGPIPE
"""

# Last on that overlay (step 5 starts from a fresh one): purging the suite removes its
# logs, state and conffiles, and leaves the admin's data (a local image, the store's
# directory, the NIC script step 1 found) and the helper's system user.
PURGE = r"""
echo "== purge: the suite's logs, state and conffiles go; the admin's data stays"
mkdir -p /var/log/ganeti-ext /var/log/nfdhcpd /var/log/ganeti/extstorage \
    /var/lib/snf-ganeti-eventd /var/lib/snf-network /srv/archipelago
for f in /var/log/ganeti-ext/eventd.log /var/log/ganeti-ext/hooks.log.1.gz \
    /var/log/ganeti-ext/snf-network.log /var/log/nfdhcpd/nfdhcpd.log \
    /var/log/ganeti/extstorage/archipelago.log /var/lib/snf-ganeti-eventd/state.sqlite; do
    echo seeded >> "$f"
done
echo "an admin's image" > /var/lib/snf-image/mine.img
echo "a store" > /srv/archipelago/archipelago-store.json
apt-get purge -y -q python3-ganeti-ext snf-image ganeti-extstorage-archipelago snf-network \
    nfdhcpd snf-ganeti-eventd snf-events
for gone in /var/log/ganeti-ext /var/log/nfdhcpd /var/log/ganeti/extstorage/archipelago.log \
    /var/lib/snf-ganeti-eventd /var/lib/snf-network /var/lib/snf-image/helper \
    /var/lib/snf-image/tmp /etc/snf-image/snf-image.conf /etc/archipelago/archipelago.conf \
    /etc/nfdhcpd/nfdhcpd.conf /etc/ganeti-ext/eventd.conf \
    /etc/ganeti/kvm-vif-bridge.pre-snf-network; do
    absent test -e "$gone"
done
grep -q "the admin's own" /etc/ganeti/kvm-vif-bridge  # back where it was
test -f /var/lib/snf-image/mine.img
test -f /srv/archipelago/archipelago-store.json
getent passwd snf-image-helper > /dev/null
"""

CLUSTER = CLUSTER_INIT + GUEST + PURGE + 'echo "== cluster, guest and purge: all checks passed"\n'

# Step 5, the second tier: the lab itself on that release, as on a machine of its own
# (host packages, images, two nodes, RabbitMQ, guests), and every integration test.
LAB = """\
set -euo pipefail
export LC_ALL=C.UTF-8
echo "== the lab on $(. /etc/os-release; echo "$PRETTY_NAME"): ./lab demo, ./lab test"
cd /build/ganeti-ext
git init -q .  # a checkout for the lab: it builds every file `git ls-files -co` lists
# Down however the tests end: the loop devices would outlive the root's namespaces.
trap './lab down' EXIT
./lab demo  # the README's first command: a Debian VM from an image, reached by ssh
./lab test -- -p no:cacheprovider tests/integration
echo "== the lab on the other release: all checks passed"
"""


def other_codename() -> str:
    codename = host_codename()
    if codename not in OTHER:
        raise LabError(f"the lab knows Debian 12 and 13, not {codename!r}")
    return OTHER[codename]


def recipe_digest() -> str:
    """What the cached root is made of: its packages and the policy-rc.d step."""
    recipe = repr((PACKAGES, POLICY_RC_D))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def ensure_root(codename: str) -> Path:
    """The cached root of `codename` (built first when this recipe has none)."""
    root = WORK / f"root-{codename}-{recipe_digest()}"
    if root.exists():
        return root
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob(f"root-{codename}-*"):
        shutil.rmtree(old, ignore_errors=True)
    indextargets = run(["apt-get", "indextargets", "--format", INDEX_FORMAT]).stdout
    mirrors = debian_mirrors(indextargets, host_codename(), suite=codename)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        built = Path(tmp) / "root"
        run(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             codename, str(built), *mirrors],
            timeout=1800,
        )  # fmt: skip
        # Packages installed later must not start daemons in the root: they run only
        # when a step starts them, inside its namespaces.
        policy = built / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D)
        policy.chmod(0o755)
        built.rename(root)
    return root


def _in_root(lower: Path, run_dir: Path, lab_cache: Path, script: str, *, network: bool) -> int:
    """Run `script` in the root (through an overlay whose upper layer is `run_dir`),
    in new mount, UTS and PID namespaces, and a new network namespace unless `network`."""
    merged = run_dir / "merged"
    mounts = f"""\
set -eu
mount -t overlay overlay -o lowerdir={lower},upperdir={run_dir}/upper,workdir={run_dir}/work \
    {merged}
mount -t proc proc {merged}/proc
mount -t sysfs sysfs {merged}/sys  # its own: /sys/class/net shows this namespace's links
mount --rbind /dev {merged}/dev
mount -t tmpfs -o mode=755 tmpfs {merged}/run
mkdir -m 1777 {merged}/run/lock  # /var/lock
mount --bind {run_dir}/tmp {merged}/tmp  # a disk file system, as the host's /tmp
mkdir -p {merged}/build/ganeti-ext
mount --bind {run_dir}/src {merged}/build/ganeti-ext
# Scratch XFS images go on the host's disk, not through the overlay.
mount --bind {run_dir}/scratch {merged}/var/tmp
# The lab's cache of that release (tools, images, guest kernel) outlives the run.
mkdir -p {merged}/var/cache/ganeti-ext-lab
mount --bind {lab_cache} {merged}/var/cache/ganeti-ext-lab
cp /etc/resolv.conf {merged}/etc/resolv.conf
# The machine's certificate authorities, as its resolver: HTTPS from the root (the lab's
# lint tool from PyPI) goes the way it goes from the machine.
cp /etc/ssl/certs/ca-certificates.crt {merged}/etc/ssl/certs/ca-certificates.crt
hostname {NODE_NAME}
exec chroot {merged} /bin/bash -c "$1"
"""
    namespaces = ["--mount", "--uts", "--pid", "--fork", "--propagation", "private"]
    if not network:
        namespaces.append("--net")
    with open(LOG, "a", encoding="utf-8") as log:
        proc = subprocess.run(
            ["unshare", *namespaces, "/bin/sh", "-c", mounts, "root-step", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            # What starts there (Ganeti's daemons, and what they run) sees only this,
            # as on a node, not the caller's environment.
            env=clean_env(),
            timeout=3600,
            check=False,
        )
    return proc.returncode


def prove(own_lab_down: Callable[[], None]) -> int:
    """Steps 1-5 on the other release; 0 when all passed (details in LOG). The machine's
    own lab is taken down with `own_lab_down` before step 5."""
    codename = other_codename()
    number = RELEASE_NUMBER[codename]
    say(f"proving the other release, Debian {number} ({codename}): log in {LOG}")
    root = ensure_root(codename)
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    for sub in ("merged", "src", "scratch", "tmp"):
        (run_dir / sub).mkdir(parents=True)
    (run_dir / "tmp").chmod(0o1777)  # it is the root's /tmp: apt's sandbox user writes there
    guest_dir = run_dir / "scratch" / "guest"  # the root's /var/tmp/guest
    guest_dir.mkdir()
    for asset in guest.ensure_assets():
        shutil.copy2(asset, guest_dir / asset.name)
    for name in source_files():
        target = run_dir / "src" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(settings.REPO_DIR / name, target)
    lab_cache = WORK / f"lab-cache-{codename}"
    lab_cache.mkdir(exist_ok=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")
    steps = (
        # (what, script, network, on a fresh overlay)
        ("package build, apt install, unit tests", BUILD_AND_UNIT, True, True),
        ("Ganeti cluster init, OS, ExtStorage, NIC script, KVM guest with NIC hotplug, purge",
         CLUSTER, False, False),
        ("the lab: ./lab demo, then ./lab test (two nodes, every integration test)", LAB,
         True, True),
    )  # fmt: skip
    try:
        for what, script, network, fresh in steps:
            if fresh:
                for sub in ("upper", "work"):
                    shutil.rmtree(run_dir / sub, ignore_errors=True)
                    (run_dir / sub).mkdir()
            if script is LAB:
                # The two labs would share kernel objects named by the same paths (the
                # store file's loop device): the machine's own lab goes down first.
                say("the machine's own lab goes down for the other release's")
                own_lab_down()
            status = _in_root(root, run_dir, lab_cache, script, network=network)
            if script is LAB:
                # Its own `./lab down` runs on any exit of the script, but not when the
                # step is killed: a loop device outlives the namespaces it was made in.
                # From here, its backing files show below the root's overlay.
                detach_loops_under(run_dir)
            if status != 0:
                say(f"Debian {number}: {what}: FAILED (exit {status}; see {LOG})")
                return status or 1
            say(f"Debian {number}: {what}: passed")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0

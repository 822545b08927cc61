"""snf-image under real Ganeti: images of every kind deployed and personalized in the
helper VM, what the cloud layer hears meanwhile, and a corpus of hostile images.

Images are built by the tests (guest_images.py) from files, without mounting; results
are read back from the instance's disk after the job.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import guest_images as images
import pytest
from amqp_capture import Capture
from instances import add_instance, archipelago, disk_uuids, volume_of

from ganeti_ext.osdef.passwd import sha_crypt
from labkit import settings
from labkit.handle import port_open
from labkit.sh import in_node

IMAGE_DIR = Path("/var/lib/snf-image")
PASSWORD = "correct horse battery"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnfHn2HXnW8yqeh2Q+aXd6PO9ImnPiRgkwFnJ1Qf0jA test@lab"
PERSONALITY = [
    {"path": "/etc/motd", "contents": base64.b64encode(b"hello\n").decode(), "owner": "user",
     "group": "user", "mode": 0o640},
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(lab, tmp_path_factory):
    return tmp_path_factory.mktemp("snf-image")


@pytest.fixture(scope="module")
def debian_raw(workdir):
    return images.disk_image(workdir / "debian.raw", fs="ext4", label="dos")


PUBLISHED: list[Path] = []  # removed by `unpublish` when the module is done


def publish(path: Path) -> str:
    """Put an image into the node's image directory; returns its img_id."""
    name = f"t{uuid.uuid4().hex[:8]}-{path.name}"
    target = IMAGE_DIR / name
    PUBLISHED.append(target)
    subprocess.run(["cp", "--sparse=always", str(path), str(target)], check=True)
    return name


@pytest.fixture(scope="module", autouse=True)
def unpublish():
    yield
    while PUBLISHED:
        PUBLISHED.pop().unlink(missing_ok=True)


@contextlib.contextmanager
def served(lab, directory: Path):
    """An HTTP server for `directory` on the master namespace's loopback."""
    port = 8000 + os.getpid() % 1000
    argv = in_node(settings.MASTER, ["python3", "-m", "http.server", "--bind", "127.0.0.1",
                                     "--directory", str(directory), str(port)])  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port, settings.MASTER.netns):
            if time.monotonic() > deadline:
                raise AssertionError("the test HTTP server did not come up")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def disk_path(lab, name: str, template: str) -> str:
    if template == "ext":
        return str(volume_of(disk_uuids(lab, name)[0])[0])
    found = glob.glob(f"{settings.FILE_STORAGE_DIR}/{name}/*")
    assert len(found) == 1, found
    return found[0]


def deploy(lab, name, *, template="ext", size="512M", origin=None, **osparams):
    params = {"img_passwd": PASSWORD, "auth_keys": KEY, **osparams}
    return add_instance(
        lab,
        name,
        template=template,
        disk_size=size,
        origin=origin,
        osparams=tuple(f"{key}={value}" for key, value in params.items()),
        check=False,
    )


def assert_personalized(
    lab, name, fs, *, template="ext", personality=False, size_mib=512, password=PASSWORD
):
    disk = disk_path(lab, name, template)
    wanted = ["/etc/hostname", "/etc/shadow", "/root/.ssh/authorized_keys", "/etc/machine-id",
              "/etc/ssh/ssh_host_ed25519_key", "/etc/network/interfaces.d/50-snf-image",
              "/etc/motd"]  # fmt: skip
    files = images.read_files(disk, fs, wanted)
    assert files["/etc/hostname"][0] == f"{name}\n".encode()
    root_hash = files["/etc/shadow"][0].decode().splitlines()[0].split(":")[1]
    salt = root_hash.split("$")[2]
    assert root_hash == sha_crypt(password.encode(), salt, "sha512")
    assert files["/root/.ssh/authorized_keys"][0].decode().strip() == KEY
    machine_id = files["/etc/machine-id"][0].decode().strip()
    assert len(machine_id) == 32 and machine_id != "0" * 32
    key, _, _, mode = files["/etc/ssh/ssh_host_ed25519_key"]
    assert key.decode() != images.SSH_HOST_KEY and b"PRIVATE KEY" in key and mode == 0o600
    assert b"iface eth0 inet dhcp" in files["/etc/network/interfaces.d/50-snf-image"][0]
    if personality:
        assert files["/etc/motd"][:4] == (b"hello\n", 1000, 1000, 0o640)
    table = subprocess.run(["sfdisk", "--json", disk], capture_output=True, text=True, check=True)
    (partition,) = json.loads(table.stdout)["partitiontable"]["partitions"]
    assert (partition["start"] + partition["size"]) * 512 > (size_mib - 2) * images.MIB
    # From the image's 318 MiB to near the disk's size (xfs keeps its log out of statfs).
    assert images.fs_size(disk, fs) > (size_mib - 112) * images.MIB, "the file system grew"


@pytest.mark.parametrize(
    ("fs", "label", "packing", "template"),
    [
        ("ext4", "dos", "raw", "ext"),
        ("xfs", "gpt", "qcow2", "ext"),
        ("btrfs", "dos", "xz", "file"),
        ("ext4", "gpt", "zstd", "file"),
        ("ext4", "dos", "qcow2.xz", "ext"),
    ],
    ids=[
        "ext4-msdos-raw-ext",
        "xfs-gpt-qcow2-ext",
        "btrfs-msdos-xz-file",
        "ext4-gpt-zstd-file",
        "ext4-msdos-qcow2xz-ext",
    ],
)
def test_deploy_and_personalize(lab, instance_name, workdir, fs, label, packing, template):
    raw = images.disk_image(workdir / f"{fs}-{label}.raw", fs=fs, label=label)
    packed = images.pack(raw, packing)
    img_format = "qcow2" if packing.startswith("qcow2") else "diskdump"
    img_id = publish(packed)
    name = instance_name()
    personality = json.dumps(PERSONALITY)
    proc = deploy(lab, name, template=template, img_id=img_id, img_format=img_format,
                  img_personality=personality)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, name, fs, template=template, personality=True)


def test_clone_from_the_store_and_copy_from_a_url_with_checksum(lab, instance_name, debian_raw):
    image = f"t-{uuid.uuid4().hex[:8]}"
    archipelago("image", "import", str(debian_raw), "--name", image, "--quiet")
    cloned, copied = instance_name(), instance_name()
    proc = deploy(lab, cloned, origin=image, img_id="null")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, cloned, "ext4")
    digest = hashlib.sha256(debian_raw.read_bytes()).hexdigest()
    with served(lab, debian_raw.parent) as url:
        proc = deploy(lab, copied, img_id=f"{url}/{debian_raw.name}", img_format="diskdump",
                      img_checksum=f"sha256:{digest}")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, copied, "ext4")
    archipelago("image", "remove", image, check=False)


def test_extdump_gets_a_partition_table(lab, instance_name, workdir):
    tree = images.linux_root(workdir / "extdump-root")
    fs_file = workdir / "root.ext4"
    images.file_system(fs_file, "ext4", tree, 300)
    name = instance_name()
    proc = deploy(lab, name, img_id=publish(images.pack(fs_file, "gz")), img_format="extdump")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, name, "ext4")


def test_config_url_keeps_secrets_out_of_ganeti(lab, instance_name, workdir, debian_raw):
    served_dir = workdir / "config"
    served_dir.mkdir()
    secret = f"only-in-config-url-{uuid.uuid4().hex}"
    (served_dir / "c1").write_text(json.dumps({"img_passwd": secret, "auth_keys": KEY}))
    name = instance_name()
    with served(lab, served_dir) as url:
        proc = add_instance(
            lab, name, disk_size="512M", check=False,
            osparams=(f"img_id={publish(debian_raw)}", "img_format=diskdump",
                      f"config_url={url}/c1"),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, name, "ext4", password=secret)
    for where in ("/var/lib/ganeti/", "/var/log/ganeti/"):
        found = subprocess.run(["grep", "-rl", secret, where], capture_output=True)
        assert found.stdout == b"", f"the password is in no file under {where}"


def test_secret_os_parameters_stay_out_of_job_files(lab, instance_name, debian_raw):
    secret = f"secret-param-{uuid.uuid4().hex}"
    name = instance_name()
    proc = add_instance(
        lab, name, disk_size="512M", check=False,
        osparams=(f"img_id={publish(debian_raw)}", "img_format=diskdump", f"auth_keys={KEY}"),
        extra=("--os-parameters-secret", f"img_passwd={secret}"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_personalized(lab, name, "ext4", password=secret)
    for where in ("/var/lib/ganeti/", "/var/log/ganeti/", "/var/lib/snf-ganeti-eventd/"):
        found = subprocess.run(["grep", "-rl", secret, where], capture_output=True)
        assert found.stdout == b"", f"the password is in no file under {where}"


def finished(seen: list[dict]) -> bool:
    """The create job succeeded and the helper's last task ended (in any order)."""
    created = any(
        m.get("operation") == "OP_INSTANCE_CREATE" and m.get("status") == "success" for m in seen
    )
    unmounted = any(
        m["type"] == "image-helper"
        and (m.get("subtype"), m.get("task")) == ("task-end", "UmountImage")
        for m in seen
    )
    return created and unmounted


def test_progress_reaches_the_cloud_layer_and_no_secret_does(lab, instance_name, debian_raw):
    capture = Capture(lab, "ganeti.snf.event.#", "itest-progress")
    name = instance_name()

    def own() -> list[dict]:
        return [body for _, body in capture.seen if body.get("instance") == name]

    try:
        proc = deploy(lab, name, img_id=publish(debian_raw), img_format="diskdump")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        capture.wait(
            "the create's success and the helper's last task", lambda *_: finished(own()), 30
        )
    finally:
        capture.close()
    assert all(PASSWORD not in json.dumps(body) for _, body in capture.seen), "no secret on AMQP"
    seen = own()
    copy = [m for m in seen if m["type"] == "image-copy-progress"]
    assert copy and copy[-1]["progress"] == 100.0
    tasks = [(m["subtype"], m["task"]) for m in seen if m["type"] == "image-helper"]
    from ganeti_ext.osdef import tasks as task_modules

    assert [t for s, t in tasks if s == "task-start"] == list(task_modules.ORDER)
    assert [t for s, t in tasks if s == "task-end"] == list(task_modules.ORDER)
    log = sorted(glob.glob(f"/var/log/ganeti/os/add-snf-image+default-{name}-*"))[-1]
    assert PASSWORD not in Path(log).read_text(), "no secret in the OS log"


def test_rename_sets_the_new_hostname_inside_the_disk(lab, instance_name, debian_raw):
    name, new = instance_name(), instance_name()
    proc = deploy(lab, name, img_id=publish(debian_raw), img_format="diskdump")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    disk_uuid = disk_uuids(lab, name)[0]
    lab.gnt("gnt-instance", "shutdown", "--timeout=0", name)
    lab.gnt("gnt-instance", "rename", *lab.rename_flags(), name, new)
    disk = str(volume_of(disk_uuid)[0])
    files = images.read_files(disk, "ext4", ["/etc/hostname", "/etc/hosts"])
    assert files["/etc/hostname"][0] == f"{new}\n".encode()
    assert f"127.0.1.1\t{new}".encode() in files["/etc/hosts"][0]


def test_image_properties_steer_the_tasks(lab, instance_name, workdir):
    tree = images.linux_root(workdir / "props-root", cloud_init=True)
    image = images.disk_image(workdir / "props.raw", root=tree)
    name = instance_name()
    properties = json.dumps(
        {"SWAP": "2:64", "USERS": "root user", "EXCLUDE_TASK_DeleteSSHKeys": "yes"}
    )
    userdata = "#cloud-config\nhostname: x\n"
    proc = deploy(
        lab, name, img_id=publish(image), img_format="diskdump",
        img_properties=properties, cloud_userdata=userdata,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    disk = disk_path(lab, name, "ext")
    files = images.read_files(disk, "ext4", [
        "/etc/fstab", "/etc/ssh/ssh_host_ed25519_key", "/home/user/.ssh/authorized_keys",
        "/var/lib/cloud/seed/nocloud/user-data", "/var/lib/cloud/seed/nocloud/network-config",
    ])  # fmt: skip
    assert b"\tnone\tswap\tsw\t0\t0" in files["/etc/fstab"][0]
    table = json.loads(
        subprocess.run(["sfdisk", "--json", disk], capture_output=True, text=True).stdout
    )
    swap = table["partitiontable"]["partitions"][1]
    assert swap["type"] == "82" and swap["size"] * 512 >= 63 * images.MIB
    assert files["/etc/ssh/ssh_host_ed25519_key"][0].decode() == images.SSH_HOST_KEY, "excluded"
    assert files["/home/user/.ssh/authorized_keys"][0].decode().strip() == KEY
    assert files["/var/lib/cloud/seed/nocloud/user-data"][0] == b"#cloud-config\nhostname: x\n"
    assert b'"dhcp4": true' in files["/var/lib/cloud/seed/nocloud/network-config"][0]

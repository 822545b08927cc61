"""The snf-image OS definition as Ganeti runs it."""

from __future__ import annotations

from pathlib import Path

from instances import add_instance


def test_excluding_all_tasks_leaves_the_cloned_disk_alone(lab, instance_name):
    name = instance_name()
    add_instance(lab, name)
    logs = sorted(Path("/var/log/ganeti/os").glob(f"add-snf-image+default-{name}-*.log"))
    assert logs, "Ganeti ran the create script and kept its output"
    assert "EXCLUDE_ALL_TASKS, not personalized" in logs[-1].read_text()


def test_a_blank_disk_is_no_image(lab, instance_name):
    name = instance_name()
    proc = add_instance(lab, name, osparams=("img_id=null",), check=False)
    assert proc.returncode != 0
    log = sorted(Path("/var/log/ganeti/os").glob(f"add-snf-image+default-{name}-*.log"))[-1]
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("snf-image-create: error: the disk (img_id=null): personalization")
    assert "no readable partition table" in last


def test_bad_os_parameter_fails_the_add_naming_the_parameter(lab, instance_name):
    name = instance_name()
    proc = add_instance(
        lab, name, check=False, osparams=("img_id=null", "img_properties={not json")
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "img_properties" in output
    assert "Traceback" not in output
    assert name not in {row["name"] for row in lab.instances()}


def test_password_and_hash_are_exclusive_and_never_echoed(lab, instance_name):
    name = instance_name()
    proc = add_instance(
        lab,
        name,
        check=False,
        osparams=("img_id=null", "img_passwd=s3cr3t-Pa55", "img_passwd_hash=$6$x$y"),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "img_passwd" in output
    assert "s3cr3t-Pa55" not in output


def test_os_variant_is_listed(lab):
    out = lab.gnt("gnt-os", "list").stdout.split()
    assert "snf-image+default" in out

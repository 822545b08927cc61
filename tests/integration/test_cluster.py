"""The lab is a real, healthy Ganeti cluster with the suite installed and recognised."""

from __future__ import annotations

from labkit import settings


def test_cluster_verify_passes_ignoring_only_node_setup(lab):
    proc = lab.gnt(
        "gnt-cluster", "verify", "--error-codes", "--ignore-errors=ENODESETUP", check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout


def test_snf_image_os_is_valid(lab):
    out = lab.gnt("gnt-os", "diagnose").stdout
    line = next(line for line in out.splitlines() if line.startswith("OS: snf-image"))
    assert "[global status: valid]" in line, out


def test_archipelago_provider_is_valid(lab):
    out = lab.gnt("gnt-storage", "diagnose").stdout
    assert "Provider: archipelago" in out, out
    block = out.split("Provider: archipelago", 1)[1].split("Provider:", 1)[0]
    assert "valid" in block and "invalid" not in block.lower(), out


def test_rapi_answers_the_tests_user(lab):
    info = lab.rapi("GET", "/2/info")
    assert info["name"] == settings.CLUSTER_NAME
    assert info["master"] == settings.MASTER.name


def test_exec_gives_the_clean_environment_ganeti_daemons_have(lab):
    env = dict(line.split("=", 1) for line in lab.run(["env"]).stdout.splitlines() if "=" in line)
    assert set(env) <= {"PATH", "LANG", "HOME", "PWD", "SHLVL", "_"}
    assert env["PATH"] == settings.CLEAN_PATH
    # ...inside the master's namespace, where the node and cluster names resolve.
    assert lab.run(["getent", "hosts", settings.MASTER.name]).stdout.startswith(settings.MASTER.ip)


def test_lab_network_has_both_families_and_the_nfdhcpd_tag(lab):
    net = settings.NETWORK
    info = lab.gnt("gnt-network", "info", net.name).stdout
    for expected in (net.subnet, net.gateway, net.subnet6, net.gateway6, net.mac_prefix):
        assert expected in info, info
    tags = lab.gnt("gnt-network", "list-tags", net.name).stdout.split()
    assert "nfdhcpd" in tags


def test_suite_packages_are_installed_with_apt(lab):
    proc = lab.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *settings.SUITE_PACKAGES]
    )
    status = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert all(status[name].startswith("ii") for name in settings.SUITE_PACKAGES), status

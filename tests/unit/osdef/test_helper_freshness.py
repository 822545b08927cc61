"""The OS scripts refuse a helper VM built from other snf-image code than the installed one."""

from __future__ import annotations

import json

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.helper import freshness

FILES = ["ganeti_ext/osdef/tasks/__init__.py", "ganeti_ext/osdef/tasks/hostname.py"]


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "site-packages"
    for name in (*FILES, *freshness.CONTRACT_FILES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n")
    return root


@pytest.fixture
def helper(tmp_path, package):
    directory = tmp_path / "helper"
    directory.mkdir()
    for name in freshness.BOOT_FILES:
        (directory / name).write_bytes(b"boot")
    compiled = {name: (package / name).read_bytes() for name in FILES}
    manifest = {"built": "2026-11-29T08:00:00Z", "code": freshness.code_record(compiled, package)}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_a_helper_built_from_this_code_passes(helper, package):
    freshness.check(helper, package)


def test_changed_code_makes_it_stale(helper, package):
    (package / FILES[1]).write_text("# upgraded\n")
    with pytest.raises(ValidationError, match=r"carries other snf-image code.*update-helper"):
        freshness.check(helper, package)


def test_a_changed_contract_file_makes_it_stale(helper, package):
    (package / "ganeti_ext/osdef/helper/vm.py").write_text("# qemu started otherwise\n")
    with pytest.raises(ValidationError, match="carries other snf-image code"):
        freshness.check(helper, package)


def test_the_record_holds_the_bytes_compiled_not_the_files_now(package):
    compiled = {FILES[0]: b"# what was compiled\n"}
    record = freshness.code_record(compiled, package)
    assert record["files"] == sorted([FILES[0], *freshness.CONTRACT_FILES])
    assert record["sha256"] != freshness.code_digest(package, record["files"])


def test_a_build_that_compiled_no_package_module_fails(package):
    with pytest.raises(ValidationError, match="no module of the package"):
        freshness.code_record({}, package)


def test_a_module_gone_from_the_package_makes_it_stale(helper, package):
    (package / FILES[0]).unlink()
    with pytest.raises(ValidationError, match=r"built 2026-11-29T08:00:00Z\) carries other"):
        freshness.check(helper, package)


@pytest.mark.parametrize(
    "code",
    [None, {}, {"files": [], "sha256": ""}, {"files": ["../../etc/passwd"], "sha256": "x"},
     {"files": ["/etc/passwd"], "sha256": "x"}, {"files": "ganeti_ext/x.py"}],
    ids=["none", "empty", "no-files", "dotdot", "absolute", "not-a-list"],
)  # fmt: skip
def test_a_manifest_without_a_usable_code_record_is_stale(helper, package, code):
    manifest = json.loads((helper / "manifest.json").read_text())
    manifest["code"] = code
    (helper / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValidationError, match="carries other snf-image code"):
        freshness.check(helper, package)


@pytest.mark.parametrize("gone", ["vmlinuz", "initrd.img", "manifest.json"])
def test_a_missing_file_means_not_built(helper, package, gone):
    (helper / gone).unlink()
    with pytest.raises(ValidationError, match=r"is not built in .*update-helper"):
        freshness.check(helper, package)


def test_an_unreadable_manifest_means_not_built(helper, package):
    (helper / "manifest.json").write_text("{not json")
    with pytest.raises(ValidationError, match="is not built in"):
        freshness.check(helper, package)


def test_the_digest_covers_names_and_bytes(package):
    one = freshness.code_digest(package, FILES)
    assert one == freshness.code_digest(package, list(reversed(FILES)))
    (package / FILES[0]).write_text("# other\n")
    assert freshness.code_digest(package, FILES) != one


def test_the_installed_package_root_holds_this_module():
    assert (freshness.PACKAGE_ROOT / "ganeti_ext/osdef/helper/freshness.py").is_file()


def test_a_missing_directory_means_not_built(tmp_path, package):
    with pytest.raises(ValidationError, match="is not built in"):
        freshness.check(tmp_path / "never-made", package)
    assert not (tmp_path / "never-made").exists()

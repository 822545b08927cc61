"""A configuration file named with --config must exist: a typo there is an error naming
the file, never a silent run on defaults (which for eventd would mean publishing to
amqp://localhost). Without --config, a missing default file still means all defaults
(test_config.py)."""

from __future__ import annotations

import pytest

from ganeti_ext.errors import ConfigError
from ganeti_ext.eventd import cli as eventd_cli
from ganeti_ext.extstorage import admin
from ganeti_ext.nfdhcpd import cli as nfdhcpd_cli
from ganeti_ext.nfdhcpd import rules
from ganeti_ext.osdef.helper import update
from ganeti_ext.paths import DEFAULT

MISSING = "/nonexistent/ganeti-ext-test.conf"


@pytest.mark.parametrize(
    "main",
    [
        lambda: nfdhcpd_cli.main(["--config", MISSING, "--check"]),
        lambda: rules.main(["show", "--config", MISSING]),
        lambda: eventd_cli.main(["--config", MISSING, "--check-config"]),
    ],
    ids=["nfdhcpd", "nfdhcpd-rules", "snf-ganeti-eventd"],
)
def test_named_missing_file_is_an_error(main):
    with pytest.raises(ConfigError) as caught:
        main()
    assert MISSING in str(caught.value) and "does not exist" in str(caught.value)


@pytest.mark.parametrize(
    "main",
    [
        lambda tmp: admin.main(["--config", MISSING, "store", "info"], paths=DEFAULT.under(tmp)),
        lambda tmp: update.main(["--config", MISSING]),
    ],
    ids=["archipelago", "snf-image-update-helper"],
)
def test_named_missing_file_exits_with_the_error(main, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(tmp_path)
    assert caught.value.code == ConfigError.exit_code
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in last and MISSING in last and "does not exist" in last

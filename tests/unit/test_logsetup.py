import logging
import os
import threading

import pytest

from ganeti_ext import logsetup
from ganeti_ext.errors import GanetiExtError

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"OSP_IMG_PASSWD={SECRET}", id="env-assignment"),
        pytest.param(f"img_passwd={SECRET} img_id=null", id="key-value"),
        pytest.param(f"{{'img_passwd': '{SECRET}', 'img_id': 'null'}}", id="dict-repr"),
        pytest.param(f'{{"img_passwd_hash": "{SECRET}"}}', id="json"),
        pytest.param(f"auth_keys: {SECRET}", id="colon"),
        pytest.param(f"config_url={SECRET}", id="config-url"),
        pytest.param(f"'cloud_userdata': '{SECRET} with spaces'", id="quoted-with-spaces"),
        pytest.param(f"token={SECRET};", id="token"),
        pytest.param(f"amqp://ganeti:{SECRET}@127.0.0.1:5672//", id="url-password"),
        pytest.param(f"Secret = {SECRET}", id="any-case"),
    ],
)
def test_secrets_are_masked(text):
    masked = logsetup.mask_text(text)
    assert SECRET not in masked
    assert logsetup.MASK in masked


def test_harmless_values_are_kept():
    text = "img_id=null img_format=diskdump instance snf-42 on node1"
    assert logsetup.mask_text(text) == text


def test_url_password_masked_but_user_and_host_kept():
    assert logsetup.redact_url("amqp://u:pw@host:5672/vh") == "amqp://u:***@host:5672/vh"
    assert logsetup.redact_url("amqp://host:5672/") == "amqp://host:5672/"


def test_mask_mapping():
    assert logsetup.mask_mapping({"img_id": "null", "img_passwd": "x"}) == {
        "img_id": "null",
        "img_passwd": logsetup.MASK,
    }


def test_masking_stays_fast_on_huge_tokens():
    # Base64 personality blobs are long; a backtracking pattern would take minutes. The
    # deadline turns such a hang into a failure (it is no speed measurement).
    text = "passw" * 40000 + "x" + "a." * 100000 + "x://a:" + "b" * 100000
    worker = threading.Thread(target=logsetup.mask_text, args=(text,), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "mask_text did not finish within a minute"


def test_filter_masks_message_args_and_traceback(tmp_path, clean_logging):
    log_file = tmp_path / "test.log"
    log = logsetup.setup_logging("test", log_file)
    log.info("params %s", {"img_passwd": SECRET})
    try:
        raise ValueError(f"bad img_passwd={SECRET}")
    except ValueError:
        log.exception("failed")
    text = log_file.read_text()
    assert SECRET not in text
    assert "params {'img_passwd': '***'}" in text
    assert "Traceback" in text


def test_file_is_reopened_after_rotation(tmp_path, clean_logging):
    log_file = tmp_path / "test.log"
    log = logsetup.setup_logging("test", log_file)
    log.info("before")
    os.rename(log_file, tmp_path / "test.log.1")
    logsetup.reopen()
    log.info("after")
    assert "after" in log_file.read_text()
    assert "after" not in (tmp_path / "test.log.1").read_text()


def test_sighup_requests_reopen(tmp_path, clean_logging):
    import signal

    previous = signal.getsignal(signal.SIGHUP)
    try:
        log = logsetup.setup_logging("test", tmp_path / "a.log")
        logsetup.install_sighup_reopen()
        os.rename(tmp_path / "a.log", tmp_path / "a.log.1")
        os.kill(os.getpid(), signal.SIGHUP)
        log.info("after hup")
        assert "after hup" in (tmp_path / "a.log").read_text()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_unopenable_log_file(tmp_path, clean_logging, capsys):
    missing = tmp_path / "no-such-dir" / "x.log"
    with pytest.raises(GanetiExtError, match=r"cannot open log file"):
        logsetup.setup_logging("test", missing)
    log = logsetup.setup_logging("test", missing, fallback_to_stderr=True)
    log.info("still logged")
    err = capsys.readouterr().err
    assert "cannot open log file" in err and "still logged" in err
    assert logsetup.logs_to_stderr()


def test_setup_twice_replaces_the_handler(tmp_path, clean_logging):
    logsetup.setup_logging("test", tmp_path / "a.log")
    logsetup.setup_logging("test", tmp_path / "b.log", debug=True)
    logging.getLogger("x").debug("only in b")
    assert "only in b" not in (tmp_path / "a.log").read_text()
    assert "only in b" in (tmp_path / "b.log").read_text()

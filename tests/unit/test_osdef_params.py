import base64
import json

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.params import PARAMETERS, parse_params

SECRET = "hunter2-Zq9"


def test_full_parameter_set():
    personality = [
        {
            "path": "/etc/motd",
            "contents": base64.b64encode(b"hi\n").decode(),
            "owner": "root",
            "group": "root",
            "mode": 0o644,
        },
    ]
    params = parse_params(
        {
            "img_id": "null",
            "img_format": "diskdump",
            "img_passwd": SECRET,
            "auth_keys": "ssh-ed25519 AAAAkey user@host\n\nssh-rsa AAAAother\n",
            "img_properties": json.dumps(
                {"osfamily": "linux", "ROOT_PARTITION": 1, "cloud_init": True}
            ),
            "img_personality": json.dumps(personality),
            "inst_properties": "{}",
            "config_url": "https://cloud.example/config/abc",
            "cloud_userdata": "#cloud-config\n",
        }
    )
    assert params.is_null_image
    assert params.auth_keys == ("ssh-ed25519 AAAAkey user@host", "ssh-rsa AAAAother")
    assert dict(params.img_properties) == {
        "OSFAMILY": "linux",
        "ROOT_PARTITION": "1",
        "CLOUD_INIT": "yes",
    }
    (motd,) = params.img_personality
    assert (motd.path, motd.contents, motd.mode) == ("/etc/motd", b"hi\n", 0o644)
    assert SECRET not in repr(params) and "cloud.example" not in repr(params)


def test_empty_values_count_as_unset():
    params = parse_params({"img_id": "null", "img_passwd": "", "img_passwd_hash": "$6$s$h"})
    assert params.img_passwd is None


@pytest.mark.parametrize(
    "osparams, message",
    [
        pytest.param({"img_colour": "x"}, "OS parameter img_colour: unknown", id="unknown"),
        pytest.param({"img_format": "vmdk"}, "img_format: must be one of diskdump", id="format"),
        pytest.param(
            {"img_format": "ntfsdump"}, "(Windows) images are not supported yet", id="ntfs"
        ),
        pytest.param({"img_checksum": "md5:abc"}, "img_checksum: must be sha256", id="checksum"),
        pytest.param(
            {"img_passwd": SECRET, "img_passwd_hash": "$6$a$b"},
            "img_passwd and img_passwd_hash",
            id="exclusive",
        ),
        pytest.param(
            {"img_passwd_hash": SECRET},
            "img_passwd_hash: must be a crypt(3) hash",
            id="hash-format",
        ),
        pytest.param(
            {"img_passwd_hash": "$6$a$b:" + SECRET}, "img_passwd_hash: must be", id="hash-colon"
        ),
        pytest.param(
            {"img_passwd": SECRET + "\n"},
            "img_passwd: must not contain line breaks",
            id="passwd-newline",
        ),
        pytest.param({"auth_keys": SECRET}, "auth_keys: key 1 is not", id="auth-keys"),
        pytest.param(
            {"img_properties": "{" + SECRET}, "img_properties: not valid JSON", id="properties-json"
        ),
        pytest.param(
            {"img_properties": "[1]"},
            "img_properties: must be a JSON object",
            id="properties-shape",
        ),
        pytest.param(
            {"img_properties": '{"USERS": ["root"]}'},
            "property USERS must be a string",
            id="properties-value",
        ),
        pytest.param(
            {"img_properties": '{"swap": "1", "SWAP": "2"}'},
            "property SWAP given twice",
            id="properties-case",
        ),
        pytest.param(
            {"img_personality": "{}"},
            "img_personality: must be a JSON list",
            id="personality-shape",
        ),
        pytest.param(
            {"img_personality": '["x"]'}, "entry 0: must be an object", id="personality-entry"
        ),
        pytest.param(
            {"img_personality": '[{"path": "etc/x", "contents": ""}]'},
            "entry 0: path must be an absolute",
            id="personality-path",
        ),
        pytest.param(
            {"img_personality": '[{"path": "/x", "contents": "' + SECRET + '"}]'},
            "entry 0: contents is not valid base64",
            id="personality-base64",
        ),
        pytest.param(
            {"img_personality": '[{"path": "/x", "contents": "", "mode": "644"}]'},
            "entry 0: mode must be an integer",
            id="personality-mode",
        ),
        pytest.param(
            {"img_personality": '[{"path": "/x", "contents": "", "mode": 99999}]'},
            "entry 0: mode must be",
            id="personality-mode-range",
        ),
        pytest.param(
            {"img_personality": '[{"path": "/x", "contents": "", "uid": 0}]'},
            "entry 0: unknown key(s) uid",
            id="personality-key",
        ),
        pytest.param(
            {"config_url": "file:///etc/shadow"},
            "config_url: must be an http(s) URL",
            id="config-url",
        ),
        pytest.param(
            {"cloud_userdata": "x" * 70000},
            "cloud_userdata: larger than 64 KiB",
            id="userdata-size",
        ),
    ],
)
def test_invalid_parameters_are_named_and_secrets_not_echoed(osparams, message):
    with pytest.raises(ValidationError) as failure:
        parse_params(osparams)
    assert message in str(failure.value)
    assert SECRET not in str(failure.value)


def test_parameters_list_describes_every_parameter():
    from unit_helpers import REPO

    lines = (REPO / "os-definitions/snf-image/parameters.list").read_text().splitlines()
    assert [line.split(None, 1)[0] for line in lines] == list(PARAMETERS)
    assert all(len(line.split(None, 1)) == 2 for line in lines)

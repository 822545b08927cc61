"""Fresh ssh host keys for an instance, made with the host's ssh-keygen.

They go to the helper with its configuration (a secret, like the password hash) and
from there into the image. Made here, natively: ssh-keygen under the helper's emulated
CPU took five seconds for an RSA key.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ganeti_ext.runner import DEFAULT_RUNNER, Runner

TYPES = ("rsa", "ecdsa", "ed25519")


def generate(comment: str, runner: Runner = DEFAULT_RUNNER) -> dict[str, dict[str, str]]:
    """{type: {"private": ..., "public": ...}} for every type in TYPES."""
    keys = {}
    with tempfile.TemporaryDirectory(prefix="snf-image-keys-") as tmp:
        for kind in TYPES:
            path = Path(tmp) / f"ssh_host_{kind}_key"
            runner.run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)],
                timeout=60,
            )
            keys[kind] = {
                "private": path.read_text(),
                "public": Path(f"{path}.pub").read_text(),
            }
    return keys

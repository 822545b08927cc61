"""Keeps secrets (OS parameters such as passwords and keys) out of messages and logs.

Ganeti itself writes `osparams_private` and `osparams_secret` to job files as null, but
plain `osparams` (`gnt-instance add -O img_passwd=...`) are stored in clear, and free
text (log lines, error messages) may quote them. Every value that leaves eventd goes
through `scrub`: secret-named keys anywhere in the structure are masked, the private
parameter dicts are masked whole, and strings are masked the way log lines are.
"""

from __future__ import annotations

from typing import Any

from ganeti_ext.logsetup import MASK, is_secret_name, mask_text

# Masked whole whatever their keys are called: by definition every entry is private.
PRIVATE_KEYS = frozenset({"osparams_private", "osparams_secret", "osparams_private_cluster"})
# Secret although the name does not say so (snf-image parameters).
EXTRA_SECRET_KEYS = frozenset({"auth_keys", "img_personality", "cloud_userdata", "config_url"})


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in EXTRA_SECRET_KEYS or is_secret_name(lowered)


def scrub(value: Any) -> Any:
    """A copy of `value` (JSON data) with every secret masked."""
    return _clean(value, drop=False)


def replayable(value: Any) -> Any:
    """A copy of `value` (an opcode's input) with every secret left out, types kept.

    Unlike `scrub`, a secret key is removed rather than masked, so what remains is still a
    valid request (a dict stays a dict): the cloud layer can replay it into RAPI and add
    the secrets it holds itself (docs/amqp-contract.md, "Replaying a failed create").
    """
    return _clean(value, drop=True)


def _clean(value: Any, *, drop: bool) -> Any:
    if isinstance(value, dict):
        clean = {}
        for key, item in value.items():
            key_text = str(key)
            private = key_text in PRIVATE_KEYS
            if not private and not is_secret_key(key_text):
                clean[key_text] = _clean(item, drop=drop)
            elif not drop:
                clean[key_text] = None if private and item is None else MASK
        return clean
    if isinstance(value, list | tuple):
        return [_clean(item, drop=drop) for item in value]
    if isinstance(value, str):
        return mask_text(value) if _may_hold_secret(value) else value
    return value


def _may_hold_secret(text: str) -> bool:
    # mask_text is a regex pass; skip it for the common short strings with no separator.
    return ("=" in text or ":" in text) and len(text) > 3

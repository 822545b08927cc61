"""config_url: the OS parameters fetched once from the cloud layer, never stored.

Synnefo puts only img_id, img_format and config_url into Ganeti's OS parameters and
serves the rest (password, keys, personality, properties) as one JSON object at a
one-time URL, so secrets never enter Ganeti's configuration or job files. The fetch is
bounded in time and size; the URL itself is a secret too and never logged.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping

from ganeti_ext.errors import ValidationError

USER_AGENT = "snf-image"


def fetch(url: str, *, timeout: float, max_bytes: int) -> dict[str, str]:
    """The parameters at `url`: a JSON object of OS parameter names to strings."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as err:
        raise ValidationError(f"OS parameter config_url: the server answered {err.code}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ValidationError(f"OS parameter config_url: cannot fetch it ({reason})") from None
    if len(body) > max_bytes:
        raise ValidationError(f"OS parameter config_url: the answer is over {max_bytes} bytes")
    return parse(body)


def parse(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        raise ValidationError("OS parameter config_url: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("OS parameter config_url: the answer is not a JSON object")
    params = {}
    for key, value in data.items():
        if key == "config_url":
            raise ValidationError("OS parameter config_url: the answer names config_url again")
        if isinstance(value, dict | list):
            value = json.dumps(value)  # img_properties, img_personality as upstream sends them
        elif not isinstance(value, str):
            value = str(value)
        params[str(key)] = value
    return params


def merged(given: Mapping[str, str], fetched: Mapping[str, str]) -> dict[str, str]:
    """The OS parameters with the fetched ones added (config_url dropped)."""
    result = {key: value for key, value in given.items() if key != "config_url"}
    result.update(fetched)
    return result

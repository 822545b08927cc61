"""Where an image's bytes come from: a local file or an http(s) URL, read as a stream.

A download is checked for truncation (fewer bytes than Content-Length, or a connection
cut mid-body) and gives up after `timeout` seconds without progress. Descriptions of a
source never carry a URL's user name or password, so they can go into logs and maps.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit

from ganeti_ext.errors import ValidationError

USER_AGENT = "archipelago-image-import"


def describe(source: str) -> str:
    """`source` fit for logs and records: a URL without credentials, or the file path."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return source


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


@dataclass
class Source:
    """An open source; `read` hashes and counts what it hands out."""

    description: str
    stream: BinaryIO
    size: int | None  # None when the server did not say
    path: Path | None = None  # a local file (seekable), else None
    position: int = 0

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256()

    def read(self, size: int) -> bytes:
        try:
            data = self.stream.read(size)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
            raise ValidationError(
                f"download of {self.description} failed after {self.position} bytes: "
                f"{type(err).__name__}"
            ) from None
        except OSError as err:
            raise ValidationError(f"cannot read {self.description}: {err.strerror}") from None
        self.position += len(data)
        self.sha256.update(data)
        if not data and self.size is not None and self.position < self.size:
            raise ValidationError(
                f"download of {self.description} is truncated: got {self.position} of "
                f"{self.size} bytes"
            )
        return data

    def close(self) -> None:
        self.stream.close()


def open_source(source: str, *, timeout: float) -> Source:
    if is_url(source):
        return _open_url(source, timeout)
    path = Path(source)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - the Source owns it
    except FileNotFoundError:
        raise ValidationError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ValidationError(f"{source}: is a directory, not an image file") from None
    except OSError as err:
        raise ValidationError(f"cannot open {source}: {err.strerror}") from None
    info = os.fstat(stream.fileno())
    if not stat.S_ISREG(info.st_mode):  # a device or a pipe: its st_size is not its size
        return Source(describe(source), stream, None, path=None)
    return Source(describe(source), stream, info.st_size, path=path)


def _open_url(url: str, timeout: float) -> Source:
    shown = describe(url)
    # Credentials go into a header, never into what is logged or recorded.
    request = urllib.request.Request(shown, headers={"User-Agent": USER_AGENT})
    parts = urlsplit(url)
    if parts.username or parts.password:
        token = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        # Unredirected: a redirect (to another host, or to plain http) does not get them.
        request.add_unredirected_header(
            "Authorization", "Basic " + base64.b64encode(token).decode()
        )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise ValidationError(f"{shown}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise ValidationError(f"cannot download {shown}: {err.reason}") from None
    except (TimeoutError, OSError) as err:
        raise ValidationError(f"cannot download {shown}: {err}") from None
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    return Source(shown, response, size)

"""The readiness datagram, received on a socket of the test's own."""

import socket

from ganeti_ext import sdnotify


def receiver(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    return sock


def test_ready_reaches_the_socket(tmp_path):
    with receiver(tmp_path) as sock:
        assert sdnotify.ready("watching", {"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching"


def test_abstract_socket(tmp_path):
    name = f"ganeti-ext-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sdnotify.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_a_service_manager_nothing_happens(tmp_path):
    assert not sdnotify.ready("x", {})
    assert not sdnotify.ready("x", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})

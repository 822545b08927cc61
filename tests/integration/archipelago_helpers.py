"""Helpers for the archipelago tests: images made here, a store, the admin command, HTTP."""

from __future__ import annotations

import http.server
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

from ganeti_ext.extstorage.filestore import layout
from ganeti_ext.extstorage.filestore.store import FileStore
from ganeti_ext.extstorage.loopdev import LoopDevices

REPO = Path(__file__).resolve().parent.parent.parent
MIB = 1 << 20


def make_store(directory: Path, block_size: int = 4 * MIB) -> FileStore:
    layout.init_store(layout.Layout(directory), block_size)
    return FileStore(directory, loops=LoopDevices(), lock_timeout=10)


def write_config(directory: Path, store: Path, extra: str = "") -> Path:
    conf = directory / "archipelago.conf"
    conf.write_text(f"[store]\npath = {store}\nlock_timeout = 10\n{extra}")
    return conf


def disk_image(path: Path, size: int, *, seed: int = 1, data: int = 6 * MIB) -> bytes:
    """A sparse raw disk: `data` bytes of noise at the start and near the end."""
    rng = random.Random(seed)
    head = rng.randbytes(data)
    tail = rng.randbytes(MIB)
    with open(path, "wb") as out:
        out.write(head)
        out.seek(size - 2 * MIB)
        out.write(tail)
        out.truncate(size)
    return path.read_bytes()


def _archipelago(conf: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the `archipelago` command from this tree on `conf`."""
    argv = [
        sys.executable,
        str(REPO / "extstorage" / "sbin" / "archipelago"),
        "--config",
        str(conf),
    ]
    return [*argv, *args], {**os.environ, "PYTHONPATH": str(REPO)}


def admin(conf: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the `archipelago` command from this tree against the store in `conf`."""
    argv, env = _archipelago(conf, *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def admin_process(conf: Path, *args: str) -> subprocess.Popen[str]:
    argv, env = _archipelago(conf, *args)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def verb_process(root: Path, verb: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """An ExtStorage verb script as Ganeti runs it, with the configuration under `root`."""
    code = (
        "import sys\n"
        "from ganeti_ext.extstorage.cli import main\n"
        "from ganeti_ext.paths import DEFAULT\n"
        "main(sys.argv[1], paths=DEFAULT.under(sys.argv[2]))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, verb, str(root)],
        env={**env, "PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def node_root(directory: Path, store: Path) -> Path:
    """A node's root with archipelago.conf naming `store` and Ganeti's log directory."""
    root = directory / "node"
    (root / "etc/archipelago").mkdir(parents=True, exist_ok=True)
    (root / "var/log/ganeti/extstorage").mkdir(parents=True, exist_ok=True)
    write_config(root / "etc/archipelago", store)
    return root


class Server:
    """A one-directory HTTP server on 127.0.0.1; /short/<file> lies about its length."""

    def __init__(self, directory: Path) -> None:
        served = directory

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                short = self.path.startswith("/short/")
                name = self.path.split("/")[-1]
                target = served / name
                if not target.is_file():
                    self.send_error(404)
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if short else data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

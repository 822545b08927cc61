"""`archipelago`: the admin's command for the store behind the ExtStorage provider.

    archipelago store init|info        archipelago image import|list|show|remove
    archipelago snapshot create|list|digest|remove
    archipelago volume list|show|release
    archipelago gc [--dry-run]         archipelago df      archipelago fsck [--repair]

Output is made for people; every listing also has --json for scripts. Errors are one
line naming what is wrong, with a non-zero exit; progress of long work shows on a
terminal only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from ganeti_ext import cli, logsetup
from ganeti_ext.config import parse_size
from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage import settings
from ganeti_ext.extstorage.filestore import gc, layout, space
from ganeti_ext.extstorage.filestore.digest import digest_snapshot, pending_snapshots
from ganeti_ext.extstorage.filestore.fsck import DAMAGE, Fsck
from ganeti_ext.extstorage.filestore.probe import probe_reflink
from ganeti_ext.extstorage.filestore.store import FileStore, digest_command
from ganeti_ext.extstorage.images.importer import ImportRequest, import_image
from ganeti_ext.paths import DEFAULT, Paths
from ganeti_ext.runner import spawn_detached
from ganeti_ext.termprogress import TerminalProgress, human

PROG = "archipelago"
EXIT_DAMAGED = 1

log = logging.getLogger(PROG)

DESCRIPTION = """\
Manage the archipelago store: the content-addressed blocks, images and snapshots
behind Ganeti's `archipelago` ExtStorage provider, and the volumes made from them.
The store is named by [store] path in the configuration file."""

EPILOG = """\
examples:
  archipelago store init /srv/archipelago       # once, on an XFS (reflink=1) mount
  archipelago image import debian-12.qcow2.xz --name debian-12 --sha256 <hex>
  gnt-instance add -t ext --disk 0:size=10G,provider=archipelago,origin=debian-12 ...
  archipelago snapshot create <volume> nightly-1
  archipelago gc && archipelago df

exit status: 0 success, 1 failure (fsck: damage left), 2 bad command line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help=f"configuration file (default {DEFAULT.archipelago_conf}; a file named here "
        "must exist)",
    )
    parser.add_argument("--debug", action="store_true", help="log debugging details")
    top = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")

    def json_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")

    store = top.add_parser("store", help="create or describe the store").add_subparsers(
        dest="command", required=True, metavar="ACTION"
    )
    init = store.add_parser(
        "init",
        help="make an empty directory on XFS (reflink=1) or btrfs a store",
        description="Write the format file and directories into PATH (default: [store] "
        "path). PATH must exist, on a file system that shares extents; an existing store "
        "with the same block size is left as it is.",
    )
    init.add_argument("path", nargs="?", type=Path, help="where (default: [store] path)")
    init.add_argument(
        "--block-size", metavar="SIZE", help="block size, e.g. 4M (default: [store] block_size)"
    )
    json_flag(store.add_parser("info", help="the store's format, block size and file system"))

    images = top.add_parser("image", help="import and manage images").add_subparsers(
        dest="command", required=True, metavar="ACTION"
    )
    imp = images.add_parser(
        "import",
        help="import a raw or qcow2 image (optionally xz, zstd or gzip compressed)",
        description="Read SOURCE (a file, or an http(s) URL), decode it as it streams (the "
        "format is detected from the data; a qcow2 with a backing file or an external "
        "data file is refused), split it into blocks named by their SHA-256 and store the "
        "ones the store does not have yet. With --sha256 the image becomes visible only "
        "if SOURCE's bytes hash to it. Images are immutable once imported.",
    )
    imp.add_argument("source", metavar="SOURCE", help="file path or http(s) URL")
    imp.add_argument("--name", required=True, help="the image's name (what origin= names)")
    imp.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of SOURCE as given")
    imp.add_argument(
        "--max-size", metavar="SIZE", help="largest decoded size accepted ([images] max_size)"
    )
    imp.add_argument("--quiet", action="store_true", help="no progress display")
    json_flag(images.add_parser("list", help="list the images"))
    show = images.add_parser("show", help="one image's details")
    show.add_argument("name")
    json_flag(show)
    images.add_parser("remove", help="remove an image (its blocks go at the next gc)").add_argument(
        "name"
    )

    snaps = top.add_parser("snapshot", help="take and manage snapshots").add_subparsers(
        dest="command", required=True, metavar="ACTION"
    )
    take = snaps.add_parser(
        "create",
        help="freeze a volume's current bytes as a snapshot",
        description="Freeze VOLUME as snapshot NAME (a reflink: milliseconds, whatever the "
        "size). Its blocks are hashed into the store afterwards, in the background unless "
        "--wait is given.",
    )
    take.add_argument("volume")
    take.add_argument("name")
    take.add_argument("--wait", action="store_true", help="hash its blocks before returning")
    json_flag(snaps.add_parser("list", help="list the snapshots"))
    digest = snaps.add_parser(
        "digest", help="hash snapshots' blocks into the store (all pending ones by default)"
    )
    digest.add_argument("names", nargs="*", metavar="NAME")
    digest.add_argument("--quiet", action="store_true", help="no progress display")
    snaps.add_parser("remove", help="remove a snapshot").add_argument("name")

    vols = top.add_parser(
        "volume", help="look at volumes, release a dead node's open"
    ).add_subparsers(dest="command", required=True, metavar="ACTION")
    json_flag(vols.add_parser("list", help="list the volumes"))
    vshow = vols.add_parser("show", help="one volume's details")
    vshow.add_argument("name")
    json_flag(vshow)
    release = vols.add_parser(
        "release",
        help="forget that NODE opened the volume (only once NODE is down or fenced)",
    )
    release.add_argument("name")
    release.add_argument("--node", required=True)

    collect = top.add_parser(
        "gc",
        help="remove blocks no image or snapshot uses",
        description="Digest pending snapshots, remove what interrupted operations left, "
        "then remove every block that no image or snapshot map names. Safe while imports "
        "and snapshots run.",
    )
    collect.add_argument("--dry-run", action="store_true", help="only say what would go")
    collect.add_argument("--no-digest", action="store_true", help="leave pending snapshots")
    json_flag(collect)
    json_flag(top.add_parser("df", help="real space used and shared (not du's overcount)"))
    check = top.add_parser(
        "fsck",
        help="check maps, blocks, volumes; --repair fixes what it can",
        description="Check that every map's blocks exist and hash to their names, every "
        "origin and volume is whole, and that nothing is orphaned. Exit status 1 when "
        "damage remains.",
    )
    check.add_argument("--repair", action="store_true", help="remove leftovers, rebuild blocks")
    check.add_argument("--no-hash", action="store_true", help="do not read and hash blocks")
    json_flag(check)
    return parser


def main(argv: Sequence[str] | None = None, *, paths: Paths = DEFAULT) -> NoReturn:
    def run(args: list[str]) -> int:
        options = _parser().parse_args(args)
        logsetup.setup_logging(
            PROG, paths.archipelago_log_file, debug=options.debug, fallback_to_stderr=True
        )
        conf = settings.load(
            options.config or paths.archipelago_conf, must_exist=options.config is not None
        )
        return Admin(conf, options).dispatch()

    cli.run_main(run, PROG, argv)


class Admin:
    def __init__(self, conf: settings.ArchipelagoConfig, options: argparse.Namespace) -> None:
        self.conf = conf
        self.options = options
        self.store = FileStore(
            conf.store.path, lock_timeout=conf.store.lock_timeout, spawn=spawn_detached
        )

    def dispatch(self) -> int:
        handler = getattr(
            self,
            f"{self.options.area}_{getattr(self.options, 'command', '')}".rstrip("_").replace(
                "-", "_"
            ),
        )
        if self.options.area not in ("store",):
            self.store.check()
        return handler() or 0

    def out(self, data: Any, text: str) -> None:
        if getattr(self.options, "json", False):
            print(json.dumps(data, indent=1, sort_keys=True, default=str))
        elif text:
            print(text)

    # --- store --------------------------------------------------------------------------

    def store_init(self) -> None:
        root = self.options.path or self.conf.store.path
        block_size = (
            parse_size(self.options.block_size, "--block-size")
            if self.options.block_size
            else self.conf.store.block_size
        )
        target = layout.Layout(root)
        if not target.format_file.exists():
            layout.check_file_system(root)
            probe_reflink(root)
        fmt = layout.init_store(target, block_size)
        print(f"store {root}: format {fmt.version}, block size {human(fmt.block_size)}")

    def store_info(self) -> None:
        self.store.check()
        fmt = self.store.format
        mount = layout.check_file_system(self.store.layout.root)
        data = {
            "path": str(self.store.layout.root),
            **fmt.to_json(),
            "file_system": mount.fs_type,
            "device": mount.source,
            "images": sum(1 for o in self._origins() if o.kind == "image"),
            "snapshots": sum(1 for o in self._origins() if o.kind == "snapshot"),
            "volumes": len(self.store.volume_names()),
        }
        self.out(data, "\n".join(f"{key}: {value}" for key, value in data.items()))

    # --- images -------------------------------------------------------------------------

    def image_import(self) -> None:
        opts = self.options
        max_size = (
            parse_size(opts.max_size, "--max-size") if opts.max_size else self.conf.images.max_size
        )
        progress = TerminalProgress(enabled=False if opts.quiet else None)
        request = ImportRequest(
            opts.source, opts.name, opts.sha256, max_size, self.conf.images.download_timeout
        )
        try:
            found, new = import_image(self.store, request, progress=progress)
        finally:
            progress.done()
        blocks = sum(1 for block in found.blocks or () if block)
        verb = "imported" if new else "already imported"
        checksum = found.source.get("sha256")
        print(
            f"image {found.name} {verb}: {human(found.size)}, {blocks} data blocks"
            + (f", source sha256 {checksum}" if checksum else "")
        )

    def image_list(self) -> None:
        self._list_origins("image")

    def image_show(self) -> None:
        found = self._map(self.options.name, "image")
        self.out(
            found.to_json() | {"blocks": None, "data_blocks": _data_blocks(found)}, _describe(found)
        )

    def image_remove(self) -> None:
        name = self._remove_origin("image")
        print(f"image {name} removed; `archipelago gc` frees the blocks only it used")

    # --- snapshots ----------------------------------------------------------------------

    def snapshot_create(self) -> None:
        volume = layout.check_name("volume", self.options.volume)
        name = layout.check_name("snapshot", self.options.name)
        with self.store.lock(volume):
            if self.store.volume(volume) is None:
                raise ValidationError(f"volume {volume} does not exist")
            with self.store.lock(name):
                if self.store.map(name) or self.store.volume(name):
                    raise ValidationError(f"{name} already exists in the store")
                spawn, self.store.spawn = self.store.spawn, None
                try:
                    self.store.snapshot(volume, name)
                finally:
                    self.store.spawn = spawn
        if self.options.wait:
            digest_snapshot(self.store, name)
            print(f"snapshot {name} of {volume} taken and digested")
        else:
            spawn_detached(digest_command(name, self.options.config))
            print(f"snapshot {name} of {volume} taken; its blocks are being hashed")

    def snapshot_list(self) -> None:
        self._list_origins("snapshot")

    def snapshot_digest(self) -> None:
        names = self.options.names or pending_snapshots(self.store)
        for name in names:
            layout.check_name("snapshot", name)
            size = self._map(name, "snapshot").size
            display = TerminalProgress(enabled=False if self.options.quiet else None)
            phase = f"digest {name}"
            try:
                done = digest_snapshot(
                    self.store,
                    name,
                    progress=lambda d, shown=display, p=phase, s=size: shown(p, d, s),
                )
            finally:
                display.done()
            print(f"snapshot {name}: {'digested' if done else 'already digested'}")

    def snapshot_remove(self) -> None:
        print(f"snapshot {self._remove_origin('snapshot')} removed")

    # --- volumes ------------------------------------------------------------------------

    def volume_list(self) -> None:
        volumes = [self.store.volume(name) for name in self.store.volume_names()]
        rows = [asdict(volume) for volume in volumes if volume is not None]
        text = "\n".join(
            f"{row['name']}  {human(row['size'])}  origin={row['origin'] or '-'}  "
            f"open={','.join(row['opens']) or '-'}"
            for row in rows
        )
        self.out(rows, text or "no volumes")

    def volume_show(self) -> None:
        volume = self.store.volume(layout.check_name("volume", self.options.name))
        if volume is None:
            raise ValidationError(f"volume {self.options.name} does not exist")
        data = asdict(volume)
        self.out(data, "\n".join(f"{key}: {value}" for key, value in data.items()))

    def volume_release(self) -> None:
        name = layout.check_name("volume", self.options.name)
        with self.store.lock(name):
            volume = self.store.volume(name)
            if volume is None:
                raise ValidationError(f"volume {name} does not exist")
            if self.options.node not in volume.opens:
                print(f"volume {name} is not open on {self.options.node}")
                return
            self.store.clear_open(name, self.options.node)
        log.warning("volume %s released from %s by the admin", name, self.options.node)
        print(f"volume {name} released from {self.options.node}")

    # --- space --------------------------------------------------------------------------

    def gc(self) -> None:
        report = gc.collect(
            self.store, dry_run=self.options.dry_run, digest=not self.options.no_digest
        )
        verb = "would remove" if report.dry_run else "removed"
        text = (
            f"{verb} {report.blocks_removed} blocks ({human(report.bytes_removed)}), kept "
            f"{report.blocks_kept}; {human(report.freed)} freed on the file system"
        )
        if report.digested:
            text += f"; digested {', '.join(report.digested)}"
        if report.debris:
            text += f"; cleared {len(report.debris)} interrupted operations"
        self.out(asdict(report), text)

    def df(self) -> None:
        result = space.report(self.store)
        rows = [
            f"{'':10} {'files':>6} {'size':>10} {'allocated':>10} {'on disk':>10} {'only here':>10}"
        ]
        for group in result.groups:
            rows.append(
                f"{group.name:10} {group.files:>6} {human(group.logical):>10} "
                f"{human(group.apparent):>10} {human(group.used):>10} "
                f"{human(result.unique[group.name]):>10}"
            )
        rows.append(
            f"store: {human(result.used)} on disk for {human(result.apparent)} allocated "
            f"(sharing saves {human(result.saved)}); file system: {human(result.fs_free)} free "
            f"of {human(result.fs_size)}"
        )
        data = {
            "used": result.used,
            "apparent": result.apparent,
            "saved": result.saved,
            "fs_size": result.fs_size,
            "fs_free": result.fs_free,
            "groups": {
                g.name: {
                    "files": g.files,
                    "size": g.logical,
                    "allocated": g.apparent,
                    "on_disk": g.used,
                    "only_here": result.unique[g.name],
                }
                for g in result.groups
            },
        }
        self.out(data, "\n".join(rows))

    def fsck(self) -> int:
        progress = TerminalProgress()
        checker = Fsck(
            self.store,
            repair=self.options.repair,
            hash_blocks=not self.options.no_hash,
            progress=lambda done, total: progress("hash blocks", done, total),
        )
        try:
            findings = checker.run()
        finally:
            progress.done()
        lines = [f"{f.kind}{' (repaired)' if f.repaired else ''}: {f.what}" for f in findings]
        damage = sum(1 for f in findings if f.kind == DAMAGE and not f.repaired)
        lines.append("store is clean" if not damage else f"{damage} damage finding(s) left")
        self.out([asdict(f) for f in findings], "\n".join(lines))
        return EXIT_DAMAGED if checker.damaged else 0

    # --- helpers ------------------------------------------------------------------------

    def _origins(self):
        for name in self.store.origin_names():
            found = self.store.origin(name)
            if found is not None:
                yield found

    def _remove_origin(self, kind: str) -> str:
        """Remove the image or snapshot named on the command line (only that kind)."""
        name = layout.check_name(kind, self.options.name)
        with self.store.lock(name):
            self._map(name, kind)
            self.store.remove(name, kinds=(kind,))
        return name

    def _map(self, name: str, kind: str):
        found = self.store.map(layout.check_name(kind, name))
        if found is None or found.kind != kind:
            raise ValidationError(f"no {kind} named {name} in the store")
        return found

    def _list_origins(self, kind: str) -> None:
        found = [self.store.map(o.name) for o in self._origins() if o.kind == kind]
        rows = [m.to_json() | {"blocks": None, "data_blocks": _data_blocks(m)} for m in found if m]
        text = "\n".join(_summary(m) for m in found if m)
        self.out(rows, text or f"no {kind}s")


def _data_blocks(found) -> int | None:
    return None if found.blocks is None else sum(1 for block in found.blocks if block)


def _summary(found) -> str:
    state = "" if found.digested else "  (digest pending)"
    origin = found.source.get("url") or found.source.get("file") or found.source.get("volume")
    return f"{found.name}  {human(found.size)}  {found.created}  {origin or ''}{state}"


def _describe(found) -> str:
    rows = [
        f"name: {found.name}",
        f"kind: {found.kind}",
        f"size: {found.size} ({human(found.size)})",
        f"created: {found.created}",
        f"data blocks: {_data_blocks(found)} of {found.block_count}",
    ]
    rows += [f"source {key}: {value}" for key, value in sorted(found.source.items())]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

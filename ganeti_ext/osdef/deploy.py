"""Writing an image onto the instance's disk: streamed, sparse, size-checked first.

diskdump (a whole disk) and extdump (one ext file system, to which a partition table is
added) stream through the decoder (xz, zstd, gzip detected from the data) into the
SparseWriter; a local uncompressed file is read hole by hole. qcow2 goes through
qemu-img with backing files disabled (a local or store file directly; a download or a
compressed one is first written to the scratch directory, since qcow2 needs random
access). Data that is not what img_format says is refused before anything is written,
as is an image bigger than the disk. img_checksum (sha256:<hex>) covers the source's
bytes as given; on a mismatch, or any failure once writing began, the disk's first MiB
is zeroed so nothing half-written ever boots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.extstorage.images import formats, qemuimg
from ganeti_ext.extstorage.images.decode import decoded, peek
from ganeti_ext.extstorage.images.sources import Source, open_source
from ganeti_ext.osdef import disklayout
from ganeti_ext.osdef.progress import Progress
from ganeti_ext.osdef.sources import ImageRef
from ganeti_ext.osdef.writer import SparseWriter, device_size, open_disk, path_size
from ganeti_ext.runner import DEFAULT_RUNNER, Runner

log = logging.getLogger(__name__)

QEMU_IMG_TIMEOUT = 6 * 3600.0
WIPE_BYTES = 1024 * 1024


class Deployment:
    def __init__(
        self,
        ref: ImageRef,
        img_format: str,
        disk: str,
        *,
        checksum: str | None,
        progress: Progress,
        scratch_dir: Path,
        max_size: int,
        timeout: float,
        runner: Runner = DEFAULT_RUNNER,
    ) -> None:
        self.ref = ref
        self.img_format = img_format
        self.disk = disk
        self.checksum = checksum
        self.progress = progress
        self.scratch_dir = scratch_dir
        self.max_size = max_size
        self.timeout = timeout
        self.runner = runner
        self.started_writing = False

    def run(self) -> None:
        try:
            self._run()
        except GanetiExtError as err:
            self._wipe_if_written()
            raise ValidationError(f"image {self.ref.description}: {err}") from None
        except OSError as err:  # the disk, the scratch space or the source failed under us
            self._wipe_if_written()
            where = f": {err.filename}" if err.filename else ""
            raise ValidationError(
                f"image {self.ref.description} onto {self.disk}: {err.strerror or err}{where}"
            ) from None
        except BaseException:
            self._wipe_if_written()
            raise

    def _run(self) -> None:
        source = open_source(self.ref.location, timeout=self.timeout)
        try:
            head = source.read(formats.SNIFF_BYTES)
            if not head:
                raise ValidationError("the image is empty")
            outer = formats.detect(head)
            compression = outer if outer in formats.COMPRESSIONS else None
            chunks = decoded(source, compression, head)
            inner_head, chunks = peek(chunks, disklayout.HEAD_BYTES)
            inner = formats.detect(inner_head[: formats.SNIFF_BYTES]) if compression else outer
            self._check_claim(inner, inner_head)
            if inner == formats.QCOW2:
                self._qcow2(source, compression, inner_head, chunks)  # checks it before qemu-img
            else:
                self._stream(source, compression, inner_head, chunks)
                self._verify_checksum(source)
        finally:
            source.close()

    def _verify_checksum(self, source: Source) -> None:
        """Compare the SHA-256 of the whole source, trailing bytes too, if one was given."""
        if self.checksum is None:
            return
        while source.read(1024 * 1024):
            pass
        got = source.sha256.hexdigest()
        if got != self.checksum:
            raise ValidationError(f"SHA-256 is {got}, not the expected {self.checksum}")

    def _check_claim(self, inner: str, head: bytes) -> None:
        claimed = self.img_format
        if claimed == "qcow2" and inner != formats.QCOW2:
            raise ValidationError(f"img_format is qcow2 but the data is {inner}")
        if claimed in ("diskdump", "extdump") and inner != formats.RAW:
            raise ValidationError(f"img_format is {claimed} but the data is {inner}")
        if claimed == "diskdump" and not disklayout.has_boot_signature(head):
            raise ValidationError(
                "img_format is diskdump but the data has no partition table (no MBR signature)"
            )
        if claimed == "extdump":
            disklayout.ext_size(head)

    def _stream(self, source: Source, compression, head: bytes, chunks: Iterator[bytes]) -> None:
        fd = open_disk(self.disk)
        try:
            writer = SparseWriter(fd, f"disk {self.disk}")
            known = source.size if compression is None else self.ref.size
            if self.img_format == "extdump":
                fs = disklayout.ext_size(head)
                needed = disklayout.PARTITION_START * disklayout.SECTOR + fs
            else:
                needed = max(disklayout.required_size(head), known or 0)
            if needed > writer.size:
                what = "its data" if needed == known else "its partition table"
                raise ValidationError(
                    f"{what} reaches byte {needed}, beyond the disk's {writer.size} bytes"
                )
            total = (known or 0) + (needed - fs if self.img_format == "extdump" else 0)
            self.started_writing = True
            if self.img_format == "extdump":
                writer.write(disklayout.extdump_prefix(fs))
            if compression is None and source.path is not None and self.checksum is None:
                self._copy_holes(source.path, writer, total)
            else:
                for chunk in chunks:
                    if writer.position - (total - (known or 0)) > self.max_size:
                        raise ValidationError(f"it decodes to more than {self.max_size} bytes")
                    writer.write(chunk)
                    self.progress.copy(writer.position, total or writer.position)
            writer.finish()
            self.progress.copy(writer.position, writer.position, final=True)
        finally:
            os.close(fd)

    def _copy_holes(self, path: Path, writer: SparseWriter, total: int) -> None:
        """A local raw file, data segment by data segment (holes are never read)."""
        offset_base = writer.position
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            position = 0
            while position < size:
                try:
                    data_at = os.lseek(fd, position, os.SEEK_DATA)
                except OSError:
                    data_at = size
                if data_at > position:
                    writer.zero(data_at - position)
                    position = data_at
                if position >= size:
                    break
                hole_at = os.lseek(fd, position, os.SEEK_HOLE)
                while position < hole_at:
                    data = os.pread(fd, min(4 * 1024 * 1024, hole_at - position), position)
                    if not data:
                        raise ValidationError(f"{path} shrank while being read")
                    writer.write(data)
                    position += len(data)
                    self.progress.copy(offset_base + position, total)
        finally:
            os.close(fd)

    def _qcow2(self, source: Source, compression, head: bytes, chunks: Iterator[bytes]) -> None:
        header = formats.parse_qcow2_header(head, self.max_size)
        disk_size = path_size(self.disk)
        if header.size > disk_size:
            raise ValidationError(
                f"its virtual size {header.size} is more than the disk's {disk_size} bytes"
            )
        scratch = None
        try:
            if compression is None and source.path is not None:
                path = source.path
                if self.checksum is not None:
                    for _ in chunks:  # only the checksum needs these bytes
                        pass
            else:
                self.scratch_dir.mkdir(parents=True, exist_ok=True)
                scratch = self.scratch_dir / f"{os.getpid()}.qcow2"
                scratch.unlink(missing_ok=True)  # a killed run's, with our pid
                limit = header.container_limit
                written = 0
                fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        written += len(chunk)
                        if written > limit:
                            raise ValidationError(
                                f"the qcow2 container is over {limit} bytes for a "
                                f"{header.size}-byte disk"
                            )
                        out.write(chunk)
                path = scratch
            self._verify_checksum(source)  # before qemu-img parses a byte of it
            size = qemuimg.parse_info(
                self.runner.run(qemuimg.info_argv(path), timeout=120).stdout_text,
                self.ref.description,
            )
            if size != header.size:
                raise ValidationError("qemu-img and the qcow2 header disagree on its size")
            self.progress.copy(0, size, final=True)
            self.started_writing = True
            self.runner.run(qemuimg.write_argv(path, self.disk), timeout=QEMU_IMG_TIMEOUT)
            self.progress.copy(size, size, final=True)
        finally:
            if scratch is not None:
                scratch.unlink(missing_ok=True)

    def _wipe_if_written(self) -> None:
        if self.started_writing:
            wipe_start(self.disk, "a failed deployment")


def wipe_start(disk: str, why: str) -> None:
    """Zero the disk's first MiB (partition table, boot code): a half-written or
    unpersonalized image must not boot (with the image's own passwords and host keys)."""
    try:
        fd = os.open(disk, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, bytes(min(WIPE_BYTES, device_size(fd))), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("zeroed the first MiB of %s after %s", disk, why)
    except OSError as err:
        log.warning("could not zero the start of %s: %s", disk, err.strerror)

"""The guest's file system, as the tasks see it: every path is resolved inside its root.

Paths are opened with openat2(2) and RESOLVE_IN_ROOT, so "..", absolute symlinks and
"../../" symlinks all stay inside the mounted image, as they would in a chroot: nothing
the image holds can make a task read or write a file of the helper. A file we replace
is written beside its target and renamed over it; a symlink in its place is replaced,
never followed. Runs inside the helper VM (standard library only).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_SYS_OPENAT2 = 437  # x86_64 and most others
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class GuestPathError(Exception):
    """A path in the guest cannot be used as asked (names the path and why)."""


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
    how = struct.pack("=QQQ", flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), how, len(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


class Owner:
    """A uid and gid (no dataclass: importing dataclasses costs 0.1 s in the helper)."""

    __slots__ = ("gid", "uid")

    def __init__(self, uid: int, gid: int) -> None:
        self.uid, self.gid = uid, gid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Owner) and (self.uid, self.gid) == (other.uid, other.gid)

    def __hash__(self) -> int:
        return hash((self.uid, self.gid))


ROOT = Owner(0, 0)


class Guest:
    """The mounted image at `root` (a directory of the helper)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.root_fd)

    # --- reading ------------------------------------------------------------------------

    def read_bytes(self, path: str, limit: int = 16 * 1024 * 1024) -> bytes | None:
        """The file's bytes, or None if it does not exist (or is not a regular file)."""
        try:
            fd = openat2(self.root_fd, path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, limit + 1)
            if len(data) > limit:
                raise GuestPathError(f"{path}: larger than {limit} bytes")
            return data
        finally:
            os.close(fd)

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def is_dir(self, path: str) -> bool:
        return self._opens(path, os.O_PATH | os.O_DIRECTORY)

    def exists(self, path: str) -> bool:
        return self._opens(path, os.O_PATH | os.O_NOFOLLOW)

    def _opens(self, path: str, flags: int) -> bool:
        """Whether `path` opens with `flags` inside the guest's root."""
        try:
            fd = openat2(self.root_fd, path, flags)
        except OSError:
            return False
        os.close(fd)
        return True

    def listdir(self, path: str) -> list[str]:
        try:
            fd = openat2(self.root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    # --- writing ------------------------------------------------------------------------

    @contextmanager
    def directory(
        self, path: str, *, create: Owner | None = None, mode: int = 0o755
    ) -> Iterator[int]:
        """An fd of directory `path` (symlinks followed, never out of the root); missing
        components are made with `create` as their owner, or it is an error."""
        parts = [part for part in path.split("/") if part and part != "."]
        if ".." in parts:
            raise GuestPathError(f"{path}: '..' is not allowed here")
        fd = os.dup(self.root_fd)
        try:
            prefix = ""
            for part in parts:
                prefix += "/" + part
                try:
                    child = openat2(self.root_fd, prefix, os.O_RDONLY | os.O_DIRECTORY)
                except OSError as err:
                    if err.errno == errno.ENOENT and create is not None:
                        os.mkdir(part, mode, dir_fd=fd)
                        child = openat2(self.root_fd, prefix, os.O_RDONLY | os.O_DIRECTORY)
                        os.fchown(child, create.uid, create.gid)
                        os.fchmod(child, mode)
                    elif err.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                        raise GuestPathError(f"{prefix}: {err.strerror}") from None
                    else:
                        raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def write_file(
        self,
        path: str,
        data: bytes | str,
        *,
        mode: int = 0o644,
        owner: Owner = ROOT,
        make_parents: Owner | None = None,
        parent_mode: int = 0o755,
    ) -> None:
        """Replace (or create) `path` atomically with `data`, owner and mode as given;
        missing parent directories are made with `make_parents` as owner, if given."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        parent, _, name = path.rstrip("/").rpartition("/")
        if not name or name in (".", ".."):
            raise GuestPathError(f"{path}: not a file name")
        with self.directory(parent or "/", create=make_parents, mode=parent_mode) as dir_fd:
            temporary = f".{name}.snf-image.tmp"
            # A file the image planted under that name (a FIFO that would block, a hard
            # link to another file) is removed, never opened: ours is made anew.
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=dir_fd)
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                dir_fd=dir_fd,
            )  # fmt: skip
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchown(fd, owner.uid, owner.gid)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                if _is_dir(dir_fd, name):
                    raise GuestPathError(f"{path}: is a directory")
                os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                os.unlink(temporary, dir_fd=dir_fd)
                raise

    def unlink(self, path: str) -> bool:
        parent, _, name = path.rstrip("/").rpartition("/")
        try:
            with self.directory(parent or "/") as dir_fd:
                os.unlink(name, dir_fd=dir_fd)
        except (FileNotFoundError, GuestPathError):
            return False
        return True

    def lstat(self, path: str) -> os.stat_result | None:
        """The status of `path` itself (a link is not followed), or None if it is not there."""
        parent, _, name = path.rstrip("/").rpartition("/")
        try:
            with self.directory(parent or "/") as dir_fd:
                return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except (OSError, GuestPathError):
            return None

    def file_stat(self, path: str) -> os.stat_result | None:
        """The status of `path` if it is a regular file (not followed if a link), else None."""
        info = self.lstat(path)
        return info if info is not None and stat.S_ISREG(info.st_mode) else None

    def symlink_or_file(self, path: str) -> str | None:
        """ "symlink", "file", "dir", "other" or None: what `path` is, without following it."""
        info = self.lstat(path)
        if info is None:
            return None
        if stat.S_ISLNK(info.st_mode):
            return "symlink"
        if stat.S_ISREG(info.st_mode):
            return "file"
        return "dir" if stat.S_ISDIR(info.st_mode) else "other"


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False

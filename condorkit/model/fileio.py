"""Touching paths that condorkit does not own: the outputs a user names, the inputs it reads.

Owns two rules, used everywhere a file is written or read on a user's behalf:

- **Outputs never replace what is not ours.** :func:`write_output` writes a regular file
  atomically (temporary file in the same folder, fsync, rename). A symbolic link to a regular
  file is kept and its target replaced; ``/dev/null`` and terminals are written through; any
  other non-regular file (a device, a FIFO, a socket, a folder, a dangling link) is refused
  with :class:`~condorkit.errors.OutputError`, never replaced. :func:`open_append` applies the
  same rules to logs that grow (the joblog) and never blocks on a FIFO. A missing folder, a
  read-only folder and a full disk are one-line ``OutputError`` s too, and a failed write
  leaves no temporary file behind.
- **Only regular files are read as inputs.** :func:`open_regular` opens without blocking (a
  FIFO cannot hang the reader), follows links, and refuses anything but a regular file (a
  folder, a FIFO, ``/dev/zero``) with :class:`NotRegularFile`, an ``OSError`` whose
  ``strerror`` says what the path is. :func:`read_regular` adds a size cap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, TextIO

from condorkit.errors import OutputError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ("a FIFO (named pipe)", ...)."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


class NotRegularFile(OSError):
    """A path that must be a regular file is something else (``strerror`` says what)."""


# ----------------------------------------------------------------------------- reading


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file for reading in binary mode; never blocks on a FIFO or device.

    Raises FileNotFoundError, another OSError, or :class:`NotRegularFile`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:  # a socket cannot be opened at all: say what it is
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise exc from None
        if stat.S_ISREG(mode):
            raise
        raise NotRegularFile(errno.EINVAL, f"is {kind(mode)}, not a regular file",
                             str(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"is {kind(st.st_mode)}, not a regular file",
                                 str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (else :class:`NotRegularFile`
    saying how large it is); never reads more than ``limit + 1`` bytes."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise NotRegularFile(errno.EFBIG, f"is {size:,} bytes, larger than the "
                                 f"{limit:,}-byte limit", str(path))
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise NotRegularFile(errno.EFBIG, f"is larger than the {limit:,}-byte limit", str(path))
    return data


# ----------------------------------------------------------------------------- writing


def _fail(path: Path, what: str, exc: OSError) -> OutputError:
    why = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free some space on that disk, then run the command again",
            errno.EDQUOT: "free some space (disk quota), then run the command again",
            errno.EROFS: "the file system is read-only: write somewhere else",
            errno.EACCES: "check the permissions of the file and its folder",
            errno.EPERM: "check the permissions of the file and its folder",
            errno.ENOENT: "create the folder first, or choose another path",
            }.get(exc.errno or 0, "choose another path")
    return OutputError(f"cannot write {what} {path}: {why}", hint)


def _refuse(path: Path, what: str, mode: int, via: str = "") -> OutputError:
    return OutputError(f"{what} {path}{via} is {kind(mode)}, not a regular file: condorkit "
                       "does not replace or write into it",
                       "give the path of a regular file (it is created if it does not exist)")


def _target(path: Path, what: str) -> tuple[Path, bool]:
    """Where to write ``path``: (the file to replace atomically, False) or (path, True) to
    write through a sink (/dev/null, a terminal). Refuses everything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"cannot write {what} {path}: the folder {folder} does not "
                              "exist", "create the folder first, or choose another path"
                              ) from None
        return path, False
    except OSError as exc:
        raise _fail(path, what, exc) from None
    via = ""
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:
            raise OutputError(f"{what} {path} is a symbolic link to {os.readlink(path)!r}, "
                              "which does not exist: condorkit does not create files through "
                              "a dangling link", "remove the link or give another path"
                              ) from None
        via = f" (a link to {os.path.realpath(path)})"
        if stat.S_ISREG(st.st_mode):
            return Path(os.path.realpath(path)), False
    if stat.S_ISREG(st.st_mode):
        return path, False
    if stat.S_ISCHR(st.st_mode):
        return path, True  # checked again, on the open descriptor, by _write_through
    raise _refuse(path, what, st.st_mode, via)


def check_output(path: str | Path, what: str = "output") -> None:
    """Raise :class:`~condorkit.errors.OutputError` now if :func:`write_output` would refuse
    ``path`` (so that a long command fails before its work, not after)."""
    _target(Path(path), what)


def _write_through(path: Path, data: bytes, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _fail(path, what, exc) from None
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
        sink = (stat.S_ISCHR(st.st_mode) and (st.st_rdev == null.st_rdev or os.isatty(fd)))
        if not sink:
            raise _refuse(path, what, st.st_mode)
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise _fail(path, what, exc) from None
    finally:
        os.close(fd)


def write_output(path: str | Path, data: bytes, what: str = "output", *,
                 mode: int = 0o644) -> Path:
    """Write ``data`` to the user-named ``path`` by the rules in the module doc; return the
    file written. ``what`` names the output in messages ("the page", "the DAG file")."""
    path = Path(path)
    dest, through = _target(path, what)
    if through:
        _write_through(path, data, what)
        return path
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except OSError as exc:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise _fail(path, what, exc) from None
    return dest


def open_append(path: str | Path, what: str = "log") -> TextIO:
    """Open a user-named log for appending (UTF-8 text), creating a regular file if needed.

    A link to a regular file, ``/dev/null`` or a terminal is written through; anything else
    that is not a regular file is refused (a FIFO without a reader is refused at once instead
    of blocking). Errors are :class:`~condorkit.errors.OutputError`.
    """
    path = Path(path)
    _target(path, what)  # refuses folders, FIFOs, devices, dangling links, missing folders
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK
                     | os.O_NOCTTY | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _fail(path, what, exc) from None
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)
                and (st.st_rdev == null.st_rdev or os.isatty(fd))):
            raise _refuse(path, what, st.st_mode)
        os.set_blocking(fd, True)
        return open(fd, "a", encoding="utf-8", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and make sure a file can be created in it (a read-only
    mount, missing permissions); raises :class:`~condorkit.errors.OutputError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".condorkit-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _fail(folder, what, exc) from None

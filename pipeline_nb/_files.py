"""Writing files safely: inside the working directory, whole or not at all.

``write_output`` (``output_to_file``) and the cassette's compaction share ``write_atomic``:
the text goes to a temp file beside the target, which then replaces the target in one
rename, so a reader never sees half a file. A temp file is named ``.<target>.<pid>.<random>.tmp``;
one left behind by a killed process (its pid no longer runs) is removed by the next process
that writes in the same directory.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")
_swept: set[Path] = set()
"""Directories this process has already cleared of dead temp files (once is enough)."""


class UnsafePath(ValueError):
    """A path that cannot be written: outside the working directory, or not a file name."""


class WriteError(OSError):
    """A file could not be written; ``str()`` names the file and the OS's reason:
    ``could not write outputs/a.md: No space left on device``."""

    def __init__(self, path: str | os.PathLike[str], reason: BaseException) -> None:
        errno = getattr(reason, "errno", None)
        why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        super().__init__(errno, why)
        self.filename = str(path)

    def __str__(self) -> str:
        return f"could not write {self.filename}: {self.strerror}"


def safe_path(path: str | os.PathLike[str], root: Path | None = None, what: str = "output_to_file") -> Path:
    """``path`` resolved under ``root`` (default: the working directory). UnsafePath, naming
    it as ``what``, if it leaves ``root`` or names a directory rather than a file."""
    root = (root or Path.cwd()).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath(f"{what} {str(path)!r} is outside the working directory {root}; "
                         "use a relative path without '..'")
    if target == root or target.is_dir() or str(path).endswith(("/", os.sep)):
        raise UnsafePath(f"{what} {str(path)!r} is a directory, not a file; give a file name, "
                         f"e.g. {os.path.join(str(path), 'result.md')!r}")
    return target


def write_output(path: str, value: Any, root: Path | None = None) -> Path:
    """Write ``value`` (text as is, anything else as JSON) atomically; returns the file written.

    UnsafePath before anything is created if ``path`` is not a file inside ``root``;
    WriteError, naming ``path``, if the OS refuses (a full disk, a read-only directory)."""
    target = safe_path(path, root)
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # the OS would only say "File exists"
        raise WriteError(path, NotADirectoryError(errno.ENOTDIR, "part of its folder is a file")) from None
    except OSError as exc:
        raise WriteError(path, exc) from None
    write_atomic(target, text, shown=path)
    return target


def write_atomic(target: Path, data: str | bytes, shown: str | os.PathLike[str] | None = None) -> None:
    """Replace ``target`` with ``data`` (text is written as UTF-8) through a temp file and a rename.

    A new file gets the usual mode (0666 less the umask); an existing one keeps its mode.
    Raises WriteError naming ``shown`` (default: ``target``) if anything fails; the temp
    file is then removed and ``target`` is left as it was."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    remove_dead_temps(target.parent)
    temp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise WriteError(shown or target, exc) from None
    try:
        try:
            _keep_mode(fd, target)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass  # already gone; nothing else to undo
        if isinstance(exc, OSError):
            raise WriteError(shown or target, exc) from None
        raise


def _keep_mode(fd: int, target: Path) -> None:
    """Give the temp file the mode of the file it replaces, as writing in place would keep it."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return  # a new file: the umask has already applied
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)


def remove_dead_temps(directory: Path) -> None:
    """Remove the temp files in ``directory`` left by processes that no longer run (a directory is
    looked at once per process: a for_each writing thousands of files lists it once)."""
    key = directory.absolute()
    if key in _swept:
        return
    _swept.add(key)
    try:
        names = os.listdir(directory)
    except OSError:
        return  # the write itself will report the problem
    for name in names:
        match = _TEMP.fullmatch(name)
        if match and not _alive(int(match["pid"])):
            try:
                os.unlink(directory / name)
            except OSError:
                pass  # another process swept it first, or it is not ours to remove


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (pid 0 and ours count as alive)."""
    if pid in (0, os.getpid()) or os.name == "nt":  # Windows: os.kill(pid, 0) would send CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but is another user's
    return True

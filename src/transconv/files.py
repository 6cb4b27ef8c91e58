"""Writing a file so that it is never half-written: a temporary file beside it, then a rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, Union

from .errors import TransconvError

__all__ = ["atomic_write", "check_target"]


def check_target(op: str, path: Union[str, os.PathLike], *, overwrite: bool,
                 how: str = "pass overwrite=True to replace it") -> Path:
    """``path``, once it is known that a file may be written there, before any work: it is not a
    folder, its folder exists and is writable, and an existing file is replaced only with
    ``overwrite`` (``how`` says how the caller asks for that).

    >>> check_target("save", "/no/such/folder/m.npz", overwrite=False)
    Traceback (most recent call last):
    ...
    transconv.errors.TransconvError: save: folder '/no/such/folder' for '/no/such/folder/m.npz' does not exist
    """
    target = os.fspath(path)
    if os.path.isdir(target):
        raise TransconvError(f"{op}: {target!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise TransconvError(f"{op}: folder {folder!r} for {target!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise TransconvError(f"{op}: cannot write into the folder {folder!r}")
    if not overwrite and os.path.exists(target):
        raise TransconvError(f"{op}: {target!r} exists; {how}")
    return Path(target)


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], *, op: str = "write", overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (a file, or a folder such as a Zarr store); on
    success it is synced and renamed onto ``path``.

    The temporary name keeps ``path``'s suffix (writers that read the format from the name
    still work).  If the block raises, the temporary file is removed and ``path`` is left as
    it was.  With ``overwrite=False`` a ``path`` that appeared while writing is not replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> with atomic_write(target) as temporary:
    ...     _ = temporary.write_text("done")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('done', ['note.txt'])
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield temporary
        if not temporary.is_dir():
            with open(temporary, "rb+") as handle:  # the data reaches the disk before the name points at it
                os.fsync(handle.fileno())
        if not overwrite and path.exists():
            raise TransconvError(f"{op}: {str(path)!r} appeared while writing; pass overwrite=True to replace it")
        _move_into_place(temporary, path)
    finally:
        _remove(temporary)


def _move_into_place(temporary: Path, path: Path) -> None:
    """Rename ``temporary`` onto ``path``; a folder (a Zarr store) on either side cannot be replaced by
    one rename, so the old ``path`` is moved aside first and removed only once the new one is in place."""
    if not (temporary.is_dir() or (path.is_dir() and not path.is_symlink())) or not path.exists():
        os.replace(temporary, path)
        return
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
    os.replace(path, aside)
    try:
        os.replace(temporary, path)
    except OSError:
        os.replace(aside, path)
        raise
    _remove(aside)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()

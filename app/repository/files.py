"""Reading the files of the models dir safely: bounded sizes, no links out of it, no FIFOs or
devices, and errors that name the file but never its path (docs/security.md)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


class RepositoryFileError(Exception):
    """A file of the repository that the server refuses to read; the message is safe to show
    (the file's name inside its model folder, the kind of problem; no paths)."""


# What a scan reads whole, at most (docs/security.md): a scan runs every SYNERGY_MODEL_POLL_S,
# so a 300 MB config.json must be refused from its size, never read (a real one is a few KB).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CARD_BYTES = 4 * 1024 * 1024
MAX_REPOSITORY_FILE_BYTES = 16 * 1024 * 1024


def read_repository_file(
    path: Path, root: Path, max_bytes: int = MAX_REPOSITORY_FILE_BYTES
) -> bytes:
    """The bytes of a regular file inside `root` (the resolved models dir).

    Refuses a link that leaves `root`, anything but a regular file (a FIFO would block the
    read forever, a device could be endless), a file over `max_bytes` (from its size, before
    reading; and while reading, should it grow) and files that cannot be read, with a
    RepositoryFileError that names only `path.name`.
    """
    name = path.name
    try:
        inside = path.resolve().is_relative_to(root)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RepositoryFileError(f"{name} is a link that cannot be followed") from exc
    if not inside:
        raise RepositoryFileError(f"{name} links outside the models dir; refusing it")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RepositoryFileError(f"{name} cannot be read ({os_problem(exc)})") from exc
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise RepositoryFileError(f"{name} is not a regular file; refusing it")
        too_large = RepositoryFileError(
            f"{name} is over the limit of {max_bytes} bytes for this file; refusing it"
        )
        if status.st_size > max_bytes:
            raise too_large
        chunks = []
        size = 0
        while chunk := os.read(descriptor, 1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise RepositoryFileError(f"{name} cannot be read ({os_problem(exc)})") from exc
    finally:
        os.close(descriptor)


def os_problem(exc: OSError) -> str:
    """The kind of an OS error in words, without the path that str(exc) would carry."""
    return (exc.strerror or type(exc).__name__).lower()


def list_dir(folder: Path) -> list[Path] | str:
    """The entries of a folder, sorted; or what is wrong with it, in words."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        return os_problem(exc)


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def is_empty_dir(path: Path) -> bool:
    try:
        return next(path.iterdir(), None) is None
    except OSError:
        return False


def folder_fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of a version folder's files (not their bytes)."""
    digest = hashlib.blake2b(digest_size=12)
    try:
        for path in sorted(folder.rglob("*")):
            info = path.lstat()
            digest.update(f"{path.relative_to(folder)}:{info.st_size}:{info.st_mtime_ns};".encode())
    except OSError as exc:
        digest.update(os_problem(exc).encode())
    return digest.hexdigest()

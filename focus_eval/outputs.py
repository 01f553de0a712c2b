"""Where focus-eval writes: folders checked before any work, names that are safe file names.

`check_writable_dir` is called at start-up for every folder a run will write into (the
CLI's --out, lmms-eval's save_maps, resume_dir and --output_path, compare's --out), so that a
run never computes for minutes and then fails on its first file. It creates nothing: a run
that then stops at another setup error leaves no empty folders behind; the writers create
their folders. A file that still cannot be written later (a full disk) is a per-question
warning where it is written (pictures, traces, resume records); the answers go on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# File systems allow 255 bytes per name; suffixes (".png", temporary-file parts) are added to a stem.
MAX_STEM_CHARS = 100


class OutputLocationError(ValueError):
    """A folder that cannot be written."""


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Prove that files can be written in the folder `path` without creating it: an existing
    folder must take a file; for a missing one, its nearest existing ancestor must take a folder
    (the writer's `mkdir(parents=True)` then works). The probes are removed. Raises
    OutputLocationError saying why not."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputLocationError(f"{folder} exists and is not a folder")
    existing = next(candidate for candidate in (folder, *folder.parents) if candidate.exists())
    try:
        if not existing.is_dir():  # a file on the way: nothing can be created under it, not even by root
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        probe = tempfile.TemporaryFile if existing == folder else tempfile.TemporaryDirectory
        with probe(dir=existing, prefix=".focus-eval-write-check-"):
            pass
    except OSError as error:
        raise OutputLocationError(f"cannot write into {folder}: {error.strerror or error}") from None
    return folder


def safe_stem(name: str) -> str:
    """A file name stem for `name`: characters other than letters, digits, ".", "_" and "-"
    become "_"; a stem longer than MAX_STEM_CHARS is cut and ends with 12 hex digits of the
    name's sha256, so that long names which differ only at the end stay distinct."""
    stem = _UNSAFE_FILE_CHARS.sub("_", name).strip("._") or "question"
    if len(stem) > MAX_STEM_CHARS:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        stem = f"{stem[:MAX_STEM_CHARS - len(digest) - 1]}-{digest}"
    return stem

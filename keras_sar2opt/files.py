"""Atomic writes for report, run and evaluation outputs (each file appears complete or not at all),
and reading them back."""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from keras_sar2opt.errors import Sar2OptError


def existing_ancestor(path):
    """`path`, or its nearest ancestor that exists (relative when `path` is)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path, option=None, *, file=False, create=False):
    """Raise Sar2OptError unless the folder `path` (with file=True: the file `path`, in its folder)
    can be written: the folder exists and is writable, or can be created. Returns `path` as a Path.

    Without create nothing is written (a temporary file is made and removed in the nearest existing
    folder), so commands call it before any costly work; with create the folder is made. The
    one-line message names `option` ("-o") when given, e.g. "Expected a writable -o folder,
    received a.png/out (a.png is a file)".
    """
    path = Path(path)
    what = f"a writable {option or 'output'} {'file' if file else 'folder'}"
    folder = path.parent if file else path
    base = existing_ancestor(folder)
    if file and path.is_dir():
        raise Sar2OptError(f"Expected {what}, received {path} ({path} is a folder)")
    if not base.is_dir():
        raise Sar2OptError(f"Expected {what}, received {path} ({base} is a file)")
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            with tempfile.TemporaryFile(dir=base):
                pass
    except OSError as error:
        raise Sar2OptError(f"Expected {what}, received {path} ({error.strerror or error} in {base})") from None
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, so writers pick the same format);
    it replaces `path` when the block ends without an error and is removed otherwise. Its folder
    is created; Sar2OptError when it cannot be (`check_writable`)."""
    path = check_writable(path, file=True, create=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Write UTF-8 text atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(path, frame):
    """Write a DataFrame as CSV (no index) atomically; returns the path."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
    return Path(path)


def link_or_copy(source, path):
    """Make `path` a hard link to `source` (a copy where the file system has no hard links),
    atomically; returns the path. Safe for files that are only ever replaced by renames."""
    with atomic_path(path) as temporary:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
    return Path(path)


def save_jpeg(source, path, quality=85):
    """Re-encode the image `source` as a JPEG at `path` atomically (sample grids of noisy scenes
    are several times smaller so, for reports meant to be committed); returns the path."""
    from PIL import Image

    with Image.open(source) as image, atomic_path(path) as temporary:
        image.convert("RGB").save(temporary, "JPEG", quality=quality)
    return Path(path)


def read_json(path, what):
    """The JSON value in `path`; Sar2OptError naming `what` and the file when it is unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise Sar2OptError(f"Expected a readable {what}, received {path} ({error})") from None

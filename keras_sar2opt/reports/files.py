"""Atomic writes for report and evaluation outputs: each file appears complete or not at all."""

import contextlib
import os
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, so writers pick the same format);
    it replaces `path` when the block ends without an error and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def copy_file(source, path):
    """Copy `source` to `path` atomically; returns the path."""
    with atomic_path(path) as temporary:
        shutil.copyfile(source, temporary)
    return Path(path)


def save_jpeg(source, path, quality=85):
    """Re-encode the image `source` as a JPEG at `path` atomically (sample grids of noisy scenes
    are several times smaller so, for reports meant to be committed); returns the path."""
    from PIL import Image

    with Image.open(source) as image, atomic_path(path) as temporary:
        image.convert("RGB").save(temporary, "JPEG", quality=quality)
    return Path(path)

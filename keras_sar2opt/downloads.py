"""Files fetched over HTTP into a cache: resumable partial files, a progress bar, SHA-256 checks, one-line errors."""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from keras_sar2opt import __version__
from keras_sar2opt.errors import Sar2OptError

CHUNK_BYTES = 1 << 20
ATTEMPTS = 3  # transfers of one download, each resuming where the connection dropped
TIMEOUT_S = 60
PART_SUFFIX = ".part"


def cache_dir(kind, weights_dir=None):
    """Where downloads of `kind` are kept: `weights_dir` when given (--weights-dir), else
    `$KERAS_HOME/keras_sar2opt/<kind>`, KERAS_HOME defaulting to ~/.keras as in Keras."""
    if weights_dir is not None:
        return Path(weights_dir)
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home, "keras_sar2opt", kind)


def part_path(path):
    """The partial file a download of `path` grows in: `<path>.part`."""
    path = Path(path)
    return path.with_name(path.name + PART_SUFFIX)


def sha256_file(path):
    """Hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return str(reason) or type(reason).__name__


def _transfer(url, part, progress):
    """One request for `url`, appended to `part` from its current size (HTTP Range); True when the
    response arrived whole, False when the connection dropped after it began."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"keras_sar2opt/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:  # 416: the partial file reaches past the remote one's end
            raise
        part.unlink()
        return False
    with response:
        start = offset if getattr(response, "status", None) == 206 else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        received = start
        name = part.name.removesuffix(PART_SUFFIX)
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=name, disable=not progress)
        with open(part, "ab" if start else "wb") as out, bar:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException):
                return False
    return total is None or received >= total


def download(url, path, *, sha256=None, verify=None, progress=True):
    """Download `url` to `path` through `<path>.part`, resuming a partial file left by an earlier run;
    returns the file's hex SHA-256.

    A file whose SHA-256 differs from `sha256` is removed, as is one for which `verify(path, digest)`
    raises a Sar2OptError. A failed connection is a one-line Sar2OptError naming the URL and where to
    put the file by hand; the partial file is kept for the next try.
    """
    path = Path(path)
    part = part_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(ATTEMPTS):
        try:
            if _transfer(url, part, progress):
                break
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise Sar2OptError(
                f"Expected to download {url}, received {_reason(error)}; without access to it, "
                f"download the file elsewhere and put it at {path}"
            ) from None
    else:
        size = part.stat().st_size if part.is_file() else 0
        raise Sar2OptError(
            f"Expected {url} whole, received {size} bytes in {ATTEMPTS} tries (connection dropped); "
            f"rerun to resume from {part}"
        )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise Sar2OptError(f"Expected {url} to have SHA-256 {sha256}, received {digest}; the download was removed")
    os.replace(part, path)
    if verify is not None:
        try:
            verify(path, digest)
        except Sar2OptError:
            path.unlink()
            raise
    return digest

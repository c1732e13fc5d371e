"""Verified training checkpoints of a run (report §1–§3): atomic saves, a SHA-256 manifest, the previous one kept.

`checkpoints/` holds `last.keras` (the AdversarialModel after the latest epoch, optimiser state
included), `last.prev.keras` (the epoch before) and `best.keras` (lowest monitored value), and
`manifest.json`. best.keras is a hard link to last.keras while both hold the same epoch (files are
only ever replaced by renames, so a link never changes under its other name). The manifest lists
each checkpoint by the SHA-256 of its bytes with its epoch and the random-seed states Keras does
not save (dropout), so a checkpoint is trusted only when its bytes match an entry: a truncated or
corrupt file is named and never loaded. Files are written to a temporary name and renamed, and the
manifest entry is written before the rename, so a process killed at any moment leaves every
remaining checkpoint verifiable.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import atomic_path, link_or_copy, write_text

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "keras_sar2opt.checkpoints/1"
LAST, PREVIOUS, BEST = "last.keras", "last.prev.keras", "best.keras"
KERAS_WEIGHTS = "model.weights.h5"  # the weights inside a .keras archive
# Copies on disk at the peak of a save: last, previous, best and the one being written.
COPIES = 4


class Checkpoint(NamedTuple):
    """A verified checkpoint file, the number of epochs it holds and the SHA-256 of its bytes."""

    path: Path
    epoch: int
    seed_states: list
    digest: str


def file_digest(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def seed_state_variables(model):
    """The state variables of the model's SeedGenerators (dropout), which Keras's save leaves out."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def state_variables(model):
    """The variables a checkpoint holds: the model's (seed states included) and its optimisers'."""
    variables = list(model.variables)
    for optimizer in (getattr(model, "g_optimizer", None), getattr(model, "d_optimizer", None)):
        variables += list(optimizer.variables) if optimizer is not None else []
    return variables


def state_bytes(model):
    """Bytes of one checkpoint's variables (float32 or wider)."""
    return sum(int(np.prod(v.shape)) * max(np.dtype(v.dtype).itemsize, 4) for v in state_variables(model))


class CheckpointStore:
    """The checkpoints of one run folder (see the module docstring)."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.manifest_path = self.directory / MANIFEST
        self.entries = {}  # sha256 -> {"epoch", "bytes", "seed_states"}
        self.files = {}  # file name -> sha256 of the bytes it was written with
        self.finished = None  # {"epochs", "stopped_early"} once fit() returned
        self._digests = {}  # (device, inode, size, mtime) -> sha256: a hard-linked file is hashed once

    @property
    def exists(self):
        return self.manifest_path.is_file()

    def read(self):
        """Load the manifest; returns False when there is none (a run that has saved nothing)."""
        if not self.exists:
            return False
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            self.entries = {key: dict(value, epoch=int(value["epoch"])) for key, value in data["entries"].items()}
            self.files = dict(data["files"])
            self.finished = data.get("finished")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise Sar2OptError(
                f"Expected a readable checkpoint manifest, received {self.manifest_path} ({error}); "
                f"move {self.directory} away to start the run again"
            ) from None
        return True

    def _write_manifest(self):
        referenced = set(self.files.values())
        data = {
            "format": MANIFEST_FORMAT,
            "files": self.files,
            "entries": {key: value for key, value in self.entries.items() if key in referenced},
            "finished": self.finished,
        }
        write_text(self.manifest_path, json.dumps(data, indent=1) + "\n")

    def _path(self, name):
        return self.directory / name

    def save(self, model, epoch, best=False):
        """Save `model` after `epoch` completed epochs as last.keras (and best.keras when `best`).

        The previous last.keras becomes last.prev.keras. Order: write a temporary file, record
        its digest in the manifest, then rename; the manifest is pruned to the files present last.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_path(self._path(LAST)) as temporary:
                model.save(temporary)
                digest = file_digest(temporary)
                seeds = [np.asarray(v).tolist() for v in seed_state_variables(model)]
                self.entries[digest] = {"epoch": int(epoch), "bytes": temporary.stat().st_size, "seed_states": seeds}
                self.finished = None
                self.files["incoming"] = digest  # keeps the entry while the renames below are under way
                self._write_manifest()
                if LAST in self.files and self._path(LAST).exists():
                    os.replace(self._path(LAST), self._path(PREVIOUS))
                    self.files[PREVIOUS] = self.files.pop(LAST)
            self.files[LAST] = self.files.pop("incoming")
            if best:
                link_or_copy(self._path(LAST), self._path(BEST))
                self.files[BEST] = digest
            self._write_manifest()
        except OSError as error:  # e.g. a full disk
            raise Sar2OptError(
                f"Expected to write the checkpoint of epoch {epoch} into {self.directory}, received "
                f"{error.strerror or error}; the checkpoints written before are intact"
            ) from None

    def mark_finished(self, epochs, stopped_early):
        """Record that fit() returned after `epochs` epochs, so a rerun knows the run is complete."""
        self.finished = {"epochs": int(epochs), "stopped_early": bool(stopped_early)}
        self._write_manifest()

    def keep_last_only(self):
        """Keep the newest checkpoint of a finished run as last.keras and delete the others (rerunning
        it trains nothing and needs last.keras alone); returns the bytes freed."""
        if not self.finished:
            raise Sar2OptError(f"Expected a finished run in {self.directory}, received one still to resume")
        before = self.bytes_on_disk()
        if LAST not in self.files:  # resumed from another checkpoint after a corrupt last.keras
            kept = [name for name in (PREVIOUS, BEST) if name in self.files]
            if kept:
                newest = max(kept, key=lambda name: self.entries[self.files[name]]["epoch"])
                os.replace(self._path(newest), self._path(LAST))
                self.files[LAST] = self.files.pop(newest)
        for name in (PREVIOUS, BEST):
            self._path(name).unlink(missing_ok=True)
            self.files.pop(name, None)
        self._write_manifest()
        return before - self.bytes_on_disk()

    def verify(self, name):
        """The Checkpoint in file `name` when its bytes match a manifest entry, else the reason it does not."""
        path = self._path(name)
        if not path.exists():
            return "missing"
        status = path.stat()
        file = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        if file not in self._digests:
            self._digests[file] = file_digest(path)
        digest = self._digests[file]
        entry = self.entries.get(digest)
        if entry is None:
            return f"its {path.stat().st_size} bytes match no entry of {MANIFEST}: truncated or corrupt"
        return Checkpoint(path, entry["epoch"], entry["seed_states"], digest)

    def latest(self):
        """The newest checkpoint that verifies (last before previous before best at the same epoch),
        or None when there is none. best.keras may be the newest: a copy of a last.keras that failed.

        A file that fails verification is named in a warning and moved to `<name>.corrupt`, so it
        is never loaded and the next save does not rotate it into last.prev.keras. Temporary files
        of a save cut short are removed, and the manifest is rewritten to name the files as they
        are on disk (a save cut short between its renames leaves it naming the previous ones).
        """
        for stray in self.directory.glob(".*.tmp*"):  # a save cut short by a killed process
            stray.unlink()
        verified, bad = {}, []
        for name in (LAST, PREVIOUS, BEST):
            found = self.verify(name)
            if isinstance(found, Checkpoint):
                verified[name] = found
            elif found != "missing":
                bad.append((name, found))
                os.replace(self._path(name), self._path(name + ".corrupt"))
        self.files = {name: found.digest for name, found in verified.items()}
        self._write_manifest()
        chosen = max(verified.values(), key=lambda checkpoint: checkpoint.epoch, default=None)
        instead = f"resuming from {chosen.path} (epoch {chosen.epoch})" if chosen else "no good checkpoint left"
        for name, reason in bad:
            logger.warning(f"Refusing checkpoint {self._path(name)}: {reason}; moved to {name}.corrupt; {instead}")
        if bad and chosen is None:
            raise Sar2OptError(
                f"Expected a verified checkpoint in {self.directory} to resume from, received only corrupt ones "
                f"({', '.join(name for name, _ in bad)}); move {self.directory} away to start the run again"
            )
        return chosen

    def restore(self, model, checkpoint):
        """Load a verified checkpoint's weights, optimiser state and seed states into `model`."""
        # Keras reads weights straight out of the .keras archive, seeking through its zip stream:
        # 25-30 s for a Pix2Pix checkpoint, against about a second from the extracted weights file.
        # The stray-file sweep of latest() removes an extracted copy that a killed process left.
        handle, weights = tempfile.mkstemp(prefix=".restore.tmp-", suffix=".weights.h5", dir=self.directory)
        try:
            with zipfile.ZipFile(checkpoint.path) as archive, archive.open(KERAS_WEIGHTS) as source:
                with os.fdopen(handle, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 22)
            model.load_weights(weights)
        except Exception as error:  # a checkpoint of another model, or one Keras cannot read
            reason = " ".join(str(error).split())[:300]
            raise Sar2OptError(
                f"Expected {checkpoint.path} to hold this run's model, received one that does not load ({reason})"
            ) from None
        finally:
            os.unlink(weights)
        seeds = seed_state_variables(model)
        if len(seeds) != len(checkpoint.seed_states):
            raise Sar2OptError(
                f"Expected {len(seeds)} seed states for {checkpoint.path} in {self.manifest_path}, "
                f"received {len(checkpoint.seed_states)}"
            )
        for variable, state in zip(seeds, checkpoint.seed_states):
            variable.assign(np.asarray(state, dtype=np.dtype(variable.dtype)))

    def describe_last(self):
        """ "<path> (epoch N)" of the latest saved checkpoint, or "none" before the first save."""
        if LAST not in self.files or not self._path(LAST).exists():
            return "none"
        return f"{self._path(LAST)} (epoch {self.entries[self.files[LAST]]['epoch']})"

    def bytes_on_disk(self):
        """Bytes of the checkpoint files present, hard links counted once (a resumed run replaces them)."""
        files = {}
        for name in (LAST, PREVIOUS, BEST):
            if self._path(name).exists():
                status = self._path(name).stat()
                files[(status.st_dev, status.st_ino)] = status.st_size
        return sum(files.values())

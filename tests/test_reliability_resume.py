"""Resuming a killed run: same data order, each epoch once, the same final weights."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from keras_sar2opt.cli import main
from keras_sar2opt.data import find_pairs
from keras_sar2opt.data.pipeline import training_batches
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.training.checkpoints import CheckpointStore

# patchgan at 32x32, 12 synthetic pairs (10 for training: 5 batches of 2 per pass), 3 epochs of
# 6 steps: each epoch takes a second or more and crosses a pass over the data.
EPOCHS = 3
TRAIN = [
    "train",
    "--experiment",
    "patchgan",
    "--image-size",
    "32",
    "--pairs",
    "12",
    "--batch-size",
    "2",
    "--epochs",
    str(EPOCHS),
    "--steps-per-epoch",
    "6",
    "--verbose",
    "0",
]


def _command(out, *extra):
    return [sys.executable, "-m", "keras_sar2opt.cli", *TRAIN, "--out", str(out), *extra]


def _environment():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _completed_epochs(out):
    manifest = out / "checkpoints" / "manifest.json"
    if not manifest.is_file():
        return 0
    data = json.loads(manifest.read_text())
    last = data["files"].get("last.keras")
    return data["entries"][last]["epoch"] if last else 0


def _start(out, log):
    return subprocess.Popen(_command(out, "--deterministic"), stdout=log, stderr=log, env=_environment())


def _kill_in_epoch_2(process, out, log):
    """SIGKILL the run shortly after epoch 1's checkpoint is committed."""
    deadline = time.monotonic() + 300
    while _completed_epochs(out) < 1:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "epoch 1 did not finish"
        time.sleep(0.05)
    time.sleep(0.2)  # into epoch 2, which lasts a second or more
    process.send_signal(signal.SIGKILL)
    process.wait()


def _history_epochs(out):
    return list(pd.read_csv(out / "history.csv")["epoch"])


def _generator_weights(out):
    return keras.saving.load_model(out / "generator.keras", compile=False).get_weights()


def _max_difference(first, second):
    return max(float(np.abs(a - b).max()) for a, b in zip(first, second, strict=True))


@pytest.fixture(scope="module")
def runs(module_tmp):
    """A deterministic run trained straight through, and the same run killed in epoch 2 and rerun."""
    root = module_tmp("resume")
    whole, killed = root / "whole", root / "killed"
    logs = {name: root / f"{name}.log" for name in ("whole", "killed", "rerun")}
    processes = []
    # The runs overlap: each spends much of its time single-threaded (imports, tracing).
    with (
        open(logs["whole"], "w") as whole_log,
        open(logs["killed"], "w") as killed_log,
        open(logs["rerun"], "w") as rerun_log,
    ):
        try:
            straight = _start(whole, whole_log)
            processes.append(straight)
            processes.append(_start(killed, killed_log))
            _kill_in_epoch_2(processes[-1], killed, logs["killed"])
            at_kill = {"epochs": _completed_epochs(killed), "history": _history_epochs(killed)}
            rerun = _start(killed, rerun_log)
            processes.append(rerun)
            assert straight.wait(timeout=600) == 0, logs["whole"].read_text()[-3000:]
            rerun.wait(timeout=600)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return {
        "whole": whole,
        "killed": killed,
        "at_kill": at_kill,
        "rerun": rerun.returncode,
        "rerun_log": logs["rerun"].read_text(),
    }


@pytest.mark.slow
def test_rerun_after_sigkill_completes_with_each_epoch_once_and_the_same_weights(runs):
    assert runs["at_kill"] == {"epochs": 1, "history": [0]}  # the kill landed in epoch 2
    assert runs["rerun"] == 0, runs["rerun_log"][-3000:]
    assert f"after epoch 1 of {EPOCHS}" in runs["rerun_log"]
    assert _history_epochs(runs["killed"]) == list(range(EPOCHS)) == _history_epochs(runs["whole"])
    whole, resumed = pd.read_csv(runs["whole"] / "history.csv"), pd.read_csv(runs["killed"] / "history.csv")
    np.testing.assert_allclose(resumed.to_numpy(), whole.to_numpy(), rtol=1e-5, atol=1e-6)
    difference = _max_difference(_generator_weights(runs["whole"]), _generator_weights(runs["killed"]))
    assert difference <= 1e-6, f"generator weights differ by up to {difference}"
    store = CheckpointStore(runs["killed"] / "checkpoints")
    assert store.read() and store.finished == {"epochs": EPOCHS, "stopped_early": False}
    assert [store.verify(name).epoch for name in ("last.keras", "last.prev.keras")] == [EPOCHS, EPOCHS - 1]
    assert not list(store.directory.glob(".*")), "restoring left its extracted weights behind"


@pytest.mark.slow
def test_resume_refuses_a_corrupt_last_checkpoint_and_falls_back_to_the_previous(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["whole"], run)
    last = run / "checkpoints" / "last.keras"
    with open(last, "r+b") as handle:
        handle.truncate(last.stat().st_size // 2)
    # copytree made best.keras (epoch 3) a copy; as the hard link it was, it would be cut short too.
    (run / "checkpoints" / "best.keras").unlink()

    # In a process of its own, so the run's deterministic ops apply as they did to the straight run.
    done = subprocess.run(
        [sys.executable, "-m", "keras_sar2opt.cli", "train", "--resume", str(run), "--verbose", "0"],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    refusal = [line for line in done.stderr.splitlines() if "Refusing checkpoint" in line]
    assert len(refusal) == 1 and str(last) in refusal[0] and "truncated or corrupt" in refusal[0]
    assert f"resuming from {run / 'checkpoints' / 'last.prev.keras'} (epoch {EPOCHS - 1})" in refusal[0]
    assert f"run folder {run}" in done.stdout
    assert (run / "checkpoints" / "last.keras.corrupt").is_file()
    assert _history_epochs(run) == list(range(EPOCHS))
    store = CheckpointStore(run / "checkpoints")
    assert store.read() and store.verify("last.keras").epoch == EPOCHS
    # Epoch 3 trained again from epoch 2's state, on the same batches, with the same ops.
    difference = _max_difference(_generator_weights(runs["whole"]), _generator_weights(run))
    assert difference <= 1e-6, f"generator weights differ by up to {difference}"


@pytest.mark.slow
def test_rerunning_a_finished_run_trains_nothing(runs, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(runs["whole"], run)
    history = (run / "history.csv").read_text()
    with caplog.at_level(logging.WARNING):
        assert main([*TRAIN, "--out", str(run)]) == 0
    assert f"{run} holds a finished run of {EPOCHS} epochs: nothing to train" in caplog.messages
    assert (run / "history.csv").read_text() == history
    assert _max_difference(_generator_weights(runs["whole"]), _generator_weights(run)) == 0.0


def test_training_stream_from_any_batch_continues_the_uninterrupted_stream(tmp_path):
    pairs = find_pairs(write_synthetic(tmp_path / "data", "qxslab", 7, layout="qxslab", size=16, seed=0)).pairs
    options = {"image_size": 16, "batch_size": 2, "seed": 5}  # 3 batches per pass over the 7 pairs
    whole = [np.concatenate(batch, axis=-1) for _, batch in zip(range(10), training_batches(pairs, **options))]
    assert not np.array_equal(whole[0], whole[3])  # a new order and augmentation each pass
    for first in (1, 3, 4, 8):
        stream = training_batches(pairs, first_batch=first, **options)
        resumed = [np.concatenate(batch, axis=-1) for _, batch in zip(range(10 - first), stream)]
        for expected, batch in zip(whole[first:], resumed, strict=True):
            np.testing.assert_array_equal(batch, expected)


def test_checkpoint_store_keeps_a_verifiable_checkpoint_through_an_interrupted_save(tmp_path, caplog):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dropout(0.5)])
    store = CheckpointStore(tmp_path / "checkpoints")
    for epoch in (1, 2, 3):
        model.layers[0].kernel.assign(np.full((3, 2), epoch, np.float32))
        store.save(model, epoch, best=epoch == 2)
    folder = store.directory
    # best.keras shares epoch 2's file, rotated into last.prev.keras, instead of copying it.
    assert os.path.samefile(folder / "best.keras", folder / "last.prev.keras")
    assert store.bytes_on_disk() == sum((folder / name).stat().st_size for name in ("last.keras", "best.keras"))
    # A kill between the two renames of a save: the new checkpoint is still only a temporary file.
    (folder / ".last.0123456789ab.tmp.keras").write_bytes(b"cut short")
    os.replace(folder / "last.keras", folder / "last.prev.keras")

    reopened = CheckpointStore(folder)
    assert reopened.read()
    found = reopened.latest()
    assert (found.path.name, found.epoch) == ("last.prev.keras", 3)
    assert not list(folder.glob(".*.tmp*"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dropout(0.5)])
    reopened.restore(fresh, found)
    np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 3.0)
    assert reopened.verify("best.keras").epoch == 2
    # The resumed run's next save keeps epoch 3's file verifiable under the name it has on disk.
    reopened.save(fresh, 4)
    after = CheckpointStore(folder)
    assert after.read() and [after.verify(name).epoch for name in ("last.keras", "last.prev.keras")] == [4, 3]
    assert after.describe_last() == f"{folder / 'last.keras'} (epoch 4)"


def test_a_hard_linked_best_checkpoint_is_hashed_once(tmp_path, monkeypatch):
    from keras_sar2opt.training import checkpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    store = CheckpointStore(tmp_path / "checkpoints")
    for epoch in (1, 2):
        store.save(model, epoch, best=True)  # best.keras and last.keras: one file
    hashed, digest = [], checkpoints.file_digest
    monkeypatch.setattr(checkpoints, "file_digest", lambda path: hashed.append(path.name) or digest(path))
    reopened = CheckpointStore(store.directory)
    assert reopened.read() and reopened.latest().epoch == 2
    assert sorted(hashed) == ["last.keras", "last.prev.keras"]


def test_a_copied_best_checkpoint_newer_than_the_previous_replaces_a_corrupt_last(tmp_path, monkeypatch, caplog):
    from keras_sar2opt import files

    def no_hard_links(source, target):
        raise OSError("hard links not supported")

    monkeypatch.setattr(files.os, "link", no_hard_links)  # best.keras becomes a copy
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    store = CheckpointStore(tmp_path / "checkpoints")
    for epoch in (1, 2):
        model.layers[0].kernel.assign(np.full((3, 2), epoch, np.float32))
        store.save(model, epoch, best=epoch == 2)
    folder = store.directory
    assert not os.path.samefile(folder / "best.keras", folder / "last.keras")
    (folder / "last.keras").write_bytes(b"corrupt")

    reopened = CheckpointStore(folder)
    assert reopened.read()
    found = reopened.latest()  # not last.prev.keras (epoch 1): its run would fork from epoch 2's best
    assert (found.path.name, found.epoch) == ("best.keras", 2)
    assert "resuming from " + str(folder / "best.keras") + " (epoch 2)" in caplog.text
    assert (folder / "last.keras.corrupt").exists()
    # The run was finished: nothing to train, and pruning keeps epoch 2 as last.keras.
    reopened.mark_finished(2, stopped_early=False)
    reopened.keep_last_only()
    assert sorted(p.name for p in folder.iterdir()) == ["last.keras", "last.keras.corrupt", "manifest.json"]
    pruned = CheckpointStore(folder)
    assert pruned.read() and pruned.latest().epoch == 2


def test_a_finished_run_can_keep_its_last_checkpoint_only(tmp_path, caplog):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    store = CheckpointStore(tmp_path / "checkpoints")
    for epoch in (1, 2):
        store.save(model, epoch, best=epoch == 1)
    with pytest.raises(Sar2OptError, match="Expected a finished run"):
        store.keep_last_only()
    store.mark_finished(2, stopped_early=False)
    epoch_1_bytes = (store.directory / "best.keras").stat().st_size  # also last.prev.keras: one file
    assert store.keep_last_only() == epoch_1_bytes
    assert sorted(p.name for p in store.directory.iterdir()) == ["last.keras", "manifest.json"]

    reopened = CheckpointStore(store.directory)
    assert reopened.read() and reopened.finished == {"epochs": 2, "stopped_early": False}
    assert reopened.latest().epoch == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "every, trained, saved",
    [
        (1, 5, [(1, True), (2, True), (3, False), (4, False), (5, False)]),
        (2, 5, [(2, True), (4, False), (5, False)]),  # epoch 5: the last
        (None, 5, [(5, True)]),
        (None, 3, [(3, True)]),  # early stopping after epoch 3 of 5: saved as training ends
    ],
)
def test_epoch_checkpoints_every_n_epochs_keep_the_last_and_the_best_saved(every, trained, saved):
    from keras_sar2opt.training.callbacks import EpochCheckpoint

    class Store:
        def __init__(self):
            self.saves = []

        def save(self, model, epoch, best=False):
            self.saves.append((epoch, best))

    store = Store()
    callback = EpochCheckpoint(store, "val_g_l1", every=every)
    callback.set_params({"epochs": 5})
    callback.set_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    for epoch, value in enumerate([0.5, 0.1, 0.3, 0.2, 0.4][:trained]):
        callback.on_epoch_end(epoch, {"val_g_l1": value})
    callback.on_train_end()
    # best.keras: a new minimum among the epochs saved.
    assert store.saves == saved

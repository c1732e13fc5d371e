"""Training across processes (report §1–§3 at scale): the chief's state shared, and the TensorFlow
multi-worker loop that stands in for fit().

Keras 3's `fit()` fails under `tf.distribute.MultiWorkerMirroredStrategy` with more than one
worker (keras-team/keras#20585, open for Keras 3.15): the TensorFlow trainer's
`_maybe_symbolic_build` passes the whole (x, y) batch of PerReplica values to
`strategy.reduce("MEAN", ...)`, which multi-worker collectives take one tensor at a time ("Attempt
to convert a value (PerReplica:...) ... to a Tensor"), and `reduce_per_replica` then reduces each
scalar log over axis 0. `fit_across_workers` is the few lines of fit() a run needs, around the
model's own `train_step` and `test_step` under `strategy.run`, with the same callbacks; it can go
once Keras fixes that issue (docs/distributed.md).
"""

import functools
import gc
import re

import keras
import numpy as np

from keras_sar2opt.errors import Sar2OptError


class WorkerLost(Sar2OptError):
    """Another worker of a multi-worker run stopped answering."""


def restore_on_chief(strategy, variables, restore):
    """restore(), which loads the chief's checkpoint into `variables`: only the chief reads the run
    folder, and share_chief_state then gives the checkpoint to every worker.

    On JAX across processes the variables hold the checkpoint as arrays of the chief's own devices
    until then: an assignment to a variable laid out over the global device mesh checks that every
    process assigns the same value (jax.device_put), a collective operation that the other
    processes, which read no checkpoint, would never join. Keras has no public way to assign
    without the layout, hence each variable's `_layout`, set aside for the restore."""
    from keras_sar2opt.training.distribute import worker_position

    if keras.backend.backend() != "jax" or worker_position(strategy)[1] == 1:
        return restore()
    layouts = [variable._layout for variable in variables]
    for variable in variables:
        variable._layout = None
    try:
        return restore()
    finally:
        for variable, layout in zip(variables, layouts):
            variable._layout = layout


def share_chief_state(strategy, variables, done, finished):
    """Give every worker the chief's `variables` (what a checkpoint restores) and its (epochs done,
    finished) and return those two: only the chief read the run folder's checkpoint, and a worker
    on another machine has no copy of it. A no-op in a run of one process."""
    from keras_sar2opt.training.distribute import is_chief, worker_position

    if worker_position(strategy)[1] == 1:
        return done, finished
    chief = is_chief(strategy)
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        values = [keras.ops.convert_to_numpy(variable) for variable in variables] + [np.int64([done, finished])]
        broadcast = functools.partial(multihost_utils.broadcast_one_to_all, values, is_source=chief)
    else:
        broadcast = functools.partial(_broadcast_tf, strategy, [*variables, np.int64([done, finished])], chief)
    values = collectively(strategy, "sharing the chief's checkpoint", broadcast)
    for variable, value in zip(variables, values):
        variable.assign(np.asarray(value).astype(variable.dtype))
    done, finished = (int(value) for value in values[-1])
    return done, bool(finished)


def _broadcast_tf(strategy, values, chief):
    """The chief's `values` (variables or arrays) on every worker: an all-reduce of the chief's values
    and the others' zeros, one per dtype (integers as int64)."""
    import tensorflow as tf

    tensors = [tf.convert_to_tensor(value) for value in values]
    tensors = [tf.cast(t, tf.int64) if t.dtype.is_integer or t.dtype.is_bool else t for t in tensors]
    groups = {}
    for index, tensor in enumerate(tensors):
        groups.setdefault(tensor.dtype, []).append(index)

    def replica_sums():
        context = tf.distribute.get_replica_context()
        masked = [tensor if chief else tf.zeros_like(tensor) for tensor in tensors]
        return [context.all_reduce("sum", [masked[i] for i in indices]) for indices in groups.values()]

    sums = tf.function(lambda: strategy.run(replica_sums))()
    shared = [None] * len(values)
    for indices, group in zip(groups.values(), sums):
        for index, tensor in zip(indices, group):
            shared[index] = np.asarray(strategy.experimental_local_results(tensor)[0])
    return shared


# What a JAX collective says when a process of the job died: gloo (CPUs) or NCCL (GPUs) lost its
# connection, or the runtime gave up waiting. JAX raises it as a JaxRuntimeError, or as the
# ValueError of a helper that gathers across processes, with the runtime's status code first.
JAX_LOST = re.compile(r"^(UNAVAILABLE|DEADLINE_EXCEEDED|ABORTED|CANCELLED):|\b(Gloo|NCCL)\b.* failed")


def _lost_worker_reason(error):
    """The message of `error` when it is a collective operation failing for want of another worker
    (or process, on JAX), else None."""
    if keras.backend.backend() == "jax":
        return str(error) if JAX_LOST.search(str(error)) else None
    import tensorflow as tf

    errors = tf.errors
    lost = (errors.UnavailableError, errors.DeadlineExceededError, errors.CancelledError, errors.AbortedError)
    return error.message if isinstance(error, lost) else None


def collectively(strategy, where, function, *args):
    """function(*args), whose collective operations need every worker (every process, on JAX): one
    that died or timed out makes it raise one WorkerLost line naming `where` it happened (a string,
    or a callable that says it at the time). Just function(*args) in a run of one process.

    On JAX the process then ends without jax.distributed's shutdown barrier, which would wait for
    the dead process and abort with a stack trace (`distribute.leave_lost_job`)."""
    from keras_sar2opt.training.distribute import leave_lost_job, worker_position

    index, count = worker_position(strategy)
    if count == 1:
        return function(*args)
    try:
        return function(*args)
    except Exception as error:  # re-raised below unless a collective lost a worker
        reason = _lost_worker_reason(error)
        if reason is None:
            raise
        reason = " ".join(reason.split())[:160]
    # Raised once the error and its frames are gone: an eager all-reduce that failed leaves its thread
    # pool to them, which then closes now rather than with a traceback at the interpreter's exit.
    gc.collect()
    jax = keras.backend.backend() == "jax"
    noun, nouns = ("process", "processes") if jax else ("worker", "workers")
    if jax:
        leave_lost_job()
    where = where() if callable(where) else where
    raise WorkerLost(
        f"Expected all {count} {nouns} to train together, received a lost {noun} while {where} on {noun} "
        f"{index} ({reason}); rerun every {noun}'s command to resume after the last saved epoch"
    )


def batch_sharded(dataset):
    """`dataset` set to shard by data: every worker runs the whole (cheap, seeded) stream of file
    names and keeps its own part of each global batch, so the global batches are a single
    process's. File sharding does not apply: the pairs are a list of files, not record files."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _first_replica(strategy, logs):
    """The logs of this worker's first replica: every replica's trackers hold the global-batch means
    (keras_sar2opt.training.tf_step)."""
    return {name: strategy.experimental_local_results(value)[0] for name, value in logs.items()}


def fit_across_workers(model, strategy, train, val, *, epochs, initial_epoch, steps, callbacks, verbose):
    """Train `model` like `model.fit(train, validation_data=val, ...)` under a multi-worker strategy:
    `steps` batches of the endless stream `train` per epoch, then the whole of `val`, with the
    callbacks of fit() (a progress bar when `verbose`). Returns the History callback.

    A collective that times out or loses a worker raises WorkerLost, after the checkpoint of the
    last completed epoch.
    """
    import tensorflow as tf

    train = iter(strategy.experimental_distribute_dataset(batch_sharded(train)))
    val = strategy.experimental_distribute_dataset(batch_sharded(val))

    @tf.function
    def train_step(iterator):
        return _first_replica(strategy, strategy.run(model.train_step, args=(next(iterator),)))

    @tf.function
    def test_step(batch):
        return _first_replica(strategy, strategy.run(model.test_step, args=(batch,)))

    callbacks = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=epochs, steps=steps
    )

    def train_epoch(epoch):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            logs = train_step(train)
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = {name: float(value) for name, value in logs.items()}
        model.reset_metrics()
        for batch in val:
            logs = test_step(batch)
        epoch_logs.update({f"val_{name}": float(value) for name, value in logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)  # saving a checkpoint is collective too
        return epoch_logs

    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = {}
    for epoch in range(initial_epoch, epochs):
        epoch_logs = collectively(strategy, f"training epoch {epoch + 1}", train_epoch, epoch)
        if model.stop_training:
            break
    callbacks.on_train_end(epoch_logs)
    return model.history

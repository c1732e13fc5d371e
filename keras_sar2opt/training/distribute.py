"""Where and in which precision a run computes: its distribution strategy, dtype policy and determinism."""

import contextlib
import functools
import logging

from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)


class KerasDistribution:
    """A keras.distribution data-parallel layout with the part of tf.distribute's strategy
    interface a run uses (`scope()`, `num_replicas_in_sync`), for the JAX backend."""

    cluster_resolver = None  # one process: it is the chief

    def __init__(self, distribution=None):
        self.distribution = distribution
        self.num_replicas_in_sync = 1 if distribution is None else int(distribution.device_mesh.devices.size)

    def scope(self):
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()


@functools.cache
def make_strategy(name):
    """The distribution named by `--strategy` (none: the default, single-device one).

    TensorFlow backend: a tf.distribute strategy. JAX backend: "mirrored" is
    keras.distribution.DataParallel over every local device (multi-worker runs are not supported).
    One instance per name and process: runs in one process share it, since the collective
    operations of a second MirroredStrategy over the same devices clash with the first's.
    """
    import keras

    if keras.backend.backend() == "jax":
        if name == "multiworker":
            raise Sar2OptError("Expected --strategy none or mirrored on the JAX backend, received multiworker")
        return KerasDistribution(keras.distribution.DataParallel() if name == "mirrored" else None)
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # the cluster comes from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run folder: the chief, or worker 0 of a cluster without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def warn_if_bfloat16_is_emulated(precision):
    """Log a warning when mixed_bfloat16 would run on a CPU without bfloat16 instructions."""
    if precision != "mixed_bfloat16":
        return
    import keras

    from keras_sar2opt import hardware

    if keras.backend.backend() == "jax":
        import jax

        on_cpu = jax.default_backend() == "cpu"
    else:
        import tensorflow as tf

        on_cpu = not tf.config.list_physical_devices("GPU")
    if on_cpu and not hardware.native_bf16():
        logger.warning(
            "mixed_bfloat16 on a CPU without AVX-512 BF16 or AMX instructions: bfloat16 is emulated and "
            "trains several times slower than float32 (--precision float32)"
        )


@contextlib.contextmanager
def dtype_policy(precision):
    """Keras's global dtype policy set to `precision` inside the block, restored after it."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def enable_determinism():
    """Deterministic TensorFlow ops for the rest of this process (there is no way back).

    Seeds are set by the run and the data pipeline is deterministic already (ordered parallel
    maps, stateless shuffles), so a run then gives the same weights each time.
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()

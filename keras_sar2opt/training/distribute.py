"""Where and in which precision a run computes: its distribution strategy, dtype policy and determinism."""

import atexit
import contextlib
import functools
import logging
import os
import sys

from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)


# Seconds a collective operation (an all-reduce) waits for the other workers before it fails: a
# worker that died makes the others stop with a one-line error instead of waiting for ever. Long
# enough for the first step, which builds the graph on every worker before they meet.
COLLECTIVE_TIMEOUT = 300


class KerasDistribution:
    """A keras.distribution data-parallel layout with the part of tf.distribute's strategy
    interface a run uses (`scope()`, `num_replicas_in_sync`), for the JAX backend."""

    def __init__(self, distribution=None):
        self.distribution = distribution
        self.num_replicas_in_sync = 1 if distribution is None else int(distribution.device_mesh.devices.size)

    def scope(self):
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()


def start_processes(coordinator=None, num_processes=None, process_id=None):
    """Join a multi-process JAX job (`jax.distributed.initialize` through keras.distribution.initialize)
    when a coordinator address is given, by argument or Keras's KERAS_DISTRIBUTION_JOB_ADDRESSES,
    KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID; returns whether it did.

    Must run before any JAX computation. CPU processes reduce across processes with gloo, JAX's
    default CPU collectives (`jax_cpu_collectives_implementation`).
    """
    import keras

    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    named = [name for name, value in given.items() if value is not None]
    if keras.backend.backend() != "jax":
        if named:
            raise Sar2OptError(
                f"Expected {', '.join(named)} only on the JAX backend (TensorFlow takes its cluster from TF_CONFIG "
                "or Slurm), received KERAS_BACKEND=" + keras.backend.backend()
            )
        return False
    coordinator = coordinator or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    if coordinator is None:
        if named:
            raise Sar2OptError(f"Expected --coordinator HOST:PORT beside {', '.join(named)}, received none")
        return False
    for name, value in (("--num-processes", num_processes), ("--process-id", process_id)):
        variable = "KERAS_DISTRIBUTION_" + name[2:].replace("-", "_").upper()
        if value is None and os.environ.get(variable) is None:
            raise Sar2OptError(f"Expected {name} (or {variable}) beside --coordinator, received none")
    try:
        keras.distribution.initialize(coordinator, num_processes, process_id)
    except (ValueError, RuntimeError) as error:
        reason = " ".join(str(error).split())[:300]
        raise Sar2OptError(f"Expected to join the JAX job of coordinator {coordinator}, received {reason}") from None
    atexit.register(_end_lost_job)  # after JAX's own exit handlers, so that it runs before them
    return True


_lost_job = []  # the exit status, once this process's JAX job lost a process or this process failed


def leave_lost_job(status=1):
    """Make this process, if part of a multi-process JAX job, end at exit with `status` and without
    jax.distributed's shutdown, once the job lost a process or this process failed on an error of its
    own: the shutdown's barrier would wait for the lost process, or for the others, which cannot finish
    without this one (300 s), and then abort with a C++ stack trace after the one-line error. Nothing
    changes in a process that joined no job."""
    _lost_job.append(status)


def _end_lost_job():
    if _lost_job:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_lost_job[-1])


def cluster_resolver():
    """The TensorFlow cluster: TF_CONFIG when set, else the tasks of a Slurm job step (srun)."""
    import tensorflow as tf

    if "TF_CONFIG" not in os.environ and "SLURM_STEP_NUM_TASKS" in os.environ:
        slurm = tf.distribute.cluster_resolver.SlurmClusterResolver
        gpus = len(tf.config.list_physical_devices("GPU"))
        if gpus:
            return slurm(gpus_per_node=gpus)  # each task sees its share of the node's GPUs
        # The resolver lists one task per GPU slice of a node, so none on a node without GPUs; one
        # notional GPU per task, never made visible, lists every task.
        return slurm(gpus_per_node=int(os.environ["SLURM_STEP_NUM_TASKS"]), gpus_per_task=1, auto_set_gpu=False)
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


@functools.cache
def make_strategy(name):
    """The distribution named by `--strategy` (none: the default, single-device one).

    TensorFlow backend: a tf.distribute strategy; "multiworker" takes its cluster from TF_CONFIG
    or a Slurm job step, and its collectives time out after COLLECTIVE_TIMEOUT seconds. JAX
    backend: "mirrored" is keras.distribution.DataParallel over every device of every process
    (`start_processes` joins a multi-process job first). One instance per name and process: runs
    in one process share it, since the collective operations of a second MirroredStrategy over
    the same devices clash with the first's.
    """
    import keras

    if keras.backend.backend() == "jax":
        if name == "multiworker":
            raise Sar2OptError("Expected --strategy none or mirrored on the JAX backend, received multiworker")
        return KerasDistribution(keras.distribution.DataParallel() if name == "mirrored" else None)
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT)
        try:
            resolver = cluster_resolver()
            return tf.distribute.MultiWorkerMirroredStrategy(resolver, communication_options=options)
        except (ValueError, RuntimeError, KeyError) as error:  # a malformed TF_CONFIG or Slurm environment
            raise Sar2OptError(
                f"Expected a TF_CONFIG or Slurm cluster for --strategy multiworker, received {error}"
            ) from None
    return tf.distribute.get_strategy()


def worker_position(strategy):
    """(this worker's index, number of workers): (0, 1) for a run in one process."""
    distribution = getattr(strategy, "distribution", None)
    if distribution is not None:  # JAX
        import jax

        return jax.process_index(), jax.process_count()
    resolver = getattr(strategy, "cluster_resolver", None)
    jobs = resolver.cluster_spec().as_dict() if resolver is not None else {}  # sets a Slurm resolver's task
    if not jobs or not resolver.task_type:
        return 0, 1
    tasks = [(job, index) for job in ("chief", "worker") for index in range(len(jobs.get(job, ())))]
    return tasks.index((resolver.task_type, resolver.task_id)), len(tasks)


def is_chief(strategy):
    """Whether this process writes the run folder: the chief, or worker 0 of a cluster without one
    (process 0 on JAX)."""
    return worker_position(strategy)[0] == 0


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

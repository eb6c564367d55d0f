"""Multi-device training: ``tf.distribute.MirroredStrategy`` (TensorFlow) or Keras'
``keras.distribution.DataParallel`` (JAX).

Both are passed to `ssd_keras.train.train` as ``strategy``; `train` builds and compiles the model
and runs ``fit`` under its scope. The batch size given to `train` is the global batch size, split
across the devices, so make it a multiple of their number.

**TensorFlow, one machine** (``mirrored_strategy()``, CLI ``--distribute mirrored``): the model
is mirrored on every GPU; each replica runs its share of the batch on its own (loss, hard
negative mining and BatchNormalization statistics per replica) and the gradients are summed.

**JAX, one machine** (``data_parallel()``, CLI ``--distribute data-parallel``): the variables are
replicated over a one-axis device mesh and each batch is sharded along its first axis. JAX
compiles the step for the whole global batch (SPMD), so the loss, the mining and the
BatchNormalization statistics are those of the whole batch, as on one device. Every batch must
split evenly, the last one of an epoch too: use a number of training (and validation) images
that is a multiple of the batch size (a short last batch stops ``fit`` with JAX's
``IndivisibleError``). Keras'
distribution API has only this JAX implementation in Keras 3 (its TensorFlow backend is an
unfinished prototype and PyTorch has none).

**Testing without accelerators**: ``mirrored_strategy(cpu_devices=2)`` splits the CPU into 2
logical TensorFlow devices, ``data_parallel(cpu_devices=2)`` makes JAX expose 2 CPU devices.
Either must happen before the framework initialises its devices (before any tensor is created),
so at the start of a fresh process.

**Several machines, TensorFlow**: use ``tf.distribute.MultiWorkerMirroredStrategy()`` instead and
set the ``TF_CONFIG`` environment variable on every worker (``{"cluster": {"worker":
["host1:port", "host2:port"]}, "task": {"type": "worker", "index": i}}``); pass the strategy to
`train` the same way. Every worker runs the same command; worker 0 writes the run folder.

**Several machines, JAX**: every process first calls ``keras.distribution.initialize(
job_addresses="host0:port", num_processes=N, process_id=i)`` (process 0's address, the
coordinator; or all processes' addresses separated by commas; or set
``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
``KERAS_DISTRIBUTION_PROCESS_ID`` and call it without arguments) before anything else touches
JAX; then ``data_parallel()`` spans the devices of all processes. Keras splits only
``tf.data.Dataset``s across processes, and `train` feeds a `DataGenerator`, so each process
loads its own share of the data (e.g. ``filenames[i::N]`` and their labels) and the
``batch_size`` given to `train` is per process: the global batch is the N local batches side
by side. Every process uses the same seed (the same initial weights) and writes its own run
folder. (Checked on one machine with two processes in
``tests/ssd_keras/test_distribute.py``.)
"""

from __future__ import annotations

import os
import re
import sys

_XLA_CPU_COUNT_FLAG = "--xla_force_host_platform_device_count"


def split_cpu(n_devices: int) -> list:
    """Splits the physical CPU into ``n_devices`` logical devices; returns their names."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(int(n_devices))]
        )
    except RuntimeError as error:
        raise RuntimeError(
            "the CPU can only be split into logical devices before TensorFlow is initialised; "
            f"do it at the start of the process ({error})"
        ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def mirrored_strategy(cpu_devices: int | None = None):
    """A ``tf.distribute.MirroredStrategy`` over all GPUs, or over ``cpu_devices`` CPU devices.

    Args:
        cpu_devices: None to mirror over the visible GPUs (or the CPU when there is none); an
            integer to split the CPU into that many logical devices and mirror over them.
    """
    import tensorflow as tf

    if cpu_devices:
        return tf.distribute.MirroredStrategy(split_cpu(cpu_devices))
    return tf.distribute.MirroredStrategy()


def jax_cpu_devices(n_devices: int) -> None:
    """Makes JAX expose ``n_devices`` CPU devices (``--xla_force_host_platform_device_count``).

    Sets the XLA flag in ``XLA_FLAGS`` (replacing an earlier value of it) and, when JAX is
    already imported, JAX's own ``jax_num_cpu_devices`` option. Both are read only when JAX
    initialises its devices, so this must run before any JAX array is created. When JAX already
    has at least ``n_devices`` CPU devices, nothing changes.

    Raises:
        ValueError: if ``n_devices`` is not a positive integer.
        RuntimeError: if JAX has already initialised its devices with fewer CPU devices.
    """
    if int(n_devices) != n_devices or n_devices < 1:
        raise ValueError(f"cpu_devices must be a positive integer, got {n_devices!r}")
    n_devices = int(n_devices)
    flags = re.sub(rf"{_XLA_CPU_COUNT_FLAG}=\S*", "", os.environ.get("XLA_FLAGS", "")).split()
    if "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_XLA_CPU_COUNT_FLAG}={n_devices}"])
        return
    import jax

    try:
        # Refused (RuntimeError) once JAX has initialised its devices, unless unchanged.
        jax.config.update("jax_num_cpu_devices", n_devices)
    except RuntimeError:
        available = len(jax.devices("cpu"))
        if available >= n_devices:
            return
        raise RuntimeError(
            f"JAX has already initialised its devices with {available} CPU device(s), so it "
            f"cannot be given {n_devices}; call data_parallel(cpu_devices={n_devices}) at the "
            f"start of the process, or set XLA_FLAGS={_XLA_CPU_COUNT_FLAG}={n_devices} before "
            "starting it"
        ) from None
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_XLA_CPU_COUNT_FLAG}={n_devices}"])


def data_parallel(cpu_devices: int | None = None):
    """A ``keras.distribution.DataParallel`` over all accelerators, or over ``cpu_devices`` CPUs.

    Needs the JAX backend (``KERAS_BACKEND=jax``). Pass the result to `ssd_keras.train.train` as
    ``strategy``. Every batch is split evenly across the devices, so the batch size must be a
    multiple of their number and the number of images a multiple of the batch size (no short
    last batch).

    Args:
        cpu_devices: None for all devices of the default kind
            (``keras.distribution.list_devices()``: the GPUs or TPUs, or the CPU when there are
            none; in a multi-process run, the devices of all processes); an integer to make JAX
            expose that many CPU devices and shard over them (testing without accelerators;
            call it at the start of the process, before JAX initialises its devices).

    Returns:
        A ``keras.distribution.DataParallel`` whose one-axis ``device_mesh`` (axis ``"batch"``)
        holds the chosen devices.

    Raises:
        RuntimeError: if the Keras backend is not JAX, or JAX was initialised before with fewer
            CPU devices than ``cpu_devices``.

    Example:

    ```python
    # KERAS_BACKEND=jax, at the start of the script:
    from ssd_keras.distribute import data_parallel
    distribution = data_parallel()
    result = train(config, data, "runs/ssd300", epochs=120, batch_size=32,
                   strategy=distribution)
    ```
    """
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            "data_parallel needs the JAX backend: Keras' distribution API (keras.distribution) "
            f"is only implemented for JAX, and KERAS_BACKEND is {backend!r}; set "
            "KERAS_BACKEND=jax, or use mirrored_strategy() with TensorFlow"
        )
    if cpu_devices is None:
        devices = keras.distribution.list_devices()
    else:
        jax_cpu_devices(cpu_devices)
        devices = keras.distribution.list_devices("cpu")[: int(cpu_devices)]
    # `train` feeds a PyDataset, which Keras cannot split across processes (it shards only
    # tf.data.Datasets, and refuses anything else unless told the data is already split).
    return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)

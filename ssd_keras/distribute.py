"""Multi-device training with ``tf.distribute.MirroredStrategy`` (TensorFlow backend).

Single machine, several GPUs: ``train(..., strategy=mirrored_strategy())`` builds and compiles
the model under the strategy's scope; each batch is split across the replicas and the gradients
are summed. The batch size given to `train` is the global batch size.

Testing without GPUs: ``mirrored_strategy(cpu_devices=2)`` first splits the CPU into 2 logical
devices. This must run before TensorFlow initialises its devices (before any tensor is created),
so in a fresh process.

Several machines: use ``tf.distribute.MultiWorkerMirroredStrategy()`` instead and set the
``TF_CONFIG`` environment variable on every worker (``{"cluster": {"worker": ["host1:port",
"host2:port"]}, "task": {"type": "worker", "index": i}}``); pass the strategy to `train` the same
way. Every worker runs the same command; worker 0 writes the run folder.
"""

from __future__ import annotations


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

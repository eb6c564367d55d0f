"""Mixed precision for training and export: the policy for this machine, a scope that builds
layers in a policy, and the float32 form of a mixed-precision model (re-exported by
`ssd_keras.train`)."""

from __future__ import annotations

import contextlib

import keras


def mixed_precision_policy() -> str:
    """The Keras mixed-precision policy for this machine.

    ``'mixed_float16'`` when the backend sees a GPU (float16 tensor cores; needs loss scaling),
    else ``'mixed_bfloat16'`` (CPUs with AVX512-BF16/AMX compute bfloat16 natively; bfloat16 has
    float32's range, so no loss scaling).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    elif backend == "jax":
        import jax

        has_gpu = jax.default_backend() == "gpu"
    elif backend == "torch":
        import torch

        has_gpu = torch.cuda.is_available()
    else:
        has_gpu = False
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name: str | None):
    """Layers created inside compute in the ``name`` policy (None: unchanged)."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` with every layer computing in float32, same weights (the variables of a
    mixed-precision model are float32 already). Exporters (TFLite, ONNX) have no bfloat16
    kernels, so `ssd_keras.optimize.export_run` exports this form. Returns ``model`` itself
    when no layer uses a mixed policy.
    """

    def is_mixed(policy) -> bool:
        if isinstance(policy, dict):
            policy = policy.get("config", {}).get("name", "")
        return isinstance(policy, str) and policy.startswith("mixed_")

    def to_float32(node):
        if isinstance(node, dict):
            return {
                key: "float32" if key == "dtype" and is_mixed(value) else to_float32(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [to_float32(value) for value in node]
        return node

    config = model.get_config()
    converted = to_float32(config)
    if converted == config:
        return model
    clone = model.__class__.from_config(converted)
    clone.set_weights(model.get_weights())
    return clone

"""Mixed precision for training, inference and export: the policy for this machine, a scope that
builds layers in a policy, the float32 form of a mixed-precision model (re-exported by
`ssd_keras.train`) and the mixed-precision form of a float32 one (``predict``/``evaluate
--precision bf16``)."""

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


def float32_tail(model: keras.Model) -> set[str]:
    """Names of the layers after ``model``'s last layers with weights: those without weights
    that feed only layers like them (the anchors, the reshapes and concatenations of the
    output stage, the softmax, a decoder). They stay float32 in `mixed_model`, as the
    builders keep them under a mixed policy: the anchors need float32's resolution and the
    softmax its range."""
    from model_optimization.structured import _Graph

    consumers = _Graph(model).consumers
    tail: set[str] = set()
    for layer in reversed(model.layers):  # a functional model lists producers first
        readers = consumers.get(layer.name, [])
        if not layer.weights and all(reader.name in tail for reader in readers):
            tail.add(layer.name)
    return tail


def mixed_model(model: keras.Model, policy: str | None = None) -> keras.Model:
    """``model`` computing in a mixed-precision ``policy`` (default `mixed_precision_policy`),
    same weights: the layers up to the last ones with weights compute in bfloat16 (or
    float16), the `float32_tail` in float32, so the outputs are float32 as those of a model
    built under the policy. For inference only: a model to train in mixed precision is built
    under the policy (``train --mixed-precision``).

    On this project's 2-core CPU (AVX512-BF16) SSD300 runs about 1.9x as fast in
    ``mixed_bfloat16`` as in float32, SSD7 and SSDLite (BatchNorm folded) about 1.1x (README,
    "Runtimes").
    bfloat16 keeps 8 significant bits, so the scores and boxes differ slightly from the
    float32 model's: measure the mAP on your data before relying on it.
    """
    policy = policy or mixed_precision_policy()
    if not policy.startswith("mixed_"):
        raise ValueError(f"policy must be a mixed_* policy, got {policy!r}")
    tail = float32_tail(model)
    config = model.get_config()
    for layer in config["layers"]:
        if layer["name"] not in tail and layer["class_name"] != "InputLayer":
            layer["config"]["dtype"] = policy
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone

"""Packaging for ssd-keras."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "ssd_keras" / "__init__.py").read_text(), re.M
).group(1)

PACKAGES = [
    "models",
    "keras_layers",
    "keras_loss_function",
    "ssd_encoder_decoder",
    "bounding_box_utils",
    "data_generator",
    "eval_utils",
    "misc_utils",
    "model_optimization",
    "ssd_keras",
]

EXTRAS = {
    "cpu": ["tensorflow-cpu>=2.16"],
    "tensorflow": ["tensorflow>=2.16"],
    "jax": ["jax"],
    "export": ["tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"],
    # OpenVINO IR export/runtime; nncf for its int8 post-training quantisation.
    "openvino": ["openvino", "nncf"],
    "coco": ["pycocotools"],
    "notebooks": ["jupyter", "nbclient", "nbformat", "ipykernel"],
    # The tests execute the notebooks, so dev carries the notebook runner (not all of jupyter).
    "dev": ["pytest", "pytest-xdist", "hypothesis", "ruff", "nbclient", "nbformat", "ipykernel"],
}

setup(
    name="ssd-keras",
    version=VERSION,
    description="SSD300 / SSD512 / SSD7 object detection in Keras 3, a port of ssd_keras.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=PACKAGES,
    install_requires=[
        "keras>=3.13",  # model.export(format="litert")
        "numpy",
        "opencv-python-headless",
        "beautifulsoup4",
        "lxml",
        "h5py",
        "tqdm",
        "matplotlib",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["ssd-keras=ssd_keras.__main__:main"]},
)

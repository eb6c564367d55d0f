"""The configuration of a training run: which model, which classes, how targets are encoded.

A run folder holds ``config.json`` (a `RunConfig`) next to the saved models, so `evaluate` and
`predict` rebuild the encoder/decoder settings from the folder alone.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ssd_encoder_decoder.anchor_boxes import ANCHOR_CONFIG_KEYS

MODEL_NAMES = ("ssd7", "ssd300", "ssd512", "ssdlite")
CONFIG_FILE = "config.json"

# Encoder matching thresholds of the original notebooks: ssd7_training used neg_iou_limit 0.3,
# ssd300_training 0.5.
_ENCODER = {
    "ssd7": {"matching_type": "multi", "pos_iou_threshold": 0.5, "neg_iou_limit": 0.3},
    "ssd300": {"matching_type": "multi", "pos_iou_threshold": 0.5, "neg_iou_limit": 0.5},
    "ssd512": {"matching_type": "multi", "pos_iou_threshold": 0.5, "neg_iou_limit": 0.5},
    "ssdlite": {"matching_type": "multi", "pos_iou_threshold": 0.5, "neg_iou_limit": 0.5},
}
_DEFAULT_SIZE = {
    "ssd7": (300, 480),
    "ssd300": (300, 300),
    "ssd512": (512, 512),
    "ssdlite": (320, 320),
}
#: The smallest input side of SSDLite (``keras.applications``' MobileNets refuse smaller;
#: `models.keras_ssdlite.ssdlite` checks the same bound).
SSDLITE_MIN_SIDE = 32
_ANCHOR_KEYS = (
    *ANCHOR_CONFIG_KEYS,
    "clip_boxes",
    "variances",
    "normalize_coords",
)


def _smallest_feature_map(model: str, side: int) -> int:
    """The side of a model's last (smallest) feature map along one input axis of ``side`` pixels.

    SSD7: six 2x2 max pools with ``'valid'`` padding (``floor(n / 2)`` each). SSD300/SSD512:
    the VGG-16 base halves the side four times with ``'same'`` pools (``ceil(n / 2)``) up to
    ``fc7``; each extra block pads by 1 and applies a 3x3 ``'valid'`` convolution of stride 2;
    SSD300's last two blocks are 3x3 ``'valid'`` of stride 1 without padding, SSD512's last a
    4x4 ``'valid'`` one after a padding of 1.
    """
    if model == "ssd7":
        for _ in range(6):
            side //= 2
        return side
    for _ in range(4):
        side = -(-side // 2)
    for _ in range(2 if model == "ssd300" else 4):
        side = (side + 2 - 3) // 2 + 1 if side >= 1 else side
    return side - 4 if model == "ssd300" else side + 2 - 4 + 1


def min_image_side(model: str) -> int | None:
    """The smallest input height/width the model can be built for; None for a model it does not
    know.

    SSD7/SSD300/SSD512: the smallest side whose feature maps all keep at least one cell (below
    it Keras fails inside a pooling or convolution layer). SSDLite: `SSDLITE_MIN_SIDE`, the
    minimum of its ``keras.applications`` MobileNet backbone (its ``'same'``-padded stride-2
    layers keep every feature map at one cell or more for any side).
    """
    if model == "ssdlite":
        return SSDLITE_MIN_SIDE
    if model not in ("ssd7", "ssd300", "ssd512"):
        return None
    return next(n for n in range(1, 4096) if _smallest_feature_map(model, n) >= 1)


def check_image_size(model: str, image_size) -> None:
    """ValueError naming the size and the model's minimum when ``image_size`` is too small."""
    minimum = min_image_side(model)
    if minimum is not None and min(int(v) for v in image_size) < minimum:
        size = " x ".join(str(int(v)) for v in image_size)
        needs = "its MobileNet backbone" if model == "ssdlite" else "its smallest feature map"
        raise ValueError(
            f"image size {size} is too small for {model}: {needs} needs at "
            f"least {minimum} pixels in height and width"
        )


def read_json(path: Path, not_found: str):
    """The JSON document in the file ``path``.

    Raises:
        FileNotFoundError: with the message ``not_found`` when there is no such file.
        ValueError: naming the file when it is not valid JSON.
    """
    if not path.is_file():
        raise FileNotFoundError(not_found)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def run_has_trained(folder) -> bool:
    """Whether a run folder holds the results of training (a finished epoch's backup or a saved
    model), as opposed to the files a run writes before its first epoch ends."""
    folder = Path(folder)
    return any(
        (folder / name).is_file()
        for name in ("backup/latest.weights.h5", "model.keras", "model_best.keras")
    )


def _preset(model: str) -> dict:
    """The builder arguments of ``model``'s preset (its anchor settings, preprocessing, ...;
    the encoder gets exactly the same anchors), without ``image_size`` and ``n_classes``."""
    if model == "ssd7":
        from models.keras_ssd7 import SSD7_UDACITY as preset
    elif model == "ssd300":
        from models.keras_ssd300 import SSD300_VOC as preset
    elif model == "ssdlite":
        from models.keras_ssdlite import SSDLITE320_MOBILENETV2 as preset
    else:
        from models.keras_ssd512 import SSD512_VOC as preset
    preset = dict(preset)
    preset.pop("image_size")
    preset.pop("n_classes")
    return json.loads(json.dumps(preset))  # tuples -> lists, so the config is JSON as written


@dataclasses.dataclass
class RunConfig:
    """What a trained model needs to be rebuilt, trained further, evaluated and used.

    Args:
        model: ``'ssd7'``, ``'ssd300'``, ``'ssd512'`` or ``'ssdlite'`` (MobileNetV2 SSDLite; the
            backbone and width are ``model_kwargs['backbone']`` / ``['alpha']``).
        classes: class names, ``classes[0]`` the background (as for `DataGenerator.parse_xml`).
        image_size: ``(height, width)`` of the model input (3 channels).
        model_kwargs: keyword arguments of the builder (anchor settings, preprocessing, ...),
            without ``image_size``, ``n_classes`` and ``mode``.
        encoder_kwargs: matching settings of `SSDInputEncoder` (the anchor settings come from
            ``model_kwargs``).
        pruning: None for a model as the builder makes it; for a run made by
            ``python -m ssd_keras prune`` the record of what was pruned (``method``,
            ``amount``, ``source``, parameter counts, ...). Filter pruning narrows the layers,
            so the builder no longer gives the architecture: the run's ``.keras`` file is the
            model (`build_model` refuses such a config); anchors, classes and input size are
            unchanged, so `build_encoder` and the decoder settings still hold.
    """

    model: str
    classes: list
    image_size: tuple
    model_kwargs: dict
    encoder_kwargs: dict
    pruning: dict | None = None

    @classmethod
    def create(cls, model: str, classes, image_size=None, **overrides) -> RunConfig:
        """The original recipe of ``model`` for ``classes``, with builder ``overrides``.

        ``overrides`` replace entries of the preset's ``model_kwargs``, e.g.
        ``variances=[0.1, 0.1, 0.2, 0.2]``: the builder (`AnchorBoxes`), the encoder and the
        decoder all read them from there, so they always agree.
        """
        if model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {list(MODEL_NAMES)}, got {model!r}")
        classes = [str(c) for c in classes]
        if len(classes) < 2:
            raise ValueError(
                f"classes must hold the background and at least one class, got {classes!r}"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {classes!r}")
        if image_size is None:
            image_size = _DEFAULT_SIZE[model]
        image_size = tuple(int(v) for v in image_size)
        if len(image_size) != 2 or min(image_size) < 32:
            raise ValueError(f"image_size must be (height, width), each >= 32, got {image_size}")
        check_image_size(model, image_size)
        kwargs = _preset(model)
        if "variances" in overrides and overrides["variances"] is None:
            del overrides["variances"]  # None: the preset's
        if "variances" in overrides:
            variances = [float(v) for v in overrides["variances"]]
            if len(variances) != 4 or not all(v > 0 for v in variances):
                raise ValueError(f"variances must be 4 positive numbers, got {variances}")
            overrides["variances"] = variances
        kwargs.update(overrides)
        return cls(model, classes, image_size, kwargs, dict(_ENCODER[model]))

    @property
    def n_classes(self) -> int:
        """Object classes without the background."""
        return len(self.classes) - 1

    @property
    def img_height(self) -> int:
        return self.image_size[0]

    @property
    def img_width(self) -> int:
        return self.image_size[1]

    @property
    def architecture_from_builder(self) -> bool:
        """False when filter pruning changed the layer widths (the ``.keras`` file is the model)."""
        return not (self.pruning and self.pruning.get("method") == "filters")

    def build_model(
        self,
        mode: str = "training",
        return_predictor_sizes: bool = False,
        allow_pruned: bool = False,
        backbone_weights=None,
    ):
        """Builds the Keras model (see the builders in `models`).

        Args:
            mode: the builder's ``mode`` (``'training'``, ``'inference'``, ...).
            return_predictor_sizes: also return the ``(n_predictors, 2)`` feature map sizes.
            allow_pruned: build the unpruned architecture even when `pruning` says the run's
                layers were narrowed (the feature map sizes, anchors and output shape are the
                same; only the widths differ).
            backbone_weights: None, ``'imagenet'`` or a weights file path for the backbone
                (SSD300/SSD512: VGG16, SSDLite: its MobileNet; see the builders). Not part of
                the configuration: a trained run has its own weights.
        """
        if not allow_pruned and not self.architecture_from_builder:
            raise ValueError(
                f"this run's model was filter-pruned ({self.pruning}); the builder would give "
                "the unpruned widths: load the run's .keras model instead "
                "(ssd_keras.predict.load_run)"
            )
        if self.model == "ssd7":
            from models.keras_ssd7 import build_model as builder
        elif self.model == "ssd300":
            from models.keras_ssd300 import ssd_300 as builder
        elif self.model == "ssdlite":
            from models.keras_ssdlite import ssdlite as builder
        else:
            from models.keras_ssd512 import ssd_512 as builder
        extra = {}
        if backbone_weights is not None:
            if self.model == "ssd7":
                raise ValueError("backbone_weights: SSD7 has no pretrained backbone")
            extra["backbone_weights"] = backbone_weights
        return builder(
            image_size=(self.img_height, self.img_width, 3),
            n_classes=self.n_classes,
            mode=mode,
            return_predictor_sizes=return_predictor_sizes,
            **self.model_kwargs,
            **extra,
        )

    def build_encoder(self, predictor_sizes, output_dtype: str = "float32"):
        """The `SSDInputEncoder` matching the model's anchors.

        Its targets are float32 by default (what Keras trains on; the same values as the
        original's float64 targets rounded once, at half the memory and inter-process traffic).
        """
        from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder

        anchor_kwargs = {k: self.model_kwargs[k] for k in _ANCHOR_KEYS if k in self.model_kwargs}
        return SSDInputEncoder(
            img_height=self.img_height,
            img_width=self.img_width,
            n_classes=self.n_classes,
            predictor_sizes=predictor_sizes,
            **anchor_kwargs,
            **{"output_dtype": output_dtype, **self.encoder_kwargs},
        )

    @property
    def normalize_coords(self) -> bool:
        return bool(self.model_kwargs.get("normalize_coords", True))

    def predictor_sizes(self):
        """The ``(n_predictors, 2)`` feature map sizes of the model (they do not depend on the
        layer widths, so pruned runs have the same ones)."""
        return self.build_model(return_predictor_sizes=True, allow_pruned=True)[1]

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        if data["pruning"] is None:
            del data["pruning"]  # configs of unpruned runs read as before
        return data

    def save(self, folder) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> RunConfig:
        """Reads ``config.json`` (``path`` is the file or the run folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        data = read_json(path, f"no run configuration at {path}")
        optional = {"pruning"}
        missing = [
            f.name for f in dataclasses.fields(cls) if f.name not in data and f.name not in optional
        ]
        if missing:
            raise ValueError(f"{path}: missing field(s) {missing}")
        if data["model"] not in MODEL_NAMES:
            raise ValueError(f"{path}: field 'model' must be one of {list(MODEL_NAMES)}")
        return cls(
            data["model"],
            list(data["classes"]),
            tuple(data["image_size"]),
            dict(data["model_kwargs"]),
            dict(data["encoder_kwargs"]),
            data.get("pruning"),
        )

"""The model-driven loop shared by `Evaluator.predict_on_dataset` and `predict_all_to_json`.

The DataGenerator, its transforms and the decoder are imported where they are used, so
``eval_utils`` imports (and its pure functions run) without them and without Keras.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import ceil

import numpy as np

DATA_GENERATOR_MODES = ("resize", "pad")


class PadToAspectRatio:
    """Pads an image at the bottom/right with zeros to a given width / height ratio.

    Deterministic stand-in for the original's ``RandomPadFixedAR`` in ``'pad'`` evaluation
    mode: the image stays at the top-left corner, so its labels and the predictions need no
    shift (the inverter returns its input unchanged) and evaluation is reproducible.

    Args:
        aspect_ratio: target ``width / height``.
        background: fill value per channel.
    """

    def __init__(self, aspect_ratio: float, background=(0, 0, 0)):
        if not aspect_ratio > 0:
            raise ValueError(f"aspect_ratio must be > 0, got {aspect_ratio!r}")
        self.aspect_ratio = float(aspect_ratio)
        self.background = background

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of the padded image."""
        if width / height < self.aspect_ratio:
            return height, max(width, int(round(height * self.aspect_ratio)))
        return max(height, int(round(width / self.aspect_ratio))), width

    def __call__(self, image, labels=None, return_inverter: bool = False):
        image = np.asarray(image)
        height, width = image.shape[:2]
        new_h, new_w = self.target_size(height, width)
        canvas = np.zeros((new_h, new_w, *image.shape[2:]), dtype=image.dtype)
        if image.ndim == 3:
            canvas[...] = np.asarray(self.background, dtype=image.dtype)[: image.shape[2]]
        elif np.any(self.background):
            canvas[...] = np.asarray(self.background, dtype=image.dtype).reshape(-1)[0]
        canvas[:height, :width] = image
        out = [canvas] if labels is None else [canvas, labels]
        if return_inverter:
            out.append(_identity)
        return out[0] if len(out) == 1 else tuple(out)


def _identity(predictions):
    return predictions


def evaluation_transformations(
    img_height: int, img_width: int, data_generator_mode: str, labels_format: dict
) -> list:
    """``[ConvertTo3Channels, (PadToAspectRatio,) Resize]`` for the model's input size."""
    if data_generator_mode not in DATA_GENERATOR_MODES:
        raise ValueError(
            f"data_generator_mode must be one of {list(DATA_GENERATOR_MODES)}, got "
            f"{data_generator_mode!r}"
        )
    from data_generator.object_detection_2d_geometric_ops import Resize
    from data_generator.object_detection_2d_photometric_ops import ConvertTo3Channels

    resize = Resize(height=img_height, width=img_width, labels_format=labels_format)
    if data_generator_mode == "resize":
        return [ConvertTo3Channels(), resize]
    return [ConvertTo3Channels(), PadToAspectRatio(img_width / img_height), resize]


@dataclass(frozen=True)
class ModelDecoding:
    """How a model's output batch becomes detections in the model's input-image pixels.

    Args:
        model_mode: ``'training'`` (raw ``(batch, n_anchors, n_classes + 1 + 12)`` output,
            decoded here with `decode_detections`) or ``'inference'`` / ``'inference_fast'``
            (decoded ``(batch, top_k, 6)`` rows, zero-padded).
        pred_format: column of ``class_id``, ``conf``, ``xmin``, ``ymin``, ``xmax``, ``ymax``.
        img_height: model input height.
        img_width: model input width.
        confidence_thresh: decoder confidence threshold (training mode only).
        iou_threshold: decoder NMS IoU threshold (training mode only).
        top_k: decoder top-k (training mode only).
        pred_coords: the model's box format (training mode only).
        normalize_coords: whether the model outputs relative coordinates (training mode only).
        border_pixels: decoder border-pixel rule (training mode only).
    """

    model_mode: str
    pred_format: dict
    img_height: int
    img_width: int
    confidence_thresh: float
    iou_threshold: float
    top_k: int
    pred_coords: str
    normalize_coords: bool
    border_pixels: str

    def decode(self, y_pred) -> list[np.ndarray]:
        """One ``(m_i, 6)`` array per batch item: decodes raw output or drops zero padding."""
        if self.model_mode == "training":
            from ssd_encoder_decoder.ssd_output_decoder import decode_detections

            return list(
                decode_detections(
                    y_pred,
                    confidence_thresh=self.confidence_thresh,
                    iou_threshold=self.iou_threshold,
                    top_k=self.top_k,
                    input_coords=self.pred_coords,
                    normalize_coords=self.normalize_coords,
                    img_height=self.img_height,
                    img_width=self.img_width,
                    border_pixels=self.border_pixels,
                )
            )
        y_pred = np.asarray(y_pred)
        if y_pred.ndim != 3:
            raise ValueError(
                f"a model in {self.model_mode!r} mode must output (batch, top_k, 6) decoded rows, "
                f"got shape {y_pred.shape}"
            )
        class_column = self.pred_format["class_id"]
        # Inference models pad to top_k with all-zero rows; class 0 is never a detection.
        return [item[item[:, class_column] != 0] for item in y_pred]


def _evaluation_generator(data_generator, batch_size: int, transformations, returns_extra):
    """The generator's endless batch iterator and the position of each output in a batch.

    Asks for ``processed_images``, ``image_ids``, ``inverse_transform`` and ``returns_extra``,
    without shuffling, keeping images without ground truth, removing degenerate boxes.
    """
    from data_generator.object_detection_2d_data_generator import RETURNS_ORDER

    returns = {"processed_images", "image_ids", "inverse_transform", *returns_extra}
    # The DataGenerator returns its outputs in RETURNS_ORDER, whatever the order of `returns`.
    positions = {name: i for i, name in enumerate(n for n in RETURNS_ORDER if n in returns)}
    generator = data_generator.generate(
        batch_size=batch_size,
        shuffle=False,
        transformations=transformations,
        label_encoder=None,
        returns=returns,
        keep_images_without_gt=True,
        degenerate_box_handling="remove",
    )
    return generator, positions


def _batch_steps(n_images: int, batch_size: int, verbose: bool, description: str):
    """``range`` over the batches of one pass (a tqdm bar with ``verbose``)."""
    steps = range(int(ceil(n_images / batch_size)))
    if not verbose:
        return steps
    from tqdm import tqdm

    print(f"Number of images in the evaluation dataset: {n_images}")
    return tqdm(steps, desc=description)


def predict_batches(
    model,
    data_generator,
    batch_size: int,
    data_generator_mode: str,
    decoding: ModelDecoding,
    labels_format: dict,
    returns_extra: Sequence[str] = (),
    verbose: bool = True,
    description: str = "Predicting",
) -> Iterator[tuple[list, list[np.ndarray]]]:
    """Yields ``(image_ids, predictions)`` per batch, predictions in original-image pixels.

    Each image is transformed to the model's input size (`evaluation_transformations`), the
    model's output is decoded by ``decoding`` and mapped back to the original image with the
    generator's inverse transforms. ``returns_extra`` names further `generate` outputs the
    generator must produce (e.g. to check that the dataset has them).
    """
    from data_generator.object_detection_2d_misc_utils import apply_inverse_transforms

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    transformations = evaluation_transformations(
        decoding.img_height, decoding.img_width, data_generator_mode, labels_format
    )
    generator, positions = _evaluation_generator(
        data_generator, batch_size, transformations, returns_extra
    )
    n_images = data_generator.get_dataset_size()
    for _ in _batch_steps(n_images, batch_size, verbose, description):
        batch = next(generator)
        batch_x = batch[positions["processed_images"]]
        batch_image_ids = batch[positions["image_ids"]]
        batch_inverse = batch[positions["inverse_transform"]]
        y_pred = model.predict(np.asarray(batch_x), verbose=0)
        predictions = apply_inverse_transforms(decoding.decode(y_pred), batch_inverse)
        yield list(batch_image_ids), [np.asarray(p) for p in predictions]

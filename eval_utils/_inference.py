"""The model-driven loop shared by `Evaluator.predict_on_dataset` and `predict_all_to_json`.

The DataGenerator, its transforms and the decoder are imported inside `predict_batches`, so
``eval_utils`` imports (and its pure functions run) without them and without Keras.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def decoded_predictions(
    y_pred,
    model_mode: str,
    pred_format: dict,
    img_height: int,
    img_width: int,
    confidence_thresh: float,
    iou_threshold: float,
    top_k: int,
    pred_coords: str,
    normalize_coords: bool,
    border_pixels: str,
) -> list[np.ndarray]:
    """One ``(m_i, 6)`` array per batch item: decodes raw output or drops zero padding."""
    if model_mode == "training":
        from ssd_encoder_decoder.ssd_output_decoder import decode_detections

        return list(
            decode_detections(
                y_pred,
                confidence_thresh=confidence_thresh,
                iou_threshold=iou_threshold,
                top_k=top_k,
                input_coords=pred_coords,
                normalize_coords=normalize_coords,
                img_height=img_height,
                img_width=img_width,
                border_pixels=border_pixels,
            )
        )
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 3:
        raise ValueError(
            f"a model in {model_mode!r} mode must output (batch, top_k, 6) decoded rows, got "
            f"shape {y_pred.shape}"
        )
    class_column = pred_format["class_id"]
    # Inference models pad to top_k with all-zero rows; class 0 is never a detection.
    return [item[item[:, class_column] != 0] for item in y_pred]


def predict_batches(
    model,
    data_generator,
    img_height: int,
    img_width: int,
    batch_size: int,
    data_generator_mode: str,
    model_mode: str,
    confidence_thresh: float,
    iou_threshold: float,
    top_k: int,
    pred_coords: str,
    normalize_coords: bool,
    border_pixels: str,
    labels_format: dict,
    pred_format: dict,
    returns_extra: Sequence[str] = (),
    verbose: bool = True,
    description: str = "Predicting",
) -> Iterator[tuple[list, list[np.ndarray]]]:
    """Yields ``(image_ids, predictions)`` per batch, predictions in original-image pixels.

    The generator is asked for ``processed_images``, ``image_ids``, ``inverse_transform`` and
    ``returns_extra`` (in the DataGenerator's fixed return order), without shuffling, keeping
    images without ground truth, and removing degenerate boxes.
    """
    from data_generator.object_detection_2d_misc_utils import apply_inverse_transforms

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    transformations = evaluation_transformations(
        img_height, img_width, data_generator_mode, labels_format
    )
    returns = {"processed_images", "image_ids", "inverse_transform", *returns_extra}
    # The DataGenerator returns its outputs in this order, whatever the order of `returns`.
    order = [
        "processed_images",
        "encoded_labels",
        "matched_anchors",
        "processed_labels",
        "filenames",
        "image_ids",
        "evaluation-neutral",
        "inverse_transform",
        "original_images",
        "original_labels",
    ]
    positions = {name: i for i, name in enumerate(n for n in order if n in returns)}
    generator = data_generator.generate(
        batch_size=batch_size,
        shuffle=False,
        transformations=transformations,
        label_encoder=None,
        returns=returns,
        keep_images_without_gt=True,
        degenerate_box_handling="remove",
    )
    n_images = data_generator.get_dataset_size()
    batches = range(int(ceil(n_images / batch_size)))
    if verbose:
        from tqdm import tqdm

        print(f"Number of images in the evaluation dataset: {n_images}")
        batches = tqdm(batches, desc=description)
    for _ in batches:
        batch = next(generator)
        batch_x = batch[positions["processed_images"]]
        batch_image_ids = batch[positions["image_ids"]]
        batch_inverse = batch[positions["inverse_transform"]]
        y_pred = model.predict(np.asarray(batch_x), verbose=0)
        predictions = decoded_predictions(
            y_pred,
            model_mode,
            pred_format,
            img_height,
            img_width,
            confidence_thresh,
            iou_threshold,
            top_k,
            pred_coords,
            normalize_coords,
            border_pixels,
        )
        predictions = apply_inverse_transforms(predictions, batch_inverse)
        yield list(batch_image_ids), [np.asarray(p) for p in predictions]

"""MS COCO helpers: category maps, a results file from a model, and scoring with pycocotools.

Scoring needs ``pycocotools`` (``pip install ssd-keras[coco]``); it is imported only by
`evaluate_coco`. `predict_all_to_json` needs the DataGenerator, its transforms and (for models in
``'training'`` mode) the decoder, imported when it runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval_utils.detection_arrays import GT_FORMAT, PRED_FORMAT

COCO_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
"""The 12 numbers of ``COCOeval.summarize()``, in its order: AP over IoU 0.50:0.95, at 0.50 and
0.75, AP for small/medium/large objects, AR with at most 1/10/100 detections per image, and AR for
small/medium/large objects. A value of -1 means there was no ground truth for that entry."""


def _load_json(source) -> dict | list:
    if isinstance(source, (dict, list)):
        return source
    path = Path(source)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def get_coco_category_maps(annotations_file: str | os.PathLike | dict):
    """Maps between COCO category ids (sparse) and consecutive class ids (1..n, 0 background).

    Args:
        annotations_file: a COCO annotations JSON file (or its loaded dict).

    Returns:
        ``(cats_to_classes, classes_to_cats, cats_to_names, classes_to_names)``: dicts category
        id -> class id, class id -> category id, category id -> name, and the list of names
        indexed by class id (``classes_to_names[0] == 'background'``). Classes follow the order
        of ``annotations['categories']``, as in the original.
    """
    annotations = _load_json(annotations_file)
    if "categories" not in annotations:
        raise ValueError(f"{annotations_file}: no 'categories' field")
    cats_to_classes, classes_to_cats, cats_to_names = {}, {}, {}
    classes_to_names = ["background"]
    for i, category in enumerate(annotations["categories"], start=1):
        cats_to_classes[category["id"]] = i
        classes_to_cats[i] = category["id"]
        cats_to_names[category["id"]] = category["name"]
        classes_to_names.append(category["name"])
    return cats_to_classes, classes_to_cats, cats_to_names, classes_to_names


def detections_to_coco_results(
    detections: Sequence[np.ndarray],
    image_ids: Sequence,
    classes_to_cats: dict,
) -> list[dict]:
    """Per-image decoded detections -> COCO results (``[{image_id, category_id, bbox, score}]``).

    Args:
        detections: one ``(m_i, 6)`` array per image, rows ``[class_id, conf, xmin, ymin, xmax,
            ymax]`` in absolute pixels of the original image.
        image_ids: the COCO image id of each image.
        classes_to_cats: class id -> COCO category id (from `get_coco_category_maps`).

    Returns:
        The results list; boxes are ``[x, y, width, height]`` with corners rounded to 0.1 px and
        scores to 3 decimals (as the original, to keep the file small).
    """
    if len(detections) != len(image_ids):
        raise ValueError(f"got {len(detections)} detection arrays for {len(image_ids)} image ids")
    results = []
    for image_id, boxes in zip(image_ids, detections):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
        for class_id, score, *corners in boxes:
            try:
                category = classes_to_cats[int(class_id)]
            except KeyError:
                raise ValueError(
                    f"class id {int(class_id)} of image {image_id!r} has no COCO category in "
                    "classes_to_cats"
                ) from None
            xmin, ymin, xmax, ymax = (round(float(v), 1) for v in corners)
            results.append(
                {
                    "image_id": image_id.item() if isinstance(image_id, np.generic) else image_id,
                    "category_id": category,
                    "bbox": [xmin, ymin, round(xmax - xmin, 1), round(ymax - ymin, 1)],
                    "score": round(float(score), 3),
                }
            )
    return results


def predict_all_to_json(
    out_file: str | os.PathLike,
    model,
    img_height: int,
    img_width: int,
    classes_to_cats: dict,
    data_generator,
    batch_size: int,
    data_generator_mode: str = "resize",
    model_mode: str = "training",
    confidence_thresh: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
    pred_coords: str = "centroids",
    normalize_coords: bool = True,
    border_pixels: str = "half",
    verbose: bool = True,
) -> list[dict]:
    """Predicts on a whole COCO-style dataset and writes a COCO results JSON file.

    Args:
        out_file: where to write the results JSON.
        model: the Keras SSD model (``predict(batch, verbose=0)``).
        img_height: model input height.
        img_width: model input width.
        classes_to_cats: class id -> COCO category id.
        data_generator: a DataGenerator whose ``image_ids`` are the COCO image ids (as
            ``parse_json`` sets them).
        batch_size: images per batch.
        data_generator_mode: ``'resize'`` or ``'pad'`` (see `Evaluator`).
        model_mode: ``'training'`` (raw output, decoded here) or ``'inference'`` /
            ``'inference_fast'`` (already decoded).
        confidence_thresh: decoder confidence threshold (training mode).
        iou_threshold: decoder NMS IoU threshold (training mode).
        top_k: decoder top-k (training mode).
        pred_coords: the model's box format (training mode).
        normalize_coords: whether the model outputs relative coordinates (training mode).
        border_pixels: decoder border-pixel rule (training mode).
        verbose: print progress.

    Returns:
        The results list that was written.
    """
    from eval_utils._inference import ModelDecoding, predict_batches

    if model_mode not in ("training", "inference", "inference_fast"):
        raise ValueError(
            f"model_mode must be 'training', 'inference' or 'inference_fast', got {model_mode!r}"
        )
    decoding = ModelDecoding(
        model_mode=model_mode,
        pred_format=dict(PRED_FORMAT),
        img_height=img_height,
        img_width=img_width,
        confidence_thresh=confidence_thresh,
        iou_threshold=iou_threshold,
        top_k=top_k,
        pred_coords=pred_coords,
        normalize_coords=normalize_coords,
        border_pixels=border_pixels,
    )
    results: list[dict] = []
    for batch_image_ids, predictions in predict_batches(
        model=model,
        data_generator=data_generator,
        batch_size=batch_size,
        data_generator_mode=data_generator_mode,
        decoding=decoding,
        labels_format=dict(GT_FORMAT),
        verbose=verbose,
        description="Producing results file",
    ):
        results.extend(detections_to_coco_results(predictions, batch_image_ids, classes_to_cats))
    Path(out_file).write_text(json.dumps(results))
    if verbose:
        print(f"Prediction results saved in {os.fspath(out_file)!r}")
    return results


def remap_coco_detections(detections, annotations) -> list[dict]:
    """Detections stored as a COCO *dataset* with its own ids -> results for ``annotations``.

    Some tools export detections as a full COCO file (``images``, ``categories``,
    ``annotations`` with a ``score``) numbered independently of the ground truth. Images are
    matched by ``file_name`` and categories by ``name``.

    Args:
        detections: that file (path or loaded dict).
        annotations: the ground-truth COCO annotations (path or loaded dict).

    Returns:
        A results list (``image_id``, ``category_id``, ``bbox``, ``score``) in the ground truth's
        ids.

    Raises:
        ValueError: naming an image file or category name that the ground truth lacks, or a
            detection without a score.
    """
    det, gt = _load_json(detections), _load_json(annotations)
    for name, data in (("detections", det), ("annotations", gt)):
        if not isinstance(data, dict) or not {"images", "categories"} <= data.keys():
            raise ValueError(f"{name} must be a COCO dataset with 'images' and 'categories'")
    gt_images = {image["file_name"]: image["id"] for image in gt["images"]}
    gt_categories = {category["name"]: category["id"] for category in gt["categories"]}
    image_map, category_map = {}, {}
    for image in det["images"]:
        if image["file_name"] not in gt_images:
            raise ValueError(f"detections image {image['file_name']!r} is not in the ground truth")
        image_map[image["id"]] = gt_images[image["file_name"]]
    for category in det["categories"]:
        if category["name"] not in gt_categories:
            raise ValueError(f"detections category {category['name']!r} is not in the ground truth")
        category_map[category["id"]] = gt_categories[category["name"]]
    results = []
    for k, ann in enumerate(det.get("annotations", [])):
        if "score" not in ann:
            raise ValueError(f"detections annotation {k} (id {ann.get('id')!r}) has no 'score'")
        results.append(
            {
                "image_id": image_map[ann["image_id"]],
                "category_id": category_map[ann["category_id"]],
                "bbox": [float(v) for v in ann["bbox"]],
                "score": float(ann["score"]),
            }
        )
    return results


def evaluate_coco(
    annotations_file: str | os.PathLike,
    results,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """Scores COCO bbox results with pycocotools' ``COCOeval``.

    Args:
        annotations_file: the ground-truth COCO annotations JSON.
        results: a results JSON file (as `predict_all_to_json` writes) or the results list.
        image_ids: restrict the evaluation to these images (default: all in the ground truth).
        verbose: print pycocotools' loading messages and its summary table.

    Returns:
        The 12 numbers of ``COCOeval.summarize()`` keyed by `COCO_STAT_NAMES`, in that order.

    Raises:
        ImportError: when pycocotools is not installed.
        ValueError: for an empty results list or results naming unknown images or categories.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError(
            "evaluate_coco needs pycocotools: pip install pycocotools (or ssd-keras[coco])"
        ) from error
    results = _load_json(results)
    if not isinstance(results, list):
        raise ValueError("results must be a list of {image_id, category_id, bbox, score}")
    if not results:
        raise ValueError("results is empty: there are no detections to score")
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_gt = COCO(os.fspath(annotations_file))
        known_images, known_cats = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
        for k, result in enumerate(results):
            missing = {"image_id", "category_id", "bbox", "score"} - result.keys()
            if missing:
                raise ValueError(f"results[{k}] lacks {sorted(missing)}")
            if result["image_id"] not in known_images:
                raise ValueError(
                    f"results[{k}] names image_id {result['image_id']!r}, not in "
                    f"{os.fspath(annotations_file)}"
                )
            if result["category_id"] not in known_cats:
                raise ValueError(
                    f"results[{k}] names category_id {result['category_id']!r}, not in "
                    f"{os.fspath(annotations_file)}"
                )
        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            coco_eval.params.imgIds = list(image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, coco_eval.stats)}

"""The model-driven Pascal VOC evaluator of the original ssd_keras: `Evaluator`.

`Evaluator` predicts on a `DataGenerator` dataset and scores the predictions with the pure
numpy functions of `eval_utils.voc_ap` (matching by the VOC devkit rule, precision/recall,
11-point and all-point AP, mAP; the rule is documented there) on the flat arrays of
`eval_utils.detection_arrays`. Those functions are re-exported here under their original import
path, so ``from eval_utils.average_precision_evaluator import evaluate_predictions`` keeps working.

Differences from the original ssd_keras (its known bugs, fixed here), beside those of
`eval_utils.voc_ap`:

- ``match_predictions(verbose=False)`` matched only the first prediction of each class;
  here ``verbose`` only controls printing.

Kept: the original's public names, arguments and returned lists (indexed by class id, index 0 for
the background), box coordinates rounded to 0.1 px when collected from a model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from eval_utils.detection_arrays import (
    GT_FORMAT,
    PRED_FORMAT,
    _check_format,
    _check_n_classes,
    flatten_ground_truth,
    flatten_prediction_results,
    prediction_results_from_detections,
)
from eval_utils.voc_ap import (
    AP_MODES,
    SORTING_ALGORITHMS,
    EvaluationResult,
    MatchResult,
    average_precision,
    count_ground_truth,
    evaluate_predictions,
    match_detection_arrays,
    match_predictions,
    mean_average_precision,
    precision_recall,
)

__all__ = [
    "AP_MODES",
    "GT_FORMAT",
    "PRED_FORMAT",
    "SORTING_ALGORITHMS",
    "EvaluationResult",
    "Evaluator",
    "MatchResult",
    "average_precision",
    "count_ground_truth",
    "evaluate_predictions",
    "flatten_ground_truth",
    "flatten_prediction_results",
    "match_detection_arrays",
    "match_predictions",
    "mean_average_precision",
    "precision_recall",
    "prediction_results_from_detections",
]


def _progress(iterable, verbose: bool, description: str):
    if not verbose:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stdout, desc=description)


class Evaluator:
    """Pascal VOC mean average precision of a Keras SSD model on a `DataGenerator` dataset.

    Each step is a public method storing its result on the instance (as in the original):
    `predict_on_dataset` -> ``prediction_results``; `get_num_gt_per_class` ->
    ``num_gt_per_class``; `match_predictions` -> ``true_positives``, ``false_positives``,
    ``cumulative_true_positives``, ``cumulative_false_positives``; `compute_precision_recall` ->
    ``cumulative_precisions``, ``cumulative_recalls``; `compute_average_precisions` ->
    ``average_precisions``; `compute_mean_average_precision` -> ``mean_average_precision``.
    All per-class lists have ``n_classes + 1`` entries, index 0 being a dummy for the background.
    The steps after prediction are the pure functions of `eval_utils.voc_ap`, so predictions read
    from files can be evaluated by setting ``prediction_results`` and skipping
    `predict_on_dataset`.

    Args:
        model: a Keras SSD model (anything with ``predict(batch, verbose=0)``).
        n_classes: number of object classes (20 for Pascal VOC).
        data_generator: a `DataGenerator` holding the evaluation set: ``labels``, ``image_ids``,
            ``eval_neutral``, ``get_dataset_size()`` and ``generate(...)``.
        model_mode: ``'inference'`` / ``'inference_fast'`` (the model outputs decoded
            ``(batch, top_k, 6)`` rows, zero-padded) or ``'training'`` (raw
            ``(batch, n_anchors, n_classes + 1 + 12)``, decoded here with `decode_detections`).
        pred_format: column of ``class_id``, ``conf``, ``xmin``, ``ymin``, ``xmax``, ``ymax`` in
            a decoded prediction.
        gt_format: column of ``class_id``, ``xmin``, ``ymin``, ``xmax``, ``ymax`` in a label.

    Example:
        >>> evaluator = Evaluator(model, n_classes=20, data_generator=dataset)  # doctest: +SKIP
        >>> mean_ap, aps = evaluator(300, 300, batch_size=8,
        ...                          return_average_precisions=True)  # doctest: +SKIP
    """

    MODEL_MODES = ("training", "inference", "inference_fast")

    def __init__(
        self,
        model,
        n_classes: int,
        data_generator,
        model_mode: str = "inference",
        pred_format: dict | None = None,
        gt_format: dict | None = None,
    ):
        if model_mode not in self.MODEL_MODES:
            raise ValueError(
                f"model_mode must be one of {list(self.MODEL_MODES)}, got {model_mode!r}"
            )
        self.model = model
        self.data_generator = data_generator
        self.n_classes = _check_n_classes(n_classes)
        self.model_mode = model_mode
        self.pred_format = _check_format(
            dict(PRED_FORMAT if pred_format is None else pred_format),
            ("class_id", "conf", "xmin", "ymin", "xmax", "ymax"),
            "pred_format",
        )
        self.gt_format = _check_format(
            dict(GT_FORMAT if gt_format is None else gt_format),
            ("class_id", "xmin", "ymin", "xmax", "ymax"),
            "gt_format",
        )
        self.prediction_results = None
        self.num_gt_per_class = None
        self.true_positives = None
        self.false_positives = None
        self.cumulative_true_positives = None
        self.cumulative_false_positives = None
        self.cumulative_precisions = None
        self.cumulative_recalls = None
        self.average_precisions = None
        self.mean_average_precision = None

    def __call__(
        self,
        img_height: int,
        img_width: int,
        batch_size: int,
        data_generator_mode: str = "resize",
        round_confidences: int | bool = False,
        matching_iou_threshold: float = 0.5,
        border_pixels: str = "include",
        sorting_algorithm: str = "quicksort",
        average_precision_mode: str = "sample",
        num_recall_points: int = 11,
        ignore_neutral_boxes: bool = True,
        return_precisions: bool = False,
        return_recalls: bool = False,
        return_average_precisions: bool = False,
        verbose: bool = True,
        decoding_confidence_thresh: float = 0.01,
        decoding_iou_threshold: float = 0.45,
        decoding_top_k: int = 200,
        decoding_pred_coords: str = "centroids",
        decoding_normalize_coords: bool = True,
    ):
        """Runs every step: predict, count, match, precision/recall, AP, mAP.

        Args:
            img_height: model input height.
            img_width: model input width.
            batch_size: images per prediction batch.
            data_generator_mode: ``'resize'`` (warp to the input size) or ``'pad'`` (pad to the
                input aspect ratio, bottom/right, then resize).
            round_confidences: False or a number of decimals to round confidences to.
            matching_iou_threshold: IoU needed for a true positive (``>=``).
            border_pixels: ``'include'`` (VOC, +1 pixel), ``'half'`` or ``'exclude'``; used for
                matching and for decoding.
            sorting_algorithm: ``np.argsort`` kind used to sort by confidence.
            average_precision_mode: ``'sample'`` (VOC2007 k-point) or ``'integrate'``
                (VOC2010+ all-point).
            num_recall_points: recall thresholds in ``'sample'`` mode.
            ignore_neutral_boxes: difficult boxes neither count nor penalise.
            return_precisions: also return the cumulative precisions per class.
            return_recalls: also return the cumulative recalls per class.
            return_average_precisions: also return the AP per class.
            verbose: print progress.
            decoding_confidence_thresh: decoder setting (``model_mode='training'`` only).
            decoding_iou_threshold: decoder NMS IoU threshold (training mode only).
            decoding_top_k: decoder top-k (training mode only).
            decoding_pred_coords: the model's box format (training mode only).
            decoding_normalize_coords: whether the model outputs relative coordinates.

        Returns:
            The mAP (float), or ``[mAP, aps?, precisions?, recalls?]`` with the requested extras
            in that order.
        """
        self.predict_on_dataset(
            img_height=img_height,
            img_width=img_width,
            batch_size=batch_size,
            data_generator_mode=data_generator_mode,
            decoding_confidence_thresh=decoding_confidence_thresh,
            decoding_iou_threshold=decoding_iou_threshold,
            decoding_top_k=decoding_top_k,
            decoding_pred_coords=decoding_pred_coords,
            decoding_normalize_coords=decoding_normalize_coords,
            decoding_border_pixels=border_pixels,
            round_confidences=round_confidences,
            verbose=verbose,
            ret=False,
        )
        self.get_num_gt_per_class(ignore_neutral_boxes=ignore_neutral_boxes, verbose=False)
        self.match_predictions(
            ignore_neutral_boxes=ignore_neutral_boxes,
            matching_iou_threshold=matching_iou_threshold,
            border_pixels=border_pixels,
            sorting_algorithm=sorting_algorithm,
            verbose=verbose,
        )
        self.compute_precision_recall(verbose=verbose)
        self.compute_average_precisions(
            mode=average_precision_mode, num_recall_points=num_recall_points, verbose=verbose
        )
        mean_ap = self.compute_mean_average_precision(ret=True)
        if return_precisions or return_recalls or return_average_precisions:
            ret: list[Any] = [mean_ap]
            if return_average_precisions:
                ret.append(self.average_precisions)
            if return_precisions:
                ret.append(self.cumulative_precisions)
            if return_recalls:
                ret.append(self.cumulative_recalls)
            return ret
        return mean_ap

    def predict_on_dataset(
        self,
        img_height: int,
        img_width: int,
        batch_size: int,
        data_generator_mode: str = "resize",
        decoding_confidence_thresh: float = 0.01,
        decoding_iou_threshold: float = 0.45,
        decoding_top_k: int = 200,
        decoding_pred_coords: str = "centroids",
        decoding_normalize_coords: bool = True,
        decoding_border_pixels: str = "include",
        round_confidences: int | bool = False,
        verbose: bool = True,
        ret: bool = False,
    ):
        """Predicts on the whole dataset, batch by batch, in original-image coordinates.

        Images go through ``ConvertTo3Channels`` and ``Resize`` (``'pad'`` mode first pads them to
        the input aspect ratio); the predictions are mapped back to each original image with the
        generator's inverse transforms, and box coordinates are rounded to 0.1 px.

        Returns:
            None, or with ``ret`` the ``n_classes + 1`` per-class lists of
            ``(image_id, conf, xmin, ymin, xmax, ymax)``.
        """
        from eval_utils._inference import ModelDecoding, predict_batches

        if round_confidences is not False and (
            isinstance(round_confidences, bool) or not isinstance(round_confidences, int)
        ):
            raise ValueError(
                f"round_confidences must be False or a number of decimals, got "
                f"{round_confidences!r}"
            )
        if self.data_generator.image_ids is None:
            # As the original: datasets without ids get their positions as ids.
            self.data_generator.image_ids = list(range(self.data_generator.get_dataset_size()))
        decoding = ModelDecoding(
            model_mode=self.model_mode,
            pred_format=self.pred_format,
            img_height=img_height,
            img_width=img_width,
            confidence_thresh=decoding_confidence_thresh,
            iou_threshold=decoding_iou_threshold,
            top_k=decoding_top_k,
            pred_coords=decoding_pred_coords,
            normalize_coords=decoding_normalize_coords,
            border_pixels=decoding_border_pixels,
        )
        batches = predict_batches(
            model=self.model,
            data_generator=self.data_generator,
            batch_size=batch_size,
            data_generator_mode=data_generator_mode,
            decoding=decoding,
            labels_format=self.gt_format,
            returns_extra=("evaluation-neutral", "original_labels"),
            verbose=verbose,
            description="Producing predictions batch-wise",
        )
        results: list[list[tuple]] = [[] for _ in range(self.n_classes + 1)]
        for batch_image_ids, batch_predictions in batches:
            for image_id, boxes in zip(batch_image_ids, batch_predictions):
                for class_id, row in self._prediction_rows(image_id, boxes, round_confidences):
                    results[class_id].append(row)
        self.prediction_results = results
        if ret:
            return results
        return None

    def _prediction_rows(self, image_id, boxes, round_confidences):
        """Yields ``(class_id, (image_id, conf, xmin, ymin, xmax, ymax))`` per decoded box."""
        pf = self.pred_format
        for box in boxes:
            class_id = int(box[pf["class_id"]])
            if not 1 <= class_id <= self.n_classes:
                raise ValueError(
                    f"the model predicted class id {class_id} for image {image_id!r}, "
                    f"outside 1..{self.n_classes}"
                )
            confidence = float(box[pf["conf"]])
            if round_confidences is not False:
                confidence = round(confidence, round_confidences)
            coords = (round(float(box[pf[k]]), 1) for k in ("xmin", "ymin", "xmax", "ymax"))
            yield class_id, (image_id, confidence, *coords)

    def write_predictions_to_txt(
        self,
        classes: Sequence[str] | None = None,
        out_file_prefix: str = "comp3_det_test_",
        verbose: bool = True,
    ) -> list[str]:
        """Writes one VOC results file per class: ``<prefix><class name>.txt``.

        Each line is ``image_id confidence xmin ymin xmax ymax`` (confidence to 4 decimals).
        Integer image ids are zero-padded to 6 digits (the original's format); string ids, such
        as VOC2012's ``2007_000027``, are written as they are (the original crashed on them).

        Args:
            classes: names indexed by class id (index 0 the background), or None for
                ``0001``, ``0002``, ...
            out_file_prefix: path prefix of the files (may include a folder).
            verbose: print progress.

        Returns:
            The paths written.
        """
        from eval_utils.voc_io import write_voc_results

        if self.prediction_results is None:
            raise ValueError(
                "There are no prediction results. Run predict_on_dataset() first (or set "
                "prediction_results)."
            )
        paths = write_voc_results(self.prediction_results, out_file_prefix, classes)
        if verbose:
            print(f"Wrote {len(paths)} results files with prefix {out_file_prefix!r}.")
        return paths

    def _ground_truth(self):
        dg = self.data_generator
        if dg.labels is None:
            raise ValueError("The data generator has no ground truth (labels is None).")
        image_ids = dg.image_ids
        if image_ids is None:
            image_ids = list(range(len(dg.labels)))
        return dg.labels, image_ids, dg.eval_neutral

    def get_num_gt_per_class(
        self, ignore_neutral_boxes: bool = True, verbose: bool = True, ret: bool = False
    ):
        """Counts the ground-truth boxes per class (neutral ones left out if asked).

        Returns:
            None, or with ``ret`` a ``(n_classes + 1,)`` int array (index 0: background).
        """
        labels, _, eval_neutral = self._ground_truth()
        if verbose:
            print("Computing the number of positive ground truth boxes per class.")
        self.num_gt_per_class = count_ground_truth(
            labels, self.n_classes, eval_neutral, ignore_neutral_boxes, self.gt_format
        )
        if ret:
            return self.num_gt_per_class
        return None

    def match_predictions(
        self,
        ignore_neutral_boxes: bool = True,
        matching_iou_threshold: float = 0.5,
        border_pixels: str = "include",
        sorting_algorithm: str = "quicksort",
        verbose: bool = True,
        ret: bool = False,
    ):
        """Matches every prediction of every class to the ground truth (VOCevaldet rule).

        ``verbose`` only prints; all predictions are matched either way (the original matched
        only the first one of each class with ``verbose=False``).

        Returns:
            None, or with ``ret`` the four per-class lists ``true_positives, false_positives,
            cumulative_true_positives, cumulative_false_positives``, each array in descending
            confidence order.
        """
        if self.prediction_results is None:
            raise ValueError(
                "There are no prediction results. Run predict_on_dataset() first (or set "
                "prediction_results)."
            )
        labels, image_ids, eval_neutral = self._ground_truth()
        if verbose:
            counts = [len(p) for p in self.prediction_results[1:]]
            print(f"Matching {sum(counts)} predictions of {self.n_classes} classes.")
            for c in np.flatnonzero(np.asarray(counts) == 0) + 1:
                print(f"No predictions for class {c}/{self.n_classes}")
        match = match_predictions(
            self.prediction_results,
            labels,
            image_ids,
            self.n_classes,
            eval_neutral,
            ignore_neutral_boxes=ignore_neutral_boxes,
            matching_iou_threshold=matching_iou_threshold,
            border_pixels=border_pixels,
            sorting_algorithm=sorting_algorithm,
            gt_format=self.gt_format,
        )
        self.true_positives = match.true_positives
        self.false_positives = match.false_positives
        self.cumulative_true_positives = match.cumulative_true_positives
        self.cumulative_false_positives = match.cumulative_false_positives
        if ret:
            return (
                self.true_positives,
                self.false_positives,
                self.cumulative_true_positives,
                self.cumulative_false_positives,
            )
        return None

    def compute_precision_recall(self, verbose: bool = True, ret: bool = False):
        """Cumulative precision and recall per class (see `precision_recall`).

        Returns:
            None, or with ``ret`` ``(cumulative_precisions, cumulative_recalls)``.
        """
        if self.cumulative_true_positives is None or self.cumulative_false_positives is None:
            raise ValueError("True/false positives not available. Run match_predictions() first.")
        if self.num_gt_per_class is None:
            raise ValueError("Ground-truth counts not available. Run get_num_gt_per_class() first.")
        precisions, recalls = [np.zeros(0)], [np.zeros(0)]
        for c in _progress(range(1, self.n_classes + 1), verbose, "Precision and recall"):
            p, r = precision_recall(
                self.cumulative_true_positives[c],
                self.cumulative_false_positives[c],
                int(self.num_gt_per_class[c]),
            )
            precisions.append(p)
            recalls.append(r)
        self.cumulative_precisions = precisions
        self.cumulative_recalls = recalls
        if ret:
            return precisions, recalls
        return None

    def compute_average_precisions(
        self,
        mode: str = "sample",
        num_recall_points: int = 11,
        verbose: bool = True,
        ret: bool = False,
    ):
        """AP per class, ``'sample'`` (VOC2007 k-point) or ``'integrate'`` (VOC2010+ all-point).

        A class without ground truth gets NaN (undefined), and a warning from
        `compute_mean_average_precision`.

        Returns:
            None, or with ``ret`` the list of APs (index 0: background, 0.0).
        """
        if self.cumulative_precisions is None or self.cumulative_recalls is None:
            raise ValueError(
                "Precisions and recalls not available. Run compute_precision_recall() first."
            )
        if mode not in AP_MODES:
            raise ValueError(f"mode must be one of {list(AP_MODES)}, got {mode!r}")
        aps = [0.0]
        for c in _progress(range(1, self.n_classes + 1), verbose, "Average precisions"):
            if self.num_gt_per_class is not None and self.num_gt_per_class[c] == 0:
                aps.append(float("nan"))
                continue
            aps.append(
                average_precision(
                    self.cumulative_precisions[c],
                    self.cumulative_recalls[c],
                    mode=mode,
                    num_recall_points=num_recall_points,
                )
            )
        self.average_precisions = aps
        if ret:
            return aps
        return None

    def compute_mean_average_precision(self, ret: bool = True):
        """Mean AP over the classes that have ground truth (warns about the others).

        Returns:
            The mAP (float) with ``ret``, else None.
        """
        if self.average_precisions is None:
            raise ValueError(
                "Average precisions not available. Run compute_average_precisions() first."
            )
        self.mean_average_precision = mean_average_precision(
            self.average_precisions, self.num_gt_per_class
        )
        if ret:
            return self.mean_average_precision
        return None

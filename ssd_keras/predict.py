"""Detection on images, folders and video files with a trained run; draws the boxes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def load_run(path):
    """Loads a trained model and its `RunConfig`.

    Args:
        path: a run folder (``config.json`` + ``model_best.keras`` or ``model.keras``) or a
            ``.keras`` file with ``config.json`` in the same folder.

    Returns:
        ``(model, config)``.
    """
    from ssd_keras.config import CONFIG_FILE, RunConfig

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir():
        candidates = [path / "model_best.keras", path / "model.keras"]
        model_file = next((p for p in candidates if p.is_file()), None)
        if model_file is None:
            raise FileNotFoundError(
                f"{path} holds no model_best.keras or model.keras (is it a training run folder?)"
            )
        config_file = path / CONFIG_FILE
    else:
        if path.suffix != ".keras":
            raise ValueError(f"{path}: expected a run folder or a .keras model file")
        model_file = path
        config_file = path.parent / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_FILE} next to {model_file}; the app needs the run configuration "
            "written by training (classes, input size, anchors)"
        )
    config = RunConfig.load(config_file)

    import keras

    import models  # noqa: F401  (registers the custom layers for loading)

    model = keras.models.load_model(model_file, compile=False)
    return model, config


class Predictor:
    """Runs a training-mode SSD on RGB images of any size and decodes its output.

    Each image is resized to the model's input size (bilinear), the raw output is decoded with
    `decode_detections` (per-class NMS) and the boxes are scaled back to the image.

    Args:
        model: a training-mode SSD model.
        config: its `RunConfig`.
        confidence_thresh: minimum class confidence of a detection.
        iou_threshold: NMS IoU threshold.
        top_k: detections kept per image.

    Call:
        ``predictor(images)`` with a list of ``(H_i, W_i, 3)`` uint8 RGB images -> a list of
        ``(k_i, 6)`` arrays ``[class_id, confidence, xmin, ymin, xmax, ymax]`` in each image's
        pixels.
    """

    def __init__(self, model, config, confidence_thresh=0.5, iou_threshold=0.45, top_k: int = 200):
        if not 0 <= confidence_thresh < 1:
            raise ValueError(f"confidence_thresh must be in [0, 1), got {confidence_thresh!r}")
        self.model = model
        self.config = config
        self.confidence_thresh = float(confidence_thresh)
        self.iou_threshold = float(iou_threshold)
        self.top_k = int(top_k)

    def __call__(self, images) -> list[np.ndarray]:
        from ssd_encoder_decoder.ssd_output_decoder import decode_detections

        h, w = self.config.img_height, self.config.img_width
        batch = np.stack(
            [cv2.resize(np.asarray(im), (w, h), interpolation=cv2.INTER_LINEAR) for im in images]
        )
        y_pred = np.asarray(self.model.predict_on_batch(batch))
        decoded = decode_detections(
            y_pred,
            confidence_thresh=self.confidence_thresh,
            iou_threshold=self.iou_threshold,
            top_k=self.top_k,
            normalize_coords=self.config.normalize_coords,
            img_height=h,
            img_width=w,
        )
        out = []
        for image, boxes in zip(images, decoded):
            boxes = np.array(boxes, dtype=np.float64).reshape(-1, 6)
            height, width = np.asarray(image).shape[:2]
            boxes[:, [2, 4]] = np.clip(boxes[:, [2, 4]] * (width / w), 0, width)
            boxes[:, [3, 5]] = np.clip(boxes[:, [3, 5]] * (height / h), 0, height)
            out.append(boxes)
        return out


def _colour(class_id: int) -> tuple[int, int, int]:
    hue = (int(class_id) * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_detections(image, detections, classes, ground_truth=None) -> np.ndarray:
    """Draws ``(k, 6)`` detections (and optionally ``(m, 5)`` ground truth in grey) on a copy.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        detections: rows ``[class_id, confidence, xmin, ymin, xmax, ymax]``.
        classes: class names, background first.
        ground_truth: rows ``[class_id, xmin, ymin, xmax, ymax]`` or None.

    Returns:
        The annotated RGB image.
    """
    canvas = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).copy())
    scale = max(0.35, min(canvas.shape[:2]) / 600)
    thickness = max(1, int(round(2 * scale)))
    if ground_truth is not None:
        for row in np.asarray(ground_truth).reshape(-1, 5):
            x0, y0, x1, y1 = (int(round(v)) for v in row[1:5])
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (200, 200, 200), 1)
    for row in np.asarray(detections).reshape(-1, 6):
        class_id = int(row[0])
        x0, y0, x1, y1 = (int(round(v)) for v in row[2:6])
        colour = _colour(class_id)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        name = classes[class_id] if 0 <= class_id < len(classes) else str(class_id)
        text = f"{name} {row[1]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        top = max(0, y0 - th - base - 2)
        cv2.rectangle(canvas, (x0, top), (x0 + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(
            canvas,
            text,
            (x0 + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas


def collect_inputs(paths) -> tuple[list[Path], list[Path]]:
    """Splits the given paths into image files and video files (folders give their images).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file is neither an image nor a video, or a folder holds no image.
    """
    images: list[Path] = []
    videos: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        else:
            raise ValueError(
                f"{path}: unsupported file type {path.suffix!r} (images: {IMAGE_SUFFIXES}, "
                f"videos: {VIDEO_SUFFIXES})"
            )
    return images, videos


def _rows(detections, classes) -> list[dict]:
    return [
        {
            "class_id": int(r[0]),
            "class": classes[int(r[0])] if 0 <= int(r[0]) < len(classes) else str(int(r[0])),
            "confidence": round(float(r[1]), 4),
            "box": [round(float(v), 1) for v in r[2:6]],
        }
        for r in detections
    ]


def predict_images(predictor, paths, out_dir, batch_size: int = 8, verbose: bool = True) -> dict:
    """Detects on image files; writes ``<stem>_pred.jpg`` per image and ``detections.json``.

    Returns:
        ``{"n_images", "seconds", "fps", "detections": {path: [...]}, "outputs": [...]}``; the
        time counts the model and the decoding (not the reading and writing of files).
    """
    from tqdm import tqdm

    from data_generator.image_io import read_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = predictor.config.classes
    # Warm-up at the batch size used (the first call of a new batch shape builds the graph).
    blank = np.zeros((predictor.config.img_height, predictor.config.img_width, 3), np.uint8)
    predictor([blank] * min(batch_size, len(paths)))
    results, outputs, seconds = {}, [], 0.0
    starts = range(0, len(paths), batch_size)
    for start in tqdm(starts, desc="Predicting", disable=not verbose):
        chunk = paths[start : start + batch_size]
        images = [read_image(p) for p in chunk]
        t0 = time.perf_counter()
        detections = predictor(images)
        seconds += time.perf_counter() - t0
        for path, image, boxes in zip(chunk, images, detections):
            drawn = draw_detections(image, boxes, classes)
            target = out_dir / f"{Path(path).stem}_pred.jpg"
            cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            outputs.append(str(target))
            results[str(path)] = _rows(boxes, classes)
    (out_dir / "detections.json").write_text(json.dumps(results, indent=1) + "\n")
    fps = len(paths) / seconds if seconds > 0 else float("inf")
    if verbose:
        print(
            f"{len(paths)} image(s) in {seconds:.2f} s: {fps:.1f} FPS (model + decoding, batch "
            f"size {batch_size}); pictures in {out_dir}"
        )
    return {
        "n_images": len(paths),
        "seconds": seconds,
        "fps": fps,
        "detections": results,
        "outputs": outputs,
    }


def predict_video(predictor, path, out_path, verbose: bool = True) -> dict:
    """Detects on every frame of a video (batch size 1) and writes the annotated video.

    Returns:
        ``{"n_frames", "seconds", "fps", "end_to_end_fps", "output"}``: ``fps`` counts the model
        and the decoding, ``end_to_end_fps`` also the decoding/encoding of the video and drawing.
    """
    from tqdm import tqdm

    path, out_path = Path(path), Path(out_path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    classes = predictor.config.classes
    predictor([np.zeros((predictor.config.img_height, predictor.config.img_width, 3), np.uint8)])
    n_frames, seconds = 0, 0.0
    start = time.perf_counter()
    progress = tqdm(total=total, desc=f"Video {path.name}", disable=not verbose)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            detections = predictor([rgb])[0]
            seconds += time.perf_counter() - t0
            drawn = cv2.cvtColor(draw_detections(rgb, detections, classes), cv2.COLOR_RGB2BGR)
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(out_path.suffix.lower(), "mp4v"))
                size = (drawn.shape[1], drawn.shape[0])
                writer = cv2.VideoWriter(str(out_path), fourcc, source_fps, size)
                if not writer.isOpened():
                    raise ValueError(f"{out_path}: OpenCV cannot write this video format")
            writer.write(drawn)
            n_frames += 1
            progress.update(1)
    finally:
        progress.close()
        capture.release()
        if writer is not None:
            writer.release()
    if n_frames == 0:
        raise ValueError(f"{path}: no frame could be read")
    wall = time.perf_counter() - start
    result = {
        "n_frames": n_frames,
        "seconds": seconds,
        "fps": n_frames / seconds if seconds > 0 else float("inf"),
        "end_to_end_fps": n_frames / wall,
        "output": str(out_path),
    }
    if verbose:
        print(
            f"{path}: {n_frames} frames, {result['fps']:.1f} FPS (model + decoding, batch size "
            f"1), {result['end_to_end_fps']:.1f} FPS end to end; wrote {out_path}"
        )
    return result

"""Detection on images, folders, video files and cameras; draws the boxes, measures FPS.

Models: a training run folder or ``.keras`` file (`load_run`), or a model exported with
``python -m ssd_keras export`` (``.tflite``, ``.onnx``, OpenVINO ``.xml``, a SavedModel folder)
run by `model_optimization.load_runner`, with the run's ``config.json`` beside it
(`load_model`).
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}
EXPORTED_SUFFIXES = (".tflite", ".onnx", ".xml")
CAMERA_PACE_FRAMES = 10  # frames timed before a camera's output video is opened


def keras_file_damage(path) -> str | None:
    """Why a ``.keras`` file cannot hold a model, or None when it is a whole archive.

    A ``.keras`` file is a zip archive; a truncated copy (an interrupted download or copy, a full
    disk) has lost its central directory, and a corrupted one fails a member's CRC check.
    """
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        return (
            f"damaged or truncated: not a complete .keras archive ({path.stat().st_size} bytes; "
            f"{error})"
        )
    if broken is not None:
        return f"damaged: its member {broken} fails the CRC check"
    return None


def run_model_file(folder) -> Path:
    """The model file of a run folder: ``model_best.keras``, else ``model.keras``.

    A damaged or truncated file is named on stderr and passed over for the other one.

    Raises:
        FileNotFoundError: the folder holds neither file.
        ValueError: every model file there is damaged (naming them).
    """
    import sys

    folder = Path(folder)
    candidates = [p for p in (folder / "model_best.keras", folder / "model.keras") if p.is_file()]
    if not candidates:
        raise FileNotFoundError(
            f"{folder} holds no model_best.keras or model.keras (is it a training run folder?)"
        )
    damage = {p: keras_file_damage(p) for p in candidates}
    for p, why in damage.items():
        if why is not None:
            print(f"warning: {p}: {why}", file=sys.stderr)
    whole = [p for p in candidates if damage[p] is None]
    if not whole:
        raise ValueError(f"{candidates[0]}: {damage[candidates[0]]} (and no whole model file)")
    return whole[0]


def load_run(path):
    """Loads a trained model and its `RunConfig`; says on stderr which file it loaded.

    Args:
        path: a run folder (``config.json`` + ``model_best.keras`` or ``model.keras``, see
            `run_model_file`) or a ``.keras`` file with ``config.json`` in the same folder.

    Returns:
        ``(model, config)``.

    Raises:
        ValueError: the model file is damaged or truncated (naming it).
    """
    import sys

    from ssd_keras.config import CONFIG_FILE, RunConfig

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir():
        model_file = run_model_file(path)
        config_file = path / CONFIG_FILE
    else:
        if path.suffix != ".keras":
            raise ValueError(f"{path}: expected a run folder or a .keras model file")
        damage = keras_file_damage(path)
        if damage is not None:
            raise ValueError(f"{path}: {damage}")
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
    print(f"model: {model_file}", file=sys.stderr)
    return model, config


def is_exported(path) -> bool:
    """Whether ``path`` is an exported model (``.tflite``, ``.onnx``, ``.xml`` or a SavedModel
    folder)."""
    path = Path(path)
    return path.suffix in EXPORTED_SUFFIXES or (path / "saved_model.pb").is_file()


def find_config(model_path, config=None) -> Path:
    """The ``config.json`` of an exported model: ``config`` (a file or a run folder) if given,
    else ``config.json`` inside a SavedModel folder or beside the file.

    Raises:
        FileNotFoundError: naming the places looked at.
    """
    from ssd_keras.config import CONFIG_FILE

    model_path = Path(model_path)
    if config is not None:
        path = Path(config)
        path = path / CONFIG_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"--config: run configuration not found: {path}")
        return path
    candidates = [model_path.parent / CONFIG_FILE]
    if model_path.is_dir():
        candidates.insert(0, model_path / CONFIG_FILE)
    for path in candidates:
        if path.is_file():
            return path
    looked = " or ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"{model_path}: an exported model needs its run configuration (classes, input size, "
        f"anchors/decoder settings) and there is none at {looked}; give --config "
        f"RUN/{CONFIG_FILE} (the training run's) or put that file beside the model "
        "(python -m ssd_keras export does)"
    )


# Compute precisions of a Keras model (``--precision``); bf16 = Keras ``mixed_bfloat16``.
PRECISIONS = ("float32", "bf16")


def load_model(path, config=None, precision: str = "float32", fold: bool = True):
    """Loads any model the app can run, with its `RunConfig`.

    Args:
        path: a run folder or ``.keras`` file (see `load_run`), or an exported ``.tflite`` /
            ``.onnx`` / OpenVINO ``.xml`` file or SavedModel folder (run by
            `model_optimization.load_runner`).
        config: a ``config.json`` (or the run folder holding it) to use instead of the one
            found beside the model; needed for an exported model without one.
        precision: ``float32``, or ``bf16`` to run a Keras model in ``mixed_bfloat16``
            (`ssd_keras.precision.mixed_model`; an exported model has its own precision).
        fold: fold a Keras model's BatchNormalizations into the convolutions before them
            (`model_optimization.folding.fold_batch_norm`: same outputs up to float rounding,
            SSDLite about 1.5x faster); the model returned is then for inference only.

    Returns:
        ``(model, config)``; ``model`` is a Keras model or a runner, both called by `Predictor`
        and `ssd_keras.evaluate.evaluate` the same way (raw ``(batch, n_anchors,
        n_classes + 1 + 12)`` predictions, decoded in numpy).
    """
    from ssd_keras.config import RunConfig

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if is_exported(path):
        if precision != "float32":
            raise ValueError(
                f"precision {precision} runs a Keras model; {path} is an export, which keeps "
                "the precision it was exported in"
            )
        run_config = RunConfig.load(find_config(path, config))
        from model_optimization import load_runner

        return load_runner(path), run_config
    model, run_config = load_run(path)
    if config is not None:
        run_config = RunConfig.load(find_config(path, config))
    if fold:
        from model_optimization.folding import fold_batch_norm

        model = fold_batch_norm(model)
    if precision == "bf16":
        from ssd_keras.precision import mixed_model

        model = mixed_model(model, "mixed_bfloat16")
    return model, run_config


class Predictor:
    """Runs a training-mode SSD on RGB images of any size and decodes its output.

    Each image is resized to the model's input size (bilinear), the raw output is decoded with
    `decode_detections` (per-class NMS) and the boxes are scaled back to the image. The time
    spent in the model call alone and in the decoding is summed in `model_seconds` and
    `decode_seconds` (`reset_timers` sets them to 0).

    Args:
        model: a training-mode SSD model, or a runner of an exported one
            (`model_optimization.load_runner`: anything callable on a ``(B, H, W, 3)`` batch
            that returns the raw predictions).
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
        # A Keras model's predict_on_batch reuses its compiled function; a runner is called.
        self._run = getattr(model, "predict_on_batch", model)
        self.reset_timers()

    def reset_timers(self) -> None:
        self.model_seconds = 0.0
        self.decode_seconds = 0.0

    def __call__(self, images) -> list[np.ndarray]:
        from ssd_encoder_decoder.ssd_output_decoder import decode_detections

        h, w = self.config.img_height, self.config.img_width
        batch = np.stack(
            [cv2.resize(np.asarray(im), (w, h), interpolation=cv2.INTER_LINEAR) for im in images]
        )
        t0 = time.perf_counter()
        y_pred = np.asarray(self._run(batch))
        t1 = time.perf_counter()
        decoded = decode_detections(
            y_pred,
            confidence_thresh=self.confidence_thresh,
            iou_threshold=self.iou_threshold,
            top_k=self.top_k,
            normalize_coords=self.config.normalize_coords,
            img_height=h,
            img_width=w,
        )
        self.model_seconds += t1 - t0
        self.decode_seconds += time.perf_counter() - t1
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

    A file that cannot be decoded (empty, truncated, not an image) is skipped and named in
    ``"skipped"``; the other images are still done.

    Returns:
        ``{"n_images", "seconds", "fps", "model_fps", "detections": {path: [...]},
        "outputs": [...], "skipped": {path: reason}}``; ``seconds`` and ``fps`` count the model
        and the decoding (not the reading and writing of files), ``model_fps`` the model call
        alone.
    """
    from tqdm import tqdm

    from data_generator.image_io import ImageReadError, read_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = predictor.config.classes
    # Warm-up at the batch size used (the first call of a new batch shape builds the graph).
    blank = np.zeros((predictor.config.img_height, predictor.config.img_width, 3), np.uint8)
    predictor([blank] * min(batch_size, len(paths)))
    predictor.reset_timers()
    results, outputs, skipped = {}, [], {}
    starts = range(0, len(paths), batch_size)
    for start in tqdm(starts, desc="Predicting", disable=not verbose):
        chunk, images = [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(read_image(path))
                chunk.append(path)
            except ImageReadError as error:
                skipped[str(path)] = str(error).removeprefix(f"{path}: ")
        if not images:
            continue
        detections = predictor(images)
        for path, image, boxes in zip(chunk, images, detections):
            drawn = draw_detections(image, boxes, classes)
            target = out_dir / f"{Path(path).stem}_pred.jpg"
            cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            outputs.append(str(target))
            results[str(path)] = _rows(boxes, classes)
    (out_dir / "detections.json").write_text(json.dumps(results, indent=1) + "\n")
    n_done = len(results)
    seconds = predictor.model_seconds + predictor.decode_seconds
    fps = n_done / seconds if seconds > 0 else float("inf")
    model_fps = _rate([predictor.model_seconds], n_done)
    if verbose and n_done:
        print(
            f"{n_done} image(s) in {seconds:.2f} s: {fps:.1f} FPS model + decoding, "
            f"{model_fps:.1f} FPS model only (batch size {batch_size}); pictures in {out_dir}"
        )
    return {
        "n_images": n_done,
        "seconds": seconds,
        "fps": fps,
        "model_fps": model_fps,
        "detections": results,
        "outputs": outputs,
        "skipped": skipped,
    }


def open_capture(source):
    """Opens a video file (a path) or a camera (an int: OpenCV's device index).

    Raises:
        ValueError: OpenCV cannot open it (naming the file or the camera index).
    """
    camera = isinstance(source, int)
    capture = cv2.VideoCapture(source if camera else str(source))
    if not capture.isOpened():
        capture.release()
        if camera:
            raise ValueError(
                f"camera {source}: OpenCV cannot open it (no camera with this index, no "
                "permission, or it is in use; --camera takes the device index, 0 for the first)"
            )
        raise ValueError(f"{source}: OpenCV cannot open this video")
    return capture


def draw_fps(image, end_to_end_fps: float, model_fps: float) -> np.ndarray:
    """Writes ``FPS <end to end> (model <model only>)`` in the top-left corner, in place."""
    text = f"FPS {end_to_end_fps:.1f} (model {model_fps:.1f})"
    scale = max(0.4, min(image.shape[:2]) / 500)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 6, th + base + 6), (0, 0, 0), -1)
    cv2.putText(
        image,
        text,
        (3, th + 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return image


def predict_video(
    predictor,
    source,
    out_path,
    verbose: bool = True,
    max_frames: int | None = None,
    window: int = 30,
) -> dict:
    """Detects on every frame of a video file or a camera (batch size 1), writes the annotated
    video with the FPS drawn on each frame.

    Args:
        predictor: a `Predictor` (Keras model or exported runner).
        source: a video file, or an int: the camera index for ``cv2.VideoCapture``.
        out_path: the annotated video (``.avi``: MJPG, ``.mp4``: mp4v), at the source's frame
            rate for a file and at the measured processing rate (over the first
            `CAMERA_PACE_FRAMES` frames) for a camera, so that it plays in real time.
        verbose: progress bar and the summary line.
        max_frames: stop after this many frames (a camera runs until then or Ctrl-C).
        window: the FPS drawn on a frame is measured over the last ``window`` frames.

    Returns:
        ``{"n_frames", "seconds", "fps", "model_fps", "end_to_end_fps", "output"}``:
        ``model_fps`` counts the model call alone, ``fps`` the model and the decoding,
        ``end_to_end_fps`` everything (reading, resizing, model, decoding, drawing, writing).
    """
    from tqdm import tqdm

    camera = isinstance(source, int)
    name = f"camera {source}" if camera else str(source)
    out_path = Path(out_path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")
    capture = open_capture(source)
    source_fps = capture.get(cv2.CAP_PROP_FPS) or (30.0 if camera else 25.0)
    total = None if camera else (int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None)
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    video = _PacedVideo(out_path, camera, source_fps)
    classes = predictor.config.classes
    predictor([np.zeros((predictor.config.img_height, predictor.config.img_width, 3), np.uint8)])
    predictor.reset_timers()
    n_frames = 0
    frame_times: collections.deque = collections.deque(maxlen=window)
    model_times: collections.deque = collections.deque(maxlen=window)
    start = previous = time.perf_counter()
    label = f"Video {Path(name).name}" if not camera else name
    progress = tqdm(total=total, desc=label, disable=not verbose)
    try:
        while max_frames is None or n_frames < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            model_before = predictor.model_seconds
            detections = predictor([rgb])[0]
            model_times.append(predictor.model_seconds - model_before)
            drawn = cv2.cvtColor(draw_detections(rgb, detections, classes), cv2.COLOR_RGB2BGR)
            now = time.perf_counter()
            frame_times.append(now - previous)
            previous = now
            draw_fps(drawn, _rate(frame_times), _rate(model_times))
            video.write(drawn, frame_times)
            n_frames += 1
            progress.update(1)
    except KeyboardInterrupt:
        if not camera:
            raise
        # Ctrl-C ends a camera session; the frames so far are written.
    finally:
        progress.close()
        capture.release()
        video.close(frame_times)
    if n_frames == 0:
        raise ValueError(f"{name}: no frame could be read")
    wall = time.perf_counter() - start
    seconds = predictor.model_seconds + predictor.decode_seconds
    result = {
        "n_frames": n_frames,
        "seconds": seconds,
        "fps": n_frames / seconds if seconds > 0 else float("inf"),
        "model_fps": _rate([predictor.model_seconds], n_frames),
        "end_to_end_fps": n_frames / wall,
        "output": str(out_path),
    }
    if verbose:
        print(
            f"{name}: {n_frames} frames, {result['end_to_end_fps']:.1f} FPS end to end, "
            f"{result['model_fps']:.1f} FPS model only ({result['fps']:.1f} FPS model + "
            f"decoding, batch size 1); wrote {out_path}"
        )
    return result


class _PacedVideo:
    """The annotated video of `predict_video`. A file's frames are written at the source's
    frame rate from the first one on. A camera delivers frames as fast as they are processed:
    its first `CAMERA_PACE_FRAMES` frames are held back and the video is written at the rate
    measured over them (or over all frames of a shorter session), so it plays in real time."""

    def __init__(self, out_path: Path, camera: bool, source_fps: float):
        self.out_path = out_path
        self.camera = camera
        self.source_fps = source_fps
        self.writer = None
        self.pending: list = []

    def write(self, frame: np.ndarray, frame_times) -> None:
        if self.writer is not None:
            self.writer.write(frame)
            return
        self.pending.append(frame)
        if not self.camera or len(self.pending) >= CAMERA_PACE_FRAMES:
            fps = _rate(frame_times) if self.camera else self.source_fps
            self.writer = _open_writer(self.out_path, fps, self.pending)
            self.pending = []

    def close(self, frame_times) -> None:
        if self.writer is None and self.pending:
            self.writer = _open_writer(self.out_path, _rate(frame_times), self.pending)
        if self.writer is not None:
            self.writer.release()


def _open_writer(out_path: Path, fps: float, frames: list) -> cv2.VideoWriter:
    """Opens the output video at ``fps`` for frames of the size of ``frames[0]`` and writes
    ``frames``."""
    fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(out_path.suffix.lower(), "mp4v"))
    size = (frames[0].shape[1], frames[0].shape[0])
    # MPEG-4 stores the rate as a fraction with a 16-bit time base: OpenCV cannot open the writer
    # for a measured rate such as 729.77 FPS (and most other two-decimal rates above ~100), while
    # one decimal always fits up to 1000 FPS, more than any camera delivers.
    rate = round(min(max(1.0, float(fps)), 1000.0), 1)
    writer = cv2.VideoWriter(str(out_path), fourcc, rate, size)
    if not writer.isOpened():
        raise ValueError(f"{out_path}: OpenCV cannot write this video format")
    for frame in frames:
        writer.write(frame)
    return writer


def _rate(durations, count: int | None = None) -> float:
    total = float(sum(durations))
    count = len(durations) if count is None else count
    return count / total if total > 0 else float("inf")

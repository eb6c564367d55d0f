"""The SSD multibox loss in Keras 3 (`keras.ops` only: TensorFlow, JAX and PyTorch backends).

Tensor layout (both ``y_true`` and ``y_pred``): ``(batch, n_anchors, n_classes + 1 + 12)`` =
``[class scores (n_classes + 1) | 4 offsets | 4 anchor coords | 4 variances]``. In ``y_true`` the
class part is one-hot for positives, ``[1, 0, ...]`` for background anchors and all zeros for
neutral (ignored) anchors; in ``y_pred`` it is a softmax. Only the class scores and the 4 offsets
enter the loss.

The loss is the original ssd_keras one (itself the Caffe SSD recipe, with one documented
difference): softmax log loss on the positives and on the hardest negatives, plus ``alpha`` times
smooth L1 on the positives' offsets, divided by the number of positives. Hard negative mining is
pooled over the whole batch as in the original ssd_keras (Caffe mines per image); this is kept
on purpose so that trained numbers carry over, see `hard_negative_mask`.

``classification='focal'`` replaces the class term by the focal loss of Lin et al. 2017
(`focal_class_loss`) over every non-neutral anchor, without hard negative mining, still divided
by the number of positives.
"""

from __future__ import annotations

import keras
from keras import ops

_CLASS_EPSILON = 1e-15  # predictions are clipped here before the log, as in the original
CLASSIFICATIONS = ("softmax", "focal")


def smooth_l1_loss(y_true, y_pred):
    """Smooth L1 loss summed over the last axis.

    ``0.5 * d**2`` where ``|d| < 1``, else ``|d| - 0.5``, with ``d = y_true - y_pred``.

    Args:
        y_true: ``(..., 4)`` target offsets.
        y_pred: ``(..., 4)`` predicted offsets.

    Returns:
        ``(...)`` tensor.
    """
    diff = y_true - y_pred
    absolute = ops.abs(diff)
    per_coord = ops.where(absolute < 1.0, 0.5 * ops.square(diff), absolute - 0.5)
    return ops.sum(per_coord, axis=-1)


def log_loss(y_true, y_pred):
    """Softmax log loss (categorical cross-entropy on probabilities) over the last axis.

    Args:
        y_true: ``(..., n_classes + 1)`` one-hot targets (all zeros for neutral anchors).
        y_pred: ``(..., n_classes + 1)`` class probabilities; clipped at 1e-15 before the log.

    Returns:
        ``(...)`` tensor.
    """
    return -ops.sum(y_true * ops.log(ops.maximum(y_pred, _CLASS_EPSILON)), axis=-1)


def hard_negative_mask(negative_losses, n_keep):
    """Mask of the ``n_keep`` largest negative losses, pooled over the whole batch.

    The original ssd_keras flattens ``(batch, n_anchors)`` and takes a single top-k, so one image
    with many hard negatives can take the quota of another (Caffe mines per image). This port keeps
    the original's behaviour so that its loss values and training recipes carry over. Ties at the
    cut are broken towards the lower flat index, which is what ``tf.nn.top_k`` does. ``n_keep`` may
    be a tensor (it depends on the number of positives), so this is written without ``top_k``,
    whose ``k`` must be static on JAX: sort once, find the k-th value, keep everything above it and
    as many of the tied values as still fit.

    Args:
        negative_losses: ``(batch, n_anchors)`` class losses of the negative anchors, 0 elsewhere.
        n_keep: scalar integer (tensor or int), how many to keep; 0 keeps none.

    Returns:
        ``(batch, n_anchors)`` float mask (1 = keep), with no gradient.
    """
    losses = ops.stop_gradient(negative_losses)
    flat = ops.reshape(losses, (-1,))
    n_keep = ops.cast(n_keep, "int32")
    sorted_desc = ops.flip(ops.sort(flat), axis=0)
    kth_value = ops.take(sorted_desc, ops.maximum(n_keep - 1, 0))
    above = flat > kth_value
    tied = flat == kth_value
    n_tied_needed = n_keep - ops.sum(ops.cast(above, "int32"))
    tie_rank = ops.cumsum(ops.cast(tied, "int32"))
    keep = ops.logical_or(above, ops.logical_and(tied, tie_rank <= n_tied_needed))
    keep = ops.logical_and(keep, n_keep > 0)
    return ops.reshape(ops.cast(keep, negative_losses.dtype), ops.shape(negative_losses))


def focal_class_loss(y_true, y_pred, gamma=2.0, focal_alpha=0.25):
    """Focal loss (Lin et al. 2017) on softmax probabilities, per anchor.

    ``-a_t * (1 - p_t)**gamma * log(p_t)`` where ``p_t`` is the probability of the anchor's
    target class and ``a_t`` is ``focal_alpha`` for object anchors and ``1 - focal_alpha`` for
    background anchors. Neutral anchors (all-zero targets) give 0. ``gamma=0, focal_alpha=0.5``
    is half the log loss.

    Args:
        y_true: ``(..., n_classes + 1)`` one-hot targets, class 0 the background.
        y_pred: ``(..., n_classes + 1)`` class probabilities; clipped at 1e-15 before the log.
        gamma: focusing exponent (0: plain weighted log loss).
        focal_alpha: weight of the object classes; the background gets ``1 - focal_alpha``.

    Returns:
        ``(...)`` tensor.
    """
    p_t = ops.sum(y_true * y_pred, axis=-1)
    cross_entropy = log_loss(y_true, y_pred)
    background = y_true[..., 0]
    objects = ops.sum(y_true[..., 1:], axis=-1)
    weight = focal_alpha * objects + (1.0 - focal_alpha) * background
    return weight * ops.power(ops.maximum(1.0 - p_t, 0.0), gamma) * cross_entropy


def ssd_loss_per_item(
    y_true,
    y_pred,
    neg_pos_ratio=3,
    n_neg_min=0,
    alpha=1.0,
    classification="softmax",
    gamma=2.0,
    focal_alpha=0.25,
):
    """The SSD loss of each batch item, as the original ``SSDLoss.compute_loss``.

    Args:
        y_true: ``(batch, n_anchors, n_classes + 1 + 12)`` encoded targets (see module docstring).
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` model output.
        neg_pos_ratio: negatives kept per positive (pooled over the batch).
        n_neg_min: minimum number of negatives kept per batch (useful for batches with few or no
            positives).
        alpha: weight of the localisation loss.
        classification: ``'softmax'`` (log loss with hard negative mining, the original) or
            ``'focal'`` (`focal_class_loss` on every non-neutral anchor; ``neg_pos_ratio`` and
            ``n_neg_min`` are not used).
        gamma, focal_alpha: of the focal loss.

    Returns:
        ``(batch,)`` tensor: ``(class loss + alpha * loc loss) / max(1, n_positive) * batch``, so
        its mean is the batch loss ``sum / max(1, n_positive)``. Finite when the batch has no
        positives (then only the ``n_neg_min`` hardest negatives count).
    """
    dtype = y_pred.dtype
    y_true = ops.cast(y_true, dtype)
    batch_size = ops.cast(ops.shape(y_pred)[0], dtype)

    loc_loss_all = smooth_l1_loss(y_true[:, :, -12:-8], y_pred[:, :, -12:-8])  # (B, N)
    positives = ops.max(y_true[:, :, 1:-12], axis=-1)  # (B, N)
    n_positive = ops.sum(positives)
    loc_loss = ops.sum(loc_loss_all * positives, axis=-1)  # (B,)
    if classification == "focal":
        class_loss = ops.sum(
            focal_class_loss(y_true[:, :, :-12], y_pred[:, :, :-12], gamma, focal_alpha), axis=-1
        )  # (B,); neutral anchors give 0
        total = (class_loss + alpha * loc_loss) / ops.maximum(1.0, n_positive)
        return total * batch_size

    class_loss_all = log_loss(y_true[:, :, :-12], y_pred[:, :, :-12])  # (B, N)
    negatives = y_true[:, :, 0]  # (B, N); neutral anchors are neither negative nor positive

    pos_class_loss = ops.sum(class_loss_all * positives, axis=-1)  # (B,)
    negative_losses = class_loss_all * negatives  # (B, N)
    n_nonzero_negative = ops.sum(ops.cast(negative_losses != 0, "int32"))
    n_keep = ops.minimum(
        ops.maximum(ops.cast(ops.floor(neg_pos_ratio * n_positive), "int32"), int(n_neg_min)),
        n_nonzero_negative,
    )
    keep = hard_negative_mask(negative_losses, n_keep)
    neg_class_loss = ops.sum(class_loss_all * keep, axis=-1)  # (B,)
    total = (pos_class_loss + neg_class_loss + alpha * loc_loss) / ops.maximum(1.0, n_positive)
    return total * batch_size


@keras.saving.register_keras_serializable(package="ssd_keras")
class SSDLoss(keras.losses.Loss):
    """SSD multibox loss: softmax log loss with hard negative mining + alpha * smooth L1.

    Args:
        neg_pos_ratio: maximum ratio of negative to positive anchors counted in the class loss;
            the hardest negatives of the whole batch are kept (as in the original ssd_keras).
        n_neg_min: minimum number of negatives counted per batch, even without positives.
        alpha: weight of the localisation loss.
        classification: ``'softmax'`` (the original: log loss on the positives and the hardest
            negatives) or ``'focal'`` (focal loss on all non-neutral anchors, no mining).
        gamma: the focal loss' focusing exponent.
        focal_alpha: the focal loss' weight of object anchors (background: ``1 - focal_alpha``).
            Named so because ``alpha`` is the original's localisation weight.
        name, reduction, dtype: as for `keras.losses.Loss`. With the default
            ``"sum_over_batch_size"`` reduction the scalar is the original's Keras 2 loss value.

    Call arguments:
        y_true: ``(batch, n_anchors, n_classes + 1 + 12)`` encoded targets (`SSDInputEncoder`).
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` training-mode model output.

    Example:
        >>> model.compile(optimizer="adam", loss=SSDLoss(neg_pos_ratio=3, alpha=1.0))

    Old code that passed ``SSDLoss(...).compute_loss`` as the loss keeps working; that method
    returns the per-item ``(batch,)`` vector, as in the original.
    """

    def __init__(
        self,
        neg_pos_ratio=3,
        n_neg_min=0,
        alpha=1.0,
        name="ssd_loss",
        reduction="sum_over_batch_size",
        dtype=None,
        classification="softmax",
        gamma=2.0,
        focal_alpha=0.25,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if neg_pos_ratio < 0:
            raise ValueError(f"neg_pos_ratio must be >= 0, got {neg_pos_ratio!r}")
        if n_neg_min < 0 or int(n_neg_min) != n_neg_min:
            raise ValueError(f"n_neg_min must be a non-negative integer, got {n_neg_min!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if classification not in CLASSIFICATIONS:
            raise ValueError(
                f"classification must be one of {list(CLASSIFICATIONS)}, got {classification!r}"
            )
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")
        if not 0 <= focal_alpha <= 1:
            raise ValueError(f"focal_alpha must be in [0, 1], got {focal_alpha!r}")
        self.neg_pos_ratio = neg_pos_ratio
        self.n_neg_min = int(n_neg_min)
        self.alpha = float(alpha)
        self.classification = classification
        self.gamma = float(gamma)
        self.focal_alpha = float(focal_alpha)

    def call(self, y_true, y_pred):
        return ssd_loss_per_item(
            y_true,
            y_pred,
            neg_pos_ratio=self.neg_pos_ratio,
            n_neg_min=self.n_neg_min,
            alpha=self.alpha,
            classification=self.classification,
            gamma=self.gamma,
            focal_alpha=self.focal_alpha,
        )

    @property
    def compute_loss(self):
        """The original API: ``compute_loss(y_true, y_pred)`` gives the per-item loss ``(batch,)``.

        A Keras loss function (``loss=ssd_loss.compute_loss``, as the original notebooks compile)
        that, unlike a bound method, is saved with a ``.keras`` model and reloads without
        ``custom_objects``: a `SSDComputeLoss` holding this loss' configuration.
        """
        return SSDComputeLoss(self)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"neg_pos_ratio": self.neg_pos_ratio, "n_neg_min": self.n_neg_min, "alpha": self.alpha}
        )
        config.update(
            {
                "classification": self.classification,
                "gamma": self.gamma,
                "focal_alpha": self.focal_alpha,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="ssd_keras")
class SSDComputeLoss:
    """``SSDLoss(...).compute_loss``: the per-item SSD loss as a serialisable Keras loss function.

    Calling it is calling the original's bound method: ``(y_true, y_pred) -> (batch,)``. Keras
    stores a bound method in a model's compile configuration as a bare name that it cannot load
    again (``TypeError: Expected 'config' to be a dict``); this object stores the loss'
    configuration instead, so ``keras.models.load_model`` rebuilds it.

    Args:
        loss: the `SSDLoss` whose per-item value is computed.
    """

    __name__ = "compute_loss"  # what Keras names the loss (as for the bound method)

    def __init__(self, loss: SSDLoss):
        self.loss = loss

    def __call__(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true, dtype=y_pred.dtype)
        return self.loss.call(y_true, y_pred)

    def get_config(self):
        return self.loss.get_config()

    @classmethod
    def from_config(cls, config):
        return cls(SSDLoss.from_config(config))

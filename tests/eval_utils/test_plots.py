"""Plot helpers write one readable image per class and a bar chart."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from eval_utils.plots import plot_average_precisions, plot_precision_recall_curves  # noqa: E402


def test_precision_recall_curves_one_file_per_class(tmp_path):
    precisions = [np.zeros(0), np.array([1.0, 0.5, 2 / 3]), np.zeros(0), np.array([0.0])]
    recalls = [np.zeros(0), np.array([0.5, 0.5, 1.0]), np.zeros(0), np.array([np.nan])]
    names = ["background", "cat", "dog/wolf", "car"]
    paths = plot_precision_recall_curves(
        precisions, recalls, tmp_path / "pr", names, [0.0, 5 / 6, 0.0, float("nan")]
    )
    assert [p.name for p in paths] == ["pr_001_cat.png", "pr_002_dog_wolf.png", "pr_003_car.png"]
    for path in paths:
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0  # not blank
    with pytest.raises(ValueError, match="2 precision arrays and 1 recall"):
        plot_precision_recall_curves(precisions[:2], recalls[:1], tmp_path)


def test_average_precision_bar_chart(tmp_path):
    out = plot_average_precisions(
        [0.0, 0.9, float("nan"), 0.3], tmp_path / "charts" / "aps.png", mean_average_precision=0.6
    )
    assert out.is_file()
    assert imread(out).shape[1] > 300

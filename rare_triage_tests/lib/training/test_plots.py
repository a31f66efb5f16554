import base64

import numpy as np

from rare_triage.lib.training.plots import calibration_png, confusion_png, markdown_image, pr_curves_png

PNG = b"\x89PNG\r\n\x1a\n"


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    proba = rng.dirichlet(np.ones(5), 400)
    proba[np.arange(400), y] += 1.0
    return y, proba / proba.sum(axis=1, keepdims=True)


def test_plots_are_png_bytes() -> None:
    y, proba = _data()
    for png in (pr_curves_png(y, proba), calibration_png(y, proba), confusion_png(np.eye(5, dtype=int) * 3)):
        assert png.startswith(PNG) and len(png) > 2000


def test_a_class_without_rows_is_skipped_not_fatal() -> None:
    y, proba = _data()
    y[y == 4] = 0
    assert pr_curves_png(y, proba).startswith(PNG)


def test_markdown_image_embeds_the_png() -> None:
    text = markdown_image(PNG + b"rest", "alt text")
    assert text.startswith("![alt text](data:image/png;base64,")
    assert base64.b64decode(text.split(",", 1)[1][:-1]) == PNG + b"rest"

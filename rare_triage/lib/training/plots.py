"""Evaluation plots as PNG bytes (matplotlib's Agg canvas, no pyplot state), for the Dagster UI and MLflow."""

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from rare_triage.lib import schema
from rare_triage.lib.training.columns import ORPHAN_INDEX

DPI = 80


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def pr_curves_png(y: np.ndarray, proba: np.ndarray, title: str = "Precision-recall (test window)") -> bytes:
    """One-vs-rest precision-recall curve per class, the orphan class drawn thicker."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.add_subplot()
    for index, label in enumerate(schema.LABELS):
        positive = np.asarray(y) == index
        if not 0 < positive.sum() < len(positive):
            continue
        precision, recall, _ = precision_recall_curve(positive, proba[:, index])
        axes.plot(recall, precision, label=label, linewidth=2.5 if index == ORPHAN_INDEX else 1.2)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.legend(loc="lower left", fontsize=8)
    return _png(figure)


def calibration_png(y: np.ndarray, proba: np.ndarray, n_bins: int = 10, title: str = "Calibration") -> bytes:
    """Reliability diagram per class (observed frequency vs mean predicted probability)."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    for index, label in enumerate(schema.LABELS):
        positive = np.asarray(y) == index
        if not 0 < positive.sum() < len(positive):
            continue
        observed, predicted = calibration_curve(positive, proba[:, index], n_bins=n_bins, strategy="quantile")
        axes.plot(predicted, observed, marker="o", label=label, linewidth=2.5 if index == ORPHAN_INDEX else 1.2)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed frequency")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    return _png(figure)


def confusion_png(matrix: Sequence[Sequence[int]], title: str = "Confusion matrix (orphan at its threshold)") -> bytes:
    """Counts with row-normalised shading; rows are true labels, columns predicted."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    labels = list(schema.LABELS)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    return _png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown embedding the PNG as a data URI (rendered by the Dagster UI's markdown metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"

"""A self-contained HTML drift report: decision, prediction drift, the features that moved, one plot per drifted one.

No external script, style sheet or font: the CSS is inline and the plots are base64 PNGs (matplotlib Agg canvas).
Every text taken from data (feature names, category values, reasons) goes through html.escape.
"""

import base64
import html
import io
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rare_triage.lib.monitoring.drift import DRIFTED, WATCH, DriftResult
from rare_triage.lib.monitoring.profile import CategoricalProfile, NumericProfile, ReferenceProfile, finite_values

MAX_PLOTS = 30
MAX_BARS = 25  # a categorical with more categories shows the largest ones and pools the rest
DPI = 80
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 72rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.decision { display: inline-block; padding: 0.3rem 0.8rem; border-radius: 0.3rem; font-weight: bold; }
.retrain, .drifted { background: #f8d7da; } .watch { background: #fff3cd; }
.no_drift, .ok { background: #d1e7dd; } .insufficient_data { background: #e2e3e5; }
figure { display: inline-block; margin: 0.5rem; } figcaption { font-size: 0.85rem; }
"""


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return "—" if math.isnan(value) else _text(value)
        return f"{value:.3g}" if value != 0 else "0"
    return _text(value)


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{_text(classes[index])}"' if classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _shares(
    feature: NumericProfile | CategoricalProfile, column: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels with reference and window shares of all rows (missing as a bin of its own)."""
    n = max(len(column), 1)
    if isinstance(feature, CategoricalProfile):
        counts, _ = feature.bin_counts(column)
        return feature.bin_labels(), np.append(feature.shares, 0.0), counts / n
    finite, n_missing = finite_values(column, feature.name)
    reference = np.asarray(feature.proportions) * (1.0 - feature.missing_rate)
    window = feature.bin_counts(finite) / n
    return (
        [*feature.bin_labels(), "missing"],
        np.append(reference, feature.missing_rate),
        np.append(window, n_missing / n),
    )


def _histogram_png(name: str, labels: list[str], reference: np.ndarray, window: np.ndarray) -> str:
    if len(labels) > MAX_BARS:
        keep = np.sort(np.argsort(-np.maximum(reference, window))[: MAX_BARS - 1])
        rest = np.setdiff1d(np.arange(len(labels)), keep)
        labels = [labels[i] for i in keep] + [f"({len(rest)} others)"]
        reference = np.append(reference[keep], reference[rest].sum())
        window = np.append(window[keep], window[rest].sum())
    figure = Figure(figsize=(6.5, 3.2))
    axes = figure.add_subplot()
    x = np.arange(len(labels))
    axes.bar(x - 0.2, reference, width=0.4, label="reference")
    axes.bar(x + 0.2, window, width=0.4, label="window")
    axes.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")
    axes.set_title(name, fontsize=10)
    axes.legend(fontsize=8)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _prediction_section(result: DriftResult) -> str:
    if not result.predictions:
        return "<p>No prediction drift computed.</p>"
    rows, classes = [], []
    for name, entry in result.predictions.items():
        if "ratio" in entry:
            effect = f"{entry['reference']:.2%} → {entry['window']:.2%} (×{entry['ratio']:.2f})"
        else:
            effect = f"PSI {entry['psi']:.3f}"
        rows.append([name, effect, entry.get("statistic", math.nan), entry["p_value"], entry["p_adjusted"]])
        rows[-1].append(entry["status"])
        classes.append(entry["status"])
    shares = result.predictions["class_shares"]
    share_rows = [[label, shares["reference"][label], shares["window"][label]] for label in shares["reference"]]
    return (
        _table(["statistic", "change", "test statistic", "p", "p adjusted", "status"], rows, classes)
        + "<h3>Predicted-class shares</h3>"
        + _table(["class", "reference", "window"], share_rows)
    )


def render_drift_html(
    result: DriftResult, profile: ReferenceProfile, window: pd.DataFrame, *, max_plots: int = MAX_PLOTS
) -> str:
    """The drift report as one HTML page: decision and reasons first, then predictions, features and plots."""
    table = result.features
    moved = table[table["status"].isin([DRIFTED, WATCH])]
    columns = ["feature", "kind", "test", "psi", "statistic", "p_value", "p_adjusted", "js_distance"]
    columns += ["missing_ref", "missing_window", "unseen_share", "status"]
    feature_rows = [[row[c] for c in columns] for _, row in moved.iterrows()]
    profiles: dict[str, NumericProfile | CategoricalProfile] = {p.name: p for p in profile.numeric}
    profiles.update({p.name: p for p in profile.categorical})
    drifted = [str(name) for name in table.loc[table["status"] == DRIFTED, "feature"]]
    figures = []
    for name in drifted[:max_plots]:
        labels, reference, shares = _shares(profiles[name], window[name])
        png = _histogram_png(name, labels, reference, shares)
        figures.append(
            f'<figure><img alt="{_text(name)}: reference vs window" src="data:image/png;base64,{png}">'
            f"<figcaption>{_text(name)}: reference vs window, on the reference bins</figcaption></figure>"
        )
    left_out = len(drifted) - len(figures)
    reasons = "".join(f"<li>{_text(reason)}</li>" for reason in result.reasons)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Drift report {_text(profile.model_version)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Drift report: model {_text(profile.model_version)}</h1>",
        f'<p><span class="decision {_text(result.decision)}">{_text(result.decision)}</span> '
        f"{result.n_predictions:,} predictions in the window, reference {profile.n_rows:,} rows; "
        f"{result.share_drifted:.1%} of features drifted, {result.share_watch:.1%} on watch or worse.</p>",
        f"<ul>{reasons}</ul>",
        "<h2>Prediction drift</h2>",
        _prediction_section(result),
        f"<h2>Features that moved ({len(moved)} of {len(table)})</h2>",
        _table(columns, feature_rows, [str(s) for s in moved["status"]]) if feature_rows else "<p>None.</p>",
        f"<h2>Drifted features: reference vs window ({len(figures)} plots)</h2>",
        "".join(figures) or "<p>No drifted feature.</p>",
    ]
    if left_out > 0:
        parts.append(f"<p>{left_out} more drifted feature(s) not plotted (at most {max_plots} plots).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)

"""PNG charts: the loss curve and learning-rate schedule next to an adapter, and eval's base-vs-tuned bars.

matplotlib is optional: without it the numbers are still written (history.json, report.json) and each
function returns a line saying which chart was skipped and how to get it.
"""

from __future__ import annotations

from pathlib import Path

_MISSING = "matplotlib is not installed — `pip install matplotlib` to get {name}; the numbers are in {data}"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only; never open a window or need a display
    import matplotlib.pyplot as plt

    return plt


def plot_training(history: list[dict], val: list[dict], out: Path) -> list[str]:
    plt = _pyplot()
    if plt is None:
        return [_MISSING.format(name="loss_curve.png and lr_schedule.png", data="history.json")]
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["loss"] for h in history], label="train")
    if val:
        ax.plot([v["step"] for v in val], [v["loss"] for v in val], "o-", label="val")
    ax.set(xlabel="optimizer step", ylabel="loss (assistant tokens)", title="loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_curve.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(steps, [h["lr"] for h in history])
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="learning-rate schedule")
    fig.tight_layout()
    fig.savefig(out / "lr_schedule.png", dpi=100)
    plt.close(fig)
    return []


def plot_eval(overall: dict[str, dict[str, float]], out: Path) -> list[str]:
    """`overall` is {model_label: {metric: value}}: one group of bars per metric, one bar per model."""
    plt = _pyplot()
    if plt is None:
        return [_MISSING.format(name="eval_chart.png", data="report.json")]
    labels = list(overall)
    metrics = sorted({m for scores in overall.values() for m in scores})
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(max(6, len(metrics) * 1.2), 4))
    for i, label in enumerate(labels):
        xs = [j + i * width for j in range(len(metrics))]
        ax.bar(xs, [overall[label].get(m) or 0 for m in metrics], width, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(metrics))], metrics, rotation=30, ha="right")
    ax.set(ylabel="score", title="eval: base vs tuned")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "eval_chart.png", dpi=100)
    plt.close(fig)
    return []

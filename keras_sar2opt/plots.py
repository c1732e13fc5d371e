"""Training curves drawn from a run's history.csv (report Figures 6 and 8, Table 2's accuracies)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from keras_sar2opt.errors import Sar2OptError  # noqa: E402
from keras_sar2opt.files import atomic_path  # noqa: E402

# Each figure: (file name, [(panel title, metric), ...]); a panel shows the metric and its val_ twin.
LOSS_PANELS = [("Discriminator loss", "d_loss"), ("Generator loss", "g_loss"), ("L1 loss", "g_l1")]
ACCURACY_PANELS = [("D accuracy on real", "d_real_acc"), ("D accuracy on generated", "d_fake_acc")]
CRITIC_PANELS = [
    ("Critic score, real", "critic_real"),
    ("Critic score, generated", "critic_fake"),
    ("Wasserstein estimate", "wasserstein"),
]
FIGURES = {"loss_curves.png": LOSS_PANELS, "accuracy_curves.png": ACCURACY_PANELS, "critic_curves.png": CRITIC_PANELS}


def read_history(path):
    """A run's history.csv as a DataFrame with an `epoch` column counted from 1."""
    try:
        history = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise Sar2OptError(f"Expected a readable history CSV, received {path} ({error})") from None
    if "epoch" not in history:
        raise Sar2OptError(f"Expected an 'epoch' column in {path}, received {', '.join(history.columns)}")
    return history.assign(epoch=history["epoch"] + 1)


def plot_curves(history, panels, path, title=None, reference=None):
    """One panel per (title, metric) with the training curve and, if logged, the validation curve.

    reference: optional {metric or val_metric: {epoch: value}} drawn as markers labelled "report".
    """
    panels = [(name, metric) for name, metric in panels if metric in history]
    if not panels:
        raise Sar2OptError(f"Expected history columns for {path}, received {', '.join(history.columns)}")
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for axis, (name, metric) in zip(axes[0], panels):
        colours = {metric: axis.plot(history["epoch"], history[metric], marker=".", label="train")[0].get_color()}
        if f"val_{metric}" in history:
            line = axis.plot(history["epoch"], history[f"val_{metric}"], marker=".", label="validation")[0]
            colours[f"val_{metric}"] = line.get_color()
        for key, label in ((metric, "report, train"), (f"val_{metric}", "report, validation")):
            if key in (reference or {}):
                epochs, values = zip(*sorted(reference[key].items()))
                axis.plot(
                    epochs, values, linestyle="none", marker="x", markersize=7, color=colours.get(key), label=label
                )
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # no ticks between epochs
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path


def plot_run_curves(history, directory, title=None):
    """Every figure of FIGURES whose metrics the history has, written into directory; returns the paths."""
    return [
        plot_curves(history, panels, directory / name, title)
        for name, panels in FIGURES.items()
        if any(metric in history for _, metric in panels)
    ]

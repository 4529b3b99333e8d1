"""The PNG figures of an evaluation, drawn with matplotlib's object API (no pyplot, no display)."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ladder_vae.atomic import atomic_path
from ladder_vae.image_grid import make_grid, save_png

DPI = 100
# Panels of the loss-curve figure: (title, history column); `val_` + column is drawn beside it.
LOSS_PANELS = (
    ("total loss", "loss"),
    ("reconstruction (Gaussian NLL)", "reconstruction"),
    ("MMD$^2$(q(z) || p(z))", "mmd"),
    ("mean SSIM", "ssim"),
    ("weighted KL, summed over levels", "kl"),  # Only runs with --level-kl-weights log it.
)


def save_figure(figure, path):
    """Writes a matplotlib `Figure` as PNG through a temporary name and a rename."""
    FigureCanvasAgg(figure)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=DPI, facecolor="white")
    return path


def _grid_figure(grid, title, scale=2.0):
    """A figure showing one image grid [H, W, C] at `scale` screen pixels per image pixel, with
    a title above it (one line per newline in `title`)."""
    height, width = grid.shape[:2]
    title_inches = 0.2 + 0.18 * (title.count("\n") + 1)
    image_inches = height * scale / DPI
    figure = Figure(figsize=(width * scale / DPI, image_inches + title_inches))
    axes = figure.add_axes((0, 0, 1, image_inches / (image_inches + title_inches)))
    grey = grid.shape[-1] == 1
    axes.imshow(
        grid[..., 0] if grey else grid,
        cmap="gray" if grey else None,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    axes.set_axis_off()
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / (image_inches + title_inches), va="top")
    return figure


def sample_grid(images, path, num_columns=10, scale=2):
    """`images` [n, H, W, C] in a plain grid of `num_columns` columns, `scale` x enlarged.

    No title, like the training run's `samples/epoch_*.png`, so that `--compare` can show the
    grids of several runs side by side as they are.
    """
    save_png(path, make_grid(images, num_columns=num_columns), scale=scale)
    return path


def reconstruction_pairs(originals, reconstructions, path, num_columns=16):
    """Rows of originals, each followed by the row of their reconstructions."""
    count = (min(len(originals), len(reconstructions)) // num_columns) * num_columns
    if count == 0:
        raise ValueError(f"need at least {num_columns} images. Received: {len(originals)}")
    rows = []
    for start in range(0, count, num_columns):
        rows.append(originals[start : start + num_columns])
        rows.append(reconstructions[start : start + num_columns])
    grid = make_grid(np.concatenate(rows), num_columns=num_columns)
    return save_figure(
        _grid_figure(grid, "test digits (odd rows) and their reconstructions (even rows)"), path
    )


def traversal(images, level, latent_dims, path, num_columns, span):
    """The images decoded from `traversal.level_traversal_codes`, as one grid with a title that
    explains it (the convention of `ladder_vae.traversal`, which the training figures share)."""
    dim = latent_dims[level]
    held = "one prior draw"
    if dim == 2:
        how = f"z_{level + 1}[0] left to right, z_{level + 1}[1] bottom to top"
    elif dim == 1:
        how, held = f"z_{level + 1} left to right", "one prior draw per row"
    else:
        how = f"one row per dimension of z_{level + 1}, left to right"
    title = (
        f"level {level + 1} of {len(latent_dims)} (1 = lowest): {how}\n"
        f"over [-{span:g}, {span:g}] prior standard deviations; the other levels at {held}"
    )
    grid = make_grid(images, num_columns=num_columns)
    return save_figure(_grid_figure(grid, title, scale=max(2.0, 560 / grid.shape[1])), path)


def loss_curves(history, path):
    """Training and validation curves of each loss term, from the run's `history.csv`."""
    return save_figure(loss_figure(history), path)


def loss_figure(history):
    """The figure of `loss_curves`."""
    epochs = history.get("epoch", np.arange(len(next(iter(history.values())))))
    epochs = epochs + 1  # CSVLogger counts from 0; the progress bar and samples from 1.
    panels = [
        (title, key) for title, key in LOSS_PANELS if key in history or f"val_{key}" in history
    ]
    figure = Figure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
    for axes, (title, key) in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                label = "validation" if prefix else "training"
                axes.plot(epochs, history[prefix + key], style, marker=".", label=label)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        if len(epochs) == 1:
            axes.set_xticks(epochs)  # The integer locator finds no tick around one point.
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure


def comparison(labels, metrics, panels, sample_images, path, hierarchy_images=None):
    """Bar charts of some metrics for several runs, each run's sample grid below, and below
    that each run's heat map of what each level controls.

    Args:
        labels: one short name per run.
        metrics: one flat metrics dict per run.
        panels: (key, title, reference_key or None) per bar chart; a reference (such as the
            real-data floor) is drawn as a dotted line per run.
        sample_images: one image array [H, W, C] (a sample grid) or None per run.
        hierarchy_images: one image array (`hierarchy.png`) or None per run, or None.
    """
    num_runs = len(labels)
    colours = [f"C{index}" for index in range(num_runs)]
    with_hierarchy = hierarchy_images is not None and any(
        image is not None for image in hierarchy_images
    )
    width = max(3.0 * len(panels), (9.0 if with_hierarchy else 4.0) * num_runs)
    if with_hierarchy:
        figure = Figure(figsize=(width, 11.0), layout="constrained")
        top, bottom, lowest = figure.subfigures(3, 1, height_ratios=(1.0, 1.5, 0.9))
        for axes, label, image, colour in zip(
            np.atleast_1d(lowest.subplots(1, num_runs)), labels, hierarchy_images, colours
        ):
            axes.set_axis_off()
            axes.set_title(f"{label}: what each level controls", fontsize=10, color=colour)
            if image is not None:
                axes.imshow(image, interpolation="nearest")
    else:
        figure = Figure(figsize=(width, 8.5), layout="constrained")
        top, bottom = figure.subfigures(2, 1, height_ratios=(1.0, 1.5))
    for axes, (key, title, reference) in zip(np.atleast_1d(top.subplots(1, len(panels))), panels):
        values = [run.get(key, np.nan) for run in metrics]
        bars = axes.bar(range(num_runs), values, color=colours)
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
        if reference:
            for index, run in enumerate(metrics):
                if reference in run:
                    axes.hlines(
                        run[reference], index - 0.4, index + 0.4, colors="k", linestyles=":"
                    )
        axes.set_title(title, fontsize=9)
        axes.set_xticks(range(num_runs), labels, fontsize=8, rotation=15)
        axes.margins(y=0.15)
    for axes, label, image, colour in zip(
        np.atleast_1d(bottom.subplots(1, num_runs)), labels, sample_images, colours
    ):
        axes.set_axis_off()
        axes.set_title(f"{label}: samples from the prior", fontsize=10, color=colour)
        if image is not None:
            axes.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    return save_figure(figure, path)


def level_name(level, num_levels):
    """`level 1 (lowest)` ... `level L (top)`, 1-based."""
    if num_levels > 1 and level == 1:
        return "level 1 (lowest)"
    if level == num_levels:
        return f"level {level} (top)"
    return f"level {level}"


def hierarchy_heatmap(shares, attributes, path, class_change_rates=None, summary=None):
    """Writes `hierarchy_figure` as a PNG."""
    return save_figure(hierarchy_figure(shares, attributes, class_change_rates, summary), path)


def hierarchy_figure(shares, attributes, class_change_rates=None, summary=None):
    """The level x attribute table of `hierarchy.level_factor_shares` as a heat map.

    One row per level, the top level at the top; each cell shows its share (0 = redrawing the
    level alone leaves the attribute as it is, 1 = moves it as much as a new sample) in a colour
    from white (0) to dark blue (1 and above). The rate at which a redraw changes the predicted
    class, when given, is written at the end of each row.

    Args:
        shares: array [L, A], row 0 = level 1.
        attributes: the A column names.
        class_change_rates: array [L] or None.
        summary: the hierarchy summary (for the title) or None.
    """
    shares = np.asarray(shares, np.float64)
    num_levels, num_attributes = shares.shape
    shown = shares[::-1]
    height = 1.0 + 0.6 * num_levels
    figure = Figure(figsize=(1.2 + 1.05 * num_attributes + 1.6, height))
    axes = figure.add_axes((0.17, 0.35 / height, 0.62, 1 - 0.95 / height))
    axes.imshow(
        np.nan_to_num(shown, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto"
    )
    for row in range(num_levels):
        for column in range(num_attributes):
            value = shown[row, column]
            text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
            colour = "white" if np.isfinite(value) and value > 0.55 else "black"
            axes.text(column, row, text, ha="center", va="center", fontsize=10, color=colour)
        if class_change_rates is not None:
            rate = class_change_rates[num_levels - 1 - row]
            axes.text(
                num_attributes - 0.4, row, f"class changes\nin {rate:.1%} of redraws",
                ha="left", va="center", fontsize=8,
            )
    if attributes[0] == "identity":
        # Identity is a share of class disagreement, the others of variance: set apart.
        axes.axvline(0.5, color="black", linewidth=1.5)
    axes.set_xticks(range(num_attributes), attributes, fontsize=9)
    axes.set_yticks(
        range(num_levels),
        [level_name(level, num_levels) for level in range(num_levels, 0, -1)],
        fontsize=9,
    )
    axes.tick_params(length=0)
    title = "share of each attribute's variation moved by redrawing one level alone\n" + (
        "(0 = not at all, 1 = as much as a whole new sample)"
    )
    if summary is not None and np.isfinite(summary):
        title += f"; hierarchy summary {summary:.2f}"
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
    return figure

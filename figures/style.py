"""One look for every figure: a colour, marker and line style per method, poster-size type,
and the PNG + PDF writer.

Colours are the Okabe–Ito palette (distinguishable under the common colour-vision
deficiencies); each method also has its own marker and line style so the curves stay
apart in grey-scale print. The poster's assignments are kept: AT blue circles, COAP red
(vermillion) diamonds, CROWN-IBP orange crosses.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

# Figures are written to files, never shown; Agg needs no display on a headless machine.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# Embedding DejaVu in a PDF makes fontTools warn about the font files' header timestamps on
# every save; the warning is about the font files, not our output.
logging.getLogger("fontTools").setLevel(logging.ERROR)


@dataclass(frozen=True)
class MethodStyle:
    label: str
    color: str
    marker: str
    linestyle: str


METHOD_STYLES = {
    "at": MethodStyle("AT", "#0072B2", "o", "-"),
    "coap": MethodStyle("COAP", "#D55E00", "D", "--"),
    "crown-ibp": MethodStyle("CROWN-IBP", "#E69F00", "X", "-."),
    "ibp": MethodStyle("IBP", "#CC79A7", "s", ":"),
    "st": MethodStyle("ST", "#404040", "^", (0, (5, 1, 1, 1, 1, 1))),
    # certified training since the paper: the rest of Okabe–Ito, then Paul Tol's darker tones
    "crown": MethodStyle("CROWN", "#117733", "d", (0, (2, 2))),
    "alpha-crown": MethodStyle("α-CROWN", "#44AA99", ">", (0, (1, 2))),
    "fast-ibp": MethodStyle("FAST-IBP", "#882255", "p", (0, (3, 1, 1, 1))),
    "sabr": MethodStyle("SABR", "#000000", "*", (0, (5, 2, 1, 2))),
    "mtl-ibp": MethodStyle("MTL-IBP", "#009E73", "P", (0, (3, 1))),
    "cc-ibp": MethodStyle("CC-IBP", "#56B4E9", "h", (0, (1, 1))),
    "taps": MethodStyle("TAPS", "#AA4499", "<", (0, (4, 1, 1, 1, 1, 1))),
}
# Certified methods first after AT so the legend reads "empirical, then certified (the paper's,
# then those since), then baseline".
METHOD_ORDER = ("at", "coap", "crown-ibp", "ibp", "crown", "alpha-crown", "fast-ibp", "sabr", "taps", "mtl-ibp",
                "cc-ibp", "st")
_FALLBACK_COLORS = ("#F0E442", "#DDCC77", "#332288", "#999933")

DATASET_LABELS = {
    "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "digits": "Digits (8×8)",
    "cifar10": "CIFAR-10", "tiny-imagenet": "Tiny ImageNet", "spheres": "Spheres", "linear": "Linear",
}
# MNIST-format data left of CIFAR-10 left of Tiny ImageNet, as on the poster.
DATASET_ORDER = ("mnist", "fashion-mnist", "digits", "cifar10", "tiny-imagenet")
NORM_LABELS = {"l2": "ℓ2", "linf": "ℓ∞", "directions": "signal-aligned"}


def method_style(method: str) -> MethodStyle:
    """The style of a known method; an unknown one still gets a distinct, stable look."""
    if method in METHOD_STYLES:
        return METHOD_STYLES[method]
    color = _FALLBACK_COLORS[sum(map(ord, method)) % len(_FALLBACK_COLORS)]
    return MethodStyle(method.upper(), color, "v", "-")


def method_sort_key(method: str):
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def dataset_sort_key(dataset: str):
    return (DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER), dataset)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def norm_label(norm) -> str:
    return NORM_LABELS.get(norm, str(norm))


# Sizes are in points at the figure's physical size, so a stand-alone figure and the same
# panel on an A0 poster (larger physical size, scaled fonts) both stay legible.
BASE_RC = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "lines.linewidth": 2.0, "lines.markersize": 7,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": 100, "savefig.bbox": "standard", "pdf.fonttype": 42,
}


def rc(scale: float = 1.0) -> dict:
    """The base style with every size multiplied by `scale` (the poster uses a large scale)."""
    out = dict(BASE_RC)
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "legend.fontsize",
                "xtick.labelsize", "ytick.labelsize", "lines.linewidth", "lines.markersize"):
        out[key] = BASE_RC[key] * scale
    out["axes.linewidth"] = 0.8 * scale
    out["grid.linewidth"] = 0.8 * scale
    for axis in ("xtick", "ytick"):
        out[f"{axis}.major.size"] = 3.5 * scale
        out[f"{axis}.major.width"] = 0.8 * scale
    return out


def style_context(scale: float = 1.0):
    return plt.rc_context(rc(scale))


def new_figure(width_in: float, height_in: float):
    return plt.figure(figsize=(width_in, height_in), layout="constrained")


def save_figure(fig, out_dir, name: str, dpi: int = 150) -> list[Path]:
    """Write `<out_dir>/<name>.png` and `.pdf`, close the figure, return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=dpi)
    # The layout is in figure coordinates and the page size does not change, so the PDF can
    # reuse the one just computed; a second constrained-layout pass costs as much as a save.
    fig.set_layout_engine("none")
    fig.savefig(paths[1], dpi=dpi)
    plt.close(fig)
    return paths


def message_panel(ax, title: str, lines, command: str | None = None):
    """Fill an axes with an explanation instead of a plot (missing or unreadable records).

    The command that produces the records is printed in monospace so a reader can copy it.
    """
    ax.set_axis_off()
    ax.set_title(title)
    text = "\n".join(lines)
    ax.text(0.5, 0.62, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    if command:
        ax.text(0.5, 0.3, command, ha="center", va="center", transform=ax.transAxes,
                family="monospace", fontsize="small", wrap=True,
                bbox={"boxstyle": "round", "facecolor": "#f2f2f2", "edgecolor": "#999999"})


def eps_formatter(values):
    """Tick labels as k/255 when every budget is a whole number of 255ths (CIFAR ε), else plain."""
    values = [float(v) for v in values]
    as_255 = [v * 255 for v in values]
    if values and all(abs(x - round(x)) < 1e-6 for x in as_255) and max(values) < 1:
        return lambda v, _pos=None: f"{v * 255:.0f}/255" if v else "0"
    return lambda v, _pos=None: f"{v:g}"

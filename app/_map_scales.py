"""Colour scales and legends of the map layers.

Classes are computed here (vectorised) and sent to the page as small integers, so the
browser only looks colours up. Palettes are ColorBrewer (Brewer & Harrower 2003) and
viridis, all colour-blind safe: sequential for amounts (shortfall, shares), diverging
around the target for uptake (red below, blue above), viridis for the ordinal IMD decile.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Fill of areas whose value is suppressed (disclosure control) or missing.
MISSING_COLOUR = "#c8c8c8"
MISSING_LABEL = "Suppressed or no data"
_YL_OR_RD = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
_MET_TARGET = "#edf8e9"
_FEW = "#fff7d6"  # suppressed small shortfall: paler than the first YlOrRd class
_RD_BU = ["#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac"]
# Uptake minus target, as proportions: class edges of the diverging uptake scale.
_UPTAKE_EDGES = [-0.20, -0.10, -0.05, 0.0, 0.05, 0.10, 0.20]
_VIRIDIS_10 = [
    "#440154", "#482878", "#3e4989", "#31688e", "#26828e",
    "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725",
]  # fmt: skip
_PU_BU = ["#f1eef6", "#d0d1e6", "#a6bddb", "#74a9cf", "#2b8cbe", "#045a8d"]
_SHARE_EDGES = [0.05, 0.10, 0.20, 0.40, 0.60]
_GROUPS = {"asian": "Asian", "black": "Black", "mixed": "Mixed", "white": "White", "other": "Other"}


@dataclass(frozen=True)
class Scale:
    """A classed colour scale for one choropleth layer.

    Attributes
    ----------
    key
        Short identifier used in the page.
    name
        Layer name in plain English, shown in the layer control.
    legend_title
        Heading of the legend.
    colours
        Fill colour of each class.
    labels
        Legend label of each class; ``None`` hides a class that cannot occur (say uptake
        above 100%).
    classes
        Class of each area (index into ``colours``), ``-1`` for suppressed/missing.
    """

    key: str
    name: str
    legend_title: str
    colours: list[str]
    labels: list[str | None]
    classes: np.ndarray

    def legend_html(self) -> str:
        """The legend block: title, one swatch per class, and the missing class if used."""
        rows = [(c, label) for c, label in zip(self.colours, self.labels, strict=True) if label]
        if (self.classes < 0).any():
            rows.append((MISSING_COLOUR, MISSING_LABEL))
        return legend_block(self.legend_title, rows)


def legend_block(title: str, rows: list[tuple[str, str]], *, outline: bool = False) -> str:
    """HTML of one legend: a title and ``(colour, label)`` rows (labels are escaped)."""
    kind = "or-swatch-line" if outline else "or-swatch"
    items = "".join(
        f'<div class="or-row"><i class="{kind}" style="--c:{colour}"></i>{html.escape(label)}</div>'
        for colour, label in rows
    )
    return f'<div class="or-legend-block"><div class="or-legend-title">{html.escape(title)}</div>{items}</div>'


def shortfall_scale(shortfall: pd.Series, small: pd.Series | None = None) -> Scale:
    """Sequential (YlOrRd): class 0 for no shortfall, then five classes of rounded
    quintiles of the positive shortfalls.

    ``small`` marks areas whose shortfall was suppressed by disclosure control: their
    shortfall is known to be a small number (the policy suppresses only small counts), so
    they get their own pale class instead of the grey of "no data".
    """
    values = shortfall.to_numpy(dtype=float, na_value=np.nan)
    positive = values[values > 0]
    edges = _nice_quantile_edges(positive, 5) if positive.size else []
    classes = np.where(values > 0, 2 + np.searchsorted(edges, values, side="left"), 0)
    is_small = (
        np.zeros(len(values), dtype=bool)
        if small is None
        else small.to_numpy(dtype=bool) & np.isnan(values)
    )
    classes = np.where(np.isnan(values), -1, classes)
    classes = np.where(is_small, 1, classes)
    bounds = [0.0, *edges, np.inf]
    labels: list[str | None] = [
        "None (target met)",
        "A few (suppressed small number)" if is_small.any() else None,
    ]
    for lo, hi in itertools.pairwise(bounds):
        if np.isinf(hi):
            labels.append(f"more than {_count(lo)}")
        else:
            labels.append(f"up to {_count(hi)}" if lo == 0 else f"{_count(lo)}–{_count(hi)}")
    colours = (
        [_MET_TARGET, _FEW, *_YL_OR_RD[-(len(labels) - 2) :]]
        if len(labels) > 2
        else [_MET_TARGET, _FEW]
    )
    return Scale(
        key="shortfall",
        name="Shortfall: people to vaccinate",
        legend_title="People still to vaccinate to reach target",
        colours=colours,
        labels=labels,
        classes=classes.astype(np.int16),
    )


def uptake_scale(
    uptake: pd.Series, target: pd.Series, *, key: str, name: str, legend_title: str
) -> Scale:
    """Diverging (RdBu) around the target: four classes below, four above, 5 and 10
    percentage-point steps near the target. Labels are absolute uptake when the target is
    the same everywhere, else points from target."""
    values = uptake.to_numpy(dtype=float, na_value=np.nan)
    targets = target.to_numpy(dtype=float, na_value=np.nan)
    diff = values - targets
    classes = np.where(np.isnan(diff), -1, np.searchsorted(_UPTAKE_EDGES, diff, side="right"))
    known_targets = np.unique(np.round(targets[~np.isnan(targets)], 4))
    bounds = [-np.inf, *_UPTAKE_EDGES, np.inf]
    labels: list[str | None] = []
    for lo, hi in itertools.pairwise(bounds):
        if known_targets.size == 1:
            t = float(known_targets[0])
            lo_abs, hi_abs = max(t + lo, 0.0), min(t + hi, 1.0)
            if lo_abs >= 1.0 or hi_abs <= 0.0:
                labels.append(None)  # cannot occur: uptake is between 0 and 1
            elif np.isinf(lo):
                labels.append(f"below {hi_abs:.0%}")
            elif np.isinf(hi):
                labels.append(f"{lo_abs:.0%} or more")
            else:
                labels.append(f"{lo_abs:.0%} to {hi_abs:.0%}")
        elif np.isinf(lo):
            labels.append(f"{-hi * 100:.0f}+ points below target")
        elif np.isinf(hi):
            labels.append(f"{lo * 100:.0f}+ points above target")
        else:
            side = "below" if hi <= 0 else "above"
            labels.append(f"{abs(lo) * 100:.0f}–{abs(hi) * 100:.0f} points {side} target")
    if known_targets.size == 1:
        legend_title = f"{legend_title} (target {float(known_targets[0]):.0%})"
    return Scale(key, name, legend_title, list(_RD_BU), labels, classes.astype(np.int16))


def decile_scale(decile: pd.Series) -> Scale:
    """IMD decile 1 (most deprived) to 10 (least deprived), viridis from dark to light."""
    values = decile.to_numpy(dtype=float, na_value=np.nan)
    valid = (values >= 1) & (values <= 10)
    classes = np.where(valid, np.clip(np.round(values), 1, 10) - 1, -1)
    labels: list[str | None] = [str(d) for d in range(1, 11)]
    labels[0], labels[-1] = "1 (most deprived)", "10 (least deprived)"
    return Scale(
        key="imd",
        name="Deprivation: IMD decile",
        legend_title="IMD decile (1 = most deprived 10%)",
        colours=list(_VIRIDIS_10),
        labels=labels,
        classes=classes.astype(np.int16),
    )


def share_scale(share: pd.Series, *, key: str, group: str) -> Scale:
    """Sequential (PuBu) share of residents in one ethnic group, 0–1."""
    values = share.to_numpy(dtype=float, na_value=np.nan)
    classes = np.where(np.isnan(values), -1, np.searchsorted(_SHARE_EDGES, values, side="right"))
    bounds = [0.0, *_SHARE_EDGES, 1.0]
    labels: list[str | None] = [f"under {bounds[1]:.0%}"]
    labels += [f"{lo:.0%}–{hi:.0%}" for lo, hi in itertools.pairwise(bounds[1:-1])]
    labels.append(f"{bounds[-2]:.0%} or more")
    return Scale(
        key=key,
        name=f"Ethnic group: {group} (share of residents)",
        legend_title=f"Share of residents in the {group} group",
        colours=list(_PU_BU),
        labels=labels,
        classes=classes.astype(np.int16),
    )


def _suppressed(frame: pd.DataFrame, field: str) -> pd.Series:
    """Rows whose ``suppressed`` list (comma-joined) names ``field``."""
    if "suppressed" not in frame:
        return pd.Series(False, index=frame.index)
    return (
        frame["suppressed"]
        .fillna("")
        .astype(str)
        .str.contains(rf"(?:^|,){field}(?:,|$)", regex=True)
    )


def gap_scales(frame: pd.DataFrame) -> list[Scale]:
    """The gap map's choropleths in layer-control order; the first is shown on opening.

    Deprivation and ethnic-group layers are left out when the data have no such values.
    """
    target = frame["target"]
    if target.isna().all():
        target = pd.Series(_overall_uptake(frame), index=frame.index)
    result = [
        shortfall_scale(frame["shortfall"], _suppressed(frame, "shortfall")),
        uptake_scale(
            frame["uptake"], target, key="uptake", name="Uptake against target",
            legend_title="Uptake",
        ),
        uptake_scale(
            frame["smoothed_uptake"], target, key="smoothed",
            name="Smoothed uptake against target", legend_title="Smoothed uptake (empirical Bayes)",
        ),
    ]  # fmt: skip
    if frame["imd_decile"].notna().any():
        result.append(decile_scale(frame["imd_decile"]))
    for key, group in _GROUPS.items():
        if frame[f"eth_{key}"].notna().any():
            result.append(share_scale(frame[f"eth_{key}"], key=key, group=group))
    return result


def _overall_uptake(frame: pd.DataFrame) -> float:
    eligible = frame["eligible"].sum()
    return float(frame["vaccinated"].sum() / eligible) if eligible > 0 else 0.0


def _nice_quantile_edges(values: np.ndarray, k: int) -> list[float]:
    """Up to ``k - 1`` increasing class edges near the quantiles, rounded to 1-2-5 steps."""
    raw = np.quantile(values, np.arange(1, k) / k)
    edges: list[float] = []
    for edge in raw:
        nice = _nice(float(edge))
        if nice > 0 and (not edges or nice > edges[-1]) and nice < values.max():
            edges.append(nice)
    return edges


def _nice(x: float) -> float:
    """Round to 1, 2, 2.5 (from 25 up) or 5 times a power of ten; at least 1."""
    if x <= 1:
        return 1.0
    power = 10 ** np.floor(np.log10(x))
    factors = [1, 2, 2.5, 5, 10] if power >= 10 else [1, 2, 5, 10]
    steps = np.array(factors) * power
    return float(steps[np.argmin(np.abs(steps - x))])


def _count(x: float) -> str:
    return f"{x:,.0f}"

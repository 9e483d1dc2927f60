"""Small-number disclosure control for published tables.

Published counts follow the usual NHS / ONS statistical disclosure practice: counts
from ``lower`` to ``upper`` (1–7 by default) are suppressed, all other counts are
rounded to the nearest ``rounding_base`` (5 by default; halves round up), zero stays
zero, and any rate built from a suppressed count is suppressed too, so the suppressed
number cannot be recovered from the rate. Every row lists what was suppressed in a
``suppressed`` column.

Calculations always use raw numbers; this is applied only when a table is published
(API, CSV, map tooltips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geo._errors import ParameterError


@dataclass(frozen=True)
class DisclosurePolicy:
    """Small-number policy.

    Attributes
    ----------
    lower, upper
        Counts in ``[lower, upper]`` are suppressed (published as missing).
    rounding_base
        Other counts are rounded to the nearest multiple of this (1 = no rounding).
    enabled
        When False tables are published unchanged (an empty ``suppressed`` list per row).
    """

    lower: int = 1
    upper: int = 7
    rounding_base: int = 5
    enabled: bool = True

    def __post_init__(self) -> None:
        errors = []
        if self.lower < 0:
            errors.append({"loc": ["lower"], "msg": "lower must be 0 or more"})
        if self.upper < self.lower:
            errors.append({"loc": ["upper"], "msg": "upper must not be below lower"})
        if self.rounding_base < 1:
            errors.append({"loc": ["rounding_base"], "msg": "rounding_base must be 1 or more"})
        if errors:
            raise ParameterError(errors)


def round_counts(values: np.ndarray, base: int) -> np.ndarray:
    """Round to the nearest multiple of ``base``, halves upwards (``12 → 10``, ``13 → 15``)."""
    if base <= 1:
        return np.round(values)
    return np.floor(values / base + 0.5) * base


def apply_disclosure(
    frame: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    rate_columns: Mapping[str, Sequence[str]],
    policy: DisclosurePolicy | None = None,
) -> pd.DataFrame:
    """A publishable copy of ``frame`` under ``policy``.

    Parameters
    ----------
    frame
        Table with raw counts and rates (not modified).
    count_columns
        Columns holding counts of people (e.g. ``eligible``, ``vaccinated``,
        ``shortfall``). Columns absent from ``frame`` are ignored.
    rate_columns
        ``{rate column: [count columns it is built from]}``, e.g.
        ``{"uptake": ["eligible", "vaccinated"]}``.
    policy
        The policy; default :class:`DisclosurePolicy` ().

    Returns
    -------
    A copy where suppressed counts and rates are missing (counts as nullable ``Int64``,
    rates as float NaN), other counts are rounded, and ``suppressed`` holds, per row,
    the list of suppressed column names (empty when none) in column order.
    """
    policy = policy or DisclosurePolicy()
    out = frame.copy()
    counts = [c for c in count_columns if c in out.columns]
    rates = {
        r: [c for c in src if c in counts] for r, src in rate_columns.items() if r in out.columns
    }
    n_rows = len(out)
    if not policy.enabled:
        out["suppressed"] = [[] for _ in range(n_rows)]
        return out

    masks: dict[str, np.ndarray] = {}
    for column in counts:
        raw = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        small = (raw >= policy.lower) & (raw <= policy.upper)
        published = round_counts(raw, policy.rounding_base)
        published[small] = np.nan
        out[column] = pd.Series(published, index=out.index).astype("Int64")
        masks[column] = small
    for rate, sources in rates.items():
        hidden = np.zeros(n_rows, dtype=bool)
        for source in sources:
            hidden |= masks[source]
        values = pd.to_numeric(out[rate], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        out[rate] = np.where(hidden, np.nan, values)
        masks[rate] = hidden

    names = [c for c in out.columns if c in masks]
    out["suppressed"] = _suppressed_lists(
        np.column_stack([masks[c] for c in names]) if names else np.zeros((n_rows, 0), dtype=bool),
        names,
    )
    return out


def _suppressed_lists(mask: np.ndarray, names: list[str]) -> list[list[str]]:
    """Per-row lists of the names whose mask is True, built once per distinct pattern."""
    n_rows = mask.shape[0]
    if mask.shape[1] == 0:
        return [[] for _ in range(n_rows)]
    patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
    templates = [[names[j] for j in np.flatnonzero(row)] for row in patterns]
    return [list(templates[i]) for i in inverse.ravel()]

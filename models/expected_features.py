"""Features of the expected-uptake model: who lives in each area, never where it is.

:func:`build_cells` reads the uptake breakdown (area × age band / sex / ethnic group)
into integer-coded cells; :func:`build_features` turns cells and indicators into one row
of numeric features per area: shares of eligible people by group, deprivation (IMD score
/ decile) and any other numeric indicator. Coordinates are left out on purpose: a planted
pocket of low uptake must stand out against the model, not be learnt from its neighbours
(columns whose names look like coordinates are dropped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_COORDINATE_NAME = re.compile(
    r"^(x|y|lon|lat|lng|long|longitude|latitude|easting|northing|.*_(x|y|lon|lat)|"
    r"centroid.*|coord.*|geometry)$",
    re.IGNORECASE,
)


@dataclass
class CellDesign:
    """Uptake cells (area × group rows) for the cell-level model.

    Attributes
    ----------
    area_index
        Position of each cell's area in the area order.
    codes
        ``{group column: integer code per cell}`` for each group column present.
    categories
        ``{group column: category labels}`` (``codes`` index into these).
    successes, trials
        Vaccinated and eligible per cell.
    """

    area_index: np.ndarray
    codes: dict[str, np.ndarray]
    categories: dict[str, list[str]]
    successes: np.ndarray
    trials: np.ndarray


def build_features(
    area_codes: Sequence[str],
    uptake: pd.DataFrame,
    indicators: pd.DataFrame | None,
    *,
    cells: CellDesign | None = None,
) -> pd.DataFrame:
    """Numeric features per area (index = ``area_codes``; NaN where unknown).

    * ``age_<band>``, ``sex_<value>`` — shares of the area's eligible people (when the
      uptake has that breakdown);
    * ``ethnic_<group>`` — shares of eligible people by ethnic group from the uptake
      breakdown when present (the ``eth_<group>`` indicators are then left out),
      otherwise the ``eth_<group>`` indicator shares;
    * every other numeric indicator except coordinate-like names.

    ``cells`` (from :func:`build_cells`) saves re-reading the breakdown. Constant and
    all-missing columns are dropped.
    """
    index = pd.Index(list(area_codes), name="area_code")
    cells = cells if cells is not None else build_cells(area_codes, uptake)
    parts: list[pd.DataFrame] = []
    codes = cells.codes if cells is not None else {}
    for column, prefix in (("age_band", "age_"), ("sex", "sex_"), ("ethnic_group", "ethnic_")):
        if cells is None or column not in codes:
            continue
        width = len(cells.categories[column])
        key = cells.area_index.astype(np.int64) * width + codes[column]
        counts = np.bincount(key, weights=cells.trials, minlength=len(index) * width).reshape(
            -1, width
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = counts / counts.sum(axis=1, keepdims=True)
        names = [f"{prefix}{value}" for value in cells.categories[column]]
        parts.append(pd.DataFrame(shares, index=index, columns=names))
    if indicators is not None and len(indicators.columns):
        numeric = indicators.select_dtypes(include="number")
        keep = [
            c
            for c in numeric.columns
            if not _COORDINATE_NAME.match(str(c))
            and not ("ethnic_group" in codes and str(c).startswith("eth_"))
        ]
        parts.append(numeric[keep].astype(float).reindex(index))
    if not parts:
        return pd.DataFrame(index=index)
    features = pd.concat(parts, axis=1).astype(float)
    usable = [c for c in features.columns if features[c].nunique(dropna=True) > 1]
    return features[usable]


def build_cells(area_codes: Sequence[str], uptake: pd.DataFrame) -> CellDesign | None:
    """The cell design of ``uptake`` (None when it has no group breakdown)."""
    columns = [
        c
        for c in ("age_band", "sex", "ethnic_group")
        if c in uptake.columns and (uptake[c] != "").any()
    ]
    if not columns:
        return None
    area = uptake["area_code"]
    # Uptake rows come in runs per area: look up each run once, not every row.
    starts = np.flatnonzero(area.ne(area.shift()).to_numpy())
    lengths = np.diff(np.r_[starts, len(area)])
    position = np.repeat(pd.Index(list(area_codes)).get_indexer(area.iloc[starts]), lengths)
    known = position >= 0
    codes: dict[str, np.ndarray] = {}
    categories: dict[str, list[str]] = {}
    for column in columns:
        category = uptake[column].astype("category").cat
        codes[column] = category.codes.to_numpy()[known].astype(np.int64)
        categories[column] = [str(v) for v in category.categories]
    return CellDesign(
        area_index=position[known],
        codes=codes,
        categories=categories,
        successes=uptake["vaccinated"].to_numpy(dtype=float)[known],
        trials=uptake["eligible"].to_numpy(dtype=float)[known],
    )


def cells_to_areas(cells: CellDesign, cell_values: np.ndarray, n_areas: int) -> np.ndarray:
    """Eligible-weighted mean of cell values per area (plain mean where nobody is eligible)."""
    weighted = np.bincount(cells.area_index, weights=cells.trials * cell_values, minlength=n_areas)
    total = np.bincount(cells.area_index, weights=cells.trials, minlength=n_areas)
    plain = np.bincount(cells.area_index, weights=cell_values, minlength=n_areas)
    count = np.bincount(cells.area_index, minlength=n_areas)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, weighted / total, plain / count)

"""The indicators contract: one row per code, numeric columns, deciles 1–10.

Accepts the layouts analysts download rather than asking them to reshape:

- plain wide tables (``area_code, imd_score, imd_decile, eth_asian, …``);
- the English Indices of Deprivation 2019 files (``LSOA code (2011)``, ``Index of
  Multiple Deprivation (IMD) Score`` …);
- Nomis/Census wide tables (``geography code``, ``Ethnic group: Asian, Asian British or
  Asian Welsh`` …);
- Census 2021 custom downloads in long form, one row per area × category
  (``Lower layer Super Output Areas Code``, ``Ethnic group (20 categories)``,
  ``Observation``).

Ethnicity and religion are turned into shares (``eth_<group>``, ``rel_<religion>``) of
the categories given, whether the file has counts, percentages or shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from geo._errors import Problem
from geo.columns import (
    IOD_HEADERS,
    apply_column_map,
    code_columns,
    name_level,
    normalise_header,
    snake_case,
)
from geo.readers import Report

#: LSOAs in England in the IoD2019 ranking; decile = ceil(rank / (N / 10)).
IOD2019_N_LSOA = 32_844

_ETHNIC = (
    ("asian", ("asian",)),
    ("black", ("black",)),
    ("mixed", ("mixed",)),
    ("white", ("white",)),
    ("other", ("other ethnic", "other:", "other")),
)
_RELIGION = (
    "no religion",
    "christian",
    "buddhist",
    "hindu",
    "jewish",
    "muslim",
    "sikh",
    "other religion",
    "not answered",
)
_NOT_INDICATORS = frozenset(
    {"date", "year", "period", "time", "_line", "fid", "objectid", "ogc_fid"}
)
_VALUE_HEADERS = ("observation", "count", "value", "obs_value", "number")


def validate_indicators(
    frame: pd.DataFrame,
    file_name: str,
    report: Report,
    *,
    column_map: Mapping[str, str] | None = None,
) -> pd.DataFrame | None:
    """Check an indicator table and return it indexed by code with float columns.

    Returns
    -------
    A DataFrame indexed by ``area_code`` (the codes as given — the caller matches them
    to areas or their parents), or ``None`` when there were errors.
    """
    frame = frame.rename(columns=apply_column_map(frame.columns, column_map or {}))
    lines = np.arange(2, len(frame) + 2)
    codes_found = code_columns(frame.columns)
    code_col = (
        "area_code"
        if "area_code" in frame.columns
        else (codes_found[0][0] if codes_found else None)
    )
    if code_col is None:
        report.error(
            Problem(
                file_name,
                "no area code column found (looked for area_code, LSOA code (2011), LSOA21CD, geography code, …)",
                "rename the code column to area_code, or pass a column mapping",
            )
        )
        return None
    long_form = _long_layout(frame, code_col)
    if long_form is not None:
        frame, lines = long_form, np.arange(2, len(long_form) + 2)
    codes = frame[code_col].astype(str).str.strip()
    dup = codes.duplicated(keep=False).to_numpy()
    report.errors.add_rows(
        file_name,
        lines[dup],
        "the code appears more than once",
        "give one row per area",
        column=code_col,
        values=codes[dup].tolist(),
    )
    blank = (codes == "").to_numpy()
    report.errors.add_rows(
        file_name,
        lines[blank],
        "the area code is blank",
        "fill in the code or remove the row",
        column=code_col,
    )

    skip = {code_col} | {c for c, _ in codes_found} | {c for c in frame.columns if name_level(c)}
    values: dict[str, np.ndarray] = {}
    for column in frame.columns:
        if column in skip:
            continue
        name = _canonical(column)
        if name is None:
            continue
        parsed = _numeric(frame[column], lines, file_name, column, report)
        if parsed is not None:
            values.setdefault(name, parsed)
    if not values:
        report.error(
            Problem(
                file_name,
                "no numeric indicator columns found",
                "add columns such as imd_score, imd_decile, eth_asian …",
            )
        )
        return None
    out = pd.DataFrame(values, index=pd.Index(codes.to_numpy(), name="area_code"))
    out = out.loc[~blank]
    _check_deciles(out, file_name, report)
    if "imd_decile" not in out and "imd_rank" in out:
        out["imd_decile"] = np.clip(np.ceil(out["imd_rank"] / (IOD2019_N_LSOA / 10)), 1, 10)
        report.warn(
            Problem(
                file_name,
                f"imd_decile derived from imd_rank assuming the IoD2019 ranking of {IOD2019_N_LSOA:,} LSOAs",
                "supply imd_decile to use another ranking",
            )
        )
    for prefix in ("eth_", "rel_"):
        out = _to_shares(out, prefix)
    # Returned even with bad cells so the cross-file code matching still runs; the
    # import is refused on the errors anyway.
    return out.loc[~out.index.duplicated()]


def _canonical(column: str) -> str | None:
    """Canonical indicator name for a header, or ``None`` to ignore the column."""
    text = normalise_header(column)
    if text in _NOT_INDICATORS:
        return None
    if text in IOD_HEADERS:
        return IOD_HEADERS[text]
    if text.startswith(("eth_", "rel_")):
        return snake_case(text)
    if m := re.match(r"^ethnic group(?: \(\d+ categories\))?: (.+)$", text):
        return _ethnic_name(m.group(1))
    if m := re.match(r"^religion(?: \(\d+ categories\))?: (.+)$", text):
        return _religion_name(m.group(1))
    return snake_case(column)


def _ethnic_name(category: str) -> str | None:
    """``"Asian, Asian British or Asian Welsh"`` -> ``eth_asian``; sub-categories -> None."""
    category = category.strip().lower()
    if category.startswith(("total", "all usual")) or ":" in category:
        return None  # totals and the finer 20-category splits would double count
    if category.startswith("does not apply"):
        return None
    for group, starts in _ETHNIC:
        if category.startswith(starts):
            return f"eth_{group}"
    return None


def _religion_name(category: str) -> str | None:
    category = category.strip().lower()
    if category.startswith(("total", "all usual", "does not apply")):
        return None
    for religion in _RELIGION:
        if category.startswith(religion):
            return "rel_" + ("none" if religion == "no religion" else snake_case(religion))
    return None


def _long_layout(frame: pd.DataFrame, code_col: str) -> pd.DataFrame | None:
    """Census 2021 long downloads -> wide ``eth_*``/``rel_*`` columns."""
    headers = {normalise_header(c): c for c in frame.columns}
    value_col = next((headers[h] for h in _VALUE_HEADERS if h in headers), None)
    category_col = next(
        (
            c
            for c in frame.columns
            if re.match(r"^(ethnic group|religion)( \(\d+ categories\))?$", normalise_header(c))
        ),
        None,
    )
    if value_col is None or category_col is None:
        return None
    dimension = (
        "ethnic group" if normalise_header(category_col).startswith("ethnic") else "religion"
    )
    namer = _ethnic_name if dimension == "ethnic group" else _religion_name
    categories = frame[category_col].astype(str)
    names = categories.map(lambda c: namer(c.split(":")[0] if dimension == "ethnic group" else c))
    # 20-category ethnic downloads ("Asian, Asian British or Asian Welsh: Indian") are
    # summed to the five high-level groups.
    keep = names.notna()
    counts = pd.to_numeric(
        frame.loc[keep, value_col].str.replace(",", "", regex=False), errors="coerce"
    )
    long = pd.DataFrame(
        {code_col: frame.loc[keep, code_col].str.strip(), "name": names[keep], "count": counts}
    )
    wide = long.pivot_table(
        index=code_col, columns="name", values="count", aggfunc="sum", sort=False
    )
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index().astype({c: str for c in wide.columns})


def _numeric(
    values: pd.Series, lines: np.ndarray, file_name: str, column: str, report: Report
) -> np.ndarray | None:
    text = values.astype(str).str.strip().str.replace(",", "", regex=False).str.rstrip("%")
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    present = (text != "").to_numpy()
    bad = np.isnan(numbers) & present
    if present.sum() == 0:
        return None
    if bad.sum() > 0.5 * present.sum():
        return None  # a text column (e.g. a region name): not an indicator
    report.errors.add_rows(
        file_name,
        lines[bad],
        "the value is not a number",
        "enter a number or leave the cell blank",
        column=column,
        values=values[bad].tolist(),
    )
    return numbers


def _check_deciles(out: pd.DataFrame, file_name: str, report: Report) -> None:
    if "imd_decile" not in out:
        return
    decile = out["imd_decile"]
    bad = decile.notna() & ~decile.isin(np.arange(1, 11))
    for code in out.index[bad.to_numpy()][:50]:
        report.error(
            Problem(
                file_name,
                "imd_decile must be a whole number from 1 (most deprived) to 10",
                "check the decile column",
                column="imd_decile",
                value=f"{code}: {decile[code]}",
            )
        )


def _to_shares(out: pd.DataFrame, prefix: str) -> pd.DataFrame:
    columns = [c for c in out.columns if c.startswith(prefix) and c not in (f"{prefix}total",)]
    if not columns:
        return out
    block = out[columns].fillna(0.0)
    totals = block.sum(axis=1)
    typical = float(np.nanmedian(totals)) if len(totals) else 0.0
    if typical > 1.5:  # counts or percentages -> shares of the categories given
        shares = block.div(totals.where(totals > 0), axis=0)
        out = out.drop(columns=[f"{prefix}total"], errors="ignore")
        out[columns] = shares
    return out

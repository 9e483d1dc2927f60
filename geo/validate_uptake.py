"""The uptake contract: integer counts, ``vaccinated ≤ eligible``, rows matching areas.

Accepts long form (one row per area and group cell, optional ``age_band``, ``sex``,
``ethnic_group`` columns) and wide form (one ``eligible_<band>``/``vaccinated_<band>``
column pair per age band, or ``<band>_eligible``/``<band>_vaccinated``). The rows of one
area must partition its population: rows labelled ``Total``/``All`` beside a breakdown are
dropped (with a warning), and two separate breakdowns of the same people (one by age, one
by ethnicity) are refused because summing them would count everyone twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from geo._errors import Problem
from geo.columns import apply_column_map, code_columns, find_alias, normalise_header
from geo.dataset import GROUP_COLUMNS, UPTAKE_COLUMNS
from geo.readers import Report

#: Group labels meaning "everyone" (a total row, not a breakdown).
TOTAL_LABELS = frozenset(
    {
        "",
        "total",
        "all",
        "all ages",
        "all persons",
        "persons",
        "all ethnic groups",
        "all ethnicities",
        "all sexes",
        "all people",
    }
)
_WIDE = re.compile(
    r"^(?:(eligible|vaccinated)[ _:\-]+(?P<band_a>.+)|(?P<band_b>.+?)[ _:\-]+(eligible|vaccinated))$",
    re.I,
)


def validate_uptake(
    frame: pd.DataFrame,
    file_name: str,
    report: Report,
    *,
    column_map: Mapping[str, str] | None = None,
    cap_vaccinated: bool = False,
) -> pd.DataFrame | None:
    """Check an uptake table and return it in canonical long form.

    Parameters
    ----------
    frame
        The table as read (all cells text).
    file_name
        Used in every problem reported.
    report
        Receives errors and warnings.
    column_map
        Explicit header renames.
    cap_vaccinated
        When true, ``vaccinated > eligible`` is capped at ``eligible`` and reported as a
        warning listing the areas (real denominators are population estimates that
        published counts often exceed); when false (default) it is an error.

    Returns
    -------
    Canonical uptake (see :mod:`geo.dataset`), with a ``_line`` column giving each row's
    line in the file (also when some rows had errors, so cross-file checks can still run;
    the caller refuses the import when ``report`` holds errors), or ``None`` when the
    table's structure is unusable.
    """
    frame = frame.rename(columns=apply_column_map(frame.columns, column_map or {}))
    frame = frame.assign(_line=np.arange(2, len(frame) + 2))
    code_col = _code_column(frame, file_name, report)
    eligible_col = find_alias(frame.columns, "eligible")
    vaccinated_col = find_alias(frame.columns, "vaccinated")
    if eligible_col is None and vaccinated_col is None and code_col is not None:
        wide = _melt_wide(frame, code_col)
        if wide is not None:
            frame, eligible_col, vaccinated_col = wide, "eligible", "vaccinated"
    for canonical, found in (("eligible", eligible_col), ("vaccinated", vaccinated_col)):
        if found is None:
            report.error(
                Problem(
                    file_name,
                    f"no '{canonical}' column found",
                    f"name the column '{canonical}' (long form), or give one '{canonical}_<age band>' column per band (wide form)",
                )
            )
    if code_col is None or eligible_col is None or vaccinated_col is None:
        return None

    lines = frame["_line"].to_numpy()
    codes = frame[code_col].astype(str).str.strip()
    blank = (codes == "").to_numpy()
    report.errors.add_rows(
        file_name, lines[blank], "the area code is blank", "fill in the area code", column=code_col
    )
    eligible, eligible_ok = _counts(frame[eligible_col], lines, file_name, eligible_col, report)
    vaccinated, vaccinated_ok = _counts(
        frame[vaccinated_col], lines, file_name, vaccinated_col, report
    )

    out = pd.DataFrame({"area_code": codes.to_numpy(), "_line": lines})
    for group in GROUP_COLUMNS:
        source = find_alias(frame.columns, group)
        values = (
            frame[source].astype(str).str.strip() if source else pd.Series("", index=frame.index)
        )
        out[group] = values.where(~values.str.lower().isin(TOTAL_LABELS), "").to_numpy()
    out["eligible"] = eligible
    out["vaccinated"] = vaccinated

    over = (out["vaccinated"] > out["eligible"]).to_numpy() & eligible_ok & vaccinated_ok
    if over.any():
        if cap_vaccinated:
            areas = sorted(set(out.loc[over, "area_code"]))
            shown = ", ".join(areas[:50]) + (
                f" and {len(areas) - 50} more" if len(areas) > 50 else ""
            )
            report.warn(
                Problem(
                    file_name,
                    f"vaccinated exceeded eligible in {int(over.sum())} rows ({len(areas)} areas) and was capped at eligible: {shown}",
                    "check the denominators (population estimates) for these areas",
                    column=vaccinated_col,
                )
            )
            out.loc[over, "vaccinated"] = out.loc[over, "eligible"]
        else:
            report.errors.add_rows(
                file_name,
                lines[over],
                "vaccinated is greater than eligible",
                "correct the counts, or import with the option cap_vaccinated=true to cap them at eligible (reported as a warning)",
                column=vaccinated_col,
                values=(
                    out.loc[over, "vaccinated"].astype(str)
                    + " > "
                    + out.loc[over, "eligible"].astype(str)
                ).tolist(),
            )
    out = _resolve_totals(out, file_name, report)
    if out is None:
        return None
    # Returned even when rows had errors, so that cross-file checks (unknown area codes)
    # still run and the report lists everything; the import fails on the errors anyway.
    return out[[*UPTAKE_COLUMNS, "_line"]].reset_index(drop=True)


def _code_column(frame: pd.DataFrame, file_name: str, report: Report) -> str | None:
    if "area_code" in frame.columns:
        return "area_code"
    found = code_columns(c for c in frame.columns if c != "_line")
    if found:
        return found[0][0]
    report.error(
        Problem(
            file_name,
            "no area code column found (looked for area_code, OA21CD, LSOA11CD, geography code, …)",
            "rename the code column to area_code, or pass a column mapping",
        )
    )
    return None


def _melt_wide(frame: pd.DataFrame, code_col: str) -> pd.DataFrame | None:
    """Wide form -> long form with ``age_band``; ``None`` when the headers don't fit."""
    pairs: dict[str, dict[str, str]] = {}
    for column in frame.columns:
        match = _WIDE.match(normalise_header(column))
        if not match or column == code_col:
            continue
        measure = "eligible" if "eligible" in normalise_header(column) else "vaccinated"
        band = (match.group("band_a") or match.group("band_b") or "").strip()
        original_band = _original_band(str(column), band)
        pairs.setdefault(original_band, {})[measure] = str(column)
    complete = {band: cols for band, cols in pairs.items() if len(cols) == 2}
    if not complete:
        return None
    parts = [
        pd.DataFrame(
            {
                code_col: frame[code_col].to_numpy(),
                "age_band": band,
                "eligible": frame[cols["eligible"]].to_numpy(),
                "vaccinated": frame[cols["vaccinated"]].to_numpy(),
                "_line": frame["_line"].to_numpy(),
            }
        )
        for band, cols in complete.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _original_band(column: str, band_lower: str) -> str:
    """The band label with its original case (``"80Plus"`` stays ``"80Plus"``)."""
    index = column.lower().find(band_lower)
    return column[index : index + len(band_lower)] if index >= 0 else band_lower


def _counts(
    values: pd.Series, lines: np.ndarray, file_name: str, column: str, report: Report
) -> tuple[np.ndarray, np.ndarray]:
    """Parsed counts (bad cells as 0) and a mask of the cells that parsed cleanly."""
    text = values.astype(str).str.strip().str.replace(",", "", regex=False)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    missing = (text == "").to_numpy()
    non_numeric = np.isnan(numbers) & ~missing
    negative = numbers < 0
    fractional = np.isfinite(numbers) & (numbers != np.round(numbers))
    report.errors.add_rows(
        file_name,
        lines[missing],
        "the count is missing",
        "enter the count (0 if none)",
        column=column,
    )
    report.errors.add_rows(
        file_name,
        lines[non_numeric],
        "the count is not a number",
        "enter a whole number; suppressed cells ('*', '[c]', 'x') cannot be analysed — use the unsuppressed extract",
        column=column,
        values=values[non_numeric].tolist(),
    )
    report.errors.add_rows(
        file_name,
        lines[negative],
        "the count is negative",
        "counts must be 0 or more",
        column=column,
        values=values[negative].tolist(),
    )
    report.errors.add_rows(
        file_name,
        lines[fractional],
        "the count is not a whole number",
        "counts of people must be whole numbers",
        column=column,
        values=values[fractional].tolist(),
    )
    ok = ~(missing | non_numeric | negative | fractional)
    return np.nan_to_num(numbers, nan=0.0).astype(np.int64), ok


def _resolve_totals(out: pd.DataFrame, file_name: str, report: Report) -> pd.DataFrame | None:
    """Keep one partition per area: drop total rows beside breakdowns, refuse double breakdowns."""
    keys = ["area_code", *GROUP_COLUMNS]
    broken = out[GROUP_COLUMNS].ne("")
    n_levels = broken.sum(axis=1)
    per_area = broken.groupby(out["area_code"]).transform("any")
    # A row is a partial total when some group column is blank while other rows of the
    # same area break that column down; it duplicates people counted in those rows.
    partial = (per_area & ~broken).any(axis=1)
    # Only full totals (no column broken down at all) are safe to drop automatically;
    # a row broken down by one column but blank in another is a second breakdown.
    drop = partial & (n_levels == 0)
    double = partial & (n_levels > 0)
    if double.any():
        areas = sorted(set(out.loc[double, "area_code"]))
        report.error(
            Problem(
                file_name,
                f"{len(areas)} areas have two separate breakdowns of the same people (e.g. rows by age band and other rows by ethnic group); summing them would count everyone twice: {', '.join(areas[:20])}",
                "upload one breakdown (or cross-classified rows with both age_band and ethnic_group filled in)",
            )
        )
        return None
    if drop.any():
        report.warn(
            Problem(
                file_name,
                f"{int(drop.sum())} total rows ('Total'/'All' or blank group) were dropped because the same areas are also broken down by group",
                "nothing to do; remove total rows to silence this warning",
            )
        )
        out = out.loc[~drop]
    dup = out.duplicated(subset=keys, keep=False)
    report.errors.add_rows(
        file_name,
        out.loc[dup, "_line"].to_numpy(),
        "the same area and group appear in more than one row",
        "give each area and group combination once (sum the rows)",
        column="area_code",
        values=out.loc[dup, "area_code"].tolist(),
    )
    return out

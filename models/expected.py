"""Expected uptake: what an area's uptake would be given who lives there.

The model relates uptake to deprivation (IMD score / decile), ethnic mix, age structure
and any other numeric indicators — never to location (features:
:mod:`models.expected_features`). Candidate models (:mod:`models.expected_candidates`:
binomial GLMs on areas or on area × group cells, splines, boosted trees) are scored by
out-of-fold binomial deviance and the best is used (:func:`fit_expected`).

Predictions are **out-of-fold** with spatially grouped folds (``GroupKFold`` by parent
area, e.g. the LSOA of an output area): an area never helps predict itself, nor do the
other areas in its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from geo._errors import ParameterError
from models.expected_candidates import (
    AREA_CANDIDATES,
    CELL_CANDIDATE,
    OPTIONAL_CANDIDATES,
    Folds,
    area_oof,
    cell_oof,
)
from models.expected_features import CellDesign, build_cells, build_features, cells_to_areas

__all__ = [
    "AREA_CANDIDATES",
    "CELL_CANDIDATE",
    "MIN_AREAS",
    "MIN_GROUPS",
    "OPTIONAL_CANDIDATES",
    "CellDesign",
    "ExpectedUptake",
    "Folds",
    "binomial_deviance",
    "build_cells",
    "build_features",
    "calibration_table",
    "cells_to_areas",
    "fit_expected",
]

#: Fewer areas with eligible people than this, or fewer fold groups than
#: :data:`MIN_GROUPS`, and no model is fitted: expected uptake is the overall rate.
MIN_AREAS = 20
MIN_GROUPS = 3


@dataclass
class ExpectedUptake:
    """Out-of-fold expected uptake and a JSON-ready report of the fit.

    Attributes
    ----------
    expected
        Expected uptake (proportion) per area, in input order.
    cell_expected
        Expected uptake per cell when the cell model was chosen, else None.
    report
        ``model`` (chosen), ``reason`` (why a fallback was used, else None),
        ``features``, ``candidates`` ({name: OOF deviance explained on the selection
        set}), ``deviance_explained`` (chosen model, all areas), ``calibration``
        (observed vs expected by decile of expected), ``folds``, ``converged``.
    """

    expected: np.ndarray
    cell_expected: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)


def binomial_deviance(successes: np.ndarray, trials: np.ndarray, p: np.ndarray) -> float:
    """Binomial deviance ``2 Σ [x log(x/(n p)) + (n − x) log((n − x)/(n (1 − p)))]``."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    failures = trials - successes
    terms = (
        xlogy(successes, successes)
        - xlogy(successes, trials * p)
        + xlogy(failures, failures)
        - xlogy(failures, trials * (1.0 - p))
    )
    return float(2.0 * terms.sum())


def calibration_table(
    successes: np.ndarray, trials: np.ndarray, expected: np.ndarray, *, bins: int = 10
) -> list[dict[str, Any]]:
    """Observed against expected uptake by decile of expected uptake (areas with people):
    rows of ``decile``, ``n_areas``, ``eligible``, ``expected``, ``observed`` (rates
    weighted by eligible)."""
    keep = (trials > 0) & np.isfinite(expected)
    if keep.sum() < bins:
        return []
    rank = pd.Series(expected[keep]).rank(method="first").to_numpy()
    decile = np.minimum((rank - 1) * bins // keep.sum(), bins - 1).astype(int) + 1
    n = np.bincount(decile, weights=trials[keep], minlength=bins + 1)[1:]
    x = np.bincount(decile, weights=successes[keep], minlength=bins + 1)[1:]
    e = np.bincount(decile, weights=trials[keep] * expected[keep], minlength=bins + 1)[1:]
    count = np.bincount(decile, minlength=bins + 1)[1:]
    return [
        {
            "decile": d + 1,
            "n_areas": int(count[d]),
            "eligible": int(n[d]),
            "expected": float(e[d] / n[d]),
            "observed": float(x[d] / n[d]),
        }
        for d in range(bins)
        if n[d] > 0
    ]


def _fallback(s: np.ndarray, n: np.ndarray, reason: str, features: list[str]) -> ExpectedUptake:
    """The overall rate for every area, with the ``reason`` no model was fitted."""
    total = n.sum()
    rate = float(s.sum() / total) if total > 0 else float("nan")
    report: dict[str, Any] = {
        "model": "overall_rate",
        "reason": reason,
        "features": features,
        "candidates": {},
        "converged": {},
        "deviance_explained": 0.0 if total > 0 else None,
        "calibration": [],
        "folds": 0,
        "selection_areas": 0,
    }
    return ExpectedUptake(expected=np.full(len(n), rate), report=report)


def _grouped_folds(rows: np.ndarray, group_codes: np.ndarray, splits: int) -> Folds:
    """``GroupKFold`` over ``rows`` (fewer folds when there are fewer groups)."""
    k = min(splits, len(np.unique(group_codes[rows])))
    return [
        (rows[a], rows[b]) for a, b in GroupKFold(n_splits=k).split(rows, groups=group_codes[rows])
    ]


def fit_expected(
    features: pd.DataFrame,
    successes: np.ndarray,
    trials: np.ndarray,
    groups: np.ndarray,
    **options: Any,
) -> ExpectedUptake:
    """Choose the expected-uptake model by out-of-fold deviance; return OOF predictions.

    See :func:`_fit_expected` for the options. BLAS and OpenMP run single-threaded
    here: on a 2-core machine shared with other work their thread pools spin-wait and
    cost far more than they save at these matrix sizes (measured on the demo city under
    load: cell GLM 9.1 s with 2 BLAS threads, 0.75 s with 1; boosted trees 5.1 s with 2
    OpenMP threads, 0.9 s with 1).
    """
    with threadpool_limits(limits=1):
        return _fit_expected(features, successes, trials, groups, **options)


def _fit_expected(
    features: pd.DataFrame,
    successes: np.ndarray,
    trials: np.ndarray,
    groups: np.ndarray,
    *,
    cells: CellDesign | None = None,
    seed: int = 0,
    n_splits: int = 5,
    candidates: Sequence[str] | None = None,
    max_selection_areas: int = 5_000,
    max_train_areas: int = 30_000,
    max_train_cells: int = 100_000,
) -> ExpectedUptake:
    """Choose the expected-uptake model by out-of-fold deviance; return OOF predictions.

    Parameters
    ----------
    features
        One row per area (see :func:`build_features`); may have no columns.
    successes, trials
        Vaccinated and eligible per area.
    groups
        Fold group per area (its parent code; its own code when it has no parent).
    cells
        Cell design (:func:`build_cells`) to also try the cell-level model.
    seed
        Seed for subsampling and boosted trees.
    n_splits
        Number of grouped folds (fewer when there are fewer groups).
    candidates
        Names to try (default: the area candidates, plus ``cell_logistic`` when
        ``cells`` is given).
    max_selection_areas
        Above this many areas candidates are compared on a random subset of whole
        groups of about this size; the chosen one is then run on all areas.
    max_train_areas, max_train_cells
        Training folds larger than this many areas (cells, for the cell model) are
        subsampled: a model with a few dozen coefficients gains nothing from more, and
        England-size runs stay fast.
    """
    x = features.to_numpy(dtype=float)
    s = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    names = [str(c) for c in features.columns]
    group_codes = pd.factorize(pd.Series(np.asarray(groups)).astype(str))[0]
    with_people = n > 0
    n_groups = len(np.unique(group_codes[with_people]))
    if x.shape[1] == 0 and cells is None:
        return _fallback(
            s,
            n,
            "no indicators or group breakdown to model uptake from; "
            "expected uptake is the overall rate",
            names,
        )
    if with_people.sum() < MIN_AREAS or n_groups < MIN_GROUPS:
        return _fallback(
            s,
            n,
            (
                f"too few areas to fit a model out-of-fold ({int(with_people.sum())} areas with "
                f"eligible people in {n_groups} fold groups; need {MIN_AREAS} areas and "
                f"{MIN_GROUPS} groups); expected uptake is the overall rate"
            ),
            names,
        )
    known = {*AREA_CANDIDATES, *OPTIONAL_CANDIDATES, CELL_CANDIDATE}
    unknown = sorted(set(candidates or ()) - known)
    if unknown:
        raise ParameterError(
            [
                {
                    "loc": ["model_candidates"],
                    "msg": f"unknown model(s) {unknown}; choose from {sorted(known)}",
                    "input": list(candidates or ()),
                }
            ]
        )
    if candidates is None:
        candidates = [c for c in AREA_CANDIDATES if x.shape[1] > 0]
        candidates += [CELL_CANDIDATE] if cells is not None else []
    rng = np.random.default_rng(seed)
    selection = np.arange(len(n))
    if len(n) > max_selection_areas:
        order = rng.permutation(group_codes.max() + 1)
        cumulative = np.cumsum(np.bincount(group_codes)[order])
        chosen = order[: int(np.searchsorted(cumulative, max_selection_areas)) + 1]
        selection = np.flatnonzero(np.isin(group_codes, chosen))

    def run(name: str, folds: Folds) -> tuple[np.ndarray, np.ndarray | None, bool]:
        if name == CELL_CANDIDATE and cells is not None:
            cell_pred, ok = cell_oof(x, cells, folds, seed, max_train_cells, n)
            return cells_to_areas(cells, cell_pred, len(n)), cell_pred, ok
        area_pred, ok = area_oof(name, x, s, n, folds, seed, max_train_areas)
        return area_pred, None, ok

    folds = _grouped_folds(selection, group_codes, n_splits)
    sel = selection[with_people[selection]]
    null_pred, _, _ = run("overall", folds)
    null_dev = binomial_deviance(s[sel], n[sel], null_pred[sel])
    scores: dict[str, float] = {}
    converged: dict[str, bool] = {}
    results: dict[str, tuple[np.ndarray, np.ndarray | None, bool]] = {
        "overall": (null_pred, None, True)
    }
    for name in candidates:
        results[name] = run(name, folds)
        converged[name] = results[name][2]
        dev = binomial_deviance(s[sel], n[sel], results[name][0][sel])
        scores[name] = 1.0 - dev / null_dev if null_dev > 0 else 0.0
    best = max(scores, key=lambda k: scores[k]) if scores else "overall"
    if not scores or scores[best] <= 0:
        best = "overall"
    if len(selection) < len(n):
        folds = _grouped_folds(np.arange(len(n)), group_codes, n_splits)
        results = {"overall": run("overall", folds)}
        results[best] = run(best, folds)
        converged[best] = results[best][2] if best != "overall" else True
    area_pred, cell_pred, _ = results[best]
    null_all = binomial_deviance(s[with_people], n[with_people], results["overall"][0][with_people])
    model_all = binomial_deviance(s[with_people], n[with_people], area_pred[with_people])
    return ExpectedUptake(
        expected=np.clip(area_pred, 0.0, 1.0),
        cell_expected=None if cell_pred is None else np.clip(cell_pred, 0.0, 1.0),
        report={
            "model": best,
            "reason": None
            if best != "overall"
            else "no candidate beat the overall rate out-of-fold",
            "features": names,
            "candidates": {k: float(v) for k, v in scores.items()},
            "converged": converged,
            "deviance_explained": float(1.0 - model_all / null_all) if null_all > 0 else None,
            "calibration": calibration_table(s, n, area_pred),
            "folds": len(folds),
            "fold_groups": "parent area",
            "selection_areas": len(selection),
        },
    )

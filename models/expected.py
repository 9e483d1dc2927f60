"""Expected uptake: what an area's uptake would be given who lives there.

The model relates uptake to deprivation (IMD score / decile), ethnic mix, age structure
and any other numeric indicators — never to location. Coordinates are left out on
purpose: a planted pocket of low uptake must stand out against the model, not be learnt
from its neighbours (columns whose names look like coordinates are dropped).

Fitting maximises a binomial likelihood on counts: each row contributes a "vaccinated"
copy (weight = vaccinated people) and a "not vaccinated" copy (weight = eligible −
vaccinated), exactly as a binomial GLM on grouped data.

Candidates (scored by out-of-fold binomial deviance; the best is used):

* ``logistic`` — binomial GLM on area features (shares of eligible people by age band
  and ethnic group, indicators);
* ``logistic_spline`` — the same with cubic B-spline bases of every feature;
* ``gradient_boosting`` — histogram gradient-boosted trees (binomial loss); tried only
  on request (see :data:`AREA_CANDIDATES` for why);
* ``cell_logistic`` — when uptake is broken down by group: a binomial GLM on the
  area × group cells with the group columns (age band, sex, ethnic group) as
  categorical features plus the area features; the area's expectation is the
  eligible-weighted mean of its cells. This matches how uptake differs by age and
  ethnicity within an area, and gives group-level expectations directly.

Predictions are **out-of-fold** with spatially grouped folds (``GroupKFold`` by parent
area, e.g. the LSOA of an output area): an area never helps predict itself, nor do the
other areas in its parent.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, xlogy
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from geo._errors import ParameterError

#: Fewer areas with eligible people than this, or fewer fold groups than
#: :data:`MIN_GROUPS`, and no model is fitted: expected uptake is the overall rate.
MIN_AREAS = 20
MIN_GROUPS = 3
#: Area-level candidates tried by default. ``gradient_boosting`` is available on request:
#: on the demo city it scored below the GLMs (OOF deviance explained 0.775 against 0.784
#: for the cell GLM) and its weighted binning made it the slowest by far.
AREA_CANDIDATES = ("logistic", "logistic_spline")
OPTIONAL_CANDIDATES = ("gradient_boosting",)
CELL_CANDIDATE = "cell_logistic"
_COORDINATE_NAME = re.compile(
    r"^(x|y|lon|lat|lng|long|longitude|latitude|easting|northing|.*_(x|y|lon|lat)|"
    r"centroid.*|coord.*|geometry)$",
    re.IGNORECASE,
)
Folds = list[tuple[np.ndarray, np.ndarray]]


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


def _expand(
    x: np.ndarray, successes: np.ndarray, trials: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success/failure copies of each row with people as weights (zero weights dropped)."""
    weights = np.concatenate([successes, trials - successes])
    labels = np.repeat([1.0, 0.0], len(x))
    keep = weights > 0
    return np.concatenate([x, x])[keep], labels[keep], weights[keep]


def _area_model(name: str, seed: int) -> Pipeline | HistGradientBoostingClassifier:
    impute = SimpleImputer(strategy="median")
    if name == "logistic":
        return make_pipeline(impute, StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    if name == "logistic_spline":
        return make_pipeline(
            impute,
            StandardScaler(),
            SplineTransformer(n_knots=4, degree=3),
            LogisticRegression(C=1.0, max_iter=2000),
        )
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _fit_quietly(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> bool:
    """Fit with sample weights; return False if the solver reported non-convergence
    (recorded in the report rather than aborting the analysis)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if isinstance(model, Pipeline):
            model.fit(x, y, **{f"{model.steps[-1][0]}__sample_weight": w})
        else:
            model.fit(x, y, sample_weight=w)
    return not any(issubclass(c.category, ConvergenceWarning) for c in caught)


def _training_areas(
    train: np.ndarray, trials: np.ndarray, cap: int, rng: np.random.Generator
) -> np.ndarray:
    train = train[trials[train] > 0]
    return np.sort(rng.choice(train, size=cap, replace=False)) if len(train) > cap else train


def _area_oof(
    name: str, x: np.ndarray, s: np.ndarray, n: np.ndarray, folds: Folds, seed: int, cap: int
) -> tuple[np.ndarray, bool]:
    """Out-of-fold area predictions of one area-level candidate (or ``overall``)."""
    prediction = np.zeros(len(n))
    converged = True
    rng = np.random.default_rng(seed)
    for train, test in folds:
        train = _training_areas(train, n, cap, rng)
        rate = s[train].sum() / n[train].sum()
        if name == "overall" or not 0 < rate < 1:
            prediction[test] = rate
            continue
        model = _area_model(name, seed)
        converged &= _fit_quietly(model, *_expand(x[train], s[train], n[train]))
        prediction[test] = model.predict_proba(x[test])[:, 1]
    return prediction, converged


def _cell_matrix(area_x: np.ndarray, cells: CellDesign, rows: np.ndarray) -> np.ndarray:
    """Scaled area features of each cell followed by one-hot group columns."""
    blocks = [area_x[cells.area_index[rows]]]
    for column, code in cells.codes.items():
        blocks.append(np.eye(len(cells.categories[column]))[code[rows]])
    return np.hstack(blocks)


def _cell_oof(
    x: np.ndarray, cells: CellDesign, folds: Folds, seed: int, max_cells: int, n_area: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Out-of-fold cell predictions of the cell-level GLM.

    Training cells are materialised only for as many training areas as give about
    ``max_cells`` cells; test cells are predicted from the linear predictor split into
    an area part and a group part, so England-size runs never build a cells × features
    matrix.
    """
    prediction = np.zeros(len(cells.trials))
    converged = True
    rng = np.random.default_rng(seed)
    cells_per_area = max(len(cells.trials) / max(len(n_area), 1), 1.0)
    cap = max(int(max_cells / cells_per_area), 1)
    for train, test in folds:
        train = _training_areas(train, n_area, cap, rng)
        prep = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()).fit(x[train])
        area_x = prep.transform(x)
        rows = np.flatnonzero(np.isin(cells.area_index, train))
        model = LogisticRegression(C=1.0, max_iter=2000)
        s_rows, n_rows = cells.successes[rows], cells.trials[rows]
        converged &= _fit_quietly(
            model, *_expand(_cell_matrix(area_x, cells, rows), s_rows, n_rows)
        )
        coef = model.coef_[0]
        area_part = area_x @ coef[: x.shape[1]]
        offset = x.shape[1]
        test_rows = np.flatnonzero(np.isin(cells.area_index, test))
        logit = model.intercept_[0] + area_part[cells.area_index[test_rows]]
        for column, code in cells.codes.items():
            width = len(cells.categories[column])
            logit = logit + coef[offset : offset + width][code[test_rows]]
            offset += width
        prediction[test_rows] = expit(logit)
    return prediction, converged


def cells_to_areas(cells: CellDesign, cell_values: np.ndarray, n_areas: int) -> np.ndarray:
    """Eligible-weighted mean of cell values per area (plain mean where nobody is eligible)."""
    weighted = np.bincount(cells.area_index, weights=cells.trials * cell_values, minlength=n_areas)
    total = np.bincount(cells.area_index, weights=cells.trials, minlength=n_areas)
    plain = np.bincount(cells.area_index, weights=cell_values, minlength=n_areas)
    count = np.bincount(cells.area_index, minlength=n_areas)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, weighted / total, plain / count)


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
            cell_pred, ok = _cell_oof(x, cells, folds, seed, max_train_cells, n)
            return cells_to_areas(cells, cell_pred, len(n)), cell_pred, ok
        area_pred, ok = _area_oof(name, x, s, n, folds, seed, max_train_areas)
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

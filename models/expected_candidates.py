"""The candidate models of expected uptake and their out-of-fold predictions.

Fitting maximises a binomial likelihood on counts: each row contributes a "vaccinated"
copy (weight = vaccinated people) and a "not vaccinated" copy (weight = eligible −
vaccinated), exactly as a binomial GLM on grouped data.

Candidates (:func:`models.expected.fit_expected` scores them by out-of-fold binomial
deviance and uses the best):

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
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler

from models.expected_features import CellDesign

#: Area-level candidates tried by default. ``gradient_boosting`` is available on request:
#: on the demo city it scored below the GLMs (OOF deviance explained 0.775 against 0.784
#: for the cell GLM) and its weighted binning made it the slowest by far.
AREA_CANDIDATES = ("logistic", "logistic_spline")
OPTIONAL_CANDIDATES = ("gradient_boosting",)
CELL_CANDIDATE = "cell_logistic"
#: ``(train, test)`` area index arrays of each fold.
Folds = list[tuple[np.ndarray, np.ndarray]]


def area_oof(
    name: str, x: np.ndarray, s: np.ndarray, n: np.ndarray, folds: Folds, seed: int, cap: int
) -> tuple[np.ndarray, bool]:
    """Out-of-fold area predictions of one area-level candidate (or ``overall``).

    Parameters
    ----------
    name
        A name from :data:`AREA_CANDIDATES` / :data:`OPTIONAL_CANDIDATES`, or
        ``overall`` for the training folds' overall rate (the null model).
    x
        ``(n_areas, n_features)`` feature matrix (NaN where unknown).
    s, n
        Vaccinated and eligible per area.
    folds
        Grouped folds over the areas to predict.
    seed
        Seed for subsampling training areas and for boosted trees.
    cap
        Largest number of training areas per fold (a random subset above it).

    Returns
    -------
    prediction, converged
        Expected uptake per area (0 outside the folds' test sets) and whether every
        fit converged.
    """
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


def cell_oof(
    x: np.ndarray, cells: CellDesign, folds: Folds, seed: int, max_cells: int, n_area: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Out-of-fold cell predictions of the cell-level GLM.

    Training cells are materialised only for as many training areas as give about
    ``max_cells`` cells; test cells are predicted from the linear predictor split into
    an area part and a group part, so England-size runs never build a cells × features
    matrix.

    Returns
    -------
    prediction, converged
        Expected uptake per cell (0 outside the folds' test areas) and whether every
        fit converged.
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


def _expand(
    x: np.ndarray, successes: np.ndarray, trials: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success/failure copies of each row with people as weights (zero weights dropped)."""
    weights = np.concatenate([successes, trials - successes])
    labels = np.repeat([1.0, 0.0], len(x))
    keep = weights > 0
    return np.concatenate([x, x])[keep], labels[keep], weights[keep]


def _area_model(name: str, seed: int) -> Pipeline | HistGradientBoostingClassifier:
    """An unfitted estimator for an area-level candidate."""
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
    """The training areas with people, a random ``cap`` of them when there are more."""
    train = train[trials[train] > 0]
    return np.sort(rng.choice(train, size=cap, replace=False)) if len(train) > cap else train


def _cell_matrix(area_x: np.ndarray, cells: CellDesign, rows: np.ndarray) -> np.ndarray:
    """Scaled area features of each cell followed by one-hot group columns."""
    blocks = [area_x[cells.area_index[rows]]]
    for column, code in cells.codes.items():
        blocks.append(np.eye(len(cells.categories[column]))[code[rows]])
    return np.hstack(blocks)

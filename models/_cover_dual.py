"""A near-LP upper bound for 0/1 maximal covering by smoothing the Lagrangian dual.

For 0/1 coverage (each row ``i`` of ``v`` holds one value ``W_i``; see ``_instance``) the
Lagrangian bound of ``_bounds`` reads, with ``u_i = W_i − λ_i ∈ [0, W_i]``,

    L(u) = const + Σ_i (W_i − u_i) + max_{y ∈ P} Σ_j y_j r_j,     r = Aᵀu,

where ``A`` is the 0/1 demand × site incidence and ``P`` the site limits. Its minimum is the
LP bound of Church & ReVelle (1974) (with a budget, at least that: ``_best_subset`` relaxes
the counts and the knapsack separately). ``L`` is piecewise linear, which is why subgradient
steps crawl; here the inner maximum is replaced by its LP dual over the cap multipliers
``θ = (α_g, β_f, γ) ≥ 0`` (groups, families, budget)

    max_{y∈P} rᵀy = min_θ  kᵀα + Kᵀβ + Bγ + Σ_j (r_j − α_g(j) − β_f(j) − γ c_j)⁺,

and ``(·)⁺`` by the softplus ``μ·log(1 + e^{·/μ})`` (Nesterov 2005, "Smooth minimization of
non-smooth functions"). The smooth, box-constrained problem in ``(u, θ)`` is minimised by
projected L-BFGS (Bertsekas 1982 two-metric projection; Nocedal 1980 two-loop recursion)
while ``μ`` shrinks. Only the final certificate matters for validity: it is ``L(u)``
evaluated exactly, an upper bound for every ``u`` in the box whatever the optimiser did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from models._instance import _best_subset, _Model, _Race


@dataclass
class _DualResult:
    bound: float
    multipliers: np.ndarray  # λ_i = W_i − u_i, for reduced-cost fixing
    top_set: np.ndarray  # the Lagrangian subproblem's sites at the best multipliers
    evaluations: int
    converged: bool  # stopped because the bound stalled (close to the LP bound)


class _SmoothedDual:
    """The smoothed dual objective and its gradient over ``x = (u, α, β, γ)``."""

    def __init__(self, model: _Model) -> None:
        limits = model.limits
        self.model = model
        self.n = model.n_rows
        self.weight = model.row_weight
        ones = np.ones(len(model.c_rows))
        self.at = sp.csr_array((ones, model.c_rows, model.c_indptr), shape=(model.n_cols, self.n))
        self.a = sp.csr_array(self.at.T.tocsr())
        self.group = limits.group
        self.family = limits.family[limits.group]
        self.n_group = len(limits.group_cap)
        self.n_family = len(limits.family_cap)
        self.budgeted = limits.budget is not None and limits.cost is not None
        self.cost = limits.cost if self.budgeted else None
        caps = [limits.group_cap.astype(float), limits.family_cap.astype(float)]
        if self.budgeted:
            caps.append(np.array([float(limits.budget or 0.0)]))
        self.caps = np.maximum(np.concatenate(caps), 0.0)
        self.upper = np.concatenate([self.weight, np.full(len(self.caps), np.inf)])
        self.evaluations = 0

    def _shift(self, theta: np.ndarray) -> np.ndarray:
        families = theta[self.n_group : self.n_group + self.n_family]
        shift = theta[: self.n_group][self.group] + families[self.family]
        if self.cost is not None:
            shift = shift + theta[-1] * self.cost
        return shift

    def value_grad(self, x: np.ndarray, mu: float) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        u, theta = x[: self.n], x[self.n :]
        excess = (self.at @ u - self._shift(theta)) / mu
        value = float((self.weight - u).sum() + theta @ self.caps)
        value += mu * float(np.logaddexp(0.0, excess).sum())
        share = expit(excess)
        grad = np.empty_like(x)
        grad[: self.n] = self.a @ share - 1.0
        g_theta = self.caps.copy()
        g_theta[: self.n_group] -= np.bincount(self.group, share, minlength=self.n_group)
        g_theta[self.n_group : self.n_group + self.n_family] -= np.bincount(
            self.family, share, minlength=self.n_family
        )
        if self.cost is not None:
            g_theta[-1] -= _dot(share, self.cost)
        grad[self.n :] = g_theta
        return value, grad

    def exact(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        """``L(u)``, a valid upper bound for any ``u`` in ``[0, W]``, and its site set.

        The set (the sites of largest reduced value ``r_j`` within the limits) is what
        the Lagrangian heuristics of Galvão & ReVelle (1996) start from.
        """
        u = np.clip(u, 0.0, self.weight)
        inner, chosen, share = _best_subset(self.at @ u, self.model.limits)
        value = self.model.constant + float((self.weight - u).sum()) + inner
        return value, chosen[share >= 1.0]


def _smoothed_dual_bound(
    model: _Model,
    *,
    deadline: float,
    start: np.ndarray | None = None,
    race: _Race | None = None,
    stages: tuple[float, ...] = (3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5),
    iterations: int = 60,
    stall_tol: float = 0.0,
) -> _DualResult:
    """Minimise the smoothed dual for shrinking ``μ``; the best exact ``L(u)`` seen.

    ``start`` optionally gives initial ``u`` (default ``W/2``). ``μ`` runs through
    ``stages`` × the ``p``-th largest initial reduced value, ``iterations`` L-BFGS steps
    each (checked every ten), until ``deadline``, until ``race`` is settled or until the
    bound gains less than ``stall_tol`` (relative) over thirty steps; the bound is posted
    to ``race`` as it improves.
    """
    race = race or _Race()
    dual = _SmoothedDual(model)
    u = dual.weight / 2 if start is None else np.clip(start, 0.0, dual.weight)
    reduced = dual.at @ u
    limits = model.limits
    theta = np.zeros(len(dual.caps))
    _, chosen, _ = _best_subset(reduced, limits)
    scale = float(reduced[chosen].min()) if len(chosen) else float(reduced.max(initial=1.0))
    scale = max(scale, 1e-9)
    # Start each family's multiplier at the smallest reduced value it would take.
    if len(chosen):
        fam = limits.family[limits.group[chosen]]
        lowest = np.full(dual.n_family, np.inf)
        np.minimum.at(lowest, fam, reduced[chosen])
        theta[dual.n_group : dual.n_group + dual.n_family] = np.where(
            np.isfinite(lowest), lowest, 0.0
        )
    x = np.concatenate([u, theta])
    first, first_set = dual.exact(u)
    best: list = [first, u.copy(), first_set]
    race.bound = min(race.bound, first)
    recent: list[float] = []
    stalled: list[bool] = []

    def check(point: np.ndarray) -> bool:
        bound, chosen = dual.exact(point[: dual.n])
        if bound < best[0]:
            best[:] = [bound, point[: dual.n].copy(), chosen]
            race.bound = min(race.bound, bound)
        recent.append(best[0])
        # Stalled: under stall_tol (relative) gained over the last three checks.
        if len(recent) > 3 and recent[-4] - recent[-1] <= stall_tol * abs(recent[-1]):
            stalled.append(True)
        return time.perf_counter() > deadline or race.settled() or bool(stalled)

    for factor in stages:
        if time.perf_counter() > deadline or race.settled() or stalled:
            break
        x = _projected_lbfgs(
            dual, x, scale * factor, iterations=iterations, deadline=deadline, check=check
        )
    best_bound, best_u, best_set = best
    converged = bool(stalled)
    return _DualResult(best_bound, dual.weight - best_u, best_set, dual.evaluations, converged)


def _projected_lbfgs(
    dual: _SmoothedDual,
    x: np.ndarray,
    mu: float,
    *,
    iterations: int,
    deadline: float,
    check: Callable[[np.ndarray], bool],
    memory: int = 8,
) -> np.ndarray:
    """Projected L-BFGS on the box ``0 ≤ x ≤ upper`` with Armijo backtracking.

    Variables at a bound whose gradient pushes outward are held (two-metric projection);
    the quasi-Newton direction is computed on the others. Stops at ``deadline``;
    ``check(x)`` is called every ten steps and at the end and returns ``True`` to stop.
    """
    lower, upper = 0.0, dual.upper
    value, grad = dual.value_grad(x, mu)
    steps: list[np.ndarray] = []
    changes: list[np.ndarray] = []
    for step_count in range(1, iterations + 1):
        if time.perf_counter() > deadline:
            break
        held = ((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0))
        direction = -_two_loop(np.where(held, 0.0, grad), steps, changes)
        direction[held] = 0.0
        if _dot(grad, direction) >= 0 or not steps:
            steps.clear()
            changes.clear()
            free_grad = np.where(held, 0.0, grad)
            largest = float(np.abs(free_grad).max(initial=0.0))
            if largest <= 0:
                break
            # First step: move the largest component by about one μ-width.
            direction = -free_grad * (mu / largest)
        step = 1.0
        for _ in range(30):
            trial = np.clip(x + step * direction, lower, upper)
            trial_value, trial_grad = dual.value_grad(trial, mu)
            if trial_value <= value + 1e-4 * _dot(grad, trial - x):
                break
            step *= 0.5
        else:
            break
        s, y = trial - x, trial_grad - grad
        if _dot(s, y) > 1e-12 * np.sqrt(_dot(s, s) * _dot(y, y)):
            steps.append(s)
            changes.append(y)
            if len(steps) > memory:
                steps.pop(0)
                changes.pop(0)
        x, value, grad = trial, trial_value, trial_grad
        if step_count % 10 == 0 and check(x):
            return x
    check(x)
    return x


def _two_loop(grad: np.ndarray, steps: list[np.ndarray], changes: list[np.ndarray]) -> np.ndarray:
    """The L-BFGS product ``H·grad`` (Nocedal 1980)."""
    q = grad.copy()
    if not steps:
        return q
    history = []
    for s, y in zip(reversed(steps), reversed(changes), strict=True):
        rho = 1.0 / _dot(y, s)
        a = rho * _dot(s, q)
        q -= a * y
        history.append((rho, a))
    q *= _dot(steps[-1], changes[-1]) / _dot(changes[-1], changes[-1])
    for (s, y), (rho, a) in zip(zip(steps, changes, strict=True), reversed(history), strict=True):
        q += (a - rho * _dot(y, q)) * s
    return q


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS: OpenBLAS threads spin badly on a loaded 2-core box."""
    return float(np.multiply(a, b).sum())

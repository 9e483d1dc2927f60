"""Interchange (swap) local search for the covering model.

Teitz & Bart (1968) interchange, evaluated for all (in, out) pairs at once. With ``c1_i``
and ``c2_i`` the best and second-best value of row ``i`` over the chosen sites and
``s(i)`` the site giving ``c1_i``, swapping candidate ``j`` in for chosen ``s`` changes the
objective by

    Δ(j, s) = g_j − loss_s + M[j, s],
    g_j     = Σ_i (v_ij − c1_i)⁺                       (gain of adding j),
    loss_s  = Σ_{i: s(i)=s} (c1_i − c2_i)              (loss of dropping s),
    M[j, s] = Σ_{i: s(i)=s} [(v_ij − c2_i)⁺ − (v_ij − c1_i)⁺] ≥ 0.

``M`` is sparse (only rows ``s`` serves that ``j`` also reaches), built with one sort of the
entries of served rows. A pair outside ``M``'s support is worth ``g_j − loss_s``, so for
each ``j`` the cheapest ``s`` to drop is also tried. Improving swaps touching disjoint rows
do not interact, so each round applies as many disjoint ones as it finds — which is what
makes the search fast on large, geographically spread instances.
"""

from __future__ import annotations

import time

import numpy as np

from models._instance import _EPS, _gather, _Model


def _swap_search(
    model: _Model,
    selected: list[int],
    *,
    deadline: float,
    max_rounds: int = 10_000,
) -> tuple[list[int], float, int]:
    """Improve ``selected`` by swaps (and additions where caps allow) until none helps.

    Returns the new selection (order: kept sites first, then swapped-in ones), its value
    and the number of moves made.
    """
    limits = model.limits
    chosen = list(selected)
    moves = 0
    for _ in range(max_rounds):
        if time.perf_counter() > deadline or not chosen:
            break
        sel = np.asarray(chosen, dtype=np.int64)
        c1, c2, best_pos = _top_two(model, sel)
        value = model.constant + float(c1.sum())
        tol = _EPS * max(abs(value), 1.0) * 10
        gains = model.gains(c1)
        in_set = np.zeros(model.n_cols, dtype=bool)
        in_set[sel] = True
        gains[in_set] = 0.0
        counts = np.bincount(limits.group[sel], minlength=len(limits.group_cap))
        spent = 0.0 if limits.cost is None else float(limits.cost[sel].sum())
        addable = limits.can_add(counts, spent) & ~in_set & (gains > tol)
        if addable.any():
            j = int(np.argmax(np.where(addable, gains, -np.inf)))
            chosen.append(j)
            moves += 1
            continue
        served = best_pos >= 0
        loss = np.bincount(best_pos[served], weights=(c1 - c2)[served], minlength=len(sel))
        pairs_j, pairs_s, pair_value = _pair_values(model, sel, c1, c2, best_pos, gains, loss)
        ok = _swap_feasible(model, sel, pairs_j, pairs_s, counts, spent)
        good = ok & (pair_value > tol) & ~in_set[pairs_j]
        if not good.any():
            break
        order = np.argsort(-pair_value[good], kind="stable")
        cand_j, cand_s = pairs_j[good][order], pairs_s[good][order]
        applied = _apply_disjoint(model, chosen, sel, cand_j, cand_s, counts, spent)
        if applied == 0:
            break
        moves += applied
    value = model.value(np.asarray(chosen, dtype=np.int64))
    return chosen, value, moves


def _top_two(model: _Model, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best and second-best row values over ``sel`` and the position in ``sel`` of the best."""
    positions, owner = _gather(model.c_indptr, sel)
    rows = model.c_rows[positions]
    vals = model.c_vals[positions]
    order = np.lexsort((-vals, rows))
    rows, vals, owner = rows[order], vals[order], owner[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    second = np.zeros(len(rows), dtype=bool)
    second[1:] = ~first[1:] & first[:-1]
    c1 = np.zeros(model.n_rows)
    c2 = np.zeros(model.n_rows)
    best_pos = np.full(model.n_rows, -1, dtype=np.int64)
    c1[rows[first]] = vals[first]
    best_pos[rows[first]] = owner[first]
    c2[rows[second]] = vals[second]
    return c1, c2, best_pos


def _pair_values(
    model: _Model,
    sel: np.ndarray,
    c1: np.ndarray,
    c2: np.ndarray,
    best_pos: np.ndarray,
    gains: np.ndarray,
    loss: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (j, position-in-sel) pairs with their exact swap values."""
    n_sel = len(sel)
    served_rows = np.flatnonzero(best_pos >= 0)
    positions, owner = _gather(model.r_indptr, served_rows)
    rows = served_rows[owner]
    vals = model.r_vals[positions]
    term = np.maximum(vals - c2[rows], 0.0) - np.maximum(vals - c1[rows], 0.0)
    useful = term > 0
    keys = model.r_cols[positions][useful] * n_sel + best_pos[rows][useful]
    keys, inverse = np.unique(keys, return_inverse=True)
    overlap = np.bincount(inverse, weights=term[useful])
    # Pairs outside M's support: each candidate with the cheapest site to drop overall
    # and within its own group (the only partner a full group allows).
    candidates = np.flatnonzero(gains > 0)
    cheapest = np.array([int(np.argmin(loss))], dtype=np.int64)
    group_sel = model.limits.group[sel]
    group_best = np.full(len(model.limits.group_cap), -1, dtype=np.int64)
    order = np.lexsort((loss, group_sel))
    first = np.ones(len(order), dtype=bool)
    first[1:] = group_sel[order][1:] != group_sel[order][:-1]
    group_best[group_sel[order][first]] = order[first]
    own = group_best[model.limits.group[candidates]]
    extra_j = np.concatenate([candidates, candidates[own >= 0]])
    extra_s = np.concatenate([np.repeat(cheapest, len(candidates)), own[own >= 0]])
    extra_keys = extra_j * n_sel + extra_s
    all_keys = np.unique(np.concatenate([keys, extra_keys]))
    where = np.searchsorted(keys, all_keys)
    where_clipped = np.minimum(where, max(len(keys) - 1, 0))
    hit = (
        (where < len(keys)) & (keys[where_clipped] == all_keys)
        if len(keys)
        else np.zeros(len(all_keys), dtype=bool)
    )
    m_value = np.where(hit, overlap[where_clipped] if len(keys) else 0.0, 0.0)
    pair_j = all_keys // n_sel
    pair_s = all_keys % n_sel
    value = gains[pair_j] - loss[pair_s] + m_value
    return pair_j, pair_s, value


def _swap_feasible(
    model: _Model,
    sel: np.ndarray,
    pair_j: np.ndarray,
    pair_s: np.ndarray,
    counts: np.ndarray,
    spent: float,
) -> np.ndarray:
    limits = model.limits
    gj = limits.group[pair_j]
    gs = limits.group[sel[pair_s]]
    fam_counts = np.bincount(limits.family, weights=counts, minlength=len(limits.family_cap))
    fj, fs = limits.family[gj], limits.family[gs]
    same_group = gj == gs
    group_room = counts[gj] < limits.group_cap[gj]
    family_room = (fj == fs) | (fam_counts[fj] < limits.family_cap[fj])
    ok = same_group | (group_room & family_room)
    if limits.budget is not None and limits.cost is not None:
        after = spent - limits.cost[sel[pair_s]] + limits.cost[pair_j]
        ok &= after <= limits.budget + _EPS * max(1.0, abs(limits.budget))
    return ok


def _apply_disjoint(
    model: _Model,
    chosen: list[int],
    sel: np.ndarray,
    cand_j: np.ndarray,
    cand_s: np.ndarray,
    counts: np.ndarray,
    spent: float,
) -> int:
    """Apply improving swaps in value order while their rows stay disjoint."""
    limits = model.limits
    touched = np.zeros(model.n_rows, dtype=bool)
    used_j: set[int] = set()
    used_s: set[int] = set()
    counts = counts.copy()
    removed: list[int] = []
    added: list[int] = []
    limit = 4 * len(sel) + 64
    for j, s in zip(cand_j[:limit].tolist(), cand_s[:limit].tolist(), strict=True):
        if j in used_j or s in used_s:
            continue
        site_out = int(sel[s])
        rows_j = model.c_rows[model.c_indptr[j] : model.c_indptr[j + 1]]
        rows_s = model.c_rows[model.c_indptr[site_out] : model.c_indptr[site_out + 1]]
        if touched[rows_j].any() or touched[rows_s].any():
            continue
        if added:
            probe = _swap_feasible(model, sel, np.array([j]), np.array([s]), counts, spent)
            if not probe[0]:
                continue
        touched[rows_j] = True
        touched[rows_s] = True
        used_j.add(j)
        used_s.add(s)
        counts[limits.group[j]] += 1
        counts[limits.group[site_out]] -= 1
        if limits.cost is not None:
            spent += float(limits.cost[j] - limits.cost[site_out])
        removed.append(site_out)
        added.append(j)
    if not added:
        return 0
    drop = set(removed)
    chosen[:] = [c for c in chosen if c not in drop] + added
    return len(added)

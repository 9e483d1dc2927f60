"""Parameters of the gap analysis (:func:`models.gaps.analyse_gaps`) and their validation.

:class:`GapParams` checks every field when it is created and raises one
:class:`geo._errors.ParameterError` listing every problem (pydantic-style ``loc``/``msg``/
``input`` entries), so a request with several bad values is answered once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geo._errors import ParameterError
from models.expected_candidates import AREA_CANDIDATES, CELL_CANDIDATE, OPTIONAL_CANDIDATES
from models.flags import DEFAULT_IMD_QUINTILE_WEIGHTS


@dataclass
class GapParams:
    """Parameters of the gap analysis (validated on creation).

    Attributes
    ----------
    target
        Uptake target, a proportion in (0, 1].
    confidence
        Level of the Wilson interval in ``ci_low``/``ci_high``.
    prob_threshold, min_shortfall
        ``below_target`` needs P(true uptake < target) ≥ ``prob_threshold`` and a
        shortfall of at least ``min_shortfall`` people.
    fdr_alpha
        False discovery rate for ``below_expected`` flags and for Gi* hot spots.
    limit_confidence
        ``below_expected`` needs z below the lower funnel limit at this level (99.8%).
    permutations
        Conditional permutations for Gi* (0 = analytic z only, no clusters).
    imd_quintile_weights, ethnic_group_weights
        Equity multipliers for the priority (see :func:`models.flags.equity_weight`).
    min_cluster_areas
        Smallest number of contiguous hot-spot areas reported as a cluster.
    winsor_fraction
        Winsorising fraction for the overdispersion estimate (Spiegelhalter: 0.1).
    sii_repetitions
        Simulations for the SII/RII confidence intervals (PHE default 100,000).
    model_candidates
        Expected-uptake candidates to try (None = all that apply).
    seed
        Random seed (permutations, model subsampling, SII simulation).

    Raises
    ------
    ParameterError
        On creation, listing every field out of range.
    """

    target: float = 0.8
    confidence: float = 0.95
    prob_threshold: float = 0.95
    min_shortfall: int = 10
    fdr_alpha: float = 0.05
    limit_confidence: float = 0.998
    permutations: int = 9999
    imd_quintile_weights: dict[int, float] = field(
        default_factory=lambda: dict(DEFAULT_IMD_QUINTILE_WEIGHTS)
    )
    ethnic_group_weights: dict[str, float] = field(default_factory=dict)
    min_cluster_areas: int = 2
    winsor_fraction: float = 0.1
    sii_repetitions: int = 100_000
    model_candidates: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        errors: list[dict[str, Any]] = []

        def bad(name: str, msg: str) -> None:
            errors.append({"loc": [name], "msg": msg, "input": getattr(self, name)})

        if not 0 < self.target <= 1:
            bad("target", "target must be a proportion in (0, 1], e.g. 0.8")
        for name in ("confidence", "prob_threshold", "fdr_alpha", "limit_confidence"):
            if not 0 < getattr(self, name) < 1:
                bad(name, f"{name} must be strictly between 0 and 1")
        if self.min_shortfall < 0:
            bad("min_shortfall", "min_shortfall must be 0 or more people")
        if not 0 <= self.permutations <= 99_999:
            bad("permutations", "permutations must be between 0 and 99,999")
        if self.min_cluster_areas < 1:
            bad("min_cluster_areas", "min_cluster_areas must be at least 1")
        if not 0 <= self.winsor_fraction < 0.5:
            bad("winsor_fraction", "winsor_fraction must be in [0, 0.5)")
        if self.sii_repetitions < 1000:
            bad("sii_repetitions", "sii_repetitions must be at least 1,000 (PHE method)")
        if any(
            int(k) not in range(1, 6) or not v > 0 for k, v in self.imd_quintile_weights.items()
        ):
            bad("imd_quintile_weights", "keys must be IMD quintiles 1–5 and multipliers positive")
        if any(not v > 0 for v in self.ethnic_group_weights.values()):
            bad("ethnic_group_weights", "ethnic group multipliers must be positive")
        known = {*AREA_CANDIDATES, *OPTIONAL_CANDIDATES, CELL_CANDIDATE}
        if self.model_candidates is not None and not set(self.model_candidates) <= known:
            bad("model_candidates", f"model_candidates must be among {sorted(known)}")
        if errors:
            raise ParameterError(errors)

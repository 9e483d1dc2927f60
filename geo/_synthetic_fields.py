"""Smooth random surfaces over the plane for the synthetic city.

Every spatially varying quantity of the demo city (population density, deprivation,
ethnic mix, uptake noise) is built from three ingredients evaluated at points in metres
(EPSG:27700):

* :class:`Raster` — a regular grid over the city's extent on which fields are drawn and
  then read back at any point by bilinear interpolation. Drawing on a grid keeps the cost
  independent of how many areas are generated (England-size runs read 180,000 points).
* :meth:`Raster.noise` — Gaussian-filtered white noise, standardised to mean 0 and SD 1:
  a stationary field whose correlation length is the filter's sigma.
* :meth:`Raster.bumps` — sums of isotropic Gaussian bumps ``amp * exp(-d²/2σ²)``, used for
  neighbourhoods (an Asian-majority district, an affluent suburb, a deprived estate).

:class:`Centres` describes the city centre and its satellite towns; ``innerness`` is 1 in
the inner city and falls to 0 in the suburbs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

#: Above this many cells per side the raster is coarsened (memory ~ side² × 8 bytes).
_MAX_SIDE = 1600


@dataclass(frozen=True)
class Raster:
    """A grid over ``bounds = (minx, miny, maxx, maxy)`` in metres."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], *, cell: float = 50.0) -> Raster:
        """A grid covering ``bounds`` with a margin, cells of ``cell`` metres or coarser."""
        minx, miny, maxx, maxy = bounds
        margin = 0.05 * max(maxx - minx, maxy - miny)
        width, height = maxx - minx + 2 * margin, maxy - miny + 2 * margin
        cell = max(cell, max(width, height) / _MAX_SIDE)
        return cls(
            x0=minx - margin,
            y0=miny - margin,
            cell=cell,
            nx=int(np.ceil(width / cell)) + 1,
            ny=int(np.ceil(height / cell)) + 1,
        )

    def sample(self, raster: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of ``raster`` at points ``(x, y)`` in metres."""
        rows = (np.asarray(y) - self.y0) / self.cell
        cols = (np.asarray(x) - self.x0) / self.cell
        return np.asarray(map_coordinates(raster, [rows, cols], order=1, mode="nearest"))

    def noise(self, rng: np.random.Generator, length_m: float) -> np.ndarray:
        """Standardised smooth noise with correlation length ``length_m`` metres."""
        white = rng.standard_normal((self.ny, self.nx))
        smooth = gaussian_filter(white, sigma=max(length_m / self.cell, 0.5), mode="reflect")
        return np.asarray((smooth - smooth.mean()) / smooth.std())

    def bumps(
        self,
        x: np.ndarray,
        y: np.ndarray,
        amplitude: np.ndarray,
        sigma_m: np.ndarray,
    ) -> np.ndarray:
        """Sum of Gaussian bumps ``amplitude * exp(-d² / 2σ²)`` drawn on the grid.

        Each bump is drawn inside a window of ±4σ, so the cost grows with the number of
        bumps, not with the size of the grid.
        """
        field = np.zeros((self.ny, self.nx))
        for bx, by, amp, sigma in zip(x, y, amplitude, sigma_m, strict=True):
            reach = 4.0 * sigma
            c0 = max(int((bx - reach - self.x0) / self.cell), 0)
            c1 = min(int((bx + reach - self.x0) / self.cell) + 2, self.nx)
            r0 = max(int((by - reach - self.y0) / self.cell), 0)
            r1 = min(int((by + reach - self.y0) / self.cell) + 2, self.ny)
            if c0 >= c1 or r0 >= r1:
                continue
            gx = self.x0 + self.cell * np.arange(c0, c1) - bx
            gy = self.y0 + self.cell * np.arange(r0, r1) - by
            # Separable: exp(-(dx²+dy²)/2σ²) = exp(-dx²/2σ²) · exp(-dy²/2σ²).
            field[r0:r1, c0:c1] += amp * np.outer(
                np.exp(-(gy**2) / (2 * sigma**2)), np.exp(-(gx**2) / (2 * sigma**2))
            )
        return field


@dataclass(frozen=True)
class Centres:
    """The main city centre (index 0) and satellite town centres.

    ``scale`` is the e-folding distance (metres) of population density around each
    centre; ``weight`` its relative peak density.
    """

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    weight: np.ndarray

    def density(self, x: np.ndarray, y: np.ndarray, floor: float) -> np.ndarray:
        """Relative population density: exponential decay around every centre plus a
        rural floor."""
        total = np.full(np.shape(x), floor, dtype=float)
        for cx, cy, scale, weight in zip(self.x, self.y, self.scale, self.weight, strict=True):
            total += weight * np.exp(-np.hypot(x - cx, y - cy) / scale)
        return total

    def innerness(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """1 in the inner city (older terraces, higher deprivation), falling to 0 in the
        suburbs; satellite towns have weaker inner areas than the main city."""
        inner = np.zeros(np.shape(x), dtype=float)
        for i, (cx, cy, scale) in enumerate(zip(self.x, self.y, self.scale, strict=True)):
            strength = 1.0 if i == 0 else 0.75
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            inner = np.maximum(inner, strength * np.exp(-d2 / (2.0 * (1.3 * scale) ** 2)))
        return inner


def rank_to_unit(values: np.ndarray) -> np.ndarray:
    """Mid-ranks scaled to (0, 1): ``(rank + 0.5) / n``, ties broken by position."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(len(values), dtype=float)
    return (ranks + 0.5) / max(len(values), 1)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return np.asarray(weights / weights.sum(axis=axis, keepdims=True))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Inverse logit."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)))

"""Getis-Ord Gi* on H3 cells: esda's statistic, permutation pseudo p-values and FDR.

Gi* tests a cell's *neighbourhood* (the cell and its k rings, binary weights) against the
whole study area, so the study area must be where complaints can occur (see
gis.analysis.study_area). The statistic and its analytical z-score come from esda.G_Local
(star=True, transform "B"). The normal approximation is not used for inference: it is liberal
on sparse, skewed counts. Pseudo p-values come from seeded permutations instead, by default
drawing whole random neighbourhoods of the same size from the area (`neighbourhood_pseudo_p`,
vectorised: the reference distribution depends on the size alone). esda's own conditional
draws (`inference="conditional"`) hold the cell's count fixed and permute only its neighbours:
that tests the surroundings, so a cell with 52 complaints amid ordinary cells scored
p = 0.026 while its neighbours with 3 complaints scored 0.0001, a map no reader would sign.
The pseudo p-values are corrected for the number of cells with the Benjamini-Hochberg false
discovery rate, and a cell is labelled hot only when its own count reaches `min_cases`.

Attainable significance: the smallest pseudo p-value is 1 / (permutations + 1), so with m
cells a hot neighbourhood needs about m / ((permutations + 1) * q) cells at that minimum to
pass FDR level q; `min_detectable_cells` reports it for a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import h3
import numpy as np
import pandas as pd

from gis.platform.errors import InvalidInputError

Inference = Literal["total", "conditional"]

# ±3 / ±2 / ±1: FDR-adjusted pseudo p-value at most 0.01 / 0.05 / 0.10.
FDR_LEVELS = (0.01, 0.05, 0.10)
# 9999, not esda's 999: the smallest pseudo p is 1 / (permutations + 1), and with the ~1,300
# res-9 cells of a district FDR 0.10 would need 13 cells at p = 0.001 before any passed.
DEFAULT_PERMUTATIONS = 9999
DEFAULT_SEED = 12345
DEFAULT_MIN_CASES = 3


def ring_neighbours(cells: Sequence[str], *, k: int = 1) -> dict[int, list[int]]:
    """Position -> positions of the other cells of `cells` within `k` rings (no self).

    Examples
    --------
    >>> centre = h3.latlng_to_cell(36.66, 117.0, 9)
    >>> cells = sorted(h3.grid_disk(centre, 1))
    >>> len(ring_neighbours(cells)[cells.index(centre)])
    6
    """
    if k < 1:
        raise InvalidInputError(f"k must be at least 1 ring, not {k!r}")
    position = {cell: i for i, cell in enumerate(cells)}
    return {i: [position[o] for o in h3.grid_disk(cell, k) if o != cell and o in position]
            for i, cell in enumerate(cells)}


def gi_star(values: pd.Series, *, k: int = 1, permutations: int = DEFAULT_PERMUTATIONS,
            seed: int = DEFAULT_SEED, inference: Inference = "total") -> pd.DataFrame:
    """Gi* of every cell of `values` (cell -> count, zeros included) and its pseudo p-value.

    The statistic and its analytical z-score (the effect size) come from esda.G_Local
    (star=True, binary weights). ``p_sim`` is a folded pseudo p-value from `permutations`
    random neighbourhoods: with ``inference="total"`` each is a random set of as many cells as
    the neighbourhood holds, drawn from the whole area (the null "complaints fall on cells at
    random", `neighbourhood_pseudo_p`); with ``"conditional"`` it is esda's p_sim, which holds
    the cell's own count fixed and permutes only its neighbours, so it tests the surroundings
    of a cell rather than the cell with them. Cells without a neighbour inside the area, and a
    field with no variation, get z 0 and p_sim 1: nothing is tested.

    Examples
    --------
    >>> centre = h3.latlng_to_cell(36.66, 117.0, 9)
    >>> area = pd.Series(0.0, index=sorted(h3.grid_disk(centre, 4)))
    >>> area[centre] = 30.0
    >>> gi = gi_star(area)
    >>> round(float(gi.loc[centre, "z"]), 2), float(gi.loc[centre, "p_sim"])  # 7 of 61 cells
    (2.78, 0.1123)
    """
    if not 19 <= permutations <= 99_999:
        raise InvalidInputError(f"permutations must be 19 to 99999, not {permutations!r}")
    if inference not in ("total", "conditional"):
        raise InvalidInputError(f"unknown inference {inference!r}; expected total or "
                                "conditional")
    cells = list(values.index)
    n = len(cells)
    if n < 3:
        raise InvalidInputError(f"Gi* needs at least 3 cells in the study area, not {n}")
    neighbours = ring_neighbours(cells, k=k)
    cardinality = np.array([len(neighbours[i]) for i in range(n)])
    x = values.to_numpy(dtype=float)
    out = pd.DataFrame({"z": 0.0, "p_sim": 1.0, "neighbours": cardinality + 1},
                       index=values.index)
    if np.ptp(x) == 0:
        return out
    # Imported here: libpysal and esda take about a second to import, most commands never
    # need them.
    import esda
    from libpysal.weights import W

    conditional = inference == "conditional"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands and disconnected parts are expected here
        weights = W(neighbours, silence_warnings=True)
        # n_jobs=1: joblib workers would fight the web server for the two cores.
        local = esda.G_Local(x, weights, transform="B", star=True,
                             permutations=permutations if conditional else 0,
                             seed=seed, keep_simulations=False, n_jobs=1)
    tested = cardinality > 0
    out.loc[tested, "z"] = np.asarray(local.Zs, dtype=float)[tested]
    if conditional:
        # esda keeps p_sim in float32; (draws as extreme + 1) / (permutations + 1) exactly:
        extreme = np.rint(np.asarray(local.p_sim, dtype=float) * (permutations + 1))
        p = extreme / (permutations + 1)
    else:
        sums = np.array([x[[i, *neighbours[i]]].sum() for i in range(n)])
        p = neighbourhood_pseudo_p(x, sums, cardinality + 1, permutations=permutations,
                                   seed=seed)
    out.loc[tested, "p_sim"] = p[tested]
    return out


def neighbourhood_pseudo_p(x: np.ndarray, sums: np.ndarray, sizes: np.ndarray, *,
                           permutations: int, seed: int) -> np.ndarray:
    """Folded pseudo p-value of each neighbourhood sum against random sets of its size.

    Under the null every set of `sizes[i]` cells is equally likely to be the neighbourhood,
    so the reference distribution depends on the size alone: one draw of `permutations`
    random sets (without replacement) per size serves every cell of that size. As in esda,
    p = (draws at least as extreme in the observed direction + 1) / (permutations + 1).

    Examples
    --------
    >>> x = np.r_[np.zeros(99), 10.0]
    >>> neighbourhood_pseudo_p(x, np.array([10.0, 0.0]), np.array([1, 1]),
    ...                        permutations=999, seed=1).round(3).tolist()
    [0.011, 0.99]
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    p = np.ones(len(sums))
    for size in np.unique(sizes):
        draws = rng.integers(0, n, size=(permutations, size))
        # Redraw sets that picked a cell twice: what stays is uniform over sets of `size`.
        while True:
            ordered = np.sort(draws, axis=1)
            twice = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if not twice.any():
                break
            draws[twice] = rng.integers(0, n, size=(int(twice.sum()), size))
        reference = np.sort(x[draws].sum(axis=1))
        mine = sizes == size
        # Tiny tolerance: sums of the same counts in another order may differ in the last bit.
        larger = permutations - np.searchsorted(reference, sums[mine] - 1e-9, side="left")
        smaller = np.searchsorted(reference, sums[mine] + 1e-9, side="right")
        p[mine] = (np.minimum(larger, smaller) + 1) / (permutations + 1)
    return p


def fdr_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (monotone, capped at 1).

    Examples
    --------
    >>> fdr_adjust(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p, dtype=float)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(n)
    out[order] = adjusted
    return out


def classify_hotspots(values: pd.Series, *, k: int = 1,
                      permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                      counts: pd.Series | None = None,
                      min_cases: int = DEFAULT_MIN_CASES,
                      inference: Inference = "total") -> pd.DataFrame:
    """Gi* with FDR-adjusted pseudo p-values, neighbourhood bins and the labelled class.

    ``gi_bin`` is the neighbourhood's significance (+3 hot at FDR 0.01 ... -3 cold);
    ``hot_class`` is what a map may say about the cell: a hot bin only when the cell itself
    has at least `min_cases` complaints (`counts`, default `values`), else 0.

    Examples
    --------
    >>> centre = h3.latlng_to_cell(36.66, 117.0, 9)
    >>> area = pd.Series(1.0, index=sorted(h3.grid_disk(centre, 8)))
    >>> area[list(h3.grid_disk(centre, 1))] = 25.0
    >>> int(classify_hotspots(area).loc[centre, "hot_class"])
    3
    """
    if min_cases < 1:
        raise InvalidInputError(f"min_cases must be at least 1, not {min_cases!r}")
    gi = gi_star(values, k=k, permutations=permutations, seed=seed, inference=inference)
    gi["p_fdr"] = fdr_adjust(gi["p_sim"].to_numpy())
    q = gi["p_fdr"].to_numpy()
    level = np.select([q <= FDR_LEVELS[0], q <= FDR_LEVELS[1], q <= FDR_LEVELS[2]],
                      [3, 2, 1], default=0)
    gi["gi_bin"] = (np.sign(gi["z"].to_numpy()) * level).astype(int)
    own = (counts if counts is not None else values).reindex(gi.index).fillna(0).to_numpy()
    under = (gi["gi_bin"].to_numpy() > 0) & (own < min_cases)
    gi["hot_class"] = np.where(under, 0, gi["gi_bin"]).astype(int)
    return gi


def min_detectable_cells(cells: int, *, permutations: int, q: float = FDR_LEVELS[2]) -> int:
    """Cells at the smallest pseudo p-value needed for any of them to pass FDR level `q`.

    Examples
    --------
    >>> min_detectable_cells(1320, permutations=999), min_detectable_cells(1320, permutations=9999)
    (14, 2)
    """
    return int(np.ceil(cells / ((permutations + 1) * q) - 1e-9))

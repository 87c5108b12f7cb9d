"""Text columns of a batch as codes into their distinct values: the work per value, not per row.

Hotline exports repeat their texts (a handful of coordinate systems and categories, times to
the minute) and a column the export lacks is one value for every row. Factorising a column
once and mapping, testing and parsing its distinct values, then taking the rows by code,
replaces a million-row string operation (and a re-factorisation per check) with one `take`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


class CodedTexts:
    """One value per row, held as `values[codes]`."""

    def __init__(self, codes: np.ndarray, values: np.ndarray, index: pd.Index) -> None:
        self.codes, self.values, self.index = codes, values, index

    @classmethod
    def of(cls, column: pd.Series) -> CodedTexts:
        """The column factorised (missing values kept as a value of their own)."""
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        return cls(codes, np.asarray(uniques, dtype=object), column.index)

    @classmethod
    def constant(cls, value: Any, index: pd.Index) -> CodedTexts:
        """The same value in every row, without a row-sized array of it."""
        return cls(np.zeros(len(index), dtype=np.intp), np.array([value], dtype=object), index)

    def map(self, fn: Callable[[pd.Series], pd.Series]) -> CodedTexts:
        """`fn` applied to each distinct value once; the rows keep their codes."""
        return CodedTexts(self.codes, fn(pd.Series(self.values, dtype=object)).to_numpy(),
                          self.index)

    def test(self, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray:
        """A boolean per row: `fn` (a test) of each distinct value, taken by code."""
        return np.asarray(fn(pd.Series(self.values, dtype=object)).to_numpy(dtype=bool),
                          dtype=bool)[self.codes]

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The values of some rows (a mask or positions)."""
        return self.values[self.codes[rows]]

    def series(self) -> pd.Series:
        """Every row's value as a Series on the frame's index."""
        return pd.Series(self.values[self.codes], index=self.index, dtype=self.values.dtype)

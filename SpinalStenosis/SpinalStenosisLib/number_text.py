"""Numbers as the outputs and messages write them: never rounded onto or across the bound they are compared with."""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence

OUTPUT_DECIMALS = 4  # the decimals the CSV and JSON outputs write, and the most a message gives a number


def json_number(value: float) -> float | None:
    """A measured value as the JSON outputs write it: to OUTPUT_DECIMALS, null (None) where it is NaN (not found)."""
    return None if math.isnan(value) else round(float(value), OUTPUT_DECIMALS)


def number_text(value: float, digits: int, style: str = "f", bounds: Iterable[float] = (),
                side: Callable[[float, float], bool] = operator.lt) -> str:
    """value to `digits` decimals (style "f") or significant digits ("g"), or to as many more (up to OUTPUT_DECIMALS)
    as keep it on its side of each bound, where side(value, bound) tells the side: 9.98 graded below 10 reads "9.98",
    not "10.0"; an area of 400.3 mm² warned of as over 400 (side operator.gt) reads "400.3", not "400"."""
    bounds = tuple(bounds)
    text = f"{value:.{digits}{style}}"
    while digits < OUTPUT_DECIMALS and any(side(value, bound) != side(float(text), bound) for bound in bounds):
        digits += 1
        text = f"{value:.{digits}{style}}"
    return text


def sides_text(sides_mm: Sequence[float], bounds: Iterable[float] = (),
               side: Callable[[float, float], bool] = operator.lt, style: str = "f") -> str:
    """A slice's two sides (its pixel's or its field of view's, mm) as the messages give them: to two decimals
    ("0.70 × 0.70"), or with style "g" to two significant digits ("22 × 22"; a header in metres gives "0.0007"), each
    side kept on its side of the bounds a message compares it with (number_text)."""
    return " × ".join(number_text(size, 2, style, bounds=bounds, side=side) for size in sides_mm)

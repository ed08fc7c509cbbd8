"""Vertebral levels as a user names them, in one line: slices "4=L4-L5", ranges of slices "0-2=L3-L4", or the
blocks of a DICOM series "block-2=L4-L5" (nothing in an axial image gives the level)."""
from __future__ import annotations

import re

BLOCK_NAME = re.compile(r"block-[1-9]\d*")  # outputs.block_folder's names
ITEM_SEPARATORS = re.compile(r"[,;]")
RANGE_DASHES = str.maketrans("\u2013\u2014\u2212", "---")  # en dash, em dash, minus sign: as typed or pasted


def parse_levels(text: str) -> dict[int | str, str]:
    """"4=L4-L5,8=L5-S1", "0-2=L3-L4,3-5=L4-L5" or "block-1=L3-L4,block-2=L4-L5" (items separated by commas or
    semicolons; a range's dash may be an en dash): slice index (or block folder name) → vertebral level; a
    ValueError naming the item that is none of these, or a slice or block named twice."""
    levels: dict[int | str, str] = {}
    for item in filter(str.strip, ITEM_SEPARATORS.split(text)):  # a comma too many names nothing
        named, _, level = (part.strip() for part in item.partition("="))
        named = named.translate(RANGE_DASHES)
        if "=" in level:
            raise ValueError(f"{item.strip()!r} names more than one level: separate the items with commas")
        if BLOCK_NAME.fullmatch(named) and level:
            if named in levels:
                raise ValueError(f"{named} is named twice")
            levels[named] = level
            continue
        first, dash, last = named.partition("-")
        last = last if dash else first
        if not (first.isdigit() and last.isdigit() and int(first) <= int(last) and level):
            raise ValueError(f"{item.strip()!r} is not SLICE=LEVEL, FIRST-LAST=LEVEL or block-K=LEVEL (e.g. 4=L4-L5, "
                             "3-5=L4-L5, block-2=L4-L5)")
        for index in range(int(first), int(last) + 1):
            if index in levels:
                raise ValueError(f"slice {index} is named twice")
            levels[index] = level
    return levels

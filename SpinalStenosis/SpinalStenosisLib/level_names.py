"""Vertebral levels as a user names them, in one line: slices "4=L4-L5", ranges of slices "0-2=L3-L4", the
blocks of a DICOM series "block-2=L4-L5", or a DICOM series' images as a viewer numbers them "image 12-16=L4-L5"
(nothing in an axial image gives the level)."""
from __future__ import annotations

import re
from typing import Mapping, NamedTuple, Sequence

BLOCK_NAME = re.compile(r"block-[1-9]\d*")  # outputs.block_folder's names
IMAGE_NAME = re.compile(r"images?\s*(\d+)(?:\s*-\s*(\d+))?", re.IGNORECASE)  # "image 12", "images 12-16"
ITEM_SEPARATORS = re.compile(r"[,;]")
RANGE_DASHES = str.maketrans("\u2013\u2014\u2212", "---")  # en dash, em dash, minus sign: as typed or pasted
# the vertebrae a level names: "L4-L5", "L4-5", "C5/6", "Th12/L1", "L5S1"
VERTEBRAE = re.compile(r"(?<![a-z])(C|TH?|L|S)(\d+)(?:\s*[-/]\s*(\d+)\b)?", re.IGNORECASE)
# the numbers a spine's vertebrae have, by letter: C0 is the occiput (C0-C1), T13 and L6 a transitional spine's
VERTEBRA_NUMBERS = {"C": range(0, 8), "T": range(1, 14), "TH": range(1, 14), "L": range(1, 7), "S": range(1, 6)}


class NamedImage(NamedTuple):
    """A DICOM image as a level names it: by the number a viewer shows it with (SliceMeasurement.image_number)."""
    number: int


def vertebrae_no_spine_has(level: str) -> list[str]:
    """The vertebrae a level names that no spine has (VERTEBRA_NUMBERS), e.g. "L9" and "L10" of "L9-L10"."""
    return [f"{match[1]}{number}" for match in VERTEBRAE.finditer(level) for number in filter(None, match.group(2, 3))
            if int(number) not in VERTEBRA_NUMBERS[match[1].upper()]]


def names_a_disc(level: str) -> bool:
    """Whether a level names the disc between two vertebrae above the sacrum ("L4-L5", "C5/6", "L5S1"), at which an
    axial slice cuts the two neural foramina, not one vertebra ("L4")."""
    matches = list(VERTEBRAE.finditer(level))
    return sum(1 + bool(match[3]) for match in matches) == 2 and matches[0][1].upper() != "S"


def parse_levels(text: str) -> dict[int | str | NamedImage, str]:
    """"4=L4-L5,8=L5-S1", "0-2=L3-L4,3-5=L4-L5", "block-1=L3-L4,block-2=L4-L5" or "image 12-16=L4-L5" (items
    separated by commas or semicolons; a range's dash may be an en dash): slice index (block folder name, NamedImage)
    → vertebral level; a ValueError naming the item that is none of these, names a vertebra no spine has, or names a
    slice, block or image twice."""
    levels: dict[int | str | NamedImage, str] = {}
    for item in filter(str.strip, ITEM_SEPARATORS.split(text)):  # a comma too many names nothing
        named, _, level = (part.strip() for part in item.partition("="))
        named = named.translate(RANGE_DASHES)
        if "=" in level:
            raise ValueError(f"{item.strip()!r} names more than one level: separate the items with commas")
        if wrong := vertebrae_no_spine_has(level):
            raise ValueError(f"{item.strip()!r} names {' and '.join(wrong)}, which no spine has (C1-C7, T1-T12, "
                             "L1-L5, S1-S5; C0 the occiput; T13 or L6 in a transitional spine)")
        if BLOCK_NAME.fullmatch(named) and level:
            if named in levels:
                raise ValueError(f"{named} is named twice")
            levels[named] = level
            continue
        if (image := IMAGE_NAME.fullmatch(named)) and level and int(image[1]) <= int(image[2] or image[1]):
            for number in range(int(image[1]), int(image[2] or image[1]) + 1):
                if NamedImage(number) in levels:
                    raise ValueError(f"image {number} is named twice")
                levels[NamedImage(number)] = level
            continue
        first, dash, last = named.partition("-")
        last = last if dash else first
        if not (first.isdigit() and last.isdigit() and int(first) <= int(last) and level):
            raise ValueError(f"{item.strip()!r} is not SLICE=LEVEL, FIRST-LAST=LEVEL, block-K=LEVEL or image "
                             "FIRST-LAST=LEVEL (e.g. 4=L4-L5, 3-5=L4-L5, block-2=L4-L5, image 12-16=L4-L5)")
        for index in range(int(first), int(last) + 1):
            if index in levels:
                raise ValueError(f"slice {index} is named twice")
            levels[index] = level
    return levels


def levels_of_images(levels: Mapping[int | str | NamedImage, str], image_numbers: Sequence[Sequence[str]]
                     ) -> list[dict[int, str]] | None:
    """Levels that name images (NamedImage) as levels by slice index of each stack, whose slices' image numbers
    (AxialVolume.image_numbers, one list per stack) are given; None where no level names an image. A ValueError
    where levels also name slices or blocks, or name an image none of the stacks' slices is."""
    named = {key.number: level for key, level in levels.items() if isinstance(key, NamedImage)}
    if not named:
        return None
    if len(named) < len(levels):
        raise ValueError("levels name images and slices or blocks: name them all by image (e.g. image 12-16=L4-L5), "
                         "or none")
    where = {int(number): (stack, s) for stack, numbers in enumerate(image_numbers)
             for s, number in enumerate(numbers) if number.isdigit()}
    if not where:
        raise ValueError("levels name images, but the slices are not numbered as the images of a DICOM series (a "
                         "file a slice, or one multi-frame file): name them by slice index (e.g. 3-5=L4-L5)")
    unknown = sorted(number for number in named if number not in where)
    if unknown:
        raise ValueError(f"levels name image {', '.join(map(str, unknown))}, but the slices are images "
                         f"{min(where)} to {max(where)}")
    by_stack: list[dict[int, str]] = [{} for _ in image_numbers]
    for number, level in named.items():
        stack, s = where[number]
        by_stack[stack][s] = level
    return by_stack

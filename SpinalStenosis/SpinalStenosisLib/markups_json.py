"""Slicer markups JSON (``.mrk.json``) for ruler lines, written without Slicer."""
from __future__ import annotations

import numpy as np

from .geometry import ras_to_lps
from .measurement import RULER_TITLES, Ruler

SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
          "markups-schema-v1.0.3.json#")
RULER_COLOURS = {"canal_ap_mm": [1.0, 0.85, 0.1], "canal_transverse_mm": [1.0, 0.55, 0.1],
                 "left_foramen_width_mm": [0.2, 0.8, 1.0], "right_foramen_width_mm": [0.3, 1.0, 0.4]}


def ruler_name(measurement: str, slice_index: int) -> str:
    """Human name of a ruler, e.g. ``Canal AP slice 7``."""
    return f"{RULER_TITLES[measurement]} slice {slice_index}"


def line_markup(name: str, ruler: Ruler, measurement: str) -> dict:
    """One Line markup in LPS (the coordinate system Slicer writes to files)."""
    points = ras_to_lps(np.stack([ruler.start_ras, ruler.end_ras]))
    control_points = [{
        "id": str(n + 1), "label": f"{name}-{n + 1}", "description": "", "associatedNodeID": "",
        "position": [float(v) for v in point], "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
        "selected": True, "locked": False, "visibility": True, "positionStatus": "defined",
    } for n, point in enumerate(points)]
    return {
        "type": "Line", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
        "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": 2,
        "name": name, "controlPoints": control_points,
        "measurements": [{"name": "length", "enabled": True, "value": ruler.length_mm, "units": "mm",
                          "printFormat": "%-#4.4g%s"}],
        "display": {"visibility": True, "opacity": 1.0, "color": RULER_COLOURS[measurement],
                    "selectedColor": RULER_COLOURS[measurement], "propertiesLabelVisibility": True,
                    "pointLabelsVisibility": False, "textScale": 3.0, "glyphScale": 1.0, "lineThickness": 0.2},
    }


def markups_document(lines: list[dict]) -> dict:
    return {"@schema": SCHEMA, "markups": lines}

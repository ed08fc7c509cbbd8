"""Procedural axial spine anatomy: random parameters → a tissue label map painted on any grid.

Coordinates are millimetres in a patient frame with the thecal-sac centre at the origin: x towards the patient's
RIGHT, y ANTERIOR (RAS in the slice plane). Shapes are painted in order; later shapes cover earlier ones, so
compressing structures (disc herniation, facets, ligamentum flavum) are painted after the sac they indent. The
foramina are painted last, with their anterior (disc/body) and posterior (articular process) walls, so each is one
channel whose narrowest gap is set by its own parameters (foraminal stenosis narrows or closes it).
Ranges come from ../shared/design/axial-spine-anatomy.md (cited there).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

TISSUES = ("air", "skin", "subcutaneous_fat", "psoas", "quadratus_lumborum", "erector_spinae", "multifidus",
           "intermuscular_fat", "viscera", "vessel", "cortical_bone", "marrow", "annulus", "nucleus", "endplate",
           "posterior_longitudinal_ligament", "epidural_fat", "epidural_vein", "dura", "csf", "cauda_equina_roots",
           "spinal_cord", "ligamentum_flavum", "facet_joint_fluid", "left_foraminal_fat", "left_exiting_root",
           "right_foraminal_fat", "right_exiting_root", "gas", "neck_muscle", "vertebral_artery", "csf_flow_void",
           "kidney", "abdominal_fluid")
T = {name: value for value, name in enumerate(TISSUES)}
CANAL_TISSUES = (T["dura"], T["csf"], T["cauda_equina_roots"], T["spinal_cord"], T["csf_flow_void"])
LEFT_FORAMEN_TISSUES = (T["left_foraminal_fat"], T["left_exiting_root"])
RIGHT_FORAMEN_TISSUES = (T["right_foraminal_fat"], T["right_exiting_root"])
LUMBAR_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
STENOSIS_GRADES = ("none", "mild", "moderate", "severe")
STENOSIS_SEVERITY = {"none": 0.0, "mild": 0.3, "moderate": 0.6, "severe": 1.0}
# share of the lumbar sac's area lost at each stenosis grade, on disc slices (less above and below the disc, where
# the bony canal spares the sac): LSS patients' dural sac is 80 ± 35 mm² at L4-L5 against 152 ± 54 mm² in controls
SAC_AREA_LOSS = {"mild": (0.1, 0.33), "moderate": (0.33, 0.6), "severe": (0.6, 0.8)}
MIN_SAC_AP_MM, MIN_SAC_WIDTH_MM = 3.0, 6.0
CERVICAL_LEVELS = ("C3-C4", "C4-C5", "C5-C6", "C6-C7")
SLICE_KINDS = ("disc", "pedicle", "mid-body")
CERVICAL_KINDS = ("disc", "mid-body")  # cervical foramina open at the disc level only
# what lies in front of and beside the cervical spine, as _neck draws it (mm): the oesophagus-trachea pair in front of
# the vertebral body (the oesophagus 6 mm behind that point, the airway's centre AIRWAY_OFFSET_MM in front of it) and
# the airway's half-axes (across, front to back); the jugular veins' centres from the midline and their half-axes;
# and the least muscle between the farthest of them and the subcutaneous fat (the strap muscles)
TRACHEA_OFFSET_MM = (10.0, 20.0)
AIRWAY_OFFSET_MM = 5.0
TRACHEA_HALF_AXES_MM = ((7.0, 10.0), (6.0, 9.0))
JUGULAR_OFFSET_MM = (24.0, 36.0)
JUGULAR_HALF_AXES_MM = ((4.0, 8.0), (3.0, 6.0))
NECK_MUSCLE_MARGIN_MM = 3.0
SKIN_MM = 1.5  # the skin's thickness, inside every body outline

class Shape:
    """An inside-test ``f(x, y) -> bool array`` with a bounding box ``(x0, x1, y0, y1)`` in mm."""

    def __init__(self, inside: Callable[[np.ndarray, np.ndarray], np.ndarray], bbox: tuple[float, ...]):
        self.inside, self.bbox = inside, bbox

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.inside(x, y)


def ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> Shape:
    c, s = np.cos(angle), np.sin(angle)

    def inside(x, y):
        u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
        return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0

    r = max(ax, ay)
    return Shape(inside, (cx - r, cx + r, cy - r, cy + r))


def superellipse(cx: float, cy: float, ax: float, ay: float, power: float) -> Shape:
    """``|u|^p + |v|^p <= 1`` for a whole power p (2, 3 or 4: multiplications are much faster than pow)."""
    power = int(power)

    def inside(x, y):
        u, v = np.abs((x - cx) / ax), np.abs((y - cy) / ay)
        return u ** power + v ** power <= 1.0

    return Shape(inside, (cx - ax, cx + ax, cy - ay, cy + ay))


def blob(cx: float, cy: float, ax: float, ay: float, harmonics: list[tuple[int, float, float]]) -> Shape:
    """Ellipse whose normalised radius is modulated by ``1 + sum(a * cos(k * theta + phase))``."""

    def inside(x, y):
        u, v = (x - cx) / ax, (y - cy) / ay
        theta = np.arctan2(v, u)
        limit = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in harmonics)
        return u * u + v * v <= limit * limit

    grow_factor = 1.0 + sum(abs(a) for _, a, _ in harmonics)
    return Shape(inside, (cx - ax * grow_factor, cx + ax * grow_factor, cy - ay * grow_factor, cy + ay * grow_factor))


def capsule(p0: tuple[float, float], p1: tuple[float, float], half_width: float) -> Shape:
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    length2 = max(float(d @ d), 1e-9)

    def inside(x, y):
        t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / length2, 0.0, 1.0)
        return (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 <= half_width ** 2

    return Shape(inside, (min(p0[0], p1[0]) - half_width, max(p0[0], p1[0]) + half_width,
                          min(p0[1], p1[1]) - half_width, max(p0[1], p1[1]) + half_width))


def grow(shape_fn: Callable[..., Shape], margin: float, *args) -> Shape:
    """An ellipse-like shape enlarged by ``margin`` mm on its radii (args: cx, cy, ax, ay, ...)."""
    cx, cy, ax, ay, *rest = args
    return shape_fn(cx, cy, ax + margin, ay + margin, *rest)


class _Windows:
    """Finds the index rectangle of a (possibly rotated, deformed) sample grid that can meet a bounding box."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.rows = (x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1))
        self.columns = (x.min(axis=0), x.max(axis=0), y.min(axis=0), y.max(axis=0))

    @staticmethod
    def _range(extents, bbox) -> tuple[int, int] | None:
        x_min, x_max, y_min, y_max = extents
        hit = np.flatnonzero((x_max >= bbox[0]) & (x_min <= bbox[1]) & (y_max >= bbox[2]) & (y_min <= bbox[3]))
        return None if len(hit) == 0 else (int(hit[0]), int(hit[-1]) + 1)

    def window(self, bbox) -> tuple[slice, slice] | None:
        rows, columns = self._range(self.rows, bbox), self._range(self.columns, bbox)
        if rows is None or columns is None:
            return None
        return slice(*rows), slice(*columns)


@dataclass
class Channel:
    """A neural foramen: a channel along ``direction`` from ``start`` with an hourglass half-width profile."""

    side: int  # +1 patient right, -1 patient left
    start: np.ndarray
    direction: np.ndarray
    length: float
    narrowest_half_width: float
    narrowest_at: float  # fraction of the length
    flare: float  # extra half-width at the ends, mm
    root_at: float
    root_radius: float
    anterior_wall: int
    posterior_wall: int
    wall_thickness: float = 6.0

    def _frame(self, x, y):
        normal = np.array([-self.direction[1], self.direction[0]])
        if normal[1] < 0:  # normal points anterior
            normal = -normal
        dx, dy = x - self.start[0], y - self.start[1]
        return dx * self.direction[0] + dy * self.direction[1], dx * normal[0] + dy * normal[1]

    def half_width(self, t):
        rel = (t / self.length - self.narrowest_at) / max(self.narrowest_at, 1 - self.narrowest_at)
        return self.narrowest_half_width + self.flare * rel ** 2

    @property
    def bbox(self) -> tuple[float, ...]:
        reach = self.narrowest_half_width + self.flare + self.wall_thickness + 1.0
        end = self.start + self.direction * (self.length + 1.0)
        return (min(self.start[0], end[0]) - reach, max(self.start[0], end[0]) + reach,
                min(self.start[1], end[1]) - reach, max(self.start[1], end[1]) + reach)

    def paint(self, labels, x, y) -> None:
        t, n = self._frame(x, y)
        h = self.half_width(t)
        along = (t >= 0.5) & (t <= self.length + 1.0)  # no wall medial to the start: it would cut the sac
        labels[along & (n > h) & (n <= h + self.wall_thickness)] = self.anterior_wall
        labels[along & (n < -h) & (n >= -h - self.wall_thickness)] = self.posterior_wall
        if self.narrowest_half_width <= 0:
            return
        fat, root = ((T["right_foraminal_fat"], T["right_exiting_root"]) if self.side > 0
                     else (T["left_foraminal_fat"], T["left_exiting_root"]))
        channel = (t >= 0) & (t <= self.length) & (np.abs(n) <= h)
        labels[channel] = fat
        root_t = self.root_at * self.length
        root_r = min(self.root_radius, 0.8 * float(self.half_width(root_t)))
        labels[channel & ((t - root_t) ** 2 + n ** 2 <= root_r ** 2)] = root


@dataclass
class Anatomy:
    region: str
    level: str
    kind: str
    paints: list[tuple[int, Shape]] = field(default_factory=list)
    channels: dict[str, Channel] = field(default_factory=dict)
    late_paints: list[tuple[int, Shape]] = field(default_factory=list)  # after the sac: what compresses it
    extent_mm: float = 200.0  # half-size of the body outline, for picking fields of view
    stenosis: str = "none"  # the central stenosis grade drawn: none, mild, moderate or severe

    def add(self, tissue: str, shape: Shape, late: bool = False) -> None:
        (self.late_paints if late else self.paints).append((T[tissue], shape))

    def paint(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Tissue labels at the sample points ``(x, y)`` (2-D arrays, mm)."""
        labels = np.zeros(x.shape, np.uint8)
        windows = _Windows(x, y)
        for tissue, shape in self.paints + self.late_paints:
            _paint_shape(labels, x, y, windows.window(shape.bbox), tissue, shape)
        for channel in self.channels.values():  # last: each foramen stays one clean channel between its walls
            window = windows.window(channel.bbox)
            if window is not None:
                channel.paint(labels[window], x[window], y[window])
        return labels


def _paint_shape(labels, x, y, window, tissue: int, shape: Shape) -> None:
    if window is not None:
        labels[window][shape(x[window], y[window])] = tissue


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def sample_anatomy(rng: np.random.Generator, region: str = "lumbar", level: str | None = None,
                   kind: str | None = None, patient: np.random.Generator | None = None) -> Anatomy:
    """A random slice's anatomy. patient: the generator of what one patient's slices share (body outline, muscles,
    bony canal and vertebral size), in the same state for each slice of a series. Without it those draws come from
    rng, in the same order as always, so single slices do not change."""
    if region == "cervical":
        return _cervical(rng, level or str(rng.choice(CERVICAL_LEVELS)), kind or str(rng.choice(
            CERVICAL_KINDS, p=[0.7, 0.3])), patient or rng)
    level = level or str(rng.choice(LUMBAR_LEVELS))
    kind = kind or str(rng.choice(SLICE_KINDS, p=[0.6, 0.2, 0.2]))
    return _lumbar(rng, level, kind, patient or rng)


def behind_sac_on_midline(anatomy: Anatomy, step_mm: float = 0.05,
                          reach_mm: float = 30.0) -> tuple[str, float] | None:
    """(the tissue directly behind the sac on the midline, the mm of epidural fat there); None without a sac at the
    origin."""
    y = np.arange(0.0, -reach_mm, -step_mm)[:, None]
    labels = anatomy.paint(np.zeros_like(y), y)[:, 0]
    outside = ~np.isin(labels, CANAL_TISSUES)
    if outside[0] or not outside.any():
        return None
    end = int(np.argmax(outside))
    not_fat = np.flatnonzero(labels[end:] != T["epidural_fat"])
    fat_samples = int(not_fat[0]) if not_fat.size else labels.size - end
    return TISSUES[labels[end]], fat_samples * step_mm


def sac_area_mm2(anatomy: Anatomy, step_mm: float = 0.1, reach_mm: float = 30.0) -> float:
    """The area of the sac (centred at the origin) on a step_mm grid reaching reach_mm around it."""
    axis = np.arange(-reach_mm, reach_mm, step_mm) + step_mm / 2
    x, y = np.meshgrid(axis, axis)
    return float(np.isin(anatomy.paint(x, y), CANAL_TISSUES).sum() * step_mm ** 2)


def _canal_shape(rng, ap: float, width: float, trefoil: float) -> tuple[Shape, Shape]:
    """Dura (outer) and CSF (inner) shapes of a sac centred at the origin."""
    harmonics = [(2, _u(rng, -0.06, 0.06), _u(rng, -0.3, 0.3)), (3, trefoil, np.pi / 2)]
    dura_thickness = _u(rng, 0.3, 0.7)
    dura = blob(0.0, 0.0, width / 2, ap / 2, harmonics)
    csf = blob(0.0, 0.0, max(width / 2 - dura_thickness, 0.5), max(ap / 2 - dura_thickness, 0.5), harmonics)
    return dura, csf


def _roots(rng, anatomy: Anatomy, ap: float, width: float, csf: Shape) -> None:
    """Cauda-equina roots clustered in a dorsal crescent (or, rarely, spread); on 3 sacs in 10 also clumped into one
    dark dorsal mass filling a large part of the sac (as on real upper lumbar T2, where the sac's centre is dark)."""
    if rng.random() < 0.3:
        clump = ellipse(_u(rng, -0.15, 0.15) * width / 2, -_u(rng, 0.05, 0.35) * ap / 2,
                        _u(rng, 0.2, 0.35) * width, _u(rng, 0.15, 0.3) * ap)
        anatomy.add("cauda_equina_roots", _within(clump, csf), late=True)
    for _ in range(int(rng.integers(6, 16))):
        angle = _u(rng, -np.pi * 0.9, -np.pi * 0.1) if rng.random() < 0.8 else _u(rng, -np.pi, np.pi)
        radius = _u(rng, 0.2, 0.6)
        cx, cy = np.cos(angle) * radius * width / 2, np.sin(angle) * radius * ap / 2
        r = _u(rng, 0.5, 1.0)
        anatomy.add("cauda_equina_roots", _within(ellipse(cx, cy, r, r), csf), late=True)  # a narrowed sac crowds them


def _body_outline(anatomy: Anatomy, posterior_y: float, half_width: float, depth: float, power: int,
                  subcutaneous: float) -> tuple[float, float, float]:
    centre_y = posterior_y + depth / 2
    anatomy.add("skin", superellipse(0.0, centre_y, half_width, depth / 2, power))
    anatomy.add("subcutaneous_fat", superellipse(0.0, centre_y, half_width - SKIN_MM, depth / 2 - SKIN_MM, power))
    inner_w, inner_d = half_width - SKIN_MM - subcutaneous, depth / 2 - SKIN_MM - subcutaneous
    anatomy.extent_mm = max(half_width, depth / 2)
    return centre_y, inner_w, inner_d


@dataclass(frozen=True)
class _LumbarCanal:
    """A lumbar slice's canal and vertebra in mm (y anterior, the sac centred at the origin), before painting."""

    bony_ap: float
    bony_width: float
    sac_ap: float
    sac_width: float
    trefoil: float
    anterior_epidural: float
    posterior_fat: float  # the midline fat triangle between the sac and the flava's V
    lf_thickness: dict[int, float]  # ligamentum flavum by side (-1 left, +1 right)
    disc_width: float
    disc_depth: float

    @property
    def narrowing(self) -> float:
        """What stenosis took from the sac's AP, in front of it and behind it each."""
        return (self.bony_ap - self.sac_ap) / 2

    @property
    def disc_back(self) -> float:
        """y of the posterior disc / body margin."""
        return self.bony_ap / 2 + self.anterior_epidural

    @property
    def disc_cy(self) -> float:
        return self.disc_back + self.disc_depth / 2

    @property
    def lamina_y(self) -> float:
        return -(self.bony_ap / 2 + self.posterior_fat + max(self.lf_thickness.values()))


def _lumbar(rng, level: str, kind: str, patient) -> Anatomy:
    anatomy = Anatomy("lumbar", level, kind)
    index = LUMBAR_LEVELS.index(level)
    anatomy.stenosis = str(rng.choice(STENOSIS_GRADES, p=[0.35, 0.25, 0.22, 0.18]))
    severity = STENOSIS_SEVERITY[anatomy.stenosis]
    canal = _lumbar_canal(rng, index, kind, patient, anatomy.stenosis)
    _lumbar_soft_tissue(rng, anatomy, index, canal, patient)
    back_tissue = _lumbar_disc_or_body(rng, anatomy, kind, canal)
    canal_half_width = _lumbar_epidural_space(rng, anatomy, canal)
    # the sac (dura + CSF + roots, or the conus at L1-L2), painted after the foramina, before its compressors
    dura, csf = _canal_shape(rng, canal.sac_ap, canal.sac_width, canal.trefoil)
    anatomy.add("dura", dura, late=True)
    anatomy.add("csf", csf, late=True)
    if index == 0 and rng.random() < 0.5:
        r = _u(rng, 3.0, 4.5)
        anatomy.add("spinal_cord", _within(ellipse(_u(rng, -1, 1), -_u(rng, 0, 2), r * 1.2, r), csf), late=True)
    _roots(rng, anatomy, canal.sac_ap, canal.sac_width, csf)
    anatomy.late_paints.extend(_flow_voids(rng, canal.sac_ap, canal.sac_width, csf, 0.1))
    facets = _lumbar_posterior_elements(rng, anatomy, index, kind, canal, canal_half_width, severity)
    if kind == "disc" and severity > 0:
        _lumbar_disc_protrusion(rng, anatomy, canal, severity)
    if kind != "pedicle":
        for side, name in ((-1, "left"), (1, "right")):
            _foramen(rng, anatomy, name, side, canal.bony_width, canal.disc_back, facets[side], back_tissue, severity)
    return anatomy


def _lumbar_canal(rng, index: int, kind: str, patient, stenosis: str) -> _LumbarCanal:
    """The sac before stenosis: the bony canal is built around it; stenosis narrows the sac inside it (Lurie: mild
    takes up to a third of its area, moderate up to two thirds, severe more), the disc and flava filling the space."""
    severity = STENOSIS_SEVERITY[stenosis]
    narrow_developmental = patient.random() < 0.12
    bony_ap = _u(patient, 10.0, 17.0) - 0.6 * index - (3.0 if narrow_developmental else 0.0)
    bony_width = _u(patient, 14.0, 22.0) + 0.8 * index
    sac_ap, sac_width = bony_ap, bony_width
    if stenosis != "none":
        loss = _u(rng, *SAC_AREA_LOSS[stenosis]) * (1.0 if kind == "disc" else _u(rng, 0.0, 0.4))
        ap_share = _u(rng, 0.4, 0.7)  # how much of the loss narrows the AP rather than the width
        sac_ap = max(bony_ap * (1.0 - loss) ** ap_share, MIN_SAC_AP_MM)
        sac_width = max(bony_width * (1.0 - loss) ** (1.0 - ap_share), MIN_SAC_WIDTH_MM)
    trefoil = _u(rng, 0.0, 0.14) if index >= 3 else _u(rng, 0.0, 0.05)
    anterior_epidural = _u(rng, 0.5, 3.0)
    # the fat triangle is thinned and then lost as stenosis grows
    posterior_fat = max(_u(rng, 2.0, 7.0) - severity * _u(rng, 0.0, 7.0), 0.0)
    lf_thickness = {side: _u(rng, 2.5, 4.0) + severity * _u(rng, 0.0, 5.0) for side in (-1, 1)}
    disc_width, disc_depth = _u(patient, 38.0, 52.0), _u(patient, 28.0, 36.0)
    return _LumbarCanal(bony_ap, bony_width, sac_ap, sac_width, trefoil, anterior_epidural, posterior_fat,
                        lf_thickness, disc_width, disc_depth)


def _lumbar_soft_tissue(rng, anatomy: Anatomy, index: int, canal: _LumbarCanal, patient) -> None:
    """Body outline, abdomen, kidneys (L1-L3), back and psoas muscles, great vessels."""
    posterior_skin = canal.lamina_y - _u(patient, 30.0, 55.0)
    subcutaneous = _u(patient, 4.0, 40.0)
    depth = _u(patient, 170.0, 300.0)
    centre_y, inner_w, inner_d = _body_outline(anatomy, posterior_skin, _u(patient, 120.0, 190.0), depth,
                                               int(patient.integers(2, 5)), subcutaneous)
    anatomy.add("viscera", superellipse(0.0, centre_y, inner_w, inner_d, 3))
    for _ in range(int(rng.integers(0, 4))):
        anatomy.add("gas", ellipse(_u(rng, -inner_w, inner_w) * 0.6, centre_y + _u(rng, 0.1, 0.6) * inner_d,
                                   _u(rng, 5, 20), _u(rng, 4, 15), _u(rng, 0, np.pi)))
    _abdominal_fluid(rng, anatomy, centre_y, inner_w, inner_d)
    if index <= 2:
        for side in (-1, 1):  # kidneys: bean-shaped, beside psoas, in front of quadratus lumborum, T2-bright
            kidney = (side * _u(rng, 55.0, 80.0), canal.disc_cy + _u(rng, -10.0, 15.0), _u(rng, 18.0, 30.0),
                      _u(rng, 12.0, 20.0), side * _u(rng, 0.3, 0.9))
            anatomy.add("kidney", ellipse(*kidney))
            anatomy.add("intermuscular_fat", ellipse(kidney[0] - side * 4.0, kidney[1], kidney[2] * 0.35,
                                                     kidney[3] * 0.45, kidney[4]))  # renal sinus
    _lumbar_muscles(rng, anatomy, index, canal, patient)
    vessel_y = canal.disc_cy + canal.disc_depth / 2 + _u(rng, 4.0, 12.0)
    if index <= 2 or rng.random() < 0.4:
        r = _u(rng, 7.0, 12.0)
        anatomy.add("vessel", ellipse(-_u(rng, 4.0, 16.0), vessel_y + r, r, r))  # aorta, patient left
        anatomy.add("vessel", ellipse(_u(rng, 10.0, 24.0), vessel_y + r * 0.8, _u(rng, 8, 14), _u(rng, 5, 10)))
    else:
        for side in (-1, 1):
            anatomy.add("vessel", ellipse(side * _u(rng, 15.0, 35.0), vessel_y + _u(rng, 4, 12), _u(rng, 4, 8),
                                          _u(rng, 4, 8)))


def _lumbar_muscles(rng, anatomy: Anatomy, index: int, canal: _LumbarCanal, patient) -> None:
    """Erector spinae, multifidus, quadratus lumborum (L1-L4) and psoas on each side, each in its fat plane."""
    paraspinal_y = canal.lamina_y - _u(patient, 8.0, 16.0)
    paraspinal_fat = _u(patient, 0.6, 1.6)
    for side in (-1, 1):
        es = (side * _u(patient, 24.0, 36.0), paraspinal_y - _u(patient, 0.0, 6.0), _u(patient, 16.0, 26.0),
              _u(patient, 14.0, 22.0), _u(patient, -0.3, 0.3))
        mf = (side * _u(patient, 9.0, 13.0), paraspinal_y + _u(patient, -4.0, 4.0), _u(patient, 7.0, 12.0),
              _u(patient, 12.0, 18.0), _u(patient, -0.2, 0.2))
        anatomy.add("intermuscular_fat", grow(ellipse, paraspinal_fat, *es))
        anatomy.add("erector_spinae", ellipse(*es))
        _fat_streaks(patient, anatomy, es, int(patient.integers(0, 5)))
        anatomy.add("intermuscular_fat", grow(ellipse, paraspinal_fat, *mf))
        anatomy.add("multifidus", ellipse(*mf))
        _fat_streaks(patient, anatomy, mf, int(patient.integers(0, 3)))
        if index <= 3:
            ql = (side * (canal.disc_width / 2 + _u(rng, 22.0, 36.0)), canal.disc_cy - _u(rng, 8.0, 18.0),
                  _u(rng, 7.0, 14.0), _u(rng, 6.0, 11.0), side * _u(rng, 0.2, 0.8))
            anatomy.add("intermuscular_fat", grow(ellipse, paraspinal_fat, *ql))
            anatomy.add("quadratus_lumborum", ellipse(*ql))
        psoas_r = _u(patient, 8.0, 13.0) + 1.5 * index
        ps = (side * (canal.disc_width / 2 + psoas_r * _u(patient, 0.5, 0.9)), canal.disc_cy + _u(patient, -6.0, 4.0),
              psoas_r, psoas_r * _u(patient, 1.0, 1.4), side * _u(patient, 0.1, 0.6))
        anatomy.add("intermuscular_fat", grow(ellipse, paraspinal_fat, *ps))
        anatomy.add("psoas", ellipse(*ps))
        _fat_streaks(patient, anatomy, ps, int(patient.integers(0, 3)))


def _lumbar_disc_or_body(rng, anatomy: Anatomy, kind: str, canal: _LumbarCanal) -> str:
    """The disc (disc slices) or the vertebral body, and what lines the canal in front; returns the tissue of the
    foramina's anterior wall."""
    concavity = _u(rng, 0.0, 4.0)
    half_width, half_depth = canal.disc_width / 2, canal.disc_depth / 2
    if kind == "disc":
        anatomy.add("annulus", ellipse(0.0, canal.disc_cy, half_width, half_depth))
        nucleus_scale = _u(rng, 0.5, 0.72)
        anatomy.add("nucleus", ellipse(0.0, canal.disc_cy + _u(rng, 0.0, 3.0), half_width * nucleus_scale,
                                       half_depth * nucleus_scale))
        back_tissue = "annulus"
    else:
        anatomy.add("cortical_bone", ellipse(0.0, canal.disc_cy, half_width, half_depth))
        anatomy.add("marrow", ellipse(0.0, canal.disc_cy, half_width - 1.2, half_depth - 1.2))
        back_tissue = "cortical_bone"
    anatomy.add("epidural_fat", ellipse(0.0, canal.disc_back - 1.0, canal.disc_width * 0.22, concavity + 1.0))
    anatomy.add("posterior_longitudinal_ligament", capsule((-canal.bony_width / 2, canal.disc_back),
                                                           (canal.bony_width / 2, canal.disc_back),
                                                           _u(rng, 0.4, 0.9)))
    return back_tissue


def _lumbar_epidural_space(rng, anatomy: Anatomy, canal: _LumbarCanal) -> float:
    """The bony canal's content around the sac: epidural fat, veins, flava crowding a narrowed sac; returns the bony
    canal's half width."""
    canal_half_width = canal.bony_width / 2 + _u(rng, 1.0, 4.0)
    canal_y = (canal.disc_back + canal.lamina_y) / 2
    canal_half_depth = (canal.disc_back - canal.lamina_y) / 2 + 0.5
    fat_half_width = canal_half_width
    if canal.narrowing > 0:  # hypertrophic flava and facet capsules crowd the lateral recesses: little fat beside it
        anatomy.add("ligamentum_flavum", ellipse(0.0, canal_y, canal_half_width, canal_half_depth))
        fat_half_width = min(canal.sac_width / 2 + _u(rng, 0.5, 2.5), canal_half_width)
    anatomy.add("epidural_fat", ellipse(0.0, canal_y, fat_half_width, canal_half_depth))
    for _ in range(int(rng.integers(0, 4))):
        anatomy.add("epidural_vein", ellipse(_u(rng, -canal.bony_width / 2, canal.bony_width / 2),
                                             canal.disc_back - 0.8, _u(rng, 0.6, 1.5), _u(rng, 0.5, 1.0)))
    return canal_half_width


def _lumbar_posterior_elements(rng, anatomy: Anatomy, index: int, kind: str, canal: _LumbarCanal,
                               canal_half_width: float, severity: float) -> dict[int, np.ndarray]:
    """Spinous process, laminae, facet joints, ligamenta flava and (pedicle slices) pedicles and transverse
    processes; returns each side's superior articular process centre (the foramen's posterior wall)."""
    facet_angle = np.radians(_u(rng, 26.0, 38.0) + 3.0 * index)
    spinous_base = (0.0, canal.lamina_y - _u(rng, 2.0, 4.0))
    anatomy.add("cortical_bone", capsule(spinous_base, (0.0, spinous_base[1] - _u(rng, 18.0, 30.0)),
                                         _u(rng, 2.5, 4.5)))
    sap_centres = {}
    for side in (-1, 1):
        angle = facet_angle + np.radians(_u(rng, -4.0, 4.0))
        joint = np.array([side * (canal.bony_width / 2 + _u(rng, 4.0, 9.0)), -canal.bony_ap * _u(rng, 0.1, 0.5)])
        direction = np.array([-side * np.sin(angle), np.cos(angle)])
        normal = np.array([side * np.cos(angle), np.sin(angle)])
        gap = _u(rng, 0.8, 3.0) * (1.0 - 0.7 * severity)
        sap_thickness = _u(rng, 4.0, 7.0) * (1.0 + 0.6 * severity * rng.random())
        sap_centre = joint + normal * (gap / 2 + sap_thickness / 2)
        iap_centre = joint - normal * (gap / 2 + _u(rng, 2.5, 4.0))
        sap_centres[side] = sap_centre
        anatomy.add("cortical_bone", capsule(iap_centre - direction * 6, iap_centre + direction * 6,
                                             _u(rng, 2.5, 4.0)))
        anatomy.add("cortical_bone", capsule(iap_centre, spinous_base, _u(rng, 2.5, 3.5)))  # lamina
        anatomy.add("facet_joint_fluid", capsule(joint - direction * 7, joint + direction * 7, gap / 2), late=True)
        anatomy.add("cortical_bone", capsule(sap_centre - direction * 7, sap_centre + direction * 7,
                                             sap_thickness / 2), late=True)
        anatomy.add("marrow", capsule(sap_centre - direction * 6, sap_centre + direction * 6,
                                      max(sap_thickness / 2 - 1.0, 0.5)), late=True)
        lf_start = joint - direction * _u(rng, 2.0, 5.0) - normal * 1.0
        flavum = canal.lf_thickness[side] + canal.narrowing  # thickened into the space the narrowed sac left
        lf_end = np.array([0.0, canal.lamina_y + flavum / 2])
        inward = np.array([-side * 0.3, 0.95]) * flavum * 0.4
        anatomy.add("ligamentum_flavum", capsule(lf_start + inward, lf_end, flavum / 2), late=True)
        if kind == "pedicle":
            pedicle_half = _u(rng, 3.5, 7.5)
            pedicle_base = (side * (canal_half_width + pedicle_half), canal.disc_back + 3.0)
            anatomy.add("cortical_bone", capsule(pedicle_base, tuple(sap_centre), pedicle_half), late=True)
            anatomy.add("marrow", capsule(pedicle_base, tuple(sap_centre), pedicle_half - 1.2), late=True)
            tip = (side * (canal.disc_width / 2 + _u(rng, 14.0, 26.0)), sap_centre[1] + _u(rng, -4.0, 6.0))
            anatomy.add("cortical_bone", capsule(tuple(sap_centre), tip, _u(rng, 3.0, 5.0)), late=True)
    return sap_centres


def _lumbar_disc_protrusion(rng, anatomy: Anatomy, canal: _LumbarCanal, severity: float) -> None:
    """A stenosed disc level's disc: bulging into the space a narrowed sac left, and a herniation by zone."""
    if canal.narrowing > 0:
        anatomy.add("annulus", ellipse(0.0, canal.disc_back, canal.bony_width / 2 + _u(rng, 1.0, 4.0),
                                       canal.anterior_epidural + canal.narrowing), late=True)
    zone = rng.choice(["central", "paracentral", "foraminal", "bulge"])
    side = rng.choice([-1, 1])
    centre_x = {"central": 0.0, "paracentral": side * _u(rng, 4.0, 8.0),
                "foraminal": side * (canal.bony_width / 2 + _u(rng, 3.0, 7.0)), "bulge": 0.0}[zone]
    # it indents the sac, and cannot take more than a third of a narrowed one's depth
    protrusion = canal.narrowing + min(severity * _u(rng, 2.0, 7.0), canal.anterior_epidural + canal.sac_ap / 3)
    half = _u(rng, 4.0, 9.0) if zone != "bulge" else canal.disc_width * 0.45
    anatomy.add("annulus", ellipse(centre_x, canal.disc_back, half, protrusion), late=True)


def _flow_voids(rng, ap: float, width: float, csf: Shape, probability: float) -> list[tuple[int, Shape]]:
    """Dark pulsation artefacts inside the CSF, mostly dorsal."""
    if rng.random() >= probability:
        return []
    voids = []
    for _ in range(int(rng.integers(1, 4))):
        angle = _u(rng, -np.pi, 0.0)
        cx, cy = np.cos(angle) * width * 0.35, np.sin(angle) * ap * 0.35
        shape = ellipse(cx, cy, _u(rng, 0.6, 2.0), _u(rng, 0.4, 1.2), _u(rng, 0, 3))
        voids.append((T["csf_flow_void"], _within(shape, csf)))
    return voids


def _abdominal_fluid(rng, anatomy: Anatomy, centre_y: float, inner_w: float, inner_d: float) -> None:
    """Fluid-filled bowel loops and cysts: round, CSF-bright on T2, in the front half of the abdomen (the canal is
    not the only bright circle in a slice)."""
    for _ in range(int(rng.integers(0, 7))):
        r = _u(rng, 4.0, 18.0)
        anatomy.add("abdominal_fluid", ellipse(_u(rng, -0.8, 0.8) * inner_w, centre_y + _u(rng, 0.0, 0.8) * inner_d,
                                               r, r * _u(rng, 0.6, 1.0), _u(rng, 0, np.pi)))


def _fat_streaks(rng, anatomy: Anatomy, muscle: tuple, count: int) -> None:
    """Thin intramuscular fat streaks roughly along the muscle's long axis (texture real muscle has)."""
    cx, cy, ax, ay, angle = muscle
    for _ in range(count):
        u, v = _u(rng, -0.6, 0.6) * ax, _u(rng, -0.6, 0.6) * ay
        centre = np.array([cx + u * np.cos(angle) - v * np.sin(angle), cy + u * np.sin(angle) + v * np.cos(angle)])
        direction = np.array([np.cos(angle + _u(rng, -0.4, 0.4)), np.sin(angle + _u(rng, -0.4, 0.4))])
        if ay > ax:
            direction = np.array([-direction[1], direction[0]])
        half = _u(rng, 0.2, 0.45) * max(ax, ay)
        anatomy.add("intermuscular_fat", capsule(tuple(centre - half * direction), tuple(centre + half * direction),
                                                 _u(rng, 0.25, 0.7)))


def _within(shape: Shape, container: Shape) -> Shape:
    return Shape(lambda x, y: shape(x, y) & container(x, y), shape.bbox)


def _foramen(rng, anatomy: Anatomy, name: str, side: int, sac_width: float, disc_back: float,
             sap_centre: np.ndarray, wall_tissue: str, severity: float) -> None:
    tilt = np.radians(_u(rng, -5.0, 25.0))
    direction = np.array([side * np.cos(tilt), np.sin(tilt)])
    start = np.array([side * (sac_width / 2 + _u(rng, 1.5, 4.0)), (disc_back + sap_centre[1]) / 2 + 1.0])
    fused = rng.random() < 0.08 + 0.15 * severity
    width = 0.0 if fused else float(np.clip(rng.gamma(4.0, 1.6) * (1.0 - 0.5 * severity), 1.0, 10.0))
    anatomy.channels[name] = Channel(
        side=side, start=start, direction=direction, length=_u(rng, 9.0, 16.0),
        narrowest_half_width=width / 2, narrowest_at=_u(rng, 0.3, 0.7), flare=_u(rng, 1.0, 4.0),
        root_at=_u(rng, 0.4, 0.8), root_radius=_u(rng, 1.5, 3.0),
        anterior_wall=T[wall_tissue], posterior_wall=T["cortical_bone"])


@dataclass(frozen=True)
class _CervicalCanal:
    """A cervical slice's sac and vertebral body in mm (y anterior, the sac centred at the origin), before painting."""

    sac_ap: float
    sac_width: float
    body_width: float
    body_depth: float
    disc_back: float  # y of the posterior disc / body margin
    lamina_y: float

    @property
    def disc_cy(self) -> float:
        return self.disc_back + self.body_depth / 2


def _cervical(rng, level: str, kind: str, patient) -> Anatomy:
    anatomy = Anatomy("cervical", level, kind)
    anatomy.stenosis = str(rng.choice(STENOSIS_GRADES, p=[0.4, 0.25, 0.2, 0.15]))
    severity = STENOSIS_SEVERITY[anatomy.stenosis]
    sac_ap = _u(rng, 9.0, 14.0) - 3.0 * severity * rng.random()
    sac_width = _u(patient, 16.0, 23.0)
    body_width, body_depth = _u(patient, 15.0, 26.0), _u(patient, 14.0, 19.0)
    disc_back = sac_ap / 2 + _u(rng, 0.5, 2.0)
    lamina_y = -(sac_ap / 2 + _u(rng, 1.0, 3.0))
    canal = _CervicalCanal(sac_ap, sac_width, body_width, body_depth, disc_back, lamina_y)
    _neck(anatomy, canal, patient)
    _cervical_vertebral_body(rng, anatomy, kind, canal)
    lateral_masses = _cervical_canal_and_arch(rng, anatomy, canal, severity)
    if severity > 0:
        bulge = severity * _u(rng, 1.5, 5.0)
        anatomy.add("annulus", ellipse(_u(rng, -4.0, 4.0), disc_back, _u(rng, 4.0, 9.0), bulge), late=True)
    if kind != "disc":  # pedicles close the canal laterally: no foramen on this slice
        for side in (-1, 1):
            anatomy.add("cortical_bone", capsule((side * (body_width / 2 - 2.0), disc_back + 1.0),
                                                 tuple(lateral_masses[side]), _u(rng, 2.0, 3.0)), late=True)
        return anatomy
    for side, name in ((-1, "left"), (1, "right")):
        tilt = np.radians(_u(rng, 35.0, 55.0))
        direction = np.array([side * np.cos(tilt), np.sin(tilt)])
        fused = rng.random() < 0.05 + 0.2 * severity
        width = 0.0 if fused else float(np.clip(rng.gamma(5.0, 0.65) * (1.0 - 0.4 * severity), 1.0, 7.0))
        start = np.array([side * (sac_width / 2 + 0.5), disc_back - 2.0])
        anatomy.channels[name] = Channel(
            side=side, start=start, direction=direction, length=_u(rng, 6.0, 10.0),
            narrowest_half_width=width / 2, narrowest_at=_u(rng, 0.35, 0.65), flare=_u(rng, 0.8, 2.5),
            root_at=_u(rng, 0.4, 0.8), root_radius=_u(rng, 1.0, 1.8),
            anterior_wall=T["cortical_bone"], posterior_wall=T["cortical_bone"], wall_thickness=3.5)
    return anatomy


def _neck(anatomy: Anatomy, canal: _CervicalCanal, patient) -> None:
    """The neck around the spine (one patient's: every draw from patient): outline, muscles and their fat planes,
    carotids and jugulars, oesophagus and trachea. The outline is drawn at least deep and wide enough to hold the
    trachea and the jugulars wherever their draws put them, and the fat planes end at the muscles' edge (until
    2026-12-07 a third of the necks were drawn too shallow: trachea, oesophagus and vessels lay in the air)."""
    posterior_skin = canal.lamina_y - _u(patient, 35.0, 60.0)
    half_width, depth, subcutaneous = _u(patient, 50.0, 75.0), _u(patient, 95.0, 135.0), _u(patient, 3.0, 12.0)
    to_muscle = SKIN_MM + subcutaneous + NECK_MUSCLE_MARGIN_MM  # from the skin's outer edge to the deepest structure
    body_front = canal.disc_cy + canal.body_depth / 2
    trachea_front = body_front + TRACHEA_OFFSET_MM[1] + AIRWAY_OFFSET_MM + TRACHEA_HALF_AXES_MM[1][1]
    depth = max(depth, trachea_front + to_muscle - posterior_skin)
    half_width = max(half_width, JUGULAR_OFFSET_MM[1] + JUGULAR_HALF_AXES_MM[0][1] + to_muscle)
    centre_y, inner_w, inner_d = _body_outline(anatomy, posterior_skin, half_width, depth, 2, subcutaneous)
    muscles = superellipse(0.0, centre_y, inner_w, inner_d, 2)
    anatomy.add("neck_muscle", muscles)
    for side in (-1, 1):  # fat planes between the neck muscles
        for _ in range(3):
            p0 = np.array([side * _u(patient, 10, inner_w * 0.8), centre_y + _u(patient, -inner_d, inner_d) * 0.8])
            p1 = p0 + patient.normal(0.0, 12.0, 2)
            anatomy.add("intermuscular_fat", _within(capsule(p0, p1, _u(patient, 0.5, 1.5)), muscles))
        anatomy.add("vessel", ellipse(side * _u(patient, 18.0, 28.0), canal.disc_cy + _u(patient, 8.0, 18.0),
                                      _u(patient, 3, 5), _u(patient, 3, 5)))  # carotid
        anatomy.add("vessel", ellipse(side * _u(patient, *JUGULAR_OFFSET_MM), canal.disc_cy + _u(patient, 6.0, 16.0),
                                      _u(patient, *JUGULAR_HALF_AXES_MM[0]),
                                      _u(patient, *JUGULAR_HALF_AXES_MM[1])))  # jugular
    trachea_y = body_front + _u(patient, *TRACHEA_OFFSET_MM)
    anatomy.add("neck_muscle", ellipse(0.0, trachea_y - 6.0, 7.0, 4.0))  # oesophagus
    anatomy.add("gas", ellipse(0.0, trachea_y + AIRWAY_OFFSET_MM, _u(patient, *TRACHEA_HALF_AXES_MM[0]),
                               _u(patient, *TRACHEA_HALF_AXES_MM[1])))


def _cervical_vertebral_body(rng, anatomy: Anatomy, kind: str, canal: _CervicalCanal) -> None:
    """The disc or body, the uncinate processes, and the vertebral arteries in their transverse foramina."""
    if kind == "disc":
        anatomy.add("annulus", ellipse(0.0, canal.disc_cy, canal.body_width / 2, canal.body_depth / 2))
        anatomy.add("nucleus", ellipse(0.0, canal.disc_cy + 1.0, canal.body_width * 0.3, canal.body_depth * 0.3))
    else:
        anatomy.add("cortical_bone", ellipse(0.0, canal.disc_cy, canal.body_width / 2, canal.body_depth / 2))
        anatomy.add("marrow", ellipse(0.0, canal.disc_cy, canal.body_width / 2 - 1.0, canal.body_depth / 2 - 1.0))
    for side in (-1, 1):
        anatomy.add("cortical_bone", ellipse(side * (canal.body_width / 2 - 1.0), canal.disc_back + 3.0, 2.0,
                                             3.5))  # uncus
        va = np.array([side * (canal.body_width / 2 + _u(rng, 4.0, 7.0)), canal.disc_back + _u(rng, 1.0, 5.0)])
        anatomy.add("cortical_bone", ellipse(va[0], va[1], 5.0, 4.5))
        anatomy.add("vertebral_artery", ellipse(va[0], va[1], _u(rng, 1.5, 3.0), _u(rng, 1.5, 3.0)))


def _cervical_canal_and_arch(rng, anatomy: Anatomy, canal: _CervicalCanal, severity: float) -> dict[int, np.ndarray]:
    """Epidural fat and veins, the spinous process, the sac with its cord, laminae, flava and lateral masses;
    returns each side's lateral mass centre."""
    sac_ap, sac_width, disc_back, lamina_y = canal.sac_ap, canal.sac_width, canal.disc_back, canal.lamina_y
    anatomy.add("epidural_fat", ellipse(0.0, (disc_back + lamina_y) / 2, sac_width / 2 + 1.5,
                                        (disc_back - lamina_y) / 2 + 0.3))
    for _ in range(int(rng.integers(1, 5))):
        anatomy.add("epidural_vein", ellipse(_u(rng, -sac_width / 2, sac_width / 2), disc_back - 0.7,
                                             _u(rng, 0.7, 1.8), _u(rng, 0.5, 1.0)))
    spinous_base = (0.0, lamina_y - 1.5)
    tip_y = spinous_base[1] - _u(rng, 12.0, 22.0)
    anatomy.add("cortical_bone", capsule(spinous_base, (0.0, tip_y), _u(rng, 1.5, 2.5)))
    if rng.random() < 0.5:  # bifid tip
        for side in (-1, 1):
            anatomy.add("cortical_bone", capsule((0.0, tip_y + 3), (side * 4.0, tip_y - 2), 1.5))
    dura, csf = _canal_shape(rng, sac_ap, sac_width, _u(rng, 0.0, 0.1))
    lateral_masses = {}
    for side in (-1, 1):
        mass = np.array([side * (sac_width / 2 + _u(rng, 3.5, 6.0)), -sac_ap * _u(rng, 0.0, 0.3)])
        lateral_masses[side] = mass
        lamina_half = _u(rng, 0.9, 1.6)
        anatomy.add("cortical_bone", capsule(tuple(mass), spinous_base, lamina_half), late=True)
        lf = _u(rng, 1.0, 1.7) + severity * _u(rng, 0.0, 2.5)
        anatomy.add("ligamentum_flavum", capsule(tuple(mass + np.array([-side * 2.0, 1.0])),
                                                 (0.0, lamina_y + lf / 2), lf / 2), late=True)
        anatomy.add("cortical_bone", ellipse(mass[0], mass[1], _u(rng, 4.0, 6.0), _u(rng, 3.5, 5.5)), late=True)
        anatomy.add("marrow", ellipse(mass[0], mass[1], 3.0, 2.5), late=True)
    cord_ap, cord_width = _u(rng, 6.0, 9.0), _u(rng, 10.0, 14.0)
    cord_ap, cord_width = min(cord_ap, sac_ap - 1.5), min(cord_width, sac_width - 3.0)
    cord = _within(ellipse(0.0, -_u(rng, 0.0, 1.0), cord_width / 2, cord_ap / 2), csf)
    sac = [(T["dura"], dura), (T["csf"], csf), (T["spinal_cord"], cord)]
    anatomy.late_paints[0:0] = sac + _flow_voids(rng, sac_ap, sac_width, csf, 0.35)  # before its compressors
    return lateral_masses

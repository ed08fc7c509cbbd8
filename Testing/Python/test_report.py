"""The PNG report draws each slice's outlines and rulers, also where the canal lies at the edge of the slice."""
import numpy as np
from PIL import Image
from shapes import axial_grid, two_lobes

from SpinalStenosisLib.measurement import masks_from_labels, measure_slice
from SpinalStenosisLib.report import MASK_COLOURS, TITLE_PX, WARNING_COLOUR, write_report


def rgb(colour: str) -> np.ndarray:
    """A "#rrggbb" colour's three values."""
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def frame_rows(pixels: np.ndarray, min_px: float) -> np.ndarray:
    """The image rows holding more than min_px pixels of the profiles' frame colour (their frames' top and bottom)."""
    from SpinalStenosisLib.report_chart import AXIS_COLOUR

    return np.flatnonzero((np.abs(pixels - rgb(AXIS_COLOUR)).max(axis=2) < 8).sum(axis=1) > min_px)


CANAL_RGB = rgb(MASK_COLOURS[1])


def canal_outline_pixels(tmp_path, centre_rc) -> int:
    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = (((rows - centre_rc[0]) ** 2 + (columns - centre_rc[1]) ** 2) <= 12 ** 2).astype(np.uint8)
    measurement = measure_slice(masks_from_labels(labels), grid)
    image = np.random.default_rng(0).uniform(0.0, 0.3, grid.shape)
    path = tmp_path / f"report_{centre_rc[0]}_{centre_rc[1]}.png"
    write_report(path, [measurement], lambda _: image, lambda _: labels, lambda _: grid, "lumbar", "test")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - CANAL_RGB).max(axis=2) < 40).sum())


def test_the_canal_outline_is_drawn_whole_in_the_middle_and_at_a_corner_of_the_slice(tmp_path):
    middle = canal_outline_pixels(tmp_path, (100, 100))
    corner = canal_outline_pixels(tmp_path, (14, 186))  # the viewed window reaches beyond the slice
    assert middle > 100  # a circle of 6 mm radius drawn at about 5 px/mm
    assert 0.8 < corner / middle < 1.25


def test_the_rulers_are_drawn_and_a_report_without_measurements_says_so(tmp_path):
    from SpinalStenosisLib.markups_json import RULER_COLOURS

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = ((((rows - 100) / 8.0) ** 2 + ((columns - 100) / 14.0) ** 2) <= 1).astype(np.uint8)
    measurement = measure_slice(masks_from_labels(labels), grid)
    image = np.zeros(grid.shape)
    write_report(tmp_path / "one.png", [measurement], lambda _: image, lambda _: labels, lambda _: grid, "lumbar", "t")
    pixels = np.asarray(Image.open(tmp_path / "one.png").convert("RGB")).astype(int)
    for name in ("canal_ap_mm", "canal_transverse_mm"):
        colour = np.round(255 * np.array(RULER_COLOURS[name]))
        assert (np.abs(pixels - colour).max(axis=2) < 4).sum() > 30, name  # (Pillow draws lines unblended)
    write_report(tmp_path / "none.png", [], lambda _: image, lambda _: labels, lambda _: grid, "lumbar", "t")
    empty = np.asarray(Image.open(tmp_path / "none.png").convert("L"))
    assert (empty[TITLE_PX:] > 200).sum() > 100  # below the title, "nothing measured" in white on black


def test_a_slice_is_shown_alike_whatever_the_unit_of_its_intensities(tmp_path):
    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = ((((rows - 100) / 8.0) ** 2 + ((columns - 100) / 14.0) ** 2) <= 1).astype(np.uint8)
    measurement = measure_slice(masks_from_labels(labels), grid)
    image = np.random.default_rng(1).uniform(0.0, 300.0, grid.shape)
    pictures = []
    for unit in (1.0, 1e-9):
        path = tmp_path / f"unit_{unit:g}.png"
        write_report(path, [measurement], lambda _: image * unit, lambda _: labels, lambda _: grid, "lumbar", "t")
        pictures.append(np.asarray(Image.open(path).convert("RGB")).astype(int))
    assert np.abs(pictures[0] - pictures[1]).max() <= 1


def test_warnings_are_written_under_the_findings_in_their_own_colour(tmp_path):
    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = (((rows - 100) ** 2 + (columns - 100) ** 2) <= 12 ** 2).astype(np.uint8)
    measurement, image = measure_slice(masks_from_labels(labels), grid), np.zeros(grid.shape)
    warning_rgb = rgb(WARNING_COLOUR)
    reports = {}
    for name, warnings in (("plain", []), ("warned", ["slices 7.7 mm apart through a spine tilted about 15° " * 3])):
        write_report(tmp_path / f"{name}.png", [measurement], lambda _: image, lambda _: labels, lambda _: grid,
                     "lumbar", "t", warnings)
        reports[name] = np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB")).astype(int)
    plain, warned = reports["plain"], reports["warned"]
    extra_rows = warned.shape[0] - plain.shape[0]
    assert extra_rows >= 2 * 18  # the long warning wraps onto lines of its own
    first_apart = int((warned[:plain.shape[0]] != plain).any(axis=(1, 2)).argmax())  # under title and findings
    assert first_apart > TITLE_PX and np.array_equal(warned[first_apart + extra_rows:], plain[first_apart:])
    in_colour = (np.abs(warned - warning_rgb).max(axis=2) < 30).any(axis=1).nonzero()[0]
    assert first_apart <= in_colour.min() and in_colour.max() < first_apart + extra_rows
    assert not (np.abs(plain - warning_rgb).max(axis=2) < 30).any()


def test_each_named_level_adds_a_line_of_its_worst_findings_under_the_studys(tmp_path):
    from dataclasses import replace

    from SpinalStenosisLib.report import FINDINGS_LINE_PX

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = (((rows - 100) ** 2 + (columns - 100) ** 2) <= 12 ** 2).astype(np.uint8)
    measurement, image = measure_slice(masks_from_labels(labels), grid), np.zeros(grid.shape)
    heights = {}
    for name, level in (("unnamed", ""), ("named", "L4-L5")):
        write_report(tmp_path / f"{name}.png", [replace(measurement, level=level)], lambda _: image,
                     lambda _: labels, lambda _: grid, "lumbar", "t")
        heights[name] = Image.open(tmp_path / f"{name}.png").height
    added = heights["named"] - heights["unnamed"]  # "L4-L5: narrowest canal AP ...", wrapped on one panel's width
    assert added >= FINDINGS_LINE_PX and added % FINDINGS_LINE_PX == 0


def test_a_caption_marks_each_measurement_of_a_structure_the_network_doubts_and_says_why_where_it_can():
    from SpinalStenosisLib.report import CAPTION_TEXT_PX, VIEW_PX, _caption, _font

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    canal = ((rows - 100) ** 2 + (columns - 90) ** 2 <= 12 ** 2).astype(float)
    foramen = ((rows - 100) ** 2 + (columns - 130) ** 2 <= 4 ** 2).astype(float)
    lines = _caption(measure_slice({"canal": 0.9 * canal, "left_foramen": foramen}, grid), "lumbar").splitlines()
    marked = [line.split()[0] for line in lines if line.endswith("CHECK")]
    assert marked == ["AP", "area", "transverse"]  # the canal's lines, not the sure left foramen's
    at_the_edge = ((rows - 100) ** 2 + (columns - 199) ** 2 <= 6 ** 2).astype(float)  # a foramen the edge cuts
    lines = _caption(measure_slice({"canal": canal, "left_foramen": at_the_edge}, grid), "lumbar").splitlines()
    assert [line for line in lines if "CHECK" in line] == [line for line in lines if line.startswith("foramen L")]
    assert lines[-1].endswith("CHECK (edge)")
    lines = _caption(measure_slice({"canal": canal}, grid, canal_off_axis_mm=26.0), "lumbar").splitlines()
    assert [line.split()[0] for line in lines if line.endswith("CHECK (off axis)")] == ["AP"]  # why, once
    assert [line.split()[0] for line in lines if line.endswith("CHECK")] == ["area", "transverse"]
    lines = _caption(measure_slice({"canal": two_lobes(grid.shape, 100, 100) * 1.0}, grid), "lumbar").splitlines()
    assert [line.split()[0] for line in lines if line.endswith("CHECK (shape)")] == ["AP"]
    # the networks found the left foramen alone: the right one, absent, is to check
    lines = _caption(measure_slice({"canal": canal, "left_foramen": 0.97 * foramen}, grid), "lumbar").splitlines()
    assert [line for line in lines if "CHECK" in line] == ["foramen R absent  CHECK (other side found)"]
    font = _font("DejaVuSansMono.ttf", CAPTION_TEXT_PX)
    for widest in ("AP 10.7 mm (relative stenosis)  CHECK (off axis)", "area 328.6 mm² (relative stenosis)  CHECK",
                   "foramen L 12.3 mm (normal)  CHECK (edge)",
                   "foramen R absent  CHECK (other side found)"):  # each fits the panel's width
        assert font.getlength(widest) <= VIEW_PX - 8


def test_a_caption_shows_a_value_just_below_a_cut_off_below_it_and_still_within_the_panel():
    from dataclasses import replace

    from SpinalStenosisLib.report import CAPTION_TEXT_PX, VIEW_PX, _caption, _font

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    canal = ((rows - 100) ** 2 + (columns - 90) ** 2 <= 12 ** 2).astype(float)
    measured = measure_slice({"canal": canal}, grid, canal_off_axis_mm=26.0)
    measured = replace(measured, values=measured.values | {"canal_ap_mm": 11.951, "canal_area_mm2": 99.97})
    lines = _caption(measured, "lumbar").splitlines()
    assert lines[1] == "AP 11.95 mm (relative stenosis)  CHECK (off axis)"
    assert lines[2] == "area 99.97 mm² (relative stenosis)  CHECK"
    assert 4 + _font("DejaVuSansMono.ttf", CAPTION_TEXT_PX).getlength(lines[1]) <= VIEW_PX  # drawn 4 px in


def test_a_stack_gets_a_profile_of_its_canal_with_each_slice_in_its_grades_colour(tmp_path):
    from SpinalStenosisLib.report_chart import GRADE_COLOURS

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    image = np.zeros(grid.shape)

    def canal(radius_mm: float) -> np.ndarray:  # a round sac of AP 2 * radius_mm, on 0.5 mm pixels
        return (((rows - 100) ** 2 + (columns - 100) ** 2) <= (2 * radius_mm) ** 2).astype(np.uint8)

    red = rgb(GRADE_COLOURS["absolute stenosis"])

    reports, frames = {}, {}
    for name, narrowest_mm in (("normal", 6.5), ("stenosed", 3.5)):
        labels = [canal(r) for r in (7.0, 6.5, narrowest_mm, 0.0, 7.0)]  # slice 3 without a canal
        measurements = [measure_slice(masks_from_labels(mask), grid, slice_index=s) for s, mask in enumerate(labels)]
        path = tmp_path / f"{name}.png"
        write_report(path, measurements, lambda _: image, lambda s, labels=labels: labels[s], lambda _: grid,
                     "lumbar", "t")
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
        frames[name] = frame_rows(pixels, 300)
        strip = pixels[frames[name].min():frames[name].max() + 1]  # within the profiles' frames
        reports[name] = (np.abs(strip - red).max(axis=2) < 30).sum()
    write_report(tmp_path / "one.png", measurements[:1], lambda _: image, lambda _: labels[0], lambda _: grid,
                 "lumbar", "t")
    assert len(frame_rows(np.asarray(Image.open(tmp_path / "one.png").convert("RGB")).astype(int), 300)) == 0
    assert np.array_equal(frames["normal"], frames["stenosed"]) and len(frames["normal"]) >= 2  # frames' top, bottom
    # the 7 mm sac (absolute stenosis by AP, < 10 mm; by area, 38 mm² < 75 mm²): two red dots of about 40 px each
    assert reports["stenosed"] - reports["normal"] > 50


def test_a_thoracic_canal_is_drawn_in_the_profile_as_not_graded(tmp_path):
    from SpinalStenosisLib.report_chart import CUTOFF_COLOURS, UNGRADED_COLOUR

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    labels = (((rows - 100) ** 2 + (columns - 100) ** 2) <= 10 ** 2).astype(np.uint8)
    blue, red = rgb(UNGRADED_COLOUR), rgb(CUTOFF_COLOURS["absolute"])
    blue_pixels, red_pixels = {}, {}
    for level, region in (("L1-L2", "lumbar"), ("T12", "lumbar"), ("", "thoracic")):
        measurements = [measure_slice(masks_from_labels(labels), grid, slice_index=s) for s in range(3)]
        measurements[0].level = level
        path = tmp_path / f"{region}{level}.png"
        write_report(path, measurements, lambda _: np.zeros(grid.shape), lambda _: labels, lambda _: grid, region,
                     "t")
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
        blue_pixels[region + level] = (np.abs(pixels - blue).max(axis=2) < 20).sum()
        red_pixels[region + level] = (np.abs(pixels - red).max(axis=2) < 20).sum()
    assert blue_pixels["lumbarL1-L2"] == 0 and blue_pixels["lumbarT12"] > 40  # two dots, and the legend's
    assert blue_pixels["thoracic"] > blue_pixels["lumbarT12"] + 100  # six dots against two
    assert red_pixels["lumbarT12"] > 500 and red_pixels["thoracic"] < 100  # the cut-off lines: none when thoracic


def test_a_series_report_shows_each_blocks_worst_slices_or_only_their_narrowest_canals_when_too_many(tmp_path):
    from SpinalStenosisLib.measurement import MEASUREMENT_COLUMNS, SliceMeasurement
    from SpinalStenosisLib.report import CAPTION_PX, MARGIN_PX, VIEW_PX, StackView, write_series_report

    grid, nan = axial_grid(shape=(100, 100)), float("nan")
    image = np.zeros(grid.shape)

    def block(n_slices: int) -> StackView:  # each graded measurement smallest on a slice of its own
        measurements = []
        for s in range(n_slices):
            values = dict.fromkeys(MEASUREMENT_COLUMNS, nan) | {"canal_ap_mm": 12.0, "canal_area_mm2": 150.0,
                                                                "left_foramen_width_mm": 5.0,
                                                                "right_foramen_width_mm": 5.0}
            values[("canal_ap_mm", "canal_area_mm2", "left_foramen_width_mm", "right_foramen_width_mm")[s % 4]] -= 1.0
            measurements.append(SliceMeasurement(s, 4.0 * s, values))
        return StackView(measurements, lambda _: image, lambda _: image.astype(np.uint8), lambda _: grid)

    panel_w, panel_h = VIEW_PX + 2 * MARGIN_PX, CAPTION_PX + VIEW_PX + MARGIN_PX
    sizes = {}
    for blocks in (2, 4):
        write_series_report(tmp_path / f"{blocks}.png", {f"block-{k}": block(4) for k in range(1, blocks + 1)},
                            "lumbar", "t")
        sizes[blocks] = Image.open(tmp_path / f"{blocks}.png").size
    assert sizes[2][0] == sizes[4][0] == 4 * panel_w
    assert sizes[2][1] - sizes[4][1] == panel_h  # 2 blocks: 8 worst slices on two rows; 4 blocks: 16, so 4 on one


def test_a_series_report_profiles_every_block_side_by_side_parted_by_lines(tmp_path):
    from SpinalStenosisLib.report import StackView, write_series_report
    from SpinalStenosisLib.report_chart import AXIS_COLOUR, GRADE_COLOURS

    grid = axial_grid(shape=(200, 200))
    rows, columns = np.indices(grid.shape)
    image = np.zeros(grid.shape)
    red, frame = rgb(GRADE_COLOURS["absolute stenosis"]), rgb(AXIS_COLOUR)

    def block(radii_mm: list[float]) -> StackView:  # round sacs of AP 2 * radius, on 0.5 mm pixels
        labels = [(((rows - 100) ** 2 + (columns - 100) ** 2) <= (2 * r) ** 2).astype(np.uint8) for r in radii_mm]
        measurements = [measure_slice(masks_from_labels(mask), grid, slice_index=s) for s, mask in enumerate(labels)]
        return StackView(measurements, lambda _: image, lambda s: labels[s], lambda _: grid)

    def profile_lines(path) -> tuple[int, int]:  # (upright lines of the frame colour, red pixels) in the profiles
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
        framed = frame_rows(pixels, 0.4 * pixels.shape[1])
        strip = pixels[framed.min():framed.max() + 1]
        upright = (np.abs(strip - frame).max(axis=2) < 8).sum(axis=0) >= len(strip) - 2
        red_pixels = int((np.abs(strip - red).max(axis=2) < 30).sum())
        return int(np.count_nonzero(np.diff(upright.astype(int)) == 1)), red_pixels

    write_series_report(tmp_path / "one.png", {"block-1": block([7.0, 6.5, 7.0])}, "lumbar", "t")
    assert profile_lines(tmp_path / "one.png")[0] == 4  # each profile's frame's sides
    found = {}
    for narrowest_mm in (7.0, 3.5):
        write_series_report(tmp_path / f"{narrowest_mm}.png", {"block-1": block([7.0, 6.5, 7.0]),
                                                              "block-2": block([7.0, narrowest_mm]),
                                                              "block-3": block([6.5])}, "lumbar", "t")
        found[narrowest_mm] = profile_lines(tmp_path / f"{narrowest_mm}.png")
    assert found[7.0][0] == found[3.5][0] == 4 + 2 * 2  # and in each, a line before blocks 2 and 3
    assert found[3.5][1] - found[7.0][1] > 50  # block 2's 7 mm sac: a red dot in each profile


def test_without_dejavu_the_report_takes_arial_or_courier_new_which_have_the_superscript_two(monkeypatch):
    from PIL import ImageFont

    from SpinalStenosisLib import report

    real_truetype = ImageFont.truetype
    here = {"Arial.ttf": "DejaVuSans.ttf", "cour.ttf": "DejaVuSansMono.ttf"}  # as a Mac has Arial, Windows cour.ttf
    tried = []

    def truetype(name, size=10, **options):
        if not isinstance(name, str):
            return real_truetype(name, size, **options)  # Pillow's default font, from its own bytes
        tried.append(name)
        if name not in here:
            raise OSError(f"cannot open resource {name}")  # no DejaVu, as in 3D Slicer on Windows or macOS
        return real_truetype(here[name], size)

    monkeypatch.setattr(ImageFont, "truetype", truetype)
    assert report._font("DejaVuSans.ttf", 13).path.endswith("DejaVuSans.ttf") and tried[-1] == "Arial.ttf"
    assert report._font("DejaVuSansMono.ttf", 12).path.endswith("DejaVuSansMono.ttf") and tried[-1] == "cour.ttf"
    here.clear()
    fallback = report._font("DejaVuSans.ttf", 13)  # Pillow's own, the last resort
    assert tried[-2:] == ["Arial.ttf", "arial.ttf"] and not isinstance(getattr(fallback, "path", None), str)

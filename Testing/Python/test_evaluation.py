"""``spinal-stenosis evaluate``: the networks against a user's labelled images (NIfTI pairs, Lumbar Spine MRI PNGs)."""
import csv
import math
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import ThresholdSegmenter, write_canal_only, write_with_foramina_swapped
from scipy import ndimage

from SpinalStenosisLib import cli
from SpinalStenosisLib.evaluation import COMPARISON_COLUMNS, compare_case, summary_lines
from SpinalStenosisLib.real_data import PNG_PIXEL_MM, PNG_THECAL_SAC, labelled_cases

PIXEL_MM = 0.8  # the phantom's


class ErodedCanal(ThresholdSegmenter):
    """The phantom's segmentation with the canal one pixel smaller all round."""

    def segment(self, images, grids):
        results = super().segment(images, grids)
        for result in results:
            canal = ndimage.binary_erosion(result.native_labels == 1)
            result.native_labels[(result.native_labels == 1) & ~canal] = 0
            result.masks["canal"] = canal * 1.0
        return results


@pytest.fixture
def labelled(phantom_files, tmp_path):
    """A folder with the phantom as a NIfTI pair and one Lumbar Spine MRI style PNG pair (a canal disc)."""
    image, labels = phantom_files
    folder = tmp_path / "labelled"
    folder.mkdir()
    shutil.copy(image, folder / "phantom_image.nii.gz")
    shutil.copy(labels, folder / "phantom_labels.nii.gz")
    rows, columns = np.mgrid[:64, :64]
    disc = (rows - 32) ** 2 + (columns - 30) ** 2 < 10 ** 2
    sitk.WriteImage(sitk.GetImageFromArray((20 + 200 * disc).astype(np.uint8)), str(folder / "disc_image.png"))
    sitk.WriteImage(sitk.GetImageFromArray((PNG_THECAL_SAC * disc).astype(np.uint8)), str(folder / "disc_label.png"))
    return folder


def test_labelled_cases_read_nifti_pairs_with_foramina_and_pngs_with_the_canal_only(labelled):
    phantom, disc = labelled_cases(labelled)
    assert (phantom.name, phantom.has_foramina, phantom.labels.shape) == ("phantom", True, (3, 96, 96))
    assert set(np.unique(phantom.labels)) == {0, 1, 2, 3}
    assert (disc.name, disc.has_foramina, disc.labels.shape) == ("disc", False, (1, 64, 64))
    assert disc.labels.sum() == np.count_nonzero((np.mgrid[:64, :64][0] - 32) ** 2
                                                 + (np.mgrid[:64, :64][1] - 30) ** 2 < 100)
    assert disc.volume.layout.slice_grid(0).pixel_size_mm == pytest.approx((PNG_PIXEL_MM, PNG_PIXEL_MM))
    with pytest.raises(ValueError, match="no .*_image.nii.gz"):
        labelled_cases(labelled / "empty")


def test_labels_with_the_foramina_on_the_image_s_sides_are_refused(labelled):
    path = labelled / "phantom_labels.nii.gz"
    write_with_foramina_swapped(path, path)  # 2 on the image's left: the patient's right
    with pytest.raises(ValueError, match=r"left foramen \(2\) lies on the patient's right of its right foramen \(3\) "
                                         r"on 3 of the 3 slices with both: labelled by the image's sides\?"):
        list(labelled_cases(labelled))


def test_a_label_picture_of_another_size_than_its_image_is_refused(labelled):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((80, 70), np.uint8)), str(labelled / "disc_label.png"))
    with pytest.raises(ValueError, match="disc_label.png: 70 x 80 pixels, its image 64 x 64: a label picture must be"):
        list(labelled_cases(labelled))


def write_segmentation_file(path, labels: np.ndarray, like) -> None:
    """labels as a 3D Slicer .seg.nrrd on the grid of the image `like`: the canal alone in a second layer with label
    value 1, the foramina in the first with values 7 and 5, and a segment of the user's own over everything."""
    first = np.where(labels == 2, 7, np.where(labels == 3, 5, np.where(labels > 0, 0, 9))).astype(np.uint8)
    image = sitk.Compose([sitk.GetImageFromArray(layer) for layer in (first, (labels == 1).astype(np.uint8))])
    image.CopyInformation(like)
    for n, (segment_id, name, layer, value) in enumerate((("Segment_2", "right NEURAL foramen", 0, 5),
                                                         ("SpinalCanal", "canal drawn again", 1, 1),
                                                         ("LeftNeuralForamen", "Left neural foramen", 0, 7),
                                                         ("Segment_9", "Disc", 0, 9))):
        for key, text in (("ID", segment_id), ("Name", name), ("Layer", layer), ("LabelValue", value)):
            image.SetMetaData(f"Segment{n}_{key}", str(text))
    sitk.WriteImage(image, str(path))


def test_labels_may_be_a_slicer_segmentation_file(labelled):
    labels_image = sitk.ReadImage(str(labelled / "phantom_labels.nii.gz"))
    write_segmentation_file(labelled / "phantom_labels.seg.nrrd", sitk.GetArrayFromImage(labels_image), labels_image)
    (labelled / "phantom_labels.nii.gz").unlink()
    phantom, _ = labelled_cases(labelled)
    expected = phantom.volume.from_source_grid(sitk.GetArrayFromImage(labels_image))
    assert np.array_equal(phantom.labels, expected)
    (labelled / "phantom_labels.seg.nrrd").unlink()
    with pytest.raises(ValueError, match="no phantom_labels.nii.gz or phantom_labels.seg.nrrd beside it"):
        list(labelled_cases(labelled))


def test_a_segmentation_as_the_labels_scores_perfectly(labelled):
    phantom = next(labelled_cases(labelled))
    comparisons = compare_case(phantom, ThresholdSegmenter(), "lumbar")  # it segments the phantom as labelled
    assert [c.slice_index for c in comparisons] == [0, 1, 2]
    for c in comparisons:
        assert c.dice == {"canal": 1.0, "left_foramen": 1.0, "right_foramen": 1.0}
        assert c.found == pytest.approx(c.labelled) and c.found_grades == c.labelled_grades
    lines = summary_lines(comparisons)
    assert "canal Dice: mean 1.000" in lines[1] and "within 1 / 2 / 3 mm: 100.0 / 100.0 / 100.0 %" in lines[2]
    assert "within 1 / 2 / 3 mm: 100.0 / 100.0 / 100.0 %" in lines[-1]  # the foramina
    assert lines[-2] == ("canal to check (the check column) on 0 of 3 slices: canal AP within 1 mm there n/a, on the "
                         "others 100.0 %; 0 of the 0 slices with canal Dice below 0.8")
    unsure = compare_case(phantom, ThresholdSegmenter(canal_probability=0.9), "lumbar")  # the same canal, doubted
    assert all(c.canal_to_check for c in unsure) and not any(c.canal_to_check for c in comparisons)
    assert summary_lines(unsure)[-2].startswith("canal to check (the check column) on 3 of 3 slices: canal AP within "
                                                "1 mm there 100.0 %, on the others n/a;")


def test_slices_without_a_labelled_canal_are_left_out_and_unlabelled_foramina_count_apart(labelled):
    phantom = next(labelled_cases(labelled))
    phantom.labels[0][phantom.labels[0] == 1] = 0  # slice 0: no canal labelled
    phantom.labels[1][phantom.labels[1] == 2] = 0  # slice 1: no left foramen labelled, though the image shows one
    comparisons = compare_case(phantom, ThresholdSegmenter(), "lumbar")
    assert [c.slice_index for c in comparisons] == [1, 2] and math.isnan(comparisons[0].dice["left_foramen"])
    assert summary_lines(comparisons)[-1].startswith("foramina: 3 labelled; Dice mean 1.000;")
    assert summary_lines(comparisons)[-1].endswith("of 1 not labelled, reported absent 0.0 %")


def test_nifti_labels_of_the_canal_only_compare_the_canal_only(labelled):
    write_canal_only(labelled / "phantom_labels.nii.gz", labelled / "phantom_labels.nii.gz")
    phantom = next(labelled_cases(labelled))
    comparisons = compare_case(phantom, ThresholdSegmenter(), "lumbar")  # it finds the foramina the image shows
    lines = summary_lines(comparisons)
    assert "(0 with labelled foramina)" in lines[0] and "canal Dice: mean 1.000" in lines[1]
    assert lines[-1] == "foramina: none labelled, not compared"  # not 6 foramina reported where none is


def test_a_folder_mixing_labels_of_the_canal_only_with_labelled_foramina_compares_each_as_labelled(labelled):
    shutil.copy(labelled / "phantom_image.nii.gz", labelled / "sac_image.nii.gz")
    write_canal_only(labelled / "phantom_labels.nii.gz", labelled / "sac_labels.nii.gz")
    phantom, sac, _ = labelled_cases(labelled)
    assert (phantom.has_foramina, sac.has_foramina) == (True, False)
    lines = summary_lines([c for case in (phantom, sac) for c in compare_case(case, ThresholdSegmenter(), "lumbar")])
    assert "(3 with labelled foramina)" in lines[0]
    assert lines[-1].startswith("foramina: 6 labelled; Dice mean 1.000;")
    assert lines[-1].endswith("of 0 not labelled, reported absent n/a")  # not the sac's 6 reported where none is


def test_a_canal_drawn_a_pixel_small_all_round_shows_as_two_pixels_short(labelled):
    phantom = next(labelled_cases(labelled))
    comparisons = compare_case(phantom, ErodedCanal(), "lumbar")
    for c in comparisons:
        assert c.found["canal_ap_mm"] == pytest.approx(c.labelled["canal_ap_mm"] - 2 * PIXEL_MM, abs=0.3)
        assert 0.8 < c.dice["canal"] < 1.0 and c.dice["left_foramen"] == 1.0
        assert c.found["canal_area_mm2"] < c.labelled["canal_area_mm2"]
    lines = summary_lines(comparisons)
    assert "within 1 / 2 / 3 mm: 0.0 / 100.0 / 100.0 %" in lines[2] and "median -1.6" in lines[2]
    assert "found - labels, median -" in lines[3]
    assert "on 0 of 3 slices: canal AP within 1 mm there n/a, on the others 0.0 %" in lines[-2]  # a sure miss


def test_png_labels_compare_the_canal_only(labelled):
    _, disc = labelled_cases(labelled)

    class Bright(ThresholdSegmenter):
        def segment(self, images, grids):
            return super().segment([image * 4 for image in images], grids)  # 8-bit: the canal 220 → 880

    [comparison] = compare_case(disc, Bright(), "lumbar")
    assert comparison.dice["canal"] == 1.0 and not comparison.has_foramina
    assert math.isnan(comparison.dice["left_foramen"]) and math.isnan(comparison.dice["right_foramen"])
    assert comparison.labelled["canal_ap_mm"] == pytest.approx(19 * PNG_PIXEL_MM, abs=PNG_PIXEL_MM)
    assert "(0 with labelled foramina)" in summary_lines([comparison])[0]


def test_evaluate_prints_the_summary_and_writes_a_row_per_slice(labelled, tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    (labelled / "disc_label.png").unlink()
    (labelled / "disc_image.png").unlink()
    assert cli.main(["evaluate", str(labelled), "--csv", str(tmp_path / "slices.csv")]) == 0
    said = capsys.readouterr().out
    assert said.startswith("3 slices with a labelled canal in 1 labelled image (3 with labelled foramina)")
    with open(tmp_path / "slices.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COMPARISON_COLUMNS and [row["slice_index"] for row in rows] == ["0", "1", "2"]
    assert all(row["canal_ap_mm_labels"] == row["canal_ap_mm_found"] for row in rows)
    assert [row["canal_to_check"] for row in rows] == ["False"] * 3
    assert cli.main(["evaluate", str(tmp_path / "nothing")]) == cli.EXIT_INPUT
    assert "no *_image.nii.gz" in capsys.readouterr().err

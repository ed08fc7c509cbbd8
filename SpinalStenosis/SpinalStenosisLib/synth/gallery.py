"""gallery.png: synthetic slices beside real ones at the same physical scale, for a person to judge."""
from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW_MM = 110.0
REAL_PICKS = (  # (path under the real folder, slice fraction) - validation images, looked at, never trained on
    ("lumbar_unlabelled/chaos_and_myosegmentum/TUM01_water_img_img_L2-L5.nii.gz", 0.5),
    ("lumbar_unlabelled/chaos_t2spir_spinecrop/image_1_spinecrop.nii.gz", 0.6),
    ("lumbar_unlabelled/totalsegmentator_example_mr/example_mr_sm.nii.gz", 0.5),
    ("gmchallenge_cervical_t2star/sub-9418_run-1_T2starw.nii.gz", 0.5),
    ("sct_testing_cervical/t2/t2.nii.gz", 0.5),
)


def _window(ax, image: np.ndarray, grid, centre_rc: tuple[float, float], title: str) -> None:
    row_mm, column_mm = grid.pixel_size_mm
    extent = (-centre_rc[1] * column_mm - column_mm / 2, (image.shape[1] - centre_rc[1]) * column_mm - column_mm / 2,
              (image.shape[0] - centre_rc[0]) * row_mm - row_mm / 2, -centre_rc[0] * row_mm - row_mm / 2)
    low, high = np.percentile(image, [1, 99.5])
    ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), extent=extent)
    ax.set_xlim(-WINDOW_MM / 2, WINDOW_MM / 2)
    ax.set_ylim(WINDOW_MM / 2, -WINDOW_MM / 2)
    ax.set_title(title, fontsize=7, color="white")
    ax.axis("off")


def write_gallery(path: Path, cases: list, real_folder: str | Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..volume_io import InputError, open_axial

    real = []
    if real_folder is not None and Path(real_folder).is_dir():
        for relative, fraction in REAL_PICKS:
            file = Path(real_folder) / relative
            try:
                volume = open_axial(file)
            except (InputError, FileNotFoundError):
                continue
            s = int(fraction * (volume.n_slices - 1))
            image = volume.read_slice(s)
            real.append((image, volume.layout.slice_grid(s), (image.shape[0] / 2, image.shape[1] / 2),
                         f"REAL {file.name[:28]}"))
    columns = 4
    n_rows = int(np.ceil((len(cases) + len(real)) / columns)) or 1
    figure, axes = plt.subplots(n_rows, columns, figsize=(3.2 * columns, 3.4 * n_rows), squeeze=False)
    figure.patch.set_facecolor("black")
    for ax in axes.ravel():
        ax.axis("off")
    panels = [(c.image, c.grid, tuple(float(v[0]) for v in c.grid.to_index(np.zeros((1, 3)))),
               f"synthetic {c.scene.anatomy.region} {c.scene.anatomy.level} {c.scene.anatomy.kind} "
               f"{c.scene.contrast}") for c in cases] + real
    for ax, (image, grid, centre, title) in zip(axes.ravel(), panels):
        _window(ax, image, grid, centre, title)
    figure.suptitle(f"synthetic vs real, each panel {WINDOW_MM:.0f} mm wide", color="white")
    figure.tight_layout()
    figure.savefig(path, dpi=80, facecolor="black")
    plt.close(figure)

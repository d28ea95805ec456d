"""Localisation cases, mask geometry and scoring of maps through run_localization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_afire.engines import load_afire_model, localization_cases, prepared_mask, run_localization
from monai_afire.metrics.localization import resized_boxes
from monai_afire.networks import AFiRe, AFiReClassifier, AFiReEncoder


def test_cases_group_boxes_per_finding_and_find_masks(tmp_path):
    (tmp_path / "a_Nodule.png").write_bytes(b"")
    records = [
        {"image": "/x/a.png", "boxes": [[0, 0, 2, 2], [3, 3, 5, 5], [1, 1, 4, 4]],
         "box_labels": ["Nodule", "Nodule", "Hernia"]},
        {"image": "/x/b.png", "boxes": [], "box_labels": []},
    ]  # fmt: skip
    cases = localization_cases(records, ["Mass", "Nodule"], mask_dir=tmp_path)
    assert len(cases) == 1
    assert cases[0]["finding"] == "Nodule" and cases[0]["class_index"] == 1 and len(cases[0]["boxes"]) == 2
    assert cases[0]["mask"] == str(tmp_path / "a_Nodule.png")


def test_prepared_mask_follows_box_geometry(tmp_path):
    mask = np.zeros((40, 80), np.uint8)
    mask[8:16, 60:72] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = prepared_mask(tmp_path / "m.png", 32)
    rows, cols = np.nonzero(out)
    box = resized_boxes([[60, 8, 72, 16]], (80, 40), 32)[0]
    np.testing.assert_allclose([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], box, atol=1)


def _film(tmp_path, size=32):
    rng = np.random.default_rng(0)
    image = (rng.random((size, size)) * 60).astype(np.uint8)
    image[4:12, 18:28] = 250  # a bright "finding" in rows 4-12, columns 18-28
    Image.fromarray(image).save(tmp_path / "film.png")
    mask = np.zeros((size, size), np.uint8)
    mask[4:12, 18:28] = 255
    Image.fromarray(mask).save(tmp_path / "masks_film_Mass.png")
    return {"image": str(tmp_path / "film.png"), "boxes": [[18, 4, 28, 12]], "box_labels": ["Mass"]}


def test_run_localization_writes_tables_and_figures(tmp_path):
    record = _film(tmp_path)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks_film_Mass.png").rename(tmp_path / "masks" / "film_Mass.png")
    model = AFiReClassifier(
        AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2), 1
    )
    scores = run_localization([record], ["Mass"], 32, tmp_path / "out", classifier=model, mask_dir=tmp_path / "masks")
    row = scores["gradcam"]["all"]
    assert row["cases"] == 1 and 0.0 <= row["pixel_auroc"] <= 1.0 and row["pointing_game"] in (0.0, 1.0)
    assert (tmp_path / "out" / "localization_gradcam.md").read_text().count("Mass") == 1
    assert (tmp_path / "out" / "localization_gradcam.png").stat().st_size > 0


def test_run_localization_needs_a_model_and_boxes(tmp_path):
    with pytest.raises(ValueError, match="give a classifier"):
        run_localization([], ["Mass"], 32, tmp_path)
    model = AFiReClassifier(AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1,
                                         num_heads=2), 1)  # fmt: skip
    with pytest.raises(ValueError, match="no record has boxes"):
        run_localization([{"image": "x.png", "boxes": [], "box_labels": []}], ["Mass"], 32, tmp_path, model)


def test_box_outside_the_image_is_reported_with_the_file(tmp_path):
    record = _film(tmp_path)
    record["boxes"] = [[18, 4, 60, 12]]
    model = AFiReClassifier(AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1,
                                         num_heads=2), 1)  # fmt: skip
    with pytest.raises(ValueError, match="film.png"):
        run_localization([record], ["Mass"], 32, tmp_path / "out", classifier=model)


@pytest.mark.parametrize("lesion_prototype", [False, True])
def test_afire_maps_follow_the_recipe(tmp_path, lesion_prototype):
    """A model of the authors' recipe (no lesion prototype) gives only the residual; the afire_plus model both maps."""
    record = _film(tmp_path)
    encoder = {"arch": "vit_tiny", "img_size": 32, "patch_size": 8, "hidden_size": 16, "num_layers": 1, "num_heads": 2}
    sizes = {"num_prototypes": 4, "head_hidden_dim": 8, "head_bottleneck_dim": 8, "decoder_dim": 16,
             "decoder_depth": 1, "decoder_heads": 2}  # fmt: skip
    torch.manual_seed(0)
    trained = AFiRe(AFiReEncoder(**encoder), lesion_prototype=lesion_prototype, **sizes)
    torch.save({"model": trained.state_dict()}, tmp_path / "afire_checkpoint_1.pt")
    model = load_afire_model(tmp_path / "afire_checkpoint_1.pt", encoder, **sizes)  # detects the lesion prototype
    assert model.has_lesion_prototype == lesion_prototype
    scores = run_localization([record], ["Mass"], 32, tmp_path / "out", afire_model=model)
    expected = {"lesion_probability", "residual"} if lesion_prototype else {"residual"}
    assert set(scores) == expected
    assert (tmp_path / "out" / "localization_lesion_probability.md").exists() == lesion_prototype

"""Localisation of findings from image-level labels: Grad-CAM of a classifier and AFiRe's label-free anomaly maps,
scored against ground-truth boxes (and masks of the simulated set), with a markdown table and a figure per method."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from monai_afire.inferers.anomaly_maps import anomaly_maps
from monai_afire.metrics import write_localization_markdown
from monai_afire.metrics.localization import localization_scores, resized_boxes
from monai_afire.networks import AFiRe, AFiReEncoder, checkpoint_has_lesion_prototype, load_afire_checkpoint
from monai_afire.transforms import radiograph_transforms
from monai_afire.visualize import TokenGradCAM, save_map_gallery

__all__ = ["localization_cases", "prepared_mask", "load_afire_model", "run_localization"]

#: map names: the classifier's Grad-CAM, and the two label-free maps of an AFiRe model (``lesion_probability`` only
#: for a model trained with the lesion prototype, the afire_pretrain bundle's ``afire_plus.json``).
METHODS = ("gradcam", "lesion_probability", "residual")


def localization_cases(
    records: Sequence[dict[str, Any]], classes: Sequence[str], mask_dir: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """One case per (image, finding) with boxes: ``image``, ``finding``, ``class_index``, ``boxes`` (original
    pixels) and ``mask`` (path of ``<mask_dir>/<image stem>_<finding>.png`` when it exists, else None).

    Findings outside ``classes`` are skipped (the classifier has no output for them).
    """
    cases = []
    for rec in records:
        by_finding: dict[str, list] = {}
        for box, finding in zip(rec.get("boxes", []), rec.get("box_labels", [])):
            if finding in classes:
                by_finding.setdefault(finding, []).append(list(box))
        stem = Path(rec["image"]).name.split(".")[0]
        for finding, boxes in by_finding.items():
            mask = None if mask_dir is None else Path(mask_dir) / f"{stem}_{finding}.png"
            cases.append(
                {
                    "image": rec["image"],
                    "finding": finding,
                    "class_index": list(classes).index(finding),
                    "boxes": boxes,
                    "mask": str(mask) if mask is not None and mask.is_file() else None,
                }
            )
    return cases


def prepared_mask(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """A mask PNG of the original film brought to the (S, S) grid of ``radiograph_transforms`` (nearest
    neighbour, aspect kept, centred padding), as a (H, W) bool array."""
    mask = np.asarray(Image.open(path)) > 0
    if mask.ndim != 2:
        raise ValueError(f"prepared_mask: {path} must be a one-channel mask, got shape {mask.shape}.")
    height, width = mask.shape
    scale = image_size / max(width, height)
    new_h, new_w = int(round(height * scale)), int(round(width * scale))
    resized = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(new_h, new_w), mode="nearest")[0, 0]
    out = np.zeros((image_size, image_size), dtype=bool)
    top, left = (image_size - new_h) // 2, (image_size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized.numpy() > 0.5
    return out


def load_afire_model(
    checkpoint: str | os.PathLike | None, encoder_kwargs: dict[str, Any], **afire_kwargs: Any
) -> AFiRe | None:
    """Build :class:`~monai_afire.networks.AFiRe` (``AFiReEncoder(**encoder_kwargs)``, ``afire_kwargs``) and load a
    pre-training checkpoint into it; None when ``checkpoint`` is None (no label-free maps).

    Without ``lesion_prototype`` in ``afire_kwargs`` the model gets one exactly when the checkpoint has one
    (:func:`~monai_afire.networks.checkpoint_has_lesion_prototype`), so checkpoints of both recipes load.
    """
    if checkpoint is None:
        return None
    afire_kwargs.setdefault("lesion_prototype", checkpoint_has_lesion_prototype(checkpoint))
    model = AFiRe(AFiReEncoder(**encoder_kwargs), **afire_kwargs)
    return load_afire_checkpoint(model, checkpoint)


def run_localization(
    records: Sequence[dict[str, Any]],
    classes: Sequence[str],
    image_size: int,
    output_dir: str | os.PathLike,
    classifier: torch.nn.Module | None = None,
    afire_model: AFiRe | None = None,
    mask_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    iou_thresholds: Sequence[float] = (0.1, 0.3, 0.5),
    map_threshold: float = 0.5,
    max_figures: int = 8,
    max_cases: int | None = None,
    afire_network: str = "student",
) -> dict[str, dict[str, dict[str, float]]]:
    """Compute the maps of every (image, finding) case with boxes and score them.

    Grad-CAM (:class:`~monai_afire.visualize.TokenGradCAM`) uses the classifier's output of the case's finding; the
    AFiRe maps (lesion-prototype probability and restoration residual, :func:`~monai_afire.inferers.anomaly_maps`
    of the ``afire_network`` branch) need no label at all. A model without a lesion prototype (the authors' recipe)
    has no lesion-probability map, so it gives the ``residual`` method only. For each method,
    ``localization_<method>.md`` holds one row per finding and an ``all`` row (pointing game, box hit rate at each
    IoU, pixel AUROC where masks exist) and ``localization_<method>.png`` shows the first ``max_figures`` cases with
    their boxes; ``localization.md`` gathers the ``all`` rows.

    Args:
        records: reader records with ``boxes``/``box_labels`` (records without boxes are skipped).
        classes: the classifier's output classes (findings outside them are skipped).
        image_size: side S of the prepared images (boxes and masks are brought to that grid).
        output_dir: folder of the tables and figures (created).
        classifier: the fine-tuned classifier (e.g. :class:`~monai_afire.networks.AFiReClassifier`), or None.
        afire_model: a pre-trained :class:`~monai_afire.networks.AFiRe`, or None.
        mask_dir: folder of ``<image stem>_<finding>.png`` masks (the simulated set's ``masks/``), or None.
        device: where the models run.
        iou_thresholds: IoU levels of the box hit rates.
        map_threshold: fraction of each map's range above which pixels form its predicted box.
        max_figures: cases drawn per figure.
        max_cases: score only the first cases (None: all).
        afire_network: the AFiRe branch whose lesion probability and tokens give the label-free maps, ``"student"``
            (the branch the decoder was trained with) or ``"teacher"``.

    Returns:
        ``{method: {finding: scores}}`` as written.

    Raises:
        ValueError: no model given, no case with boxes, or a box outside its image (names the file).
    """
    if classifier is None and afire_model is None:
        raise ValueError("run_localization: give a classifier, an AFiRe model or both.")
    cases = localization_cases(records, classes, mask_dir)[:max_cases]
    if not cases:
        raise ValueError(f"run_localization: no record has boxes of the classes {list(classes)}.")
    prepare = radiograph_transforms(image_size)
    cam = None
    if classifier is not None:
        classifier = classifier.to(device).eval()
        cam = TokenGradCAM(classifier)
    afire_methods: list[str] = []
    if afire_model is not None:
        afire_methods = list(METHODS[1:]) if afire_model.has_lesion_prototype else ["residual"]
    methods = ([] if classifier is None else ["gradcam"]) + afire_methods
    maps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    images, boxes, masks, findings, names = [], [], [], [], []
    cached: dict[str, dict[str, np.ndarray]] = {}
    for case in cases:
        image = prepare({"image": case["image"]})["image"]
        width, height = (int(v) for v in image.meta["spatial_shape"][:2])
        boxes.append(resized_boxes(case["boxes"], (width, height), image_size, name=case["image"]))
        masks.append(None if case["mask"] is None else prepared_mask(case["mask"], image_size))
        batch = image.as_tensor()[None].to(device)
        images.append(image[0].T.numpy())  # MONAI's first axis is the width: transpose to (H, W)
        findings.append(case["finding"])
        names.append(f"{case['image']} ({case['finding']})")
        if cam is not None:
            maps["gradcam"].append(cam(batch, class_idx=case["class_index"])[0, 0].T.detach().cpu().numpy())
        if afire_model is not None:
            if case["image"] not in cached:
                out = anomaly_maps(afire_model.to(device), batch, network=afire_network)
                cached[case["image"]] = {m: out[m][0, 0].T.cpu().numpy() for m in afire_methods}
            for m in afire_methods:
                maps[m].append(cached[case["image"]][m])
    out_dir = Path(output_dir)
    results, summary = {}, {}
    for method in methods:
        scores = localization_scores(
            maps[method], boxes, findings, masks, iou_thresholds=iou_thresholds, map_threshold=map_threshold,
            names=names,
        )  # fmt: skip
        write_localization_markdown(scores, out_dir / f"localization_{method}.md", title=f"Localisation: {method}")
        n = min(max_figures, len(images))
        save_map_gallery(
            out_dir / f"localization_{method}.png",
            images[:n],
            maps[method][:n],
            boxes[:n],
            titles=[f"{method}: {Path(c['image']).name} {c['finding']}" for c in cases[:n]],
            map_threshold=map_threshold,
        )
        results[method] = scores
        summary[method] = scores["all"]
    write_localization_markdown(summary, out_dir / "localization.md", title="Localisation, all findings, per map")
    return results

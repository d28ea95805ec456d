"""What a bundle run prints when it ends: the data it used, where its checkpoint and reports are, and its results.

Each bundle config calls one of these in its ``finalize`` step (rank 0 only). The summary is printed (so it is the
last thing on the console, whatever the logging set-up) and returned as text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_afire.handlers.classification import format_metric
from monai_afire.metrics import auroc_markdown

__all__ = [
    "classification_summary",
    "evaluation_summary",
    "report_summary",
    "inference_summary",
    "pretraining_summary",
    "split_sizes",
    "token_inference_summary",
]


def _path(path: str | os.PathLike | None) -> str:
    return "-" if path is None else os.path.abspath(path)  # normalised, symlinks kept as the user sees them


def _emit(title: str, lines: Sequence[str]) -> str:
    text = "\n".join([f"\n==== {title} ====", *(f"  {line}" for line in lines), ""])
    print(text, flush=True)
    return text


def split_sizes(data: Mapping[str, Any]) -> str:
    """``"training 20, validation 6, test 9 images"`` from a :func:`~monai_afire.apps.classification_splits` result
    (the training images are those whose labels are used: the label fraction's subset)."""
    return (
        f"training {len(data.get('train', []))}, validation {len(data.get('val', []))}, "
        f"test {len(data.get('test', []))} images"
    )


def pretraining_summary(
    num_images: int,
    trainer: Any,
    ckpt_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    teacher_encoder: str | os.PathLike | None = None,
    skipped: int = 0,
) -> str:
    """Summary of a pre-training run: films, epochs, newest checkpoint, teacher encoder, loss history, last losses."""
    from monai_afire.handlers import latest_checkpoint
    from monai_afire.visualize import read_loss_history

    history_file = Path(output_dir) / "loss_history.csv"
    lines = [
        f"films: {num_images}" + (f" ({skipped} unreadable files left out)" if skipped else ""),
        f"epochs: {trainer.state.epoch} of {trainer.state.max_epochs}, iterations: {trainer.state.iteration}",
        f"newest checkpoint: {_path(latest_checkpoint(ckpt_dir))}",
    ]
    if teacher_encoder is not None:
        lines.append(f"teacher encoder (the model to keep): {_path(teacher_encoder)}")
    lines += [f"loss history: {_path(history_file)}", f"TensorBoard logs: {_path(output_dir)}"]
    if history_file.is_file():
        rows = read_loss_history(history_file)
        if rows:
            last = rows[-1]
            keys = [k for k in ("loss", "structure", "category", "restoration") if k in last]
            parts = ", ".join(f"{k} {last[k]:.4f}" for k in keys)
            lines.append(f"last epoch's mean losses: {parts}")
    return _emit("AFiRe pre-training finished", lines)


def classification_summary(
    data: Mapping[str, Any],
    evaluator: Any,
    ckpt_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    dataset: str = "",
    label_fraction: float | None = None,
) -> str:
    """Summary of a fine-tuning run: split sizes, classes, the best model and its validation mean AUROC, reports."""
    state = evaluator.state
    best = getattr(state, "best_metric", None)
    epoch = getattr(state, "best_metric_epoch", -1)
    model = Path(ckpt_dir) / "model.pt"
    fraction = "" if label_fraction is None else f", label fraction {label_fraction:g}"
    selected = f" (validation mean AUROC {format_metric(best)} at epoch {epoch})" if (epoch or -1) >= 0 else ""
    lines = [
        f"data: {dataset}{fraction}: {split_sizes(data)}",
        f"classes: {', '.join(map(str, data.get('classes', [])))}",
        f"best model: {_path(model)}{selected}",
        f"model settings and classes: {_path(Path(ckpt_dir) / 'model_config.json')}",
        f"TensorBoard logs: {_path(output_dir)}",
        "test AUROC: run evaluate.json with the same settings",
    ]
    if not model.is_file():
        lines[2] = f"best model: none saved in {_path(ckpt_dir)} (no validation run completed)"
    return _emit("Classification training finished", lines)


def evaluation_summary(report: Any, data: Mapping[str, Any] | None = None, title: str | None = None) -> str:
    """Summary of a test run: the per-class AUROC table with its intervals, and where the tables are."""
    result = getattr(report, "result", None)
    out = Path(report.output_dir)
    lines = [split_sizes(data)] if data is not None else []
    if result is not None:
        lines += ["", *auroc_markdown(result, title=title).splitlines(), ""]
    lines += [
        f"tables: {_path(out / 'auroc.md')}, {_path(out / 'auroc.csv')}",
        f"per-image probabilities: {_path(out / 'predictions.csv')}",
    ]
    return _emit("Test AUROC", lines)


def inference_summary(num_images: int, path: str | os.PathLike, skipped: int = 0) -> str:
    """Summary of an inference run: how many images, where their probabilities are."""
    left_out = f" ({skipped} unreadable files left out)" if skipped else ""
    return _emit("Inference finished", [f"images: {num_images}{left_out}", f"probabilities: {_path(path)}"])


def token_inference_summary(written: Sequence[str | os.PathLike], output_dir: str | os.PathLike) -> str:
    """Summary of the pre-training bundle's inference: how many token files, where."""
    return _emit(
        "Token features and anomaly maps written",
        [f"files: {len(written)} (<image>_tokens.npz: features, anomaly)", f"folder: {_path(output_dir)}"],
    )


def report_summary(title: str, path: str | os.PathLike, figures: Sequence[str | os.PathLike] = ()) -> str:
    """Summary of a run that writes a markdown report (cohesion, localisation): the report itself and where it is."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else [f"(no report written at {path})"]
    lines += ["", f"report: {_path(path)}", *(f"figure: {_path(f)}" for f in figures)]
    return _emit(title, lines)

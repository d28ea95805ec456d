"""End-to-end runs of the afire_cxr_classification bundle on a tiny simulated set through ConfigWorkflow."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_metadata

from monai_afire.data.simcxr import generate_simcxr
from monai_afire.networks import AFiRe, AFiReEncoder

from .tiny import AFIRE, BUNDLE_OVERRIDES, ENCODER

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "afire_cxr_classification"
SCHEMA = Path(__file__).resolve().parent / "bundle_schema.json"
CLASSES = ["Cardiomegaly", "Effusion", "Nodule"]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """About 30 simulated 32-pixel films with three findings, shared by the tests of this module."""
    cache = tmp_path_factory.getbasetemp() / "afire_ct_cache"
    old = os.environ.get("MONAI_AFIRE_CACHE")
    os.environ["MONAI_AFIRE_CACHE"] = str(cache)
    try:
        out = generate_simcxr(
            tmp_path_factory.mktemp("simcxr"),
            30,
            seed=3,
            image_size=32,
            prevalence={"Cardiomegaly": 0.5, "Effusion": 0.4, "Nodule": 0.5},
            test_fraction=0.3,
        )
    finally:
        if old is None:
            os.environ.pop("MONAI_AFIRE_CACHE", None)
        else:
            os.environ["MONAI_AFIRE_CACHE"] = old
    return out


@pytest.fixture(scope="module")
def afire_checkpoint(tmp_path_factory):
    """A pre-training checkpoint in the trainer's format ({"model": AFiRe state dict}) of a tiny AFiRe model trained
    with the lesion prototype (afire_plus.json), so that localisation has all three maps."""
    torch.manual_seed(0)
    model = AFiRe(AFiReEncoder(mlp_dim=64, **ENCODER), lesion_prototype=True, **AFIRE)
    path = tmp_path_factory.mktemp("pretrain") / "afire_checkpoint_10.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


def _overrides(root: Path, sim_dir: Path, **extra) -> dict:
    values = {
        **BUNDLE_OVERRIDES,
        "bundle_root": str(root),
        "dataset": "simcxr",
        "dataset_dir": str(sim_dir),
        "classes": CLASSES,
        "val_fraction": 0.3,
        "max_epochs": 2,
        "warmup_epochs": 1,
        "num_bootstrap": 50,
    }
    values.update(extra)
    return values


def _run(configs: list[str], workflow_type: str, **overrides) -> ConfigWorkflow:
    files = [str(BUNDLE / "configs" / c) for c in configs]
    workflow = ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    workflow.initialize()
    assert not workflow.check_properties()
    workflow.run()
    workflow.finalize()
    return workflow


def _root_message(err: BaseException) -> str:
    messages = []
    while err is not None:
        messages.append(str(err))
        err = err.__cause__ or err.__context__
    return " | ".join(messages)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metadata_is_valid():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(json.loads((BUNDLE / "configs" / "metadata.json").read_text()), schema)
    # the same check through MONAI, offline: verify_metadata downloads nothing when the schema file exists
    verify_metadata(meta_file=str(BUNDLE / "configs" / "metadata.json"), filepath=str(SCHEMA))
    for name in ("train", "linear_probe", "evaluate", "inference", "localize", "multi_gpu_train"):
        json.loads((BUNDLE / "configs" / f"{name}.json").read_text())
    assert (BUNDLE / "docs" / "README.md").is_file()


def test_finetune_evaluate_infer_localize(sim_dir, afire_checkpoint, tmp_path):
    root = tmp_path / "bundle"
    over = _overrides(root, sim_dir, pretrained_checkpoint=str(afire_checkpoint))
    _run(["train.json"], "train", **over)
    assert (root / "models" / "model.pt").is_file()
    assert json.loads((root / "models" / "classes.json").read_text()) == CLASSES
    assert any(p.name.startswith("events.out.tfevents") for p in (root / "eval").iterdir())

    _run(["train.json", "evaluate.json"], "train", **over)
    rows = _read_csv(root / "eval" / "auroc.csv")
    assert [r["class"] for r in rows] == [*CLASSES, "mean"]
    defined = [float(r["auroc"]) for r in rows[:-1] if r["defined"] == "1"]
    assert defined and all(0.0 <= v <= 1.0 for v in defined)
    assert float(rows[-1]["auroc"]) == pytest.approx(np.mean(defined))
    table = (root / "eval" / "auroc.md").read_text()
    assert all(c in table for c in CLASSES) and "95% CI" in table
    test_names = (sim_dir / "test_list.txt").read_text().split()
    assert len(_read_csv(root / "eval" / "predictions.csv")) == len(test_names)

    inference = {k: v for k, v in over.items() if k not in ("dataset", "classes", "val_fraction", "max_epochs")}
    inference.update(dataset_dir=str(sim_dir / "images"), pretrained_checkpoint=None)
    for key in ("warmup_epochs", "num_bootstrap"):
        inference.pop(key)
    _run(["inference.json"], "infer", **inference)
    probs = _read_csv(root / "eval" / "probabilities.csv")
    assert len(probs) == len(list((sim_dir / "images").iterdir()))
    assert list(probs[0]) == ["image", *CLASSES]
    assert all(0.0 <= float(r[c]) <= 1.0 for r in probs for c in CLASSES)

    _run(["train.json", "localize.json"], "train", **over, afire_checkpoint=str(afire_checkpoint), **AFIRE)
    for method in ("gradcam", "lesion_probability", "residual"):
        text = (root / "eval" / f"localization_{method}.md").read_text()
        assert "pointing_game" in text and "hit@0.5" in text and "pixel_auroc" in text and "**all**" in text
        assert (root / "eval" / f"localization_{method}.png").stat().st_size > 0
    assert "gradcam" in (root / "eval" / "localization.md").read_text()


def test_linear_probe_keeps_pretrained_encoder(sim_dir, afire_checkpoint, tmp_path):
    root = tmp_path / "bundle"
    over = _overrides(root, sim_dir, pretrained_checkpoint=str(afire_checkpoint), max_epochs=1, warmup_epochs=0)
    _run(["train.json", "linear_probe.json"], "train", **over)
    saved = torch.load(root / "models" / "model.pt", weights_only=True)
    teacher = torch.load(afire_checkpoint, weights_only=True)["model"]
    encoder_keys = [k for k in saved if k.startswith("encoder.")]
    assert encoder_keys
    for key in encoder_keys:
        assert torch.equal(saved[key], teacher["teacher." + key]), key
    assert not torch.equal(saved["head.weight"], torch.zeros_like(saved["head.weight"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_gpu_config_runs_as_one_process_group(sim_dir, tmp_path):
    """torchrun's environment for one process: DDP over gloo on the CPU, in a child process (the process group
    and Ignite's distributed state must not leak into the other tests)."""
    root = tmp_path / "bundle"
    over = _overrides(root, sim_dir, max_epochs=1, warmup_epochs=0)
    over.pop("device")
    script = f"""
import json, sys, torch
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.bundles.test_afire_cxr_classification import _run
workflow = _run(["train.json", "multi_gpu_train.json"], "train", **json.loads({json.dumps(json.dumps(over))}))
assert not torch.distributed.is_initialized()
print(type(workflow.parser.get_parsed_content("train#sampler")).__name__)
"""
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), CUDA_VISIBLE_DEVICES="")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "DistributedSampler"
    assert (root / "models" / "model.pt").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"label_fraction": 0.0}, "label_fraction must be in (0, 1]"),
        ({"label_fraction": 1.5}, "label_fraction must be in (0, 1]"),
        ({"classes": ["Cardiomegaly", "Not a finding"]}, "Not a finding"),
        ({"dataset": "mimic"}, "dataset must be one of"),
    ],
)
def test_bad_configuration(sim_dir, tmp_path, extra, message):
    over = _overrides(tmp_path / "bundle", sim_dir, **extra)
    with pytest.raises((ValueError, RuntimeError)) as err:
        _run(["train.json"], "train", **over)
    assert message in _root_message(err.value)


def test_checkpoint_of_another_size_is_refused(sim_dir, tmp_path):
    other = AFiRe(AFiReEncoder(**{**ENCODER, "hidden_size": 48}), **AFIRE)
    path = tmp_path / "other.pt"
    torch.save({"model": other.state_dict()}, path)
    over = _overrides(tmp_path / "bundle", sim_dir, pretrained_checkpoint=str(path))
    with pytest.raises((ValueError, RuntimeError)) as err:
        _run(["train.json"], "train", **over)
    assert "not an encoder of the configured size" in _root_message(err.value)


def test_inference_needs_a_trained_model(tmp_path, sim_dir):
    root = tmp_path / "bundle"
    shutil.rmtree(root, ignore_errors=True)
    over = {
        k: v
        for k, v in _overrides(root, sim_dir).items()
        if k in ("bundle_root", "image_size", "patch_size", "num_workers")
    }
    with pytest.raises((FileNotFoundError, RuntimeError)) as err:
        _run(["inference.json"], "infer", **over, dataset_dir=str(sim_dir / "images"))
    assert "train the model first" in _root_message(err.value)

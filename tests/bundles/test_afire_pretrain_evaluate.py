"""The afire_pretrain bundle's evaluate.json (anatomy cohesion of a checkpoint) end to end on a tiny simulated set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_afire.data.simcxr import generate_simcxr
from monai_afire.networks import AFiRe, AFiReEncoder

from .tiny import AFIRE, BUNDLE_OVERRIDES, ENCODER

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "afire_pretrain" / "configs"


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """A handful of simulated 32-pixel films, most of them normal, with anatomy maps."""
    old = os.environ.get("MONAI_AFIRE_CACHE")
    os.environ["MONAI_AFIRE_CACHE"] = str(tmp_path_factory.getbasetemp() / "afire_ct_cache")
    try:
        return generate_simcxr(tmp_path_factory.mktemp("simcxr"), 10, seed=5, image_size=32, prevalence={"Nodule": 0.2})
    finally:
        if old is None:
            os.environ.pop("MONAI_AFIRE_CACHE", None)
        else:
            os.environ["MONAI_AFIRE_CACHE"] = old


def _run(root: Path, sim_dir: Path, **extra) -> ConfigWorkflow:
    overrides = {
        **BUNDLE_OVERRIDES,
        "bundle_root": str(root),
        "dataset_dir": str(sim_dir),
        "num_threads": 1,
        **extra,
    }
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "evaluate.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        workflow_type="infer",
        **overrides,
    )
    workflow.initialize()
    assert not workflow.check_properties()
    workflow.run()
    workflow.finalize()
    return workflow


def _table_row(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))


def test_cohesion_of_checkpoint_and_random_init(sim_dir, tmp_path):
    torch.manual_seed(0)
    model = AFiRe(AFiReEncoder(mlp_dim=64, **ENCODER), **AFIRE)
    ckpt_dir = tmp_path / "bundle" / "models"
    ckpt_dir.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, ckpt_dir / "afire_checkpoint_4.pt")

    workflow = _run(tmp_path / "bundle", sim_dir)  # checkpoint: the newest in models/
    out = tmp_path / "bundle" / "eval" / "cohesion"
    row = _table_row(out / "cohesion.md")
    assert "afire_checkpoint_4.pt" in (out / "cohesion.md").read_text()
    assert -1.0 <= float(row["silhouette"]) <= 1.0 and 0.0 <= float(row["knn_accuracy"]) <= 1.0
    assert int(row["anatomy labels"]) >= 2 and int(row["tokens"]) > 0
    assert (out / "cohesion_tsne.png").stat().st_size > 0
    report = workflow.parser.get_parsed_content("handlers")[0]
    assert report.result["num_tokens"] == int(row["tokens"])

    _run(tmp_path / "random", sim_dir, checkpoint=None)
    assert "random init" in (tmp_path / "random" / "eval" / "cohesion" / "cohesion.md").read_text()


def test_checkpoint_of_another_size_is_refused(sim_dir, tmp_path):
    other = AFiRe(AFiReEncoder(mlp_dim=64, **{**ENCODER, "hidden_size": 48}), **AFIRE)
    path = tmp_path / "other.pt"
    torch.save({"model": other.state_dict()}, path)
    with pytest.raises((ValueError, RuntimeError)) as err:
        _run(tmp_path / "bundle", sim_dir, checkpoint=str(path))
    chain, e = [], err.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert "not an encoder of the configured size" in " ".join(chain)

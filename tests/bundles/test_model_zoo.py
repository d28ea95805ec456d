"""MONAI's model-zoo checks on fresh copies of both bundles, without trained weights (issue 12, finding 11), then
after a tiny training in the copy: ``ckpt_export`` exactly as the model zoo calls it, no architecture settings.
Also: runs write only under their ``bundle_root`` and end with a summary; ``--tracking mlflow`` to a local store."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import unittest
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_metadata, verify_net_in_out
from parameterized import parameterized

from tests.apps.test_readers import CSV_KWARGS, csv_table
from tests.tiny import (
    AFIRE,
    BUNDLE_OVERRIDES,
    BUNDLES,
    METADATA_SCHEMA_FILE,
    TmpDirTestCase,
    run_bundle,
    write_films,
)

TINY = {k: v for k, v in BUNDLE_OVERRIDES.items() if k != "device"}


def fresh_bundle(name: str, folder: Path) -> Path:
    """A copy of the bundle as a fresh clone has it: configs and docs, no weights."""
    target = folder / name
    shutil.copytree(BUNDLES / name, target, ignore=shutil.ignore_patterns("*.pt", "*.ts", "eval"))
    return target


@contextlib.contextmanager
def working_folder(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)


class TestFreshClone(TmpDirTestCase):
    def test_verify_metadata_and_network(self):
        for name in ("afire_pretrain", "afire_cxr_classification"):
            bundle = fresh_bundle(name, self.tmp)
            self.assertFalse(list((bundle / "models").glob("*.pt")))
            meta = str(bundle / "configs" / "metadata.json")
            verify_metadata(meta_file=meta, filepath=str(METADATA_SCHEMA_FILE))  # offline: the shipped schema
            inference = str(bundle / "configs" / "inference.json")
            verify_net_in_out(net_id="network_def", meta_file=meta, config_file=inference, bundle_root=str(bundle),
                              device="cpu")  # fmt: skip
            # network_data_format tells what network_def really takes and returns
            parser = ConfigParser()
            parser.read_config(str(bundle / "configs" / "inference.json"))
            parser.read_meta(meta)
            parser["bundle_root"] = str(bundle)
            fmt = parser["_meta_"]["network_data_format"]
            net = parser.get_parsed_content("network_def").eval()
            x = torch.rand(1, fmt["inputs"]["image"]["num_channels"], *fmt["inputs"]["image"]["spatial_shape"])
            with torch.no_grad():
                out = net(x)
            spec = fmt["outputs"]["pred"]
            self.assertEqual(tuple(out.shape[1:]), (spec["num_channels"], *spec["spatial_shape"]), name)

    def test_metadata_without_a_key_is_refused(self):
        import json

        meta = json.loads((BUNDLES / "afire_pretrain" / "configs" / "metadata.json").read_text())
        del meta["network_data_format"]
        (self.tmp / "metadata.json").write_text(json.dumps(meta))
        with self.assertRaisesRegex(ValueError, "network_data_format"):
            verify_metadata(meta_file=str(self.tmp / "metadata.json"), filepath=str(METADATA_SCHEMA_FILE))



def _targets(node) -> list[str]:
    if isinstance(node, dict):
        return [node.get("_target_", ""), *(t for v in node.values() for t in _targets(v))]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


class TestProgressBars(unittest.TestCase):
    """Issue 12, finding 4: training, evaluation and inference show a progress bar (Ignite's ProgressBar handler)."""

    @parameterized.expand(
        [
            ("afire_pretrain", "train.json", 1),
            ("afire_pretrain", "inference.json", 1),
            ("afire_pretrain", "evaluate.json", 1),
            ("afire_cxr_classification", "train.json", 2),  # training and validation
            ("afire_cxr_classification", "evaluate.json", 1),
            ("afire_cxr_classification", "inference.json", 1),
        ]
    )
    def test_config_attaches_a_progress_bar(self, bundle, config, count):
        import json

        tree = json.loads((BUNDLES / bundle / "configs" / config).read_text())
        self.assertEqual(_targets(tree).count("ignite.handlers.ProgressBar"), count, f"{bundle}/{config}")


@pytest.mark.slow
class TestTrainedCopies(TmpDirTestCase):
    def test_classification(self):
        bundle = fresh_bundle("afire_cxr_classification", self.tmp)
        data = csv_table(self.tmp / "data")
        configs = bundle / "configs"
        over = {**TINY, "bundle_root": str(bundle), "dataset": "csv", "dataset_dir": str(data),
                "reader_kwargs": CSV_KWARGS, "val_fraction": 0.25, "max_epochs": 2, "warmup_epochs": 0,
                "num_bootstrap": 20}  # fmt: skip
        with working_folder(self.tmp / "cwd"), contextlib.redirect_stdout(io.StringIO()) as out:
            run_bundle(configs / "train.json", "train", **over)
            run_bundle([configs / "train.json", configs / "evaluate.json"], "train", **over)
            run_bundle(configs / "inference.json", "infer", bundle_root=str(bundle), dataset_dir=str(self.tmp / "data"),
                       num_workers=0)  # fmt: skip
        self.assertEqual(list((self.tmp / "cwd").iterdir()), [])  # nothing written into the working folder
        for path in ("models/model.pt", "models/model_config.json", "eval/auroc.md", "eval/probabilities.csv"):
            self.assertTrue((bundle / path).is_file(), path)
        text = out.getvalue()
        self.assertIn("==== Classification training finished ====", text)
        self.assertRegex(text, r"data: csv, label fraction 1: training \d+, validation \d+, test 2 images")
        self.assertIn(f"best model: {os.path.abspath(bundle / 'models' / 'model.pt')}", text)
        self.assertIn("==== Test AUROC ====", text)
        self.assertIn("| class | AUROC | 95% CI |", text)
        self.assertIn("| Effusion |", text)
        self.assertIn("==== Inference finished ====", text)
        self.assertIn("images: 8", text)
        # the model zoo's export: net_id network_def, inference.json, models/model.pt, bundle_root; no settings
        ts = bundle / "models" / "verify_model.ts"
        ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(bundle / "models" / "model.pt"),
                    meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                    bundle_root=str(bundle))  # fmt: skip
        exported = torch.jit.load(str(ts))
        parser = ConfigParser()
        parser.read_config(str(configs / "inference.json"))
        parser["bundle_root"] = str(bundle)
        network = parser.get_parsed_content("network_def").eval()
        network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
        x = torch.rand(2, 1, 32, 32)
        torch.testing.assert_close(exported(x), network(x))

    def test_pretraining(self):
        bundle = fresh_bundle("afire_pretrain", self.tmp)
        configs = bundle / "configs"
        write_films(self.tmp / "films", n=8)
        over = {**TINY, **AFIRE, "bundle_root": str(bundle), "dataset_dir": str(self.tmp / "films"), "max_epochs": 1,
                "warmup_epochs": 0}  # fmt: skip
        with working_folder(self.tmp / "cwd"), contextlib.redirect_stdout(io.StringIO()) as out:
            run_bundle(configs / "train.json", "train", **over)
        self.assertEqual(list((self.tmp / "cwd").iterdir()), [])
        text = out.getvalue()
        self.assertIn("==== AFiRe pre-training finished ====", text)
        encoder_file = os.path.abspath(bundle / "models" / "teacher_encoder.pt")
        self.assertIn(f"teacher encoder (the model to keep): {encoder_file}", text)
        self.assertIn("films: 8", text)
        ts = bundle / "models" / "verify_model.ts"
        ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(bundle / "models" / "teacher_encoder.pt"),
                    key_in_ckpt="model", meta_file=str(configs / "metadata.json"),
                    config_file=str(configs / "inference.json"), bundle_root=str(bundle))  # fmt: skip
        from monai_afire.networks import load_pretrained_encoder

        encoder = load_pretrained_encoder(bundle / "models" / "teacher_encoder.pt").eval()
        x = torch.rand(2, 1, 32, 32)
        tokens = encoder(x)
        torch.testing.assert_close(torch.jit.load(str(ts))(x), tokens.transpose(1, 2).reshape(2, 32, 4, 4))


@pytest.mark.slow
@unittest.skipIf(
    importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("sqlalchemy") is None,
    "mlflow (with sqlalchemy) is not installed: pip install -e '.[tracking]'",
)
class TestTracking(TmpDirTestCase):
    def test_mlflow_local_store(self):
        import mlflow

        data = csv_table(self.tmp / "data")
        over = {**BUNDLE_OVERRIDES, "bundle_root": str(self.tmp / "bundle"), "dataset": "csv", "dataset_dir": str(data),
                "reader_kwargs": CSV_KWARGS, "val_fraction": 0.25, "max_epochs": 2, "warmup_epochs": 0,
                "experiment_name": "afire_test"}  # fmt: skip
        train = BUNDLES / "afire_cxr_classification" / "configs" / "train.json"
        with contextlib.redirect_stdout(io.StringIO()):
            run_bundle(train, "train", tracking="mlflow", **over)  # what `--tracking mlflow` does
        store = self.tmp / "bundle" / "eval" / "mlruns.db"  # MONAI's default: a SQLite file in output_dir
        self.assertTrue(store.is_file())
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store.resolve()}")
        experiment = client.get_experiment_by_name("afire_test")
        runs = client.search_runs([experiment.experiment_id])
        metrics = {k for run in runs for k in run.data.metrics}
        self.assertIn("train_loss", metrics)
        self.assertIn("val_mean_auroc", metrics)


if __name__ == "__main__":
    unittest.main()

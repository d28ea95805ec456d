"""The afire_pretrain bundle through MONAI's ConfigWorkflow with tiny overrides (CPU, 32x32 films)."""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_metadata

from monai_afire.apps import bundle_dir
from monai_afire.engines import AFiRePretrainer
from monai_afire.handlers import FreezePrototypes, TeacherEMA, latest_checkpoint
from monai_afire.inferers import token_outputs
from monai_afire.networks import AFiRe, AFiReEncoder, load_afire_checkpoint
from monai_afire.transforms import radiograph_transforms
from monai_afire.visualize import read_loss_history
from tests.tiny import (
    AFIRE,
    BUNDLE_OVERRIDES,
    ENCODER,
    METADATA_SCHEMA_FILE,
    PRETRAIN_CONFIGS,
    error_messages,
    write_films,
)

CONFIGS = PRETRAIN_CONFIGS
BUNDLE = CONFIGS.parent
TINY = {k: v for k, v in {**BUNDLE_OVERRIDES, **AFIRE}.items() if k not in ("device", "batch_size")}

# the keys the MONAI Bundle Specification requires in configs/metadata.json (shared by the bundle tests)
METADATA_SCHEMA = json.loads(METADATA_SCHEMA_FILE.read_text())


def _train_workflow(tmp: Path, data: Path | str, configs=("train.json", "demo.json"), **overrides) -> ConfigWorkflow:
    settings = dict(
        TINY,
        dataset_dir=str(data),
        dataset_reader="folder",
        dataset_reader_kwargs={},
        batch_size=4,
        max_epochs=2,
        warmup_epochs=1,
        ckpt_dir=str(tmp / "models"),
        output_dir=str(tmp / "eval"),
    )
    settings.update(overrides)
    return ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type="train",
        **settings,
    )


def _infer_workflow(tmp: Path, configs=("inference.json",)) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        workflow_type="infer",
        **dict(
            TINY,
            dataset_dir=str(tmp / "films"),
            ckpt_dir=str(tmp / "models"),
            output_dir=str(tmp / "tokens"),
            batch_size=3,
        ),
    )


def _raises(test: unittest.TestCase, pattern: str, fn) -> None:
    """``fn()`` raises, and ``pattern`` is in its message or in one of the chained causes (MONAI wraps errors)."""
    with test.assertRaises(Exception) as ctx:
        fn()
    test.assertRegex(error_messages(ctx.exception), pattern)


@pytest.mark.slow
class TestAFiRePretrainBundle(unittest.TestCase):
    def test_train_infer_export(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_films(tmp / "films", n=8)
            train = _train_workflow(tmp, tmp / "films")
            train.initialize()
            self.assertFalse(train.check_properties())
            train.run()
            train.finalize()
            history = read_loss_history(tmp / "eval" / "loss_history.csv")
            self.assertEqual([r["epoch"] for r in history], [1.0, 2.0])
            self.assertTrue(all(np.isfinite(r["loss"]) for r in history))
            checkpoint = latest_checkpoint(tmp / "models")
            self.assertEqual(checkpoint.name, "afire_checkpoint_4.pt")
            self.assertTrue((tmp / "models" / "teacher_encoder.pt").is_file())
            self.assertTrue(list((tmp / "eval").glob("events.out.tfevents*")))

            self.assertEqual(history[0]["category"], 0.0)  # the authors' recipe: no category term
            infer = _infer_workflow(tmp)
            infer.initialize()
            self.assertFalse(infer.check_properties())
            infer.run()
            infer.finalize()
            outputs = sorted((tmp / "tokens").glob("*_tokens.npz"))
            self.assertEqual([p.name for p in outputs], [f"film_{i}_tokens.npz" for i in range(8)])
            # each file holds the teacher's tokens and anomaly map of its own film: the restoration residual, since
            # the authors' recipe has no lesion prototype
            model = load_afire_checkpoint(AFiRe(AFiReEncoder(mlp_dim=64, **ENCODER), **AFIRE), checkpoint).eval()
            film = radiograph_transforms(32)({"image": str(tmp / "films" / "film_0.png")})["image"]
            expected = token_outputs(model, film.as_tensor()[None], network="teacher")
            self.assertEqual(expected["anomaly_kind"], "restoration_residual")
            with np.load(outputs[0]) as z:
                self.assertEqual(z["features"].shape, (16, 32))
                self.assertEqual(z["anomaly"].shape, (4, 4))
                self.assertEqual(str(z["anomaly_kind"]), "restoration_residual")
                np.testing.assert_allclose(z["anomaly"], expected["anomaly"][0].numpy(), rtol=1e-4, atol=1e-6)
                np.testing.assert_allclose(
                    z["features"].astype(np.float32), expected["features"][0].numpy(), rtol=1e-2, atol=1e-2
                )

            # the docs' export: the teacher encoder file describes itself, no architecture settings needed
            ts = tmp / "teacher_encoder.ts"
            ckpt_export(
                net_id="network_def",
                filepath=str(ts),
                ckpt_file=str(tmp / "models" / "teacher_encoder.pt"),
                meta_file=str(CONFIGS / "metadata.json"),
                config_file=str(CONFIGS / "inference.json"),
                key_in_ckpt="model",
                ckpt_dir=str(tmp / "models"),
            )
            exported = torch.jit.load(str(ts))
            state = torch.load(checkpoint, weights_only=True)["model"]
            encoder = AFiReEncoder(mlp_dim=64, **ENCODER)
            encoder.load_state_dict(
                {k[len("teacher.encoder.") :]: v for k, v in state.items() if k.startswith("teacher.encoder.")}
            )
            x = torch.rand(2, 1, 32, 32)
            tokens = encoder.eval()(x)  # (2, 16, 32) -> the feature map (2, 32, 4, 4)
            torch.testing.assert_close(exported(x), tokens.transpose(1, 2).reshape(2, 32, 4, 4), rtol=1e-4, atol=1e-5)

    def test_afire_plus_with_lesion_copies_then_inference(self):
        """train.json + afire_plus.json + demo.json, 2 lesion copies per epoch: twice the iterations, the category
        term trained, and inference (with or without the overlay) gives the lesion probability."""
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_films(tmp / "films", n=8)
            train = _train_workflow(
                tmp,
                tmp / "films",
                configs=("train.json", "afire_plus.json", "demo.json"),
                max_epochs=1,
                lesion_copies_per_epoch=2,
            )
            train.initialize()
            train.run()
            train.finalize()
            self.assertEqual(latest_checkpoint(tmp / "models").name, "afire_checkpoint_4.pt")  # 8 films x 2 / 4
            history = read_loss_history(tmp / "eval" / "loss_history.csv")
            self.assertGreater(history[0]["category"], 0.0)
            for configs in (("inference.json",), ("inference.json", "afire_plus.json")):
                infer = _infer_workflow(tmp, configs)
                infer.initialize()
                infer.run()
                infer.finalize()
                with np.load(tmp / "tokens" / "film_0_tokens.npz") as z:
                    self.assertEqual(str(z["anomaly_kind"]), "lesion_probability")
                    self.assertTrue(((z["anomaly"] >= 0) & (z["anomaly"] <= 1)).all())

    def test_bad_inputs(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            _raises(self, "missing does not exist", _train_workflow(tmp, tmp / "missing").initialize)
            (tmp / "empty").mkdir()
            _raises(self, "empty is empty", _train_workflow(tmp, tmp / "empty").initialize)
            write_films(tmp / "films", n=3)
            _raises(self, "multiple of patch_size", _train_workflow(tmp, tmp / "films", image_size=36).initialize)
            _raises(self, "larger than the data set", _train_workflow(tmp, tmp / "films", batch_size=4).initialize)
            (tmp / "films" / "broken.png").write_bytes(b"not an image")
            (tmp / "films" / "empty.png").write_bytes(b"")
            # the up-front check names every bad file before any epoch starts
            workflow = _train_workflow(tmp, tmp / "films", batch_size=2, max_epochs=1)
            with self.assertRaises(Exception) as ctx:
                workflow.initialize()
            message = error_messages(ctx.exception)
            self.assertRegex(message, r"2 of the 5 image files .* cannot be read")
            self.assertIn("broken.png: not a readable PNG/JPEG file", message)
            self.assertIn("empty.png: empty file", message)
            self.assertNotIn("film_0.png", message)
            # without the check the same film stops the run later: when the data set caches it, or mid-epoch
            workflow = _train_workflow(tmp, tmp / "films", batch_size=2, max_epochs=1, check_images=False)

            def initialize_and_run():
                workflow.initialize()
                workflow.run()

            _raises(self, r"(broken|empty)\.png", initialize_and_run)

    def test_skip_unreadable_trains_on_the_rest(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_films(tmp / "films", n=4)
            (tmp / "films" / "broken.png").write_bytes(b"not an image")
            workflow = _train_workflow(tmp, tmp / "films", batch_size=2, max_epochs=1, skip_unreadable=True)
            with self.assertLogs("monai_afire.data.checks", level="WARNING") as logs:
                workflow.initialize()
            self.assertIn("left out 1 of 5 records", "\n".join(logs.output))
            records = workflow.parser.get_parsed_content("train#records")
            self.assertEqual(sorted(Path(r["image"]).name for r in records), [f"film_{i}.png" for i in range(4)])
            workflow.run()
            workflow.finalize()
            self.assertEqual(latest_checkpoint(tmp / "models").name, "afire_checkpoint_2.pt")


class TestWiring(unittest.TestCase):
    def test_train_config_builds_the_trainer(self):
        """train.json + demo.json parse into the trainer with its inferer, handlers and settings (nothing runs)."""
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_films(tmp / "films", n=4)
            parser = ConfigParser()
            parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "demo.json")])
            parser.update({**TINY, "dataset_dir": str(tmp / "films"), "dataset_reader": "folder",
                           "dataset_reader_kwargs": {}, "batch_size": 2, "replace_prototypes_epochs": 3,
                           "ckpt_dir": str(tmp / "models"), "output_dir": str(tmp / "eval")})  # fmt: skip
            for expression in parser.get_parsed_content("initialize"):
                self.assertIsNone(expression)
            trainer = parser.get_parsed_content("train#trainer")
            self.assertIsInstance(trainer, AFiRePretrainer)
            self.assertIs(trainer.inferer, parser.get_parsed_content("train#inferer"))
            self.assertEqual(trainer.replace_prototypes_epochs, 3)
            handlers = parser.get_parsed_content("train#handlers")
            freeze = [h for h in handlers if isinstance(h, FreezePrototypes)]
            self.assertEqual([h.epochs for h in freeze], [1])  # freeze_prototype_epochs drives FreezePrototypes only
            self.assertTrue(any(isinstance(h, TeacherEMA) for h in handlers))
            self.assertEqual(parser.get_parsed_content("bundle_root"), str(bundle_dir("afire_pretrain")))


class TestMetadata(unittest.TestCase):
    def test_verify_metadata_offline(self):
        with tempfile.TemporaryDirectory() as tmp:
            schema = Path(tmp) / "schema.json"
            schema.write_text(json.dumps(METADATA_SCHEMA))
            verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
            broken = json.loads((CONFIGS / "metadata.json").read_text())
            del broken["network_data_format"]
            (Path(tmp) / "broken.json").write_text(json.dumps(broken))
            with self.assertRaisesRegex(ValueError, "network_data_format"):
                verify_metadata(meta_file=str(Path(tmp) / "broken.json"), filepath=str(schema))

    def test_bundle_layout(self):
        for name in (
            "metadata.json",
            "train.json",
            "demo.json",
            "multi_gpu_train.json",
            "inference.json",
            "afire_plus.json",
            "logging.conf",
        ):
            self.assertTrue((CONFIGS / name).is_file(), name)
        self.assertTrue((BUNDLE / "docs" / "README.md").is_file())
        self.assertTrue((BUNDLE / "models" / ".gitkeep").is_file())


if __name__ == "__main__":
    unittest.main()

import csv
import json
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import pytest

from benchmarks.evidence_study import DownstreamData, Study, get_preset
from benchmarks.evidence_study import runner as runner_module

# three cheap arms: an untrained ViT (frozen probes + fine-tuning from scratch), raw pixels, MAE (maps)
PRESET = get_preset(
    "smoke",
    ['arms=["random", "pixels", "mae"]', 'finetune_arms=["random"]', 'seeds={"mae": [0, 1]}', "bootstrap_samples=20"],
)


class TestStudyRunner(unittest.TestCase):
    @pytest.mark.slow
    def test_selection_never_reads_test_then_resume_and_report(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "study"
            calls = []
            real_test = DownstreamData.test

            def guarded_test(data):
                calls.append((out / "choices.json").is_file())
                return real_test(data)

            with mock.patch.object(DownstreamData, "test", guarded_test), mock.patch("builtins.print"):
                self.assertIsNone(Study(PRESET, out).run(until="select"))
                self.assertEqual(calls, [])  # nothing up to selection asked for the test split
                self.assertFalse((out / "choices.json").exists())

                # a second run resumes: the selections are read back, not fitted again
                with mock.patch.object(runner_module, "select", side_effect=AssertionError("refitted")):
                    path = Study(PRESET, out).run(command="test", until="report")
            self.assertTrue(calls and all(calls))  # the test split was read only after choices.json existed
            choices = json.loads((out / "choices.json").read_text())
            self.assertEqual(choices["pooling"]["pixels"], "pixels")
            self.assertIn(choices["pooling"]["random"], ("mean", "max", "mean_max"))
            self.assertIn(choices["map"]["mae"], ("residual_patch", "residual_pixel"))
            text = path.read_text()
            for heading in (
                "## Headline",
                "## Targets",
                "## Label-free localisation",
                "## Anatomy cohesion",
                "## Selection",
                "## Timings",
            ):
                self.assertIn(heading, text)
            self.assertTrue((out / "evidence.png").stat().st_size > 0)
            with open(out / "evidence.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            aurocs = [r for r in rows if r["section"] == "auroc"]
            arms_methods = {(r["arm"], r["method"]) for r in aurocs}
            self.assertTrue(
                {("random", "linear"), ("random", "finetune"), ("pixels", "linear"), ("mae", "attention")}
                <= arms_methods
            )
            self.assertTrue(all(0.0 <= float(r["value"]) <= 1.0 for r in aurocs))
            self.assertEqual({r["seeds"] for r in aurocs if r["arm"] == "mae" and r["method"] == "linear"}, {"2"})


if __name__ == "__main__":
    unittest.main()

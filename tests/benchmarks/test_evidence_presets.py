import io
import unittest
from contextlib import redirect_stdout

from parameterized import parameterized

from benchmarks import evidence
from benchmarks.evidence_study import PRESETS, get_arm, get_preset
from benchmarks.evidence_study.afire_bundle import changes_from_train_json, study_overlay
from benchmarks.evidence_study.presets import preset_from_dict


class TestPresets(unittest.TestCase):
    @parameterized.expand([(name,) for name in PRESETS])
    def test_preset_round_trips_and_dry_runs(self, name):
        preset = PRESETS[name]
        self.assertEqual(preset_from_dict(preset.to_dict()), preset)
        for arm in preset.arms:
            get_arm(arm, preset.ablation_base)
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertIsNone(evidence.main(["--preset", name, "--dry-run"]))
        text = out.getvalue()
        self.assertIn(f"preset {name}", text)
        self.assertIn(f"{preset.image_steps} image-steps", text)
        self.assertIn("monai.bundle run", text)

    def test_cpu_preset_gives_every_arm_the_same_budget(self):
        preset = get_preset("cpu")
        self.assertEqual(preset.image_steps, preset.passes * preset.pretrain_films)
        overlay = study_overlay(preset, get_arm("afire"), 0, "data", "work")
        self.assertEqual(overlay["max_epochs"], preset.passes)
        self.assertEqual(overlay["lesion_copies_per_epoch"], 1)  # one epoch = one pass
        self.assertGreaterEqual(len(preset.arm_seeds("afire")), 3)
        self.assertGreaterEqual(len(preset.arm_seeds("mae")), 3)

    def test_overrides(self):
        preset = get_preset("smoke", ["passes=3", 'arms=["random"]', "finetune_arms=[]", "device=cpu"])
        self.assertEqual((preset.passes, preset.arms), (3, ("random",)))
        with self.assertRaisesRegex(ValueError, "unknown key 'nope'"):
            get_preset("smoke", ["nope=1"])
        with self.assertRaisesRegex(ValueError, "key=value"):
            get_preset("smoke", ["passes"])
        with self.assertRaisesRegex(ValueError, "Unknown preset"):
            get_preset("tpu")
        with self.assertRaisesRegex(ValueError, "not among the arms"):
            get_preset("smoke", ['arms=["random"]'])  # finetune_arms still lists the others

    def test_changes_from_train_json_are_listed_with_a_reason(self):
        rows = changes_from_train_json(get_preset("cpu"))
        keys = {k for k, *_ in rows}
        self.assertTrue({"image_size", "max_epochs", "batch_size"} <= keys)
        self.assertTrue(all(why for *_, why in rows))

    def test_ablations_change_one_thing_of_their_base(self):
        base = get_arm("afire_plus")
        for name, key in (
            ("no_restoration", "restoration_weight"),
            ("no_structure", "structure_weight"),
            ("no_lesions", "lesion_kwargs#prob"),
            ("clip_lesion", "lesion_kwargs#clip_scope"),
        ):
            arm = get_arm(name, "afire_plus")
            self.assertEqual(arm.configs, base.configs)
            self.assertEqual(set(arm.overrides) - set(base.overrides), {key})
        self.assertEqual(get_arm("no_lesions", "afire").configs, ())
        with self.assertRaisesRegex(ValueError, "Unknown arm"):
            get_arm("byol")


if __name__ == "__main__":
    unittest.main()

"""train.json is the AFiRe authors' recipe value for value; afire_plus.json holds monai-afire's extensions only."""

from __future__ import annotations

import json
import unittest
from pathlib import Path

from monai.bundle import ConfigParser

from monai_afire.transforms import RandSyntheticLesiond
from tests.tiny import PRETRAIN_CONFIGS

CONFIGS = PRETRAIN_CONFIGS

#: the authors' values (their pre-training script and lesion-preparation script), by train.json key
AUTHORS = {
    "arch": "vit_base",
    "image_size": 224,
    "patch_size": 16,
    "batch_size": 64,  # per GPU
    "max_epochs": 400,
    "base_lr": 5e-4,  # x total batch / 256
    "min_lr": 1e-6,
    "warmup_epochs": 10,
    "weight_decay": 0.04,
    "weight_decay_end": 0.4,
    "teacher_momentum": 0.996,  # cosine to 1
    "clip_grad_norm": 3.0,
    "clip_grad_mode": "per_tensor",
    "freeze_prototype_epochs": 1,
    "replace_prototypes_epochs": 1,  # the prototype state is the batch mean during the first epoch
    "num_prototypes": 256,
    "head_hidden_dim": 1024,
    "head_bottleneck_dim": 256,
    "structure_weight": 1.0,
    "category_weight": 0.0,  # no category term ...
    "lesion_prototype": False,  # ... and no lesion prototype
    "restoration_weight": 1.0,
    "restoration_target": "normalized",  # MSE on ImageNet-normalised pixels
    "lesion_copies_per_epoch": 5,  # 5 lesioned copies of every film per epoch
    "decay_prototypes_and_tokens": True,  # prototypes and mask token decayed
}
AUTHORS_LESION = {
    "prob": 1.0,
    "num_lesions": [1, 4],
    "lesion_size": [16 / 224, 128 / 224],  # 16-128 pixels at 224
    "texture_size": 60 / 224,  # a 60-pixel window
    "amplitude": 0.5,
    "ceiling": 235 / 255,
    "sigma": 0.5,  # exp(-r^2 / 0.5) over the half axes
    "placement": "inside",
    "falloff": "rectangle",
    "clip_scope": "image",
}
#: a small network for instantiating the wiring (the sizes themselves are checked against AUTHORS above)
TINY = {"arch": "vit_tiny", "image_size": 32, "patch_size": 8, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
        "mlp_dim": 64, "num_prototypes": 8, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "decoder_dim": 32,
        "decoder_depth": 1, "decoder_heads": 2, "device": "$torch.device('cpu')", "world_size": 1}  # fmt: skip


def parser_of(*names: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / n) for n in names])
    parser.update(overrides)
    return parser


class TestAuthorsRecipe(unittest.TestCase):
    def test_train_json_holds_the_authors_values(self):
        parser = parser_of("train.json")
        for key, value in AUTHORS.items():
            self.assertEqual(parser.get_parsed_content(key), value, key)
        lesion = parser.get_parsed_content("lesion_kwargs")
        self.assertEqual(set(lesion), set(AUTHORS_LESION))
        for key, value in AUTHORS_LESION.items():
            self.assertEqual(lesion[key], value, key)
        self.assertEqual(parser["lr"], "$monai_afire.handlers.scaled_learning_rate(@base_lr, @batch_size, @world_size)")

    def test_the_values_reach_the_objects(self):
        parser = parser_of("train.json", **TINY)
        network = parser.get_parsed_content("network_def")
        self.assertFalse(network.has_lesion_prototype)
        loss = parser.get_parsed_content("loss")
        self.assertEqual((loss.category_weight, loss.restoration.target), (0.0, "normalized"))
        decay = parser.get_parsed_content("optimizer").param_groups[0]
        ids = {id(p) for p in decay["params"]}
        self.assertIn(id(network.student.head.prototypes), ids)
        self.assertIn(id(network.decoder.mask_token), ids)
        trainer = parser["train"]["trainer"]
        self.assertEqual((trainer["clip_grad_norm"], trainer["clip_grad_mode"]), ("@clip_grad_norm", "@clip_grad_mode"))
        self.assertEqual(parser["train"]["dataset"]["copies"], "@lesion_copies_per_epoch")
        handlers = {h["_target_"].rsplit(".", 1)[-1]: h for h in parser["train"]["handlers"]}
        self.assertEqual(handlers["TeacherEMA"]["momentum"], "@teacher_momentum")
        self.assertEqual(handlers["FreezePrototypes"]["epochs"], "@freeze_prototype_epochs")
        preprocessing = parser.get_parsed_content("train#preprocessing")
        lesion = [t for t in preprocessing.transforms if isinstance(t, RandSyntheticLesiond)][0].lesion
        self.assertEqual((lesion.placement, lesion.falloff, lesion.clip_scope), ("inside", "rectangle", "image"))
        self.assertEqual(lesion.ceiling, 235 / 255)

    def test_afire_plus_holds_only_our_extensions(self):
        overlay = json.loads((CONFIGS / "afire_plus.json").read_text())
        self.assertEqual(overlay, {"category_weight": 1.0, "lesion_prototype": True})
        plus = parser_of("train.json", "afire_plus.json", **TINY)
        self.assertTrue(plus.get_parsed_content("network_def").has_lesion_prototype)
        self.assertEqual(plus.get_parsed_content("loss").category_weight, 1.0)

    def test_demo_uses_the_lesion_prototype_at_one_copy_per_epoch(self):
        from monai_afire.demo import DEMO_CONFIGS

        self.assertEqual([Path(c).name for c in DEMO_CONFIGS], ["train.json", "afire_plus.json", "demo.json"])
        demo = parser_of("train.json", "afire_plus.json", "demo.json")
        self.assertTrue(demo["lesion_prototype"])
        self.assertEqual(demo["lesion_copies_per_epoch"], 1)
        self.assertEqual(demo["train"]["films"]["_target_"], "CacheDataset")


if __name__ == "__main__":
    unittest.main()

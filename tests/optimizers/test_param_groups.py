from __future__ import annotations

import unittest

from monai_afire.optimizers import weight_decay_param_groups
from tests.tiny import tiny_model


class TestWeightDecayParamGroups(unittest.TestCase):
    def test_split(self):
        model = tiny_model()
        decay, no_decay = weight_decay_param_groups(model, 0.05)
        self.assertEqual((decay["name"], decay["weight_decay"]), ("decay", 0.05))
        self.assertEqual(no_decay["weight_decay"], 0.0)
        names = {id(p): n for n, p in model.named_parameters()}
        decayed = {names[id(p)] for p in decay["params"]}
        skipped = {names[id(p)] for p in no_decay["params"]}
        self.assertIn("student.encoder.blocks.0.attn.qkv.weight", decayed)
        self.assertIn("student.encoder.blocks.0.norm1.weight", skipped)
        self.assertIn("decoder.blocks.0.mlp.linear1.bias", skipped)
        self.assertIn("student.head.prototypes", skipped)
        self.assertFalse(any(n.startswith("teacher.") for n in decayed | skipped))
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        self.assertEqual(decayed | skipped, trainable)
        self.assertFalse(decayed & skipped)

    def test_no_parameters(self):
        model = tiny_model().requires_grad_(False)
        with self.assertRaisesRegex(ValueError, "no trainable parameters"):
            weight_decay_param_groups(model)


if __name__ == "__main__":
    unittest.main()

from __future__ import annotations

import unittest

from parameterized import parameterized

from monai_afire.optimizers import weight_decay_param_groups
from tests.tiny import tiny_model

SPECIAL = ("student.head.prototypes", "student.head.lesion_prototype", "decoder.mask_token")


class TestWeightDecayParamGroups(unittest.TestCase):
    @parameterized.expand([(True,), (False,)])
    def test_split(self, decay_prototypes_and_tokens):
        model = tiny_model(lesion_prototype=True)
        decay, no_decay = weight_decay_param_groups(model, 0.05, decay_prototypes_and_tokens)
        self.assertEqual((decay["name"], decay["weight_decay"]), ("decay", 0.05))
        self.assertEqual(no_decay["weight_decay"], 0.0)
        names = {id(p): n for n, p in model.named_parameters()}
        decayed = {names[id(p)] for p in decay["params"]}
        skipped = {names[id(p)] for p in no_decay["params"]}
        self.assertIn("student.encoder.blocks.0.attn.qkv.weight", decayed)
        self.assertIn("decoder.to_pixels.weight", decayed)
        self.assertIn("student.encoder.blocks.0.norm1.weight", skipped)
        self.assertIn("decoder.blocks.0.mlp.linear1.bias", skipped)
        self.assertIn("student.head.mlp.0.bias", skipped)
        for name in SPECIAL:  # the authors decay the prototypes and the mask token
            self.assertIn(name, decayed if decay_prototypes_and_tokens else skipped)
        self.assertFalse(any(n.startswith("teacher.") for n in decayed | skipped))
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        self.assertEqual(decayed | skipped, trainable)
        self.assertFalse(decayed & skipped)
        # only the prototypes and the mask token move between the groups
        other, _ = weight_decay_param_groups(model, 0.05, not decay_prototypes_and_tokens)
        moved = decayed ^ {names[id(p)] for p in other["params"]}
        self.assertEqual(moved, set(SPECIAL))

    def test_default_decays_prototypes_and_mask_token(self):
        model = tiny_model()
        decay, _ = weight_decay_param_groups(model)
        self.assertEqual(decay["weight_decay"], 0.04)
        ids = {id(p) for p in decay["params"]}
        self.assertIn(id(model.student.head.prototypes), ids)
        self.assertIn(id(model.decoder.mask_token), ids)

    def test_no_parameters(self):
        model = tiny_model().requires_grad_(False)
        with self.assertRaisesRegex(ValueError, "no trainable parameters"):
            weight_decay_param_groups(model)


if __name__ == "__main__":
    unittest.main()

"""The classification bundle starts the head bias at the training label prevalence (without it, fine-tuning on a
small set ranked images by global intensity and gave below-chance AUROCs)."""

from __future__ import annotations

import math
import unittest

import numpy as np
import torch
from monai.bundle import ConfigParser

from tests.tiny import CLASSIFICATION_CONFIGS

TRAIN = CLASSIFICATION_CONFIGS / "train.json"


class TestBundlePrior(unittest.TestCase):
    def test_network_head_bias_is_training_prevalence_log_odds(self):
        labels = [[1, 0], [0, 0], [0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]]
        train = [{"image": f"{i}.png", "label": np.array(y, np.float32)} for i, y in enumerate(labels)]
        held_out = [{"image": "x.png", "label": np.array([1, 1], np.float32)}]  # must not count
        parser = ConfigParser()
        parser.read_config(str(TRAIN))
        parser["data"] = {"train": train, "val": held_out, "test": held_out, "classes": ["A", "B"]}
        for key, value in {"image_size": 16, "patch_size": 4, "arch": "vit_tiny", "hidden_size": 16,
                           "num_layers": 1, "num_heads": 2, "mlp_dim": 32}.items():  # fmt: skip
            parser[key] = value
        network = parser.get_parsed_content("network_def")
        prevalence = (1 + 0.5) / (8 + 1)  # one positive in eight, smoothed
        expected = torch.full((2,), math.log(prevalence / (1 - prevalence)))
        torch.testing.assert_close(network.head.bias.detach(), expected)


if __name__ == "__main__":
    unittest.main()

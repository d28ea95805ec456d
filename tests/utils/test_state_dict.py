from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from parameterized import parameterized

from monai_afire.utils import check_state_dict, load_weights, read_state_dict


class TestReadStateDict(unittest.TestCase):
    @parameterized.expand(
        [
            ("bare", lambda sd: sd, None),
            ("model_entry", lambda sd: {"model": sd, "optimizer": {"lr": 1.0}}, None),
            ("state_dict_entry", lambda sd: {"state_dict": sd}, None),
            ("named_key", lambda sd: {"ema": sd, "model": {}}, "ema"),
            ("ddp_prefix", lambda sd: {f"module.{k}": v for k, v in sd.items()}, None),
        ]
    )
    def test_layouts(self, _, wrap, key):
        state = torch.nn.Linear(3, 2).state_dict()
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(wrap(state), Path(tmp) / "w.pt")
            for source in (Path(tmp) / "w.pt", wrap(state)):
                found = read_state_dict(source, key=key)
                self.assertEqual(sorted(found), ["bias", "weight"])
                self.assertTrue(torch.equal(found["weight"], state["weight"]))

    def test_errors_name_the_file_and_entry(self):
        with self.assertRaisesRegex(FileNotFoundError, "missing.pt"):
            read_state_dict("/nonexistent/missing.pt")
        with self.assertRaisesRegex(ValueError, "no entry 'ema'"):
            read_state_dict({"model": {}}, key="ema")
        with self.assertRaisesRegex(ValueError, "holds a list"):
            read_state_dict([1, 2])  # type: ignore[arg-type]


class TestCheckAndLoad(unittest.TestCase):
    def test_load_weights_round_trip_and_wrappers(self):
        model = torch.nn.Linear(3, 2)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": model.state_dict()}, Path(tmp) / "m.pt")
            other = torch.nn.DataParallel(torch.nn.Linear(3, 2))
            self.assertIs(load_weights(other, Path(tmp) / "m.pt"), other)
        self.assertTrue(torch.equal(other.module.weight, model.weight))

    def test_shape_mismatch_is_always_refused(self):
        state = torch.nn.Linear(3, 2).state_dict()
        with self.assertRaisesRegex(ValueError, r"1 shape mismatches \['weight: weights \(2, 3\) vs module \(2, 4\)"):
            check_state_dict(torch.nn.Linear(4, 2), state, strict=False, owner="test")

    def test_missing_and_unexpected_keys(self):
        module = torch.nn.Linear(3, 2)
        state = {"weight": torch.zeros(2, 3), "extra": torch.zeros(1)}
        with self.assertRaisesRegex(ValueError, r"1 missing keys \['bias'\], 1 unexpected keys \['extra'\]"):
            check_state_dict(module, state)
        self.assertEqual(check_state_dict(module, state, strict=False), (["bias"], ["extra"]))
        self.assertEqual(check_state_dict(module, state, ignore_missing=("bias",), strict=False), ([], ["extra"]))
        with self.assertRaisesRegex(FileNotFoundError, "train first"):
            load_weights(module, "/nonexistent/model.pt")


if __name__ == "__main__":
    unittest.main()

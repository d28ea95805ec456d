"""Old import paths of the layout before the split answer with a DeprecationWarning naming the new place."""

from __future__ import annotations

import importlib
import sys
import unittest
import warnings

from parameterized import parameterized

import monai_afire.apps
import monai_afire.engines
import monai_afire.handlers
import monai_afire.inferers
import monai_afire.networks
import monai_afire.optimizers
import monai_afire.utils
from monai_afire.engines import MOVED_MODULES, MOVED_NAMES


def _new_object(target: str):
    module, _, name = target.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found


class TestDeprecatedNames(unittest.TestCase):
    @parameterized.expand([(name, target) for name, target in sorted(MOVED_NAMES.items())])
    def test_engines_name(self, name, target):
        pattern = f"monai_afire.engines.{name} is deprecated.*use {target.replace(':', '.')}"
        with self.assertWarnsRegex(DeprecationWarning, pattern):
            old = getattr(monai_afire.engines, name)
        self.assertIs(old, _new_object(target))

    @parameterized.expand(
        [
            ("anomaly_maps", monai_afire.inferers),
            ("lesion_probability", monai_afire.inferers),
            ("token_values_to_image", monai_afire.inferers),
            ("layer_decay_param_groups", monai_afire.optimizers),
        ]
    )
    def test_networks_name(self, name, package):
        with self.assertWarnsRegex(DeprecationWarning, f"use {package.__name__}.{name}"):
            self.assertIs(getattr(monai_afire.networks, name), getattr(package, name))

    def test_unknown_name_is_an_attribute_error(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with self.assertRaises(AttributeError):
                monai_afire.engines.NoSuchThing  # noqa: B018
            self.assertEqual(monai_afire.engines.AFiRePretrainer.__module__, "monai_afire.engines.pretrainer")


class TestDeprecatedModules(unittest.TestCase):
    def _import_fresh(self, name: str):
        sys.modules.pop(name, None)
        with self.assertWarnsRegex(DeprecationWarning, f"{name} is deprecated"):
            return importlib.import_module(name)

    @parameterized.expand(sorted(MOVED_MODULES))
    def test_engines_module(self, old):
        module = self._import_fresh(f"monai_afire.engines.{old}")
        new, renamed = MOVED_MODULES[old] if isinstance(MOVED_MODULES[old], tuple) else (MOVED_MODULES[old], {})
        public = [n for n in getattr(importlib.import_module(new), "__all__", []) if n not in renamed]
        for name in public:
            self.assertIs(getattr(module, name), getattr(importlib.import_module(new), name))
        for name, target in renamed.items():
            with self.assertWarnsRegex(DeprecationWarning, f"{name} is deprecated"):
                self.assertIs(getattr(module, name), _new_object(target))

    def test_from_import_of_moved_modules(self):
        sys.modules.pop("monai_afire.engines.checkpoint", None)
        with self.assertWarns(DeprecationWarning):
            from monai_afire.engines.checkpoint import PretrainCheckpoint
        self.assertIs(PretrainCheckpoint, monai_afire.handlers.PretrainCheckpoint)
        maps = self._import_fresh("monai_afire.networks.anomaly_maps")
        self.assertIs(maps.anomaly_maps, monai_afire.inferers.anomaly_maps)
        self.assertIs(self._import_fresh("monai_afire.losses.distributed").all_reduce_, monai_afire.utils.all_reduce_)
        with self.assertWarnsRegex(DeprecationWarning, "use monai_afire.optimizers.layer_decay_param_groups"):
            from monai_afire.networks.classifier import layer_decay_param_groups
        self.assertIs(layer_decay_param_groups, monai_afire.optimizers.layer_decay_param_groups)
        with self.assertWarnsRegex(DeprecationWarning, "use monai_afire.utils.check_patch_size"):
            from monai_afire.transforms.utils import check_patch_size
        self.assertIs(check_patch_size, monai_afire.utils.check_patch_size)
        evaluation = self._import_fresh("monai_afire.engines.representation_eval")
        self.assertIs(evaluation.load_encoder, monai_afire.apps.load_encoder)


if __name__ == "__main__":
    unittest.main()

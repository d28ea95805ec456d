from __future__ import annotations

import unittest

import torch
from ignite.engine import Engine
from parameterized import parameterized

from monai_afire.utils import HostSyncCounter, optimizer_step_counters


class TestHostSyncCounter(unittest.TestCase):
    @parameterized.expand(
        [
            ("item", lambda x: x.sum().item(), "_local_scalar_dense"),
            ("float", lambda x: float(x.sum()), "_local_scalar_dense"),
            ("bool", lambda x: bool(x.sum() > 0), "_local_scalar_dense"),
            ("int", lambda x: int(x.sum()), "_local_scalar_dense"),
            ("tolist", lambda x: x.tolist(), "tolist"),
            ("numpy", lambda x: x.numpy(), "numpy"),
            ("cpu", lambda x: x.cpu(), "cpu"),
            ("nonzero", lambda x: torch.nonzero(x), "nonzero"),
            ("mask", lambda x: x[x > 0], "index"),
            ("unique", lambda x: torch.unique(x), "_unique2"),
        ]
    )
    def test_counts_each_kind(self, _, fn, name):
        x = torch.randn(5)
        with HostSyncCounter() as syncs:
            fn(x)
        self.assertEqual([c.name for c in syncs.calls], [name])
        self.assertIn("test_host_sync.py", syncs.calls[0].where)

    def test_device_side_work_is_not_counted_and_patches_are_undone(self):
        x = torch.randn(8, requires_grad=True)
        with HostSyncCounter() as syncs:
            y = torch.where(x > 0, x, 2 * x).sum()
            y.backward()
            torch.nn.utils.clip_grad_norm_([x], 1.0)
            x.detach()[torch.tensor([0, 2])]  # integer indexing has a fixed output shape
        self.assertEqual(syncs.calls, [])
        self.assertIs(torch.Tensor.tolist, torch._C.TensorBase.tolist)  # the original is back

    def test_iterations_and_exclusions(self):
        p = torch.nn.Parameter(torch.randn(3))
        optimizer = torch.optim.AdamW([p])

        def step(engine, batch):
            optimizer.zero_grad()
            (p * batch).sum().backward()
            optimizer.step()  # the CPU-resident step counter is read with item(): excluded
            if engine.state.iteration == 3:
                return float(p.sum())
            return None

        engine = Engine(step)
        counter = HostSyncCounter(exclude=optimizer_step_counters(optimizer))
        counter.attach(engine)
        with counter:
            engine.run([torch.ones(3)] * 4, max_epochs=1)
        self.assertEqual(counter.by_iteration(), {3: 1})
        self.assertIn("iteration 3", counter.report())
        everything = HostSyncCounter()
        with everything:
            optimizer.step()
        self.assertEqual(len(everything.calls), 1)  # the same read, counted without the exclusion


if __name__ == "__main__":
    unittest.main()

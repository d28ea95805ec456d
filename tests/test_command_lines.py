"""Every command line of the project: ``--help`` describes each option and prints no warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: ``python -m`` modules with a command line
MODULES = ["monai_afire.demo", "monai_afire.data.simcxr"]
#: benchmark scripts with a command line (every ``benchmarks/*.py`` that runs ``main``)
SCRIPTS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "benchmarks").glob("*.py")
    if re.search(r"(?m)^if __name__ == .__main__.:", p.read_text())
)
#: data preparation command, when this checkout has it
if (ROOT / "monai_afire" / "data" / "prepare.py").is_file():
    MODULES.append("monai_afire.data.prepare")


def undocumented_options(help_text: str) -> list[str]:
    """The options (and positional arguments) of an ``argparse`` help text that have no description.

    argparse writes each entry as its invocation (``--out OUT``), then its help after two or more spaces on the same
    line or on the next, more indented lines; an entry without help is the invocation alone.
    """
    missing = []
    sections = re.split(r"(?m)^(?:options|optional arguments|positional arguments):\n", help_text)[1:]
    for section in sections:
        block = section.split("\n\n", 1)[0]
        entries = re.split(r"(?m)^(?=  \S)", block)
        for entry in entries:
            if not entry.strip():
                continue
            first, *rest = entry.rstrip("\n").split("\n")
            invocation, _, same_line = first.strip().partition("  ")
            description = " ".join([same_line.strip(), *(line.strip() for line in rest)]).strip()
            if not description:
                missing.append(invocation)
    return missing


def run_help(command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "100"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.Popen(
        [sys.executable, *command, "--help"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestHelpParser(unittest.TestCase):
    """The parser of help texts finds an option without help (so the test below can fail)."""

    def test_finds_missing_descriptions(self):
        text = (
            "usage: x [-h]\n\noptions:\n  -h, --help            show this help message and exit\n"
            "  --out OUT             output folder\n  --num-images NUM_IMAGES\n  --seed SEED\n"
            "  --image-size IMAGE_SIZE\n                        side in pixels\n"
        )
        self.assertEqual(undocumented_options(text), ["--num-images NUM_IMAGES", "--seed SEED"])

    def test_positional_arguments(self):
        text = "usage: x [-h] src\n\npositional arguments:\n  src\n\noptions:\n  -h, --help  show this help\n"
        self.assertEqual(undocumented_options(text), ["src"])


class TestSimcxrCommand(unittest.TestCase):
    def test_help_prints_no_runpy_warning(self):
        """``python -m monai_afire.data.simcxr`` used to warn that runpy found the module already imported (the
        package imported it); the package now imports it on first use only."""
        process = run_help(["-m", "monai_afire.data.simcxr"])
        out, err = process.communicate(timeout=120)
        self.assertEqual(process.returncode, 0, err)
        self.assertEqual(err.strip(), "", err)
        self.assertEqual(undocumented_options(out), [])


@pytest.mark.slow
class TestCommandLines(unittest.TestCase):
    """All ``--help`` runs start at once (each imports torch and MONAI), then each is checked in a subtest."""

    def test_help_of_every_command(self):
        commands = [["-m", m] for m in MODULES] + [[s] for s in SCRIPTS]
        self.assertGreaterEqual(len(SCRIPTS), 5, SCRIPTS)
        processes = [(command, run_help(command)) for command in commands]
        for command, process in processes:
            out, err = process.communicate(timeout=240)
            name = " ".join(command)
            with self.subTest(command=name):
                self.assertEqual(process.returncode, 0, err)
                self.assertIn("usage:", out)
                self.assertEqual(undocumented_options(out), [], f"{name} --help: options without a description")
                description = out.split("\n\n", 2)[1] if out.count("\n\n") >= 2 else ""
                self.assertTrue(description.strip() and not description.startswith("options:"), f"{name}: {out}")
                # no warning of any kind: runpy's "found in sys.modules" RuntimeWarning, nvImageCodec's notice, ...
                self.assertNotRegex(err, r"(?i)warning|nvimagecodec", f"{name} --help printed on stderr:\n{err}")
                self.assertEqual(err.strip(), "", f"{name} --help printed on stderr:\n{err}")


if __name__ == "__main__":
    unittest.main()

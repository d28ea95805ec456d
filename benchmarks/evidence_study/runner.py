"""The study's stages, each cached under ``OUT/cache`` so that a rerun resumes:

1. ``data``: generate the pre-training films (normal, one seed) and the labelled downstream films (another seed);
   prepare them as the bundles do; split the downstream films patient-wise (train / val / test).
2. ``pretrain``: every arm / seed (AFiRe through the bundle; MAE and DINO by :func:`~.ssl.train_ssl`).
3. ``select``: on train + validation only: probes, k-NN, attention probe, fine-tuning, localisation map choice.
4. ``freeze``: the choices are written to ``OUT/choices.json``; only then is the test split opened.
5. ``test``: the frozen predictors score the test split once; localisation and cohesion on test films.
6. ``report``: ``evidence.md``, ``evidence.csv``, ``evidence.png``.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arms import Arm, get_arm
from .data import DownstreamData, generate_films, load_downstream, load_pretrain_images
from .downstream import Selection, add_finetuning, method_key, predict_test, select
from .presets import Preset

__all__ = ["Study", "STAGES", "validation_summary"]

STAGES = ("data", "pretrain", "select", "freeze", "test", "report")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save_pickle(path: Path, obj: Any) -> None:
    _atomic_write(path, pickle.dumps(obj))


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 (the study's own cache)


def _json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n").encode())


def machine_description() -> str:
    """CPU / GPU, core count, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def validation_summary(selections: dict[str, list[Selection]]) -> str:
    """Validation mean AUROC of every result, mean over seeds, one line per arm (for exploration runs)."""
    lines = []
    for name, sels in selections.items():
        keys = sorted({k for s in sels for k in s.val})
        cells = [f"{k}={np.nanmean([s.val.get(k, np.nan) for s in sels]):.3f}" for k in keys]
        lines.append(f"{name} ({len(sels)} seed(s)): " + " ".join(cells))
    return "\n".join(lines)


class Study:
    """One study run in ``out`` (cache in ``out/cache``).

    Args:
        preset: the settings.
        out: output folder.
        log: printing function.
        arms: restrict to these arms (names, or :class:`Arm` objects such as :func:`~.arms.custom_arm`; default: the
            preset's).
    """

    def __init__(
        self,
        preset: Preset,
        out: str | os.PathLike,
        log: Callable[[str], None] = print,
        arms: tuple[str | Arm, ...] | None = None,
    ) -> None:
        self.preset = preset
        self.out = Path(out)
        self.cache = self.out / "cache"
        self.log = log
        self.arms: list[Arm] = [
            a if isinstance(a, Arm) else get_arm(a, preset.ablation_base) for a in (arms or preset.arms)
        ]
        self.arm_by_name = {a.name: a for a in self.arms}
        self.data: DownstreamData | None = None
        self._pretrain_images: torch.Tensor | None = None
        self.timings_file = self.cache / "timings.json"
        self.timings: dict[str, Any] = json.loads(self.timings_file.read_text()) if self.timings_file.is_file() else {}

    # ------------------------------------------------------------------ bookkeeping

    def _say(self, text: str) -> None:
        self.log(f"[{time.strftime('%H:%M:%S')}] {text}")

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start, load = time.time(), os.getloadavg()[0]
        result = fn()
        seconds = time.time() - start
        entry = self.timings.setdefault(name, {"seconds": 0.0, "load_start": load})
        entry["seconds"] = float(entry["seconds"]) + seconds
        entry["load_end"] = os.getloadavg()[0]
        _json(self.timings_file, self.timings)
        return result

    def seeds(self, arm: Arm) -> tuple[int, ...]:
        """Pre-training seeds of an arm (one for arms without pre-training randomness)."""
        if arm.kind in ("pixels",):
            return (0,)
        return self.preset.arm_seeds(arm.name)

    def finetuned(self, arm: Arm, seed: int) -> bool:
        """Whether this arm / seed is fine-tuned."""
        return arm.name in self.preset.finetune_arms and seed in self.seeds(arm)[: self.preset.finetune_seeds]

    # ------------------------------------------------------------------ 1. data

    def stage_data(self) -> DownstreamData:
        """Generate and prepare the films (cached)."""
        p = self.preset
        self._say(
            f"data: {p.pretrain_films} pre-training films (seed {p.pretrain_data_seed}), {p.downstream_films} "
            f"downstream films (seed {p.downstream_data_seed}) at {p.image_size} px"
        )
        generate_films(self.cache / "data" / "pretrain", p.pretrain_films, p.pretrain_data_seed, p.image_size, 0.0, 0.0)
        folder = generate_films(
            self.cache / "data" / "downstream",
            p.downstream_films,
            p.downstream_data_seed,
            p.image_size,
            p.downstream_prevalence,
            p.test_fraction,
        )
        self.data = load_downstream(folder, self.cache / "data", p.image_size, p.val_fraction)
        return self.data

    def pretrain_images(self) -> torch.Tensor:
        """The prepared pre-training films (N, 1, S, S)."""
        if self._pretrain_images is None:
            self._pretrain_images = load_pretrain_images(
                self.cache / "data" / "pretrain", self.cache / "data" / "pretrain_images.npy", self.preset.image_size
            )
        return self._pretrain_images

    # ------------------------------------------------------------------ 2. pre-training

    def workdir(self, arm: Arm, seed: int) -> Path:
        """Folder of one arm / seed's pre-training."""
        return self.cache / "pretrain" / arm.name / f"seed{seed}"

    def pretrain_one(self, arm: Arm, seed: int) -> Path | None:
        """Pre-train one arm / seed (cached); the encoder state-dict file, or None for arms without an encoder."""
        from .pretrain import pretrain_arm

        if not arm.has_encoder:
            return None
        work = self.workdir(arm, seed)
        done = work / "encoder.pt"
        if done.is_file():
            return done
        self._say(f"pre-train {arm.name} seed {seed}")
        return self._timed(
            f"pretrain/{arm.name}/seed{seed}",
            lambda: pretrain_arm(arm, seed, self.preset, self.cache / "data" / "pretrain", work, self.pretrain_images),
        )

    def stage_pretrain(self) -> None:
        """Pre-train every arm / seed."""
        for arm in self.arms:
            for seed in self.seeds(arm):
                self.pretrain_one(arm, seed)

    def encoder(self, arm: Arm, seed: int) -> torch.nn.Module | None:
        """The frozen encoder of an arm / seed (None for pixels / DenseNet)."""
        from monai_afire.networks import AFiReEncoder, load_pretrained_encoder

        path = self.pretrain_one(arm, seed)
        if path is None:
            return None
        encoder = AFiReEncoder(**self.preset.encoder_kwargs())
        load_pretrained_encoder(path, encoder)
        return encoder.eval()

    # ------------------------------------------------------------------ 3. selection (validation only)

    def tokens(self, arm: Arm, seed: int, encoder: torch.nn.Module, split: str) -> torch.Tensor:
        """Cached tokens of the train or val split (never the test split)."""
        from monai_afire.apps import encode_tokens

        if split not in ("train", "val"):
            raise ValueError(f"Study.tokens caches train / val tokens only, got {split!r}.")
        path = self.cache / "tokens" / f"{arm.name}_seed{seed}_{split}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True).float()
        images = getattr(self.data, split).images
        tokens = encode_tokens(encoder, images, device=torch.device(self.preset.device))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tokens.half(), path)
        return tokens

    def select_one(self, arm: Arm, seed: int) -> Selection:
        """Fit and choose every downstream predictor of one arm / seed on validation (cached)."""
        path = self.cache / "select" / arm.name / f"seed{seed}.pkl"
        if path.is_file():
            sel = _load_pickle(path)
            if self.finetuned(arm, seed) and not any(k.startswith("finetune/") for k in sel.val):
                self._say(f"fine-tune {arm.name} seed {seed} (validation)")
                self._timed(
                    f"select/{arm.name}/seed{seed}",
                    lambda: add_finetuning(sel, arm, self.encoder(arm, seed), self.data, self.preset),
                )
                _save_pickle(path, sel)
            return sel
        self._say(f"select {arm.name} seed {seed} (validation)")
        encoder = self.encoder(arm, seed)

        def run() -> Selection:
            tokens = None
            if encoder is not None:
                tokens = {s: self.tokens(arm, seed, encoder, s) for s in ("train", "val")}
            extra = self.extra_features(arm, seed, tokens)
            sel = select(arm, seed, encoder, self.data, self.preset, self.finetuned(arm, seed), tokens, extra)
            sel.val.update(self.localisation_val(arm, seed))
            return sel

        sel = self._timed(f"select/{arm.name}/seed{seed}", run)
        _save_pickle(path, sel)
        return sel

    def extra_features(self, arm: Arm, seed: int, tokens: dict[str, torch.Tensor] | None) -> dict:
        """Frozen features beside the pooled tokens: for arms with the lesion prototype, the pooled lesion-prototype
        probability of the teacher (``lesion``) and the same appended to the mean + max pooled tokens
        (``mean_max+lesion``)."""
        from monai_afire.apps import pool_tokens

        from .afire_bundle import load_afire_network
        from .maps import lesion_features

        if not arm.has_lesion_prototype or tokens is None:
            return {}
        model = load_afire_network(self.workdir(arm, seed) / "bundle")
        lesion = {k: lesion_features(model, t) for k, t in tokens.items()}
        both = {k: torch.cat([pool_tokens(t, "mean_max"), lesion[k]], dim=1) for k, t in tokens.items()}
        return {"lesion": lesion, "mean_max+lesion": both}

    def stage_select(self) -> dict[str, list[Selection]]:
        """Selection of every arm / seed."""
        return {arm.name: [self.select_one(arm, seed) for seed in self.seeds(arm)] for arm in self.arms}

    def map_functions(self, arm: Arm, seed: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        """Label-free map makers of an arm: ``{map name: images -> (N, S, S)}``."""
        from . import maps

        if arm.kind == "afire":
            from .afire_bundle import load_afire_network

            model = load_afire_network(self.workdir(arm, seed) / "bundle")
            wanted = (["lesion_probability"] if arm.has_lesion_prototype else []) + (
                ["residual_patch", "residual_pixel"] if arm.has_restoration else []
            )

            def afire_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
                return lambda x: maps.afire_maps(model, x, arm.has_lesion_prototype)[name]

            return {name: afire_fn(name) for name in wanted}
        if arm.kind == "mae":
            from .pretrain import load_mae

            mae = load_mae(self.workdir(arm, seed), self.preset)
            return {name: (lambda x, n=name: maps.mae_maps(mae, x)[n]) for name in ("residual_patch", "residual_pixel")}
        if arm.kind == "pixels":
            mean = self.pretrain_images().mean(0, keepdim=True)
            return {"mean_film": lambda x: maps.mean_film_maps(x, mean)["mean_film"]}
        return {}

    def localisation_val(self, arm: Arm, seed: int) -> dict[str, float]:
        """Pixel AUROC (all findings) of each of the arm's maps on validation films (to choose the map)."""
        from . import maps

        functions = self.map_functions(arm, seed)
        if not functions:
            return {}
        films, cases = maps.localisation_cases(self.data.val, self.preset.localisation_films)
        images = self.data.val.images[torch.as_tensor(films)]
        out = {}
        for name, fn in functions.items():
            scores = maps.score_maps(fn(images), self.data.val, films, cases)
            out[f"loc/{name}"] = scores["all"]["pixel_auroc"]
        return out

    # ------------------------------------------------------------------ 4. freeze

    def choices(self, selections: dict[str, list[Selection]]) -> dict[str, Any]:
        """Every choice made on validation: pooling and map per arm, best AFiRe recipe, per-seed settings."""
        fractions = self.preset.label_fractions
        out: dict[str, Any] = {"pooling": {}, "map": {}, "validation": {}, "settings": {}}
        for name, sels in selections.items():
            arm = self.arm_by_name[name]
            if arm.kind == "pixels":
                out["pooling"][name] = "pixels"
            elif arm.has_encoder:
                poolings = sorted({k.split("/")[1] for k in sels[0].val if k.startswith("linear/")})
                scores = {
                    p: np.nanmean([s.val.get(method_key("linear", f, p), np.nan) for s in sels for f in fractions])
                    for p in poolings
                }
                out["pooling"][name] = max(scores, key=lambda p: (scores[p], p == "mean"))
                out["validation"][f"{name}/pooling"] = scores
            maps_val = {k[4:]: np.nanmean([s.val[k] for s in sels]) for k in sels[0].val if k.startswith("loc/")}
            if maps_val:
                out["map"][name] = max(maps_val, key=maps_val.get)
                out["validation"][f"{name}/maps"] = maps_val
            out["settings"][name] = {str(s.seed): s.details for s in sels}
            out["validation"][name] = {k: float(np.nanmean([s.val.get(k, np.nan) for s in sels])) for k in sels[0].val}
        recipes = [a for a in ("afire", "afire_plus") if a in selections]
        if recipes:
            key = {
                a: method_key("linear", 0.1 if 0.1 in fractions else fractions[0], out["pooling"][a]) for a in recipes
            }
            value = {a: out["validation"][a].get(key[a], float("nan")) for a in recipes}
            out["best_afire"] = max(recipes, key=lambda a: value[a] if value[a] == value[a] else -1.0)
            out["validation"]["best_afire"] = value
        return out

    def stage_freeze(self, selections: dict[str, list[Selection]]) -> Path:
        """Write ``OUT/choices.json`` and open the test split."""
        path = self.out / "choices.json"
        if not path.is_file():
            _json(path, self.choices(selections))
            self._say(f"choices frozen: {path}")
        self.data.freeze(path)
        return path

    # ------------------------------------------------------------------ 5. test (once)

    def test_one(self, arm: Arm, seed: int, sel: Selection, choices: dict[str, Any]) -> dict[str, Any]:
        """Test scores, localisation and cohesion of one arm / seed (cached: the test split is scored once)."""
        from . import maps

        path = self.cache / "test" / arm.name / f"seed{seed}.pkl"
        if path.is_file():
            return _load_pickle(path)
        self._say(f"test {arm.name} seed {seed}")
        test = self.data.test()

        def run() -> dict[str, Any]:
            encoder = self.encoder(arm, seed)
            fractions = {f: self.data.fraction_index(f) for f in self.preset.label_fractions}
            pooling = choices["pooling"].get(arm.name, "mean")
            train_tokens = self.tokens(arm, seed, encoder, "train") if encoder is not None else None
            extra = None
            if pooling in ("lesion", "mean_max+lesion"):
                from monai_afire.apps import encode_tokens

                test_tokens = encode_tokens(encoder, test.images, device=torch.device(self.preset.device))
                extra = self.extra_features(arm, seed, {"train": train_tokens, "test": test_tokens})
            result: dict[str, Any] = {
                "scores": predict_test(
                    sel, test, self.data.train, fractions, pooling, self.preset, encoder, train_tokens, extra
                )
            }
            functions = self.map_functions(arm, seed)
            if functions:
                films, cases = maps.localisation_cases(test, self.preset.localisation_films)
                images = test.images[torch.as_tensor(films)]
                result["localisation"] = {
                    n: maps.score_maps(fn(images), test, films, cases) for n, fn in functions.items()
                }
                normal = np.flatnonzero(test.labels.sum(1) == 0)[: self.preset.localisation_films]
                result["synthetic"] = {
                    n: maps.synthetic_lesion_auroc(fn, test, normal, seed) for n, fn in functions.items()
                }
            if encoder is not None:
                from monai_afire.apps import encode_tokens

                normal = np.flatnonzero(test.labels.sum(1) == 0)[: self.preset.cohesion_films]
                tokens = encode_tokens(encoder, test.images[torch.as_tensor(normal)])
                result["cohesion"] = maps.cohesion(tokens, test.anatomy[normal], self.preset.patch_size, seed)
            return result

        result = self._timed(f"test/{arm.name}/seed{seed}", run)
        _save_pickle(path, result)
        return result

    def stage_test(self, selections: dict[str, list[Selection]], choices: dict[str, Any]) -> dict[str, list[dict]]:
        """Score the test split with every frozen predictor."""
        return {arm.name: [self.test_one(arm, s.seed, s, choices) for s in selections[arm.name]] for arm in self.arms}

    # ------------------------------------------------------------------ all

    def run(self, command: str = "", until: str = "report") -> Path | None:
        """Run every stage up to ``until`` (cached stages are skipped); returns ``evidence.md`` after ``report``."""
        if until not in STAGES:
            raise ValueError(f"until must be one of {STAGES}, got {until!r}.")
        if self.preset.threads:
            torch.set_num_threads(self.preset.threads)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.preset.threads):
            return self._run(command, until)

    def check_cache(self) -> None:
        """Write the preset's cache key on the first run; refuse a cache made with other settings.

        Raises:
            ValueError: the cache in ``OUT/cache`` was made with settings that differ (names them).
        """
        path = self.cache / "preset.json"
        key = json.loads(json.dumps(self.preset.cache_key()))
        if path.is_file():
            old = json.loads(path.read_text())
            differ = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            if differ:
                raise ValueError(
                    f"{self.cache} was made with other settings ({', '.join(differ)}); use another --out folder or "
                    "delete the cache."
                )
        else:
            _json(path, key)

    def _run(self, command: str, until: str) -> Path | None:
        self.check_cache()
        start = time.time()
        self.timings.setdefault("runs", []).append(
            {
                "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "load": os.getloadavg(),
                "machine": machine_description(),
            }
        )
        self._timed("data", self.stage_data)
        if until == "data":
            return None
        self._timed("pretrain", self.stage_pretrain)
        if until == "pretrain":
            return None
        selections = self._timed("select", self.stage_select)
        if until == "select":
            self.log(validation_summary(selections))
            return None
        choices_path = self.stage_freeze(selections)
        if until == "freeze":
            return None
        choices = json.loads(choices_path.read_text())
        results = self._timed("test", lambda: self.stage_test(selections, choices))
        if until == "test":
            return None
        from .report import write_report

        self.timings["runs"][-1]["seconds"] = time.time() - start
        _json(self.timings_file, self.timings)
        return write_report(self, selections, choices, results)

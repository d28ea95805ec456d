"""``evidence.md`` (tables), ``evidence.csv`` (every number) and ``evidence.png`` (AUROC by label fraction)."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from monai_afire.metrics import bootstrap_auroc_difference, bootstrap_mean_auroc, per_class_bootstrap

from .arms import get_arm
from .data import FINDINGS
from .downstream import method_key

__all__ = ["write_report", "Interval", "SELECTION_LOG", "DIAGNOSIS"]

#: hand-written log of what was tried on validation before the run (copied into evidence.md when present).
SELECTION_LOG = "SELECTION_LOG.md"
#: hand-written reading of the tables, written after the run (copied into evidence.md when present).
DIAGNOSIS = "DIAGNOSIS.md"
PLOT_ARMS = ("random", "pixels", "densenet121", "mae", "dino", "afire", "afire_plus")
COMPARED = ("random", "pixels", "mae", "dino")


class Interval(tuple):
    """(point, low, high)."""

    def __new__(cls, point: float, low: float, high: float) -> Interval:
        return super().__new__(cls, (float(point), float(low), float(high)))

    def text(self, digits: int = 3) -> str:
        """``0.712 [0.690, 0.733]``."""
        if math.isnan(self[0]):
            return "n/a"
        return f"{self[0]:.{digits}f} [{self[1]:.{digits}f}, {self[2]:.{digits}f}]"


def _stack(results: list[dict], key: str) -> np.ndarray | None:
    arrays = [r["scores"][key] for r in results if key in r.get("scores", {})]
    return np.stack(arrays) if arrays else None


class _Scorer:
    def __init__(self, study: Any, results: dict[str, list[dict]], choices: dict[str, Any]) -> None:
        test = study.data.test()
        self.y, self.groups = test.labels, test.patients
        self.results, self.choices = results, choices
        self.samples = study.preset.bootstrap_samples
        self.cache: dict[tuple[str, str], Interval] = {}

    def key(self, arm: str, method: str, fraction: float) -> str:
        if method in ("linear", "knn"):
            return method_key(method, fraction, self.choices["pooling"].get(arm, "mean"))
        return method_key(method, fraction)

    def scores(self, arm: str, method: str, fraction: float) -> np.ndarray | None:
        return _stack(self.results.get(arm, []), self.key(arm, method, fraction))

    def mean(self, arm: str, method: str, fraction: float) -> Interval:
        k = (arm, self.key(arm, method, fraction))
        if k not in self.cache:
            s = self.scores(arm, method, fraction)
            if s is None:
                self.cache[k] = Interval(math.nan, math.nan, math.nan)
            else:
                point, low, high = bootstrap_mean_auroc(self.y, s, groups=self.groups, num_samples=self.samples)[:3]
                self.cache[k] = Interval(point, low, high)
        return self.cache[k]

    def difference(self, a: tuple[str, str], b: tuple[str, str], fraction: float) -> Interval:
        sa, sb = self.scores(a[0], a[1], fraction), self.scores(b[0], b[1], fraction)
        if sa is None or sb is None:
            return Interval(math.nan, math.nan, math.nan)
        point, low, high = bootstrap_auroc_difference(self.y, sa, sb, groups=self.groups, num_samples=self.samples)[:3]
        return Interval(point, low, high)

    def per_class(self, arm: str, method: str, fraction: float) -> dict[str, Interval] | None:
        s = self.scores(arm, method, fraction)
        if s is None:
            return None
        res = per_class_bootstrap(self.y, s, groups=self.groups, num_samples=self.samples, classes=list(FINDINGS))
        out = {}
        for c, name in enumerate(FINDINGS):
            out[name] = Interval(res.auroc[c], res.ci_low[c], res.ci_high[c])
        return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _label(study: Any, arm: str) -> str:
    known = getattr(study, "arm_by_name", {})
    return known[arm].label if arm in known else get_arm(arm, study.preset.ablation_base).label


def _seeds_text(results: list[dict], key: str) -> str:
    return str(sum(key in r.get("scores", {}) for r in results))


def _plot(study: Any, scorer: _Scorer, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = list(study.preset.label_fractions)
    colours = {arm: plt.get_cmap("tab10")(i) for i, arm in enumerate(PLOT_ARMS)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    panels = (("linear", "frozen encoder, linear probe on pooled tokens"), ("finetune", "fine-tuned end to end"))
    for ax, (method, title) in zip(axes, panels):
        for arm in [a.name for a in study.arms if a.name in PLOT_ARMS]:
            values = [scorer.mean(arm, method, f) for f in fractions]
            label = _label(study, arm)
            if all(math.isnan(v[0]) for v in values):
                if arm != "pixels" or method != "finetune":
                    continue
                # the pixel arm has one model, a logistic regression: shown on both panels
                values = [scorer.mean(arm, "linear", f) for f in fractions]
                label += " (logistic regression)"
            x = np.array(fractions) * 100
            y = np.array([v[0] for v in values])
            err = np.array([[v[0] - v[1], v[2] - v[0]] for v in values]).T
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colours[arm], label=label)
        ax.set_xscale("log")
        ax.set_xticks(np.array(fractions) * 100, [f"{f * 100:g}%" for f in fractions])
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("labelled training films")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("test mean AUROC (7 findings), 95% CI")
    fig.suptitle(f"Simulated chest films, preset {study.preset.name}: AUROC by label fraction", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _data_summary(study: Any) -> str:
    d = study.data
    test = d.test()
    rows = []
    for split in (d.train, d.val, test):
        pos = split.labels.sum(0).astype(int)
        rows.append([split.name, str(len(split)), str(len(set(split.patients))), *[str(p) for p in pos]])
    return _table(["split", "films", "patients", *FINDINGS], rows)


def write_report(study: Any, selections: dict, choices: dict, results: dict[str, list[dict]]) -> Path:
    """Write ``evidence.md``, ``evidence.csv`` and ``evidence.png`` into the study's output folder."""
    from .afire_bundle import changes_from_train_json

    out, preset = study.out, study.preset
    scorer = _Scorer(study, results, choices)
    fractions = list(preset.label_fractions)
    arms = [a.name for a in study.arms]
    csv_rows: list[dict[str, Any]] = []

    def add(
        section: str,
        arm: str,
        method: str,
        fraction: Any,
        finding: str,
        metric: str,
        value: Any,
        low: Any = "",
        high: Any = "",
        seeds: Any = "",
    ) -> None:
        csv_rows.append(
            {
                "section": section,
                "arm": arm,
                "method": method,
                "fraction": fraction,
                "finding": finding,
                "metric": metric,
                "value": value,
                "low": low,
                "high": high,
                "seeds": seeds,
            }
        )

    md: list[str] = [f"# Evidence: what AFiRe pre-training buys (preset `{preset.name}`)\n"]
    runs = study.timings.get("runs", [])
    last = runs[-1] if runs else {}
    md.append(f"Command: `{last.get('command', '')}`  \n")
    md.append(f"Written {time.strftime('%Y-%m-%d %H:%M')}; machine: {last.get('machine', '')}.  \n")
    total = sum(float(study.timings.get(s, {}).get("seconds", 0.0)) for s in ("data", "pretrain", "select", "test"))
    loads = ", ".join(f"{r['load'][0]:.1f}" for r in runs)
    md.append(
        f"Wall time of the stages (summed over resumed runs): {total / 60:.1f} min. Load averages (1 min) at "
        f"each run's start: {loads}. The machine is shared: timings are noisy.\n"
    )

    # ---------------------------------------------------------------- headline
    best = choices.get("best_afire", "afire_plus")
    md.append(
        "\n## Headline: test mean AUROC over the 7 simulated findings, 95% bootstrap intervals (patients and seeds)\n"
    )
    for method, title in (
        ("linear", "Frozen encoder, linear probe on pooled tokens (pooling chosen on validation)"),
        ("finetune", "Fine-tuned end to end (best validation epoch)"),
        ("attention", "Frozen encoder, attention-pooling probe"),
        ("knn", "Frozen encoder, k-NN on pooled tokens (k chosen on validation)"),
    ):
        rows = []
        for arm in arms:
            cells = [scorer.mean(arm, method, f) for f in fractions]
            if all(math.isnan(c[0]) for c in cells):
                continue
            seeds = _seeds_text(results[arm], scorer.key(arm, method, fractions[-1]))
            pool = choices["pooling"].get(arm, "") if method in ("linear", "knn") else ""
            rows.append([_label(study, arm), pool, seeds, *[c.text() for c in cells]])
            for f, c in zip(fractions, cells):
                add("auroc", arm, method, f, "mean", "auroc", c[0], c[1], c[2], seeds)
        md.append(f"\n### {title}\n\n")
        md.append(_table(["arm", "pooling", "seeds", *[f"{f * 100:g}% labels" for f in fractions]], rows))
    md.append("\n![AUROC by label fraction](evidence.png)\n")

    # ---------------------------------------------------------------- paired differences and targets
    f10 = 0.1 if 0.1 in fractions else fractions[len(fractions) // 2]
    md.append(
        f"\n## Paired differences at {f10 * 100:g}% labels (best AFiRe recipe on validation: "
        f"`{best}`), 95% paired bootstrap intervals\n\n"
    )
    diff_rows, diffs = [], {}
    for method in ("linear", "finetune"):
        for other in COMPARED + tuple(a for a in ("afire", "afire_plus") if a != best):
            if other not in arms:
                continue
            other_method = "linear" if other == "pixels" else method
            d = scorer.difference((best, method), (other, other_method), f10)
            if math.isnan(d[0]):
                continue
            diffs[(method, other)] = d
            diff_rows.append([method, f"{_label(study, best)} - {_label(study, other)} ({other_method})", d.text()])
            add("difference", f"{best}-{other}", method, f10, "mean", "auroc_difference", d[0], d[1], d[2])
    md.append(_table(["downstream", "comparison", "difference [95% CI]"], diff_rows))

    md.append("\n## Targets\n\n")
    target_rows = []
    for method in ("linear", "finetune"):
        d = diffs.get((method, "random"))
        ok = d is not None and d[0] >= 0.05
        target_rows.append(
            [
                f"{_label(study, best)} - random init >= 0.05 ({method}, {f10 * 100:g}%)",
                d.text() if d is not None else "n/a",
                "met" if ok else "missed",
            ]
        )
    for other in ("pixels", "mae", "dino"):
        for method in ("linear", "finetune"):
            if other == "pixels" and method == "finetune":
                continue
            a = scorer.mean(best, method, f10)
            b = scorer.mean(other, "linear" if other == "pixels" else method, f10)
            if math.isnan(a[0]) or math.isnan(b[0]):
                continue
            ok = a[1] > b[2]
            target_rows.append(
                [
                    f"beats {_label(study, other)}, non-overlapping 95% CIs ({method})",
                    f"{a.text()} vs {b.text()}",
                    "met" if ok else "missed",
                ]
            )
    loc_best = _localisation_rows(study, results, choices, add)
    best_map = choices["map"].get(best)
    loc_value = loc_best.get((best, best_map), math.nan)
    target_rows.append(
        [
            f"label-free localisation pixel AUROC >= 0.85 ({_label(study, best)}, map `{best_map}`)",
            _fmt(loc_value),
            "met" if loc_value >= 0.85 else "missed",
        ]
    )
    md.append(_table(["target", "measured", "status"], target_rows))

    diagnosis = out / DIAGNOSIS
    if diagnosis.is_file():
        md.append("\n## Diagnosis (written after the run, from the tables below)\n\n" + diagnosis.read_text() + "\n")

    # ---------------------------------------------------------------- per finding
    md.append(f"\n## Per finding at {f10 * 100:g}% labels (test AUROC, mean over seeds)\n")
    for method, title in (("linear", "frozen, linear probe"), ("finetune", "fine-tuned")):
        rows = []
        for arm in arms:
            per = scorer.per_class(arm, method, f10)
            if per is None:
                continue
            rows.append(
                [_label(study, arm), *[_fmt(per[n][0]) for n in FINDINGS], scorer.mean(arm, method, f10).text()]
            )
            for n in FINDINGS:
                add("per_finding", arm, method, f10, n, "auroc", per[n][0], per[n][1], per[n][2])
        if rows:
            md.append(f"\n### {title}\n\n" + _table(["arm", *FINDINGS, "mean [95% CI]"], rows))

    # ---------------------------------------------------------------- localisation and cohesion
    md.append("\n## Label-free localisation of the simulated findings (test films, mean over seeds)\n\n")
    md.append(
        "Maps need no label. Pixel AUROC: map values inside vs outside the finding's mask, per (film, finding), "
        "averaged; pointing game: the map's maximum inside a box of the finding; hit@0.3: the box of the map's "
        "largest region above half its range overlaps a box with IoU >= 0.3. Synthetic: pixel AUROC against "
        "Synthetic Lesion Masks added to normal test films (the pretext task).\n\n"
    )
    md.append(
        _table(
            ["arm", "map", "chosen on val", "pixel AUROC", "pointing game", "hit@0.3", "synthetic pixel AUROC"],
            study_loc_rows(study, results, choices),
        )
    )
    md.append("\n## Anatomy cohesion of patch tokens (normal test films, background left out, mean over seeds)\n\n")
    rows = []
    for arm in arms:
        values = [r["cohesion"] for r in results[arm] if "cohesion" in r]
        if not values:
            continue
        means = {k: float(np.mean([v[k] for v in values])) for k in ("silhouette", "nmi", "ari", "knn_accuracy")}
        rows.append([_label(study, arm), *[_fmt(means[k]) for k in means], str(len(values))])
        for k, v in means.items():
            add("cohesion", arm, "tokens", "", "", k, v, seeds=len(values))
    md.append(_table(["arm", "silhouette", "NMI", "ARI", "k-NN accuracy", "seeds"], rows))

    # ---------------------------------------------------------------- setup
    md.append("\n## Setup\n\n")
    md.append(
        f"- Encoder (every ViT arm): ViT {preset.hidden_size} wide, {preset.num_layers} blocks, "
        f"{preset.num_heads} heads, patch {preset.patch_size}, {preset.image_size} px films "
        f"({preset.num_positions} tokens).\n"
    )
    md.append(
        f"- Pre-training: {preset.pretrain_films} normal simulated films (seed {preset.pretrain_data_seed}); "
        f"every pre-trained arm sees {preset.image_steps} image-steps ({preset.passes} passes, batch "
        f"{preset.batch_size}, base lr {preset.base_lr} x batch/256, warm-up {preset.warmup_passes} pass(es), "
        f"teacher momentum {preset.teacher_momentum} -> 1).\n"
    )
    md.append(
        f"- Downstream: {preset.downstream_films} simulated films (seed {preset.downstream_data_seed}), each of "
        f"the 7 findings with probability {preset.downstream_prevalence}; patient-wise test "
        f"({preset.test_fraction:g} of patients) and validation ({preset.val_fraction:g} of the rest) splits; "
        f"nested label fractions {fractions} of the training split.\n\n"
    )
    md.append(_data_summary(study))
    md.append(
        "\nAFiRe arms run through the bundle: `train.json` [+ `afire_plus.json`] + a study overlay. Changes from "
        "`train.json` (the authors' recipe):\n\n"
    )
    md.append(
        _table(
            ["key", "train.json", "study", "why"],
            [[k, f"`{a}`", f"`{b}`", why] for k, a, b, why in changes_from_train_json(preset)],
        )
    )
    md.append("\nArms:\n\n")
    md.append(_table(["arm", "what"], [[_label(study, a.name), a.description] for a in study.arms]))
    md.append("\nBundle commands (one per AFiRe run):\n\n")
    for arm in study.arms:
        if arm.kind == "afire":
            for seed in study.seeds(arm):
                info = study.workdir(arm, seed) / "bundle" / "done.json"
                if info.is_file():
                    command = json.loads(info.read_text())["command"]
                    md.append(f"- `{command.replace(str(out.resolve()) + os.sep, str(out) + os.sep)}`\n")
    md.append(f"\nPreset:\n\n```json\n{preset.to_json()}\n```\n")

    # ---------------------------------------------------------------- selection
    md.append("\n## Selection (validation only; the test split was opened after `choices.json` was written)\n\n")
    md.append(
        f"- Best AFiRe recipe: `{best}` (validation mean AUROC, frozen linear probe at {f10 * 100:g}%: "
        f"{ {k: round(v, 4) for k, v in choices['validation'].get('best_afire', {}).items()} }).\n"
    )
    md.append(f"- Pooling per arm: {choices['pooling']}.\n- Localisation map per arm: {choices['map']}.\n\n")
    rows = []
    for arm in arms:
        val = choices["validation"].get(arm, {})
        cells = [
            _fmt(val.get(scorer.key(arm, m, f))) for m in ("linear", "attention", "knn", "finetune") for f in fractions
        ]
        rows.append([_label(study, arm), *cells])
        for key, value in val.items():
            add("validation", arm, key, "", "", "auroc", value)
    header = ["arm"] + [f"{m} {f * 100:g}%" for m in ("linear", "attention", "kNN", "finetune") for f in fractions]
    md.append("Validation mean AUROC (mean over seeds):\n\n" + _table(header, rows))
    log = out / SELECTION_LOG
    if log.is_file():
        md.append("\n### Log of what was tried on validation before this run\n\n" + log.read_text() + "\n")

    # ---------------------------------------------------------------- timings
    md.append("\n## Timings (wall clock, shared machine)\n\n")
    rows = [
        [k, f"{v['seconds']:.0f}", _fmt(v.get("load_start"), 1), _fmt(v.get("load_end"), 1)]
        for k, v in study.timings.items()
        if isinstance(v, dict) and "seconds" in v
    ]
    md.append(_table(["stage", "seconds", "load at start", "load at end"], rows))

    out.mkdir(parents=True, exist_ok=True)
    _plot(study, scorer, out / "evidence.png")
    with open(out / "evidence.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(csv_rows[0]) if csv_rows else ["section"])
        writer.writeheader()
        writer.writerows(csv_rows)
    path = out / "evidence.md"
    tmp = path.with_name("evidence.md.tmp")
    tmp.write_text("".join(md), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _localisation_rows(study: Any, results: dict, choices: dict, add: Any) -> dict[tuple[str, str], float]:
    """Mean pixel AUROC (all findings) per (arm, map); also adds every localisation number to the CSV."""
    out = {}
    for arm, res in results.items():
        locs = [r["localisation"] for r in res if "localisation" in r]
        if not locs:
            continue
        for name in locs[0]:
            for finding in locs[0][name]:
                for metric in ("pixel_auroc", "pointing_game", "hit@0.3"):
                    value = float(np.nanmean([loc[name][finding][metric] for loc in locs]))
                    add("localisation", arm, name, "", finding, metric, value, seeds=len(locs))
            out[(arm, name)] = float(np.nanmean([loc[name]["all"]["pixel_auroc"] for loc in locs]))
            synth = [r["synthetic"][name] for r in res if "synthetic" in r]
            add("localisation", arm, name, "", "synthetic", "pixel_auroc", float(np.nanmean(synth)), seeds=len(synth))
    return out


def study_loc_rows(study: Any, results: dict, choices: dict) -> list[list[str]]:
    """Rows of the localisation table."""
    rows = []
    for arm, res in results.items():
        locs = [r["localisation"] for r in res if "localisation" in r]
        if not locs:
            continue
        for name in locs[0]:

            def m(metric: str, locs=locs, name=name) -> str:
                return _fmt(float(np.nanmean([loc[name]["all"][metric] for loc in locs])))

            synth = _fmt(float(np.nanmean([r["synthetic"][name] for r in res if "synthetic" in r])))
            chosen = "yes" if choices["map"].get(arm) == name else ""
            rows.append([_label(study, arm), name, chosen, m("pixel_auroc"), m("pointing_game"), m("hit@0.3"), synth])
    return rows

"""Demo of monai-afire: ``python -m monai_afire.demo --out DIR`` (``make demo``).

1. generates normal simulated chest radiographs (``monai_afire.data.simcxr``) in ``DIR/simcxr`` if they are not there;
2. pre-trains AFiRe on them with the ``afire_pretrain`` bundle (``train.json`` + ``afire_plus.json`` + ``demo.json``:
   the authors' recipe plus monai-afire's category term and lesion prototype, whose probability gives the anomaly
   maps of step 4, with the small size, length and learning rate that the evidence study ran,
   ``benchmarks/results/evidence``: 2,000 films, 8 epochs, batch 32) through
   ``python -m monai.bundle run`` (or the same ``monai.bundle.run`` in process when the ``fire`` package that MONAI's
   command line needs is missing); checkpoints in ``DIR/models``, logs and loss history in ``DIR/train``; running
   again resumes from the newest checkpoint;
3. exports the teacher encoder to TorchScript with ``monai.bundle ckpt_export`` (``DIR/models/teacher_encoder.ts``);
4. writes figures: the loss curves, the Synthetic Lesion Mask gallery of the real film ``RG1_UNCR.dcm`` from
   ``pydicom-data``, and the per-token anomaly maps of that film (clean and with synthetic lesions) overlaid;
5. prints where each output is;
6. probes the teacher encoder frozen: on held-out labelled films generated with another seed, a linear probe on its
   pooled tokens next to the same probe on a random encoder of the same shape, and prints both AUROCs and the gap;
7. localises the simulated findings on the same held-out test films with no label (:func:`localisation_gap`): pixel
   AUROC and pointing game of the teacher's lesion-probability map next to the same map of a random model of the
   same shape and the raw-pixel map ``|film - mean normal film|`` (the evidence study's maps), with paired bootstrap
   intervals of the differences over test patients.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_afire.apps.bundles import bundle_dir

__all__ = [
    "BUNDLE_DIR",
    "DEMO_FILM",
    "demo_film_path",
    "demo_network",
    "ensure_simcxr",
    "export_teacher_encoder",
    "localisation_gap",
    "localisation_text",
    "main",
    "probe_gap",
    "run_pretraining",
    "write_anomaly_maps",
    "write_slm_gallery",
]

DEMO_FILM = "RG1_UNCR.dcm"
BUNDLE_DIR = bundle_dir("afire_pretrain")
CONFIGS = BUNDLE_DIR / "configs"
#: the demo's recipe: the authors' (train.json) + monai-afire's lesion prototype (afire_plus.json) + small settings
DEMO_CONFIGS = [str(CONFIGS / "train.json"), str(CONFIGS / "afire_plus.json"), str(CONFIGS / "demo.json")]
#: start of MONAI's warning, on every bundle run, that a config's ``_target_`` and ``$`` values run code
TRUSTED_CONFIG_NOTICE = "parsing config_file"


def demo_film_path() -> str:
    """Path of the demo chest film in the installed ``pydicom-data`` package (never downloads).

    Raises:
        RuntimeError: when the film is not installed, saying how to install it.
    """
    from pydicom.data import get_testdata_file

    try:
        path = get_testdata_file(DEMO_FILM, download=False)
    except Exception as e:  # pydicom raises or warns in various ways when the data package is absent
        raise RuntimeError(f"The demo film {DEMO_FILM} is not installed: run `pip install pydicom-data`.") from e
    if path is None or not Path(path).is_file():
        raise RuntimeError(f"The demo film {DEMO_FILM} is not installed: run `pip install pydicom-data`.")
    return str(path)


def write_slm_gallery(
    out_dir: str | Path, film: str | None = None, seeds: Sequence[int] = (0, 1, 2, 3), image_size: int = 224
) -> Path:
    """Load a film, add synthetic lesions with each seed and save ``out_dir/slm_gallery.png``.

    Args:
        out_dir: output folder (created).
        film: radiograph file; the ``pydicom-data`` demo film when None.
        seeds: one gallery row per seed.
        image_size: side of the prepared image.

    Returns:
        the path of the gallery.
    """
    from monai_afire.transforms import RandSyntheticLesiond, radiograph_transforms
    from monai_afire.visualize import lesion_gallery

    film = demo_film_path() if film is None else film
    prepared = radiograph_transforms(image_size=image_size)({"image": film})
    lesion = RandSyntheticLesiond(keys="image")
    rows = [lesion.set_random_state(seed)(prepared) for seed in seeds]
    return lesion_gallery(
        [r["clean"] for r in rows],
        [r["lesion_mask"] for r in rows],
        [r["image"] for r in rows],
        Path(out_dir) / "slm_gallery.png",
        titles=[f"seed {s}" for s in seeds],
        transpose=True,
    )


def ensure_simcxr(
    folder: str | Path, num_images: int = 500, image_size: int = 128, seed: int = 0, prevalence: float | None = None
) -> Path:
    """Generate the simulated data set in ``folder`` unless its ``simcxr.json`` is already there.

    ``prevalence``: probability of each simulated finding per film (None: the generator's defaults; 0: normal films).
    """
    folder = Path(folder)
    if (folder / "simcxr.json").is_file():
        return folder
    from monai_afire.data.simcxr import generate_simcxr
    from monai_afire.data.simcxr_findings import FINDINGS

    rates = None if prevalence is None else {f: float(prevalence) for f in FINDINGS}
    return Path(generate_simcxr(folder, num_images, seed=seed, image_size=image_size, prevalence=rates))


def _bundle_overrides(out_dir: Path, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "bundle_root": str(BUNDLE_DIR),
        "dataset_dir": str(data_dir),
        "ckpt_dir": str(out_dir / "models"),
        "output_dir": str(out_dir / "train"),
        **extra,
    }


def run_pretraining(out_dir: str | Path, data_dir: str | Path, **overrides: Any) -> Path:
    """Run ``monai.bundle run`` with :data:`DEMO_CONFIGS`; returns the loss-history CSV.

    Uses ``python -m monai.bundle run`` in a subprocess when ``fire`` is installed, else ``monai.bundle.run`` in
    this process (the same function).
    """
    out_dir = Path(out_dir)
    args = _bundle_overrides(out_dir, Path(data_dir), **overrides)
    logging_file = str(CONFIGS / "logging.conf")
    if importlib.util.find_spec("fire") is not None:
        # MONAI warns on every run that a config may run code; these are the package's own configs
        cmd = [sys.executable, "-W", f"ignore:{TRUSTED_CONFIG_NOTICE}:UserWarning", "-m", "monai.bundle", "run"]
        cmd += ["--config_file", repr(DEMO_CONFIGS)]
        cmd += ["--logging_file", logging_file]
        for k, v in args.items():
            cmd += [f"--{k}", str(v)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    else:
        from monai.bundle import run

        print("`fire` is not installed: running monai.bundle.run(...) in process (same as python -m monai.bundle run)")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=TRUSTED_CONFIG_NOTICE, category=UserWarning)
            run(config_file=DEMO_CONFIGS, logging_file=logging_file, **args)
    return out_dir / "train" / "loss_history.csv"


def export_teacher_encoder(out_dir: str | Path, image_size: int) -> Path:
    """TorchScript of the teacher encoder with ``monai.bundle ckpt_export`` (``out_dir/models/teacher_encoder.ts``)."""
    from monai.bundle import ckpt_export

    models = Path(out_dir) / "models"
    target = models / "teacher_encoder.ts"
    ckpt_export(
        net_id="encoder",
        filepath=str(target),
        ckpt_file=str(models / "teacher_encoder.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=DEMO_CONFIGS,
        key_in_ckpt="model",  # the file describes itself: {"model": weights, "encoder_config": settings}
        use_trace=True,
        input_shape=[1, 1, image_size, image_size],
        bundle_root=str(BUNDLE_DIR),
    )
    return target


def demo_network(out_dir: str | Path) -> tuple[Any, int]:
    """The demo's AFiRe model with the newest checkpoint of ``out_dir/models`` loaded, and its image size."""
    from monai.bundle import ConfigParser

    from monai_afire.handlers import latest_checkpoint
    from monai_afire.networks import load_afire_checkpoint

    parser = ConfigParser()
    parser.read_config(DEMO_CONFIGS)
    network = parser.get_parsed_content("network_def")
    checkpoint = latest_checkpoint(Path(out_dir) / "models")
    return load_afire_checkpoint(network, checkpoint).eval(), int(parser["image_size"])


def write_anomaly_maps(out_dir: str | Path, film: str | None = None, seeds: Sequence[int] = (0, 1, 2)) -> Path:
    """Per-token anomaly maps of the demo film, clean and with synthetic lesions, their lesioned-minus-clean
    differences and token AUROCs, saved as ``anomaly_maps.png`` (:func:`monai_afire.visualize.write_anomaly_figure`).

    The maps are the lesion-prototype probability for a model trained with the lesion prototype (the demo's
    recipe), else the restoration residual; the figure says which (see :func:`monai_afire.inferers.token_outputs`).
    """
    from monai_afire.transforms import radiograph_transforms
    from monai_afire.visualize import write_anomaly_figure

    model, size = demo_network(out_dir)
    film = demo_film_path() if film is None else film
    prepared = radiograph_transforms(image_size=size)({"image": film})
    path = Path(out_dir) / "anomaly_maps.png"
    return write_anomaly_figure(model, prepared["image"], path, seeds, name=Path(film).name).path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line entry point; returns and prints the outputs."""
    parser = argparse.ArgumentParser(prog="python -m monai_afire.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument(
        "--num-images", type=int, default=2000, help="normal simulated films to pre-train on (default 2000)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override demo.json's max_epochs")
    parser.add_argument("--batch-size", type=int, default=None, help="override demo.json's batch_size")
    parser.add_argument(
        "--probe-images", type=int, default=1000, help="held-out labelled films of the probe step (default 1000)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    film = demo_film_path()  # fail before any long work when pydicom-data is missing
    start = time.time()
    data = ensure_simcxr(out / "simcxr", args.num_images, prevalence=0.0)  # normal films, as the evidence study
    print(f"[{time.time() - start:6.1f}s] simulated data set: {data}", flush=True)
    overrides = {} if args.epochs is None else {"max_epochs": args.epochs}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    history = run_pretraining(out, data, **overrides)
    print(f"[{time.time() - start:6.1f}s] pre-training done", flush=True)
    from monai.bundle import ConfigParser

    from monai_afire.handlers import latest_checkpoint
    from monai_afire.visualize import plot_loss_curves, read_loss_history

    cfg = ConfigParser()
    cfg.read_config(DEMO_CONFIGS)
    outputs = {
        "simulated data": data,
        "checkpoint": latest_checkpoint(out / "models"),
        "teacher encoder (weights)": out / "models" / "teacher_encoder.pt",
        "teacher encoder (TorchScript)": export_teacher_encoder(out, int(cfg["image_size"])),
        "loss history": history,
        "loss curves": plot_loss_curves(history, out / "loss_curves.png"),
        "lesion gallery": write_slm_gallery(out, film),
        "anomaly maps": write_anomaly_maps(out, film),
        "TensorBoard logs": out / "train",
    }
    print(f"[{time.time() - start:6.1f}s] figures written; probing the encoder on held-out films", flush=True)
    probe = probe_gap(out, args.probe_images)
    localisation = localisation_gap(out, args.probe_images)
    rows = read_loss_history(history)
    first, last = rows[0], rows[-1]
    print(f"\nDemo finished in {time.time() - start:.0f} s. Epoch means, first -> last epoch:")
    for key in ("loss", "structure", "category", "restoration"):
        if key in first:
            print(f"  {key:12s} {first[key]:.4f} -> {last[key]:.4f}")
    print("\nOutputs:")
    for name, path in outputs.items():
        print(f"  {name:30s} {path}")
    low, high = probe["gap"][1:]
    print(
        f"\nFrozen linear probe on {probe['pooling']} pooled tokens, 7 simulated findings, {probe['test_films']} "
        f"held-out test films (generator seed {PROBE_SEED}), mean AUROC:\n"
        f"  AFiRe teacher encoder        {probe['afire']:.3f}\n"
        f"  random encoder, same shape   {probe['random']:.3f}\n"
        f"  gap                          {probe['afire'] - probe['random']:+.3f} (95% CI {low:+.3f} to {high:+.3f})",
        flush=True,
    )
    outputs["probe"] = probe
    print("\n" + localisation_text(localisation), flush=True)
    outputs["localisation"] = localisation
    return outputs


#: the demo's held-out labelled films: another generator seed than its pre-training films (seed 0)
PROBE_SEED = 1
#: token pooling of the frozen linear probe, as chosen on validation by the evidence study
PROBE_POOLING = "mean_max"


def _prepared_films(records: Sequence[dict[str, Any]], image_size: int) -> Any:
    import torch

    from monai_afire.transforms import radiograph_transforms

    prep = radiograph_transforms(image_size)
    return torch.stack([torch.as_tensor(prep({"image": r["image"]})["image"]).float() for r in records])


def probe_gap(
    out_dir: str | Path,
    num_images: int = 1000,
    pooling: str = PROBE_POOLING,
    prevalence: float = 0.1,
    seed: int = PROBE_SEED,
    val_fraction: float = 0.2,
) -> dict[str, Any]:
    """Frozen pooled linear-probe AUROC of the demo's teacher encoder next to a random encoder of the same shape.

    Labelled films are generated with another seed (``out_dir/probe_films``, each simulated finding with probability
    ``prevalence``), split patient-wise (the generator's test list; ``val_fraction`` of the other patients for
    validation). For each encoder: patch tokens (:func:`monai_afire.apps.encode_tokens`), pooled
    (:func:`monai_afire.apps.pool_tokens`), a :class:`monai_afire.apps.LinearProbe` per finding fitted on the
    training films with C chosen on validation, then the mean AUROC over the findings on the test films, and the
    paired bootstrap interval of the gap over test patients (:func:`monai_afire.metrics.bootstrap_auroc_difference`).

    Returns:
        dict with ``afire`` and ``random`` (test mean AUROC), ``gap`` ((point, low, high)), ``test_films``,
        ``pooling``.
    """
    import numpy as np
    import torch
    from monai.bundle import ConfigParser

    from monai_afire.apps import LinearProbe, encode_tokens, pool_tokens
    from monai_afire.data import holdout_split, load_dataset
    from monai_afire.data.simcxr_findings import FINDINGS
    from monai_afire.metrics import bootstrap_auroc_difference, mean_auroc
    from monai_afire.networks import load_pretrained_encoder

    parser = ConfigParser()
    parser.read_config(DEMO_CONFIGS)
    size = int(parser["image_size"])
    folder = ensure_simcxr(Path(out_dir) / "probe_films", num_images, size, seed=seed, prevalence=prevalence)
    splits = {}
    for split in ("train_val", "test"):
        records, classes = load_dataset("simcxr", folder, split=split)
        splits[split] = records
    columns = [classes.index(f) for f in FINDINGS]
    train, val = holdout_split(splits["train_val"], val_fraction, seed=0)
    data = {}
    for name, records in (("train", train), ("val", val), ("test", splits["test"])):
        labels = np.stack([np.asarray(r["label"])[columns] for r in records]).astype(np.float32)
        data[name] = (_prepared_films(records, size), labels)
    patients = np.asarray([str(r["patient_id"]) for r in splits["test"]])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random_encoder = ConfigParser(parser.get()).get_parsed_content("encoder")
    encoder = parser.get_parsed_content("encoder")
    load_pretrained_encoder(Path(out_dir) / "models" / "teacher_encoder.pt", encoder)
    scores = {}
    for name, enc in (("afire", encoder), ("random", random_encoder)):
        feats = {k: pool_tokens(encode_tokens(enc.eval(), x), pooling) for k, (x, _) in data.items()}
        probe = LinearProbe().fit(feats["train"], data["train"][1], feats["val"], data["val"][1])
        scores[name] = probe.predict(feats["test"])
    y_test = data["test"][1]
    gap = bootstrap_auroc_difference(y_test, scores["afire"], scores["random"], groups=patients)
    return {
        "afire": mean_auroc(y_test, scores["afire"]),
        "random": mean_auroc(y_test, scores["random"]),
        "gap": tuple(float(v) for v in gap[:3]),
        "test_films": len(y_test),
        "pooling": pooling,
    }


#: the label-free map of the evidence study's AFiRe + category term arm, chosen on validation
#: (``benchmarks/results/evidence/choices.json``): the per-token lesion-prototype probability, upsampled
LOCALISATION_MAP = "lesion_probability"
#: the study's raw-pixel baseline map, ``|film - mean normal pre-training film|``, smoothed with this sigma (pixels)
PIXEL_MAP_SIGMA = 2.0
#: rows of the localisation table: key, description
LOCALISATION_ROWS = (
    ("afire", "AFiRe teacher, lesion probability"),
    ("random", "random encoder + heads, same map"),
    ("pixels", "raw pixels, |film - mean normal film|"),
)


def localisation_gap(
    out_dir: str | Path,
    num_images: int = 1000,
    prevalence: float = 0.1,
    seed: int = PROBE_SEED,
    network: str = "teacher",
    num_samples: int = 1000,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Label-free localisation of the simulated findings on the probe step's held-out test films (no label used).

    The films of :func:`probe_gap` (``out_dir/probe_films``, its test split); one case per (film, finding) with a
    mask (:func:`monai_afire.apps.localization_cases`). Three maps, as the evidence study defines them
    (``benchmarks/evidence_study/maps.py``; nothing is chosen here): the lesion-prototype probability
    (:func:`monai_afire.inferers.lesion_probability`, laid on the image by
    :func:`monai_afire.inferers.token_values_to_image`) of the demo's ``network`` branch (its encoder and
    prototype head; the study read the student branch, the demo reads the teacher, the encoder it keeps), the same
    map of a randomly initialised model of the same shape (seed 0), and the raw-pixel baseline
    :func:`monai_afire.apps.mean_film_maps` against the mean of the demo's normal pre-training films.
    Scores: pixel AUROC and pointing game per case (:func:`monai_afire.metrics.localization_case_scores`), averaged
    as :func:`monai_afire.metrics.localization_scores` does, and paired bootstrap intervals over test patients of
    the AFiRe-minus-random and AFiRe-minus-pixels differences (:func:`monai_afire.metrics.bootstrap_mean_difference`).

    Returns:
        dict with ``maps`` (``{"afire" | "random" | "pixels": {"pixel_auroc", "pointing_game", "hit@0.3"}}``),
        ``per_finding`` (``{map: {finding: pixel AUROC}}``), ``gaps`` (``{"afire-random" | "afire-pixels":
        {"pixel_auroc" | "pointing_game": (point, low, high)}}``), ``cases``, ``films`` (films with a finding),
        ``test_films``, ``network``, ``map`` and ``seconds``.
    """
    import torch
    from monai.bundle import ConfigParser

    from monai_afire.apps.localization import localization_cases, mean_film_maps, prepared_mask
    from monai_afire.data import load_dataset
    from monai_afire.data.simcxr_findings import FINDINGS
    from monai_afire.inferers import lesion_probability, token_values_to_image
    from monai_afire.metrics import bootstrap_mean_difference, localization_case_scores, localization_summary

    start = time.time()
    parser = ConfigParser()
    parser.read_config(DEMO_CONFIGS)
    size = int(parser["image_size"])
    out_dir = Path(out_dir)
    folder = ensure_simcxr(out_dir / "probe_films", num_images, size, seed=seed, prevalence=prevalence)
    records, _ = load_dataset("simcxr", folder, split="test")
    cases = localization_cases(records, FINDINGS, folder / "masks")
    cases = [c for c in cases if c["mask"] is not None]
    if not cases:
        raise ValueError(f"localisation_gap: no test film of {folder} has a finding with a mask.")
    films = list(dict.fromkeys(c["image"] for c in cases))
    index = {f: i for i, f in enumerate(films)}
    patient = {r["image"]: str(r["patient_id"]) for r in records}
    # films generated at `size`: their boxes and masks are already on the model's grid
    images = _prepared_films([{"image": f} for f in films], size).as_subclass(torch.Tensor)

    model, _ = demo_network(out_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random_model = ConfigParser(parser.get()).get_parsed_content("network_def").eval()
    pretrain, _ = load_dataset("simcxr", out_dir / "simcxr")
    mean_film = _prepared_films(pretrain, size).as_subclass(torch.Tensor).mean(0, keepdim=True)

    def lesion_map(net: Any) -> Any:
        encoder = getattr(net, network).encoder
        with torch.no_grad():
            probs = [
                lesion_probability(net, images[i : i + batch_size], network=network)
                for i in range(0, len(images), batch_size)
            ]
        return token_values_to_image(torch.cat(probs), encoder.grid_size, (size, size))[:, 0]

    maps = {"afire": lesion_map(model), "random": lesion_map(random_model)}
    maps["pixels"] = mean_film_maps(images, mean_film, PIXEL_MAP_SIGMA)
    masks = [prepared_mask(c["mask"], size) for c in cases]  # (H, W): maps are transposed to match
    boxes = [c["boxes"] for c in cases]
    findings = [c["finding"] for c in cases]
    groups = [patient[c["image"]] for c in cases]
    rows, summary, per_finding = {}, {}, {}
    for name, m in maps.items():
        case_maps = [m[index[c["image"]]].T.numpy() for c in cases]  # MONAI (x, y) -> (H, W)
        rows[name] = localization_case_scores(case_maps, boxes, findings, masks)
        scores = localization_summary(rows[name], findings)
        summary[name] = {k: scores["all"][k] for k in ("pixel_auroc", "pointing_game", "hit@0.3")}
        per_finding[name] = {f: scores[f]["pixel_auroc"] for f in FINDINGS if f in scores}
    gaps = {}
    for other in ("random", "pixels"):
        gaps[f"afire-{other}"] = {
            key: tuple(
                float(v)
                for v in bootstrap_mean_difference(
                    [r[key] for r in rows["afire"]], [r[key] for r in rows[other]], groups, num_samples
                )[:3]
            )
            for key in ("pixel_auroc", "pointing_game")
        }
    return {
        "maps": summary,
        "per_finding": per_finding,
        "gaps": gaps,
        "cases": len(cases),
        "films": len(films),
        "test_films": len(records),
        "network": network,
        "map": LOCALISATION_MAP,
        "seconds": time.time() - start,
    }


def localisation_text(loc: dict[str, Any]) -> str:
    """The table that :func:`main` prints for :func:`localisation_gap`'s result."""
    lines = [
        f"Label-free localisation of the simulated findings (no label used), {loc['cases']} (film, finding) cases "
        f"in {loc['films']} of the {loc['test_films']} held-out test films ({loc['seconds']:.0f} s):",
        f"  {'map':42s} {'pixel AUROC':>11s} {'pointing game':>14s}",
    ]
    for key, label in LOCALISATION_ROWS:
        row = loc["maps"][key]
        lines.append(f"  {label:42s} {row['pixel_auroc']:11.3f} {row['pointing_game']:14.3f}")
    for other in ("random", "pixels"):
        cells = []
        for key in ("pixel_auroc", "pointing_game"):
            point, low, high = loc["gaps"][f"afire-{other}"][key]
            cells.append(f"{point:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"  {'AFiRe - ' + other + ' (paired 95% CI, patients)':42s} {cells[0]:>11s}  {cells[1]}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

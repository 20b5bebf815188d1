"""`budget-study propagate`, `budget-study propagation train`, `budget-study bench propagation`."""

from __future__ import annotations

from pathlib import Path

import typer

from slicebudget.cli.app import app, bench_app, propagation_app
from slicebudget.errors import UserError


def _progress_bar(description: str):
    from slicebudget.cli.console import progress_bar

    return progress_bar(description)


@app.command("propagate")
def propagate_cmd(
    image: Path = typer.Option(..., "--image", help="Image volume (.nii.gz, .nrrd, .mha)."),
    labels: Path = typer.Option(..., "--labels", help="Sparse labels: unannotated slices hold the ignore label."),
    ignore_label: int = typer.Option(..., "--ignore-label", min=1, help="Value marking unannotated voxels."),
    out: Path = typer.Option(..., "--out", help="Dense labels, written with the image's exact geometry."),
    method: str = typer.Option("sli2vol", "--method", help="sli2vol, sdf, nearest or mci."),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="dataset.json (or its folder) declaring the label values; checked if given."
    ),
    model: Path | None = typer.Option(None, "--model", help="sli2vol model file (default: the shipped model)."),
    fallback: str | None = typer.Option(
        None, "--fallback", help="sli2vol only: sdf (default; lost matches between annotated slices take the "
        "signed-distance interpolation) or none."
    ),
    max_beyond: int | None = typer.Option(
        None, "--max-beyond", min=0, help="sli2vol only: at most N slices beyond the outermost annotated slice."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: GPU when present)."),
):
    """Propagate a sparse slice annotation into dense labels; a JSON sidecar next to them
    (NAME.provenance.json) says where each slice came from and its calibrated confidence."""
    import numpy as np

    from collections import Counter

    from slicebudget.io import read_labels, read_volume, write_volume
    from slicebudget.propagation import PROPAGATORS, PROVENANCES, get_propagator, propagate, propagator_parameters
    from slicebudget.propagation.sidecar import write_sidecar
    from slicebudget.propagation.labels import check_declared, read_declared_labels
    from slicebudget.volume import SparseAnnotation

    given = {"model": model, "fallback": fallback, "max_beyond": max_beyond}
    params = {k: v for k, v in given.items() if v is not None}
    foreign = [k for k in params if k not in propagator_parameters(method)]
    if foreign:
        takers = [m for m in PROPAGATORS if foreign[0] in propagator_parameters(m)]
        raise UserError(f"--{foreign[0].replace('_', '-')} applies to method {' or '.join(takers)} only, not {method!r}")
    get_propagator(method, **params)  # refuse an unknown method or parameter before reading anything
    declared = read_declared_labels(dataset) if dataset is not None else None
    volume = read_volume(image)
    encoded = read_labels(labels, like=volume)
    check_declared(encoded.array, ignore_label, declared, labels)
    annotation = SparseAnnotation.decode(encoded.array, ignore_label, name=str(labels))
    with _progress_bar(f"propagating ({method})") as bar:
        task = bar.add_task("propagate", total=None)
        result = propagate(
            volume.array.astype(np.float32),
            annotation,
            method=method,
            device=device,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **params,
        )
    write_volume(result.labels.astype(annotation.labels.dtype), like=volume, path=out)
    sidecar = write_sidecar(result, out, method, params)
    counts = Counter(result.provenance[~annotation.annotated])
    made = ", ".join(f"{counts[p]} {p}" for p in PROVENANCES if counts[p])
    typer.echo(f"wrote {out} and {sidecar.name} ({method}: {int(annotation.annotated.sum())} annotated slices, {made})")


@propagation_app.command("train")
def train_cmd(
    dataset_dirs: list[Path] = typer.Argument(..., help="One or more dataset folders; their labels are not used."),
    out: Path = typer.Option(..., "--out", help="Model file to write (.pt)."),
    iterations: int = typer.Option(400, "--iterations", min=1, help="Optimiser steps."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice."),
    batch: int = typer.Option(4, "--batch", min=1, help="Slice pairs per step."),
    crop: int = typer.Option(48, "--crop", min=16, help="Crop size (pixels) of each training pair."),
    cases_per_dataset: int = typer.Option(0, "--cases", min=0, help="Use only the first N cases of each (0 = all)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: GPU when present)."),
    init: str | None = typer.Option(
        None, "--init", help="Fine-tune from 'default' (the shipped model) or a model file: adapt it to these "
        "images (no labels used). Without it, train from scratch."
    ),
):
    """Train the sli2vol feature network self-supervised (reconstruct slice i+k from slice i); with
    --init default, adapt the shipped model to a group's own unlabelled images."""
    from slicebudget.propagation.sli2vol.propagator import pick_device
    from slicebudget.propagation.sli2vol.train import ADAPTATION, TrainingSettings, train_from_datasets

    # Adapting fine-tunes at the lower rate the study and the plugin use (ADAPTATION); scratch trains at the default.
    rate = ADAPTATION.learning_rate if init else TrainingSettings.learning_rate
    settings = TrainingSettings(iterations=iterations, batch=batch, crop=crop, seed=seed, learning_rate=rate)
    with _progress_bar("training sli2vol") as bar:
        task = bar.add_task("train", total=iterations)
        final = train_from_datasets(dataset_dirs, out, settings, cases_per_dataset=cases_per_dataset or None,
                                    device=pick_device(device), init=init,
                                    progress=lambda done, total, loss: bar.update(task, completed=done))
    typer.echo(f"wrote {out} (final reconstruction loss {final:.4f} over the last steps)")


@propagation_app.command("calibrate")
def calibrate_cmd(
    out: Path = typer.Option(..., "--out", help="Calibration file to write (.json)."),
    cases: int = typer.Option(16, "--cases", min=2, help="Phantom cases per task."),
    seed: int = typer.Option(200, "--seed", min=0, help="Phantom seed (keep it apart from the model's 100)."),
):
    """Fit the per-slice confidence calibration on phantom cases (organ, lesion, vessel): isotonic maps
    from each method's raw per-slice signal to slice IoU. The shipped file was made with the defaults."""
    import json

    from slicebudget.io.atomic import atomic_write
    from slicebudget.propagation.calibrate import fit_on_phantoms

    with _progress_bar("calibrating propagation") as bar:
        task = bar.add_task("calibrate", total=None)
        calibration = fit_on_phantoms(cases=cases, seed=seed,
                                      on_step=lambda done, total: bar.update(task, completed=done, total=total))
    with atomic_write(out) as tmp:
        tmp.write_text(json.dumps(calibration.to_json(), indent=1))
    typer.echo(f"wrote {out} ({calibration.made['slices']} slices, maps: {', '.join(sorted(calibration.maps))})")


@bench_app.command("propagation")
def bench_cmd(
    dataset_dir: Path = typer.Argument(..., help="Dataset with dense labels (e.g. a phantom dataset)."),
    densities: str = typer.Option("0.05,0.1,0.2,0.4,0.8", "--densities", help="Annotation densities rho."),
    methods: str = typer.Option(
        "sli2vol,sdf,nearest,mci", "--methods",
        help="Methods to compare; parameters after colons, e.g. sli2vol:fallback=none.",
    ),
    policy: str = typer.Option("fixed", "--policy", help="Slice selection policy (fixed, random, coreset)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for random policies."),
    max_cases: int = typer.Option(0, "--cases", min=0, help="Use only the first N cases (0 = all)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    sequential: bool = typer.Option(
        False, "--sequential", help="Simulate an annotator painting the next best slice (first of --methods), "
        "against fixed-interval and random orders."
    ),
    max_slices: int = typer.Option(12, "--max-slices", min=2, help="--sequential: slices painted per case."),
    target: float = typer.Option(0.9, "--target", min=0.0, max=1.0, help="--sequential: volume IoU to reach."),
):
    """Table 3 of the slice-selection study: IoU of propagated masks per method and density, the
    learned carry's share and the calibration of the confidence; or, with --sequential, volume IoU
    against slices painted in the next-best, fixed-interval and random orders."""
    from slicebudget.bench.propagation import format_table, parse_list, run_bench, write_json

    rhos = [float(x) for x in parse_list(densities, "--densities")]
    names = parse_list(methods, "--methods")
    if sequential:
        from slicebudget.bench.propagation_sequential import format_sequential, run_sequential

        run, describe, title = (lambda step: run_sequential(
            dataset_dir, names[0], max_slices=max_slices, target=target, seed=seed, max_cases=max_cases or None,
            on_step=step)), format_sequential, "simulating an annotator"
    else:
        run, describe, title = (lambda step: run_bench(
            dataset_dir, rhos, names, policy=policy, seed=seed, max_cases=max_cases or None,
            on_step=step)), format_table, "benchmarking propagation"
    with _progress_bar(title) as bar:
        task = bar.add_task("bench", total=None)
        result = run(lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(describe(result))
    if json_out is not None:
        write_json(result, json_out)
        typer.echo(f"wrote {json_out}")


@propagation_app.command("next-slice")
def next_slice_cmd(
    image: Path = typer.Option(..., "--image", help="Image volume (.nii.gz, .nrrd, .mha)."),
    labels: Path = typer.Option(..., "--labels", help="Sparse labels: unannotated slices hold the ignore label."),
    ignore_label: int = typer.Option(..., "--ignore-label", min=1, help="Value marking unannotated voxels."),
    method: str = typer.Option("sli2vol", "--method", help="Propagation method whose result is judged."),
    top: int = typer.Option(1, "--top", min=1, help="Also list the next TOP candidates."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: GPU when present)."),
):
    """Suggest the slice to annotate next: where the propagated result is expected to be wrong by the
    most voxels (calibrated confidence x believed area, plus disagreement with sdf)."""
    import numpy as np

    from slicebudget.io import read_labels, read_volume
    from slicebudget.propagation import get_propagator
    from slicebudget.propagation.next_slice import suggest_next_slice
    from slicebudget.volume import SparseAnnotation

    get_propagator(method)
    volume = read_volume(image)
    annotation = SparseAnnotation.decode(read_labels(labels, like=volume).array, ignore_label, name=str(labels))
    if not annotation.annotated.any():
        raise UserError("no slice is annotated yet; paint at least one slice before asking for the next", labels)
    params = {"device": device} if method == "sli2vol" else {}
    suggestion = suggest_next_slice(volume.array.astype(np.float32), annotation, method, **params)
    typer.echo(f"next slice: {suggestion.slice}")
    if top > 1:
        order = np.argsort(-suggestion.score, kind="stable")
        order = [int(j) for j in order if not annotation.annotated[j]][:top]
        typer.echo("candidates (slice, expected wrong voxels within reach): "
                   + ", ".join(f"{j} {suggestion.score[j]:.0f}" for j in order))


@bench_app.command("propagation-speed")
def speed_cmd(
    size: int = typer.Option(512, "--size", min=16, help="Slice width and height in pixels."),
    depth: int = typer.Option(300, "--depth", min=3, help="Slices in the volume."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: GPU when present)."),
):
    """Seconds of sli2vol per slice pair and per volume, propagating one annotated slice through a
    synthetic DEPTH x SIZE x SIZE volume (a disc that drifts and grows, as organs do)."""
    import torch

    from slicebudget.bench.propagation import measure_sli2vol_speed

    torch.set_num_threads(threads)
    with _progress_bar("timing sli2vol") as bar:
        bar.add_task("speed", total=None)
        figures = measure_sli2vol_speed(size=size, depth=depth, device=device)
    typer.echo(
        f"sli2vol, {depth} x {size} x {size}, {threads} thread(s): {figures['seconds']:.2f} s for the volume, "
        f"{figures['pairs']} slice pairs, {figures['seconds_per_pair']:.3f} s per pair"
    )

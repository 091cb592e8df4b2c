"""The tail of `flair-pipeline demo`: CPU-sized training, the comparison table, a map.

Kept out of cli.py so the command module stays a thin front door; the functions only
combine core pieces (training config, evaluation outputs, large-area prediction).
"""

from __future__ import annotations

from pathlib import Path

from flair_pipeline.config import PipelineConfig


def map_first_test_domain(cfg: PipelineConfig) -> str:
    """Map the first test domain's whole ortho mosaic with each trained model; return the
    comparison table and where the maps went, for the demo to print.

    U-T&T maps too (its Sentinel-2 windows come from the configured provider for the
    domain's year), because its map is the one that tells crops from grassland. Relative
    paths of the config are relative to the working directory, as everywhere in the demo.
    """
    from flair_pipeline.dataset.layout import DatasetLayout, RawLayout
    from flair_pipeline.dataset.splits import read_splits
    from flair_pipeline.domains import DomainId
    from flair_pipeline.evaluation.extra_inputs import s2_windows_from_config
    from flair_pipeline.evaluation.predict import predict_map
    from flair_pipeline.training.checkpoint import load_inference

    lines = ["", (Path(cfg.paths.eval) / "comparison.md").read_text()]
    splits = read_splits(DatasetLayout(Path(cfg.paths.dataset)).splits)
    domain = next(d for d, s in sorted(splits.items()) if s == "test")
    raw = RawLayout(Path(cfg.paths.raw))
    for model, label in (("unet", "U-Net"), ("utt", "U-T&T")):
        ckpt = Path(cfg.paths.models) / model / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            continue
        inf = load_inference(ckpt)
        extra = None
        if inf.name == "utt":
            year = DomainId.parse(domain).year
            extra = s2_windows_from_config(inf, raw.ortho_dir(domain), year, cfg, Path.cwd())
        out = Path(cfg.paths.eval) / f"map_{domain}_{model}.tif"
        report = predict_map(
            inf.model, raw.ortho_dir(domain), out, patch_size=inf.patch_size,
            overlap=cfg.eval.overlap, batch_size=cfg.eval.batch_size, mean=inf.mean,
            std=inf.std, dsm=raw.dsm(domain), dtm=raw.dtm(domain),
            elevation_scale=inf.elevation_scale, downsample=inf.downsample, extra_inputs=extra,
        )  # fmt: skip
        lines.append(
            f"map of {domain} ({label}): {out} ({report.km2:.2f} km², {report.seconds:.1f} s)"
        )
    return "\n".join(lines)


def cpu_training_overrides() -> tuple[str, ...]:
    """Overrides that make the demo's training take minutes on a CPU.

    params.yaml holds FLAIR's GPU recipe (200 epochs at full resolution); on a CPU the
    demo trains at 1/4 resolution with AdamW and FLAIR-2's cloud filter and monthly
    averages. User --set values come after and win.
    """
    import torch

    if torch.cuda.is_available():
        return ("train.epochs=40",)
    return (
        "train.epochs=40", "train.downsample=4", "train.batch_size=8", "train.optimizer=adamw",
        "train.lr=0.001", "train.scheduler=cosine", "train.num_workers=2", "train.utae_width=32",
        "sentinel2.filter_clouds=true", "sentinel2.monthly_average=true", "eval.batch_size=8",
    )  # fmt: skip

"""The tail of `flair-pipeline demo`: CPU-sized training, the comparison table, a map.

Kept out of cli.py so the command module stays a thin front door; the functions only
combine core pieces (training config, evaluation outputs, large-area prediction).
"""

from __future__ import annotations

from pathlib import Path

from flair_pipeline.config import PipelineConfig


def map_first_test_domain(cfg: PipelineConfig) -> str:
    """Map the first test domain's whole ortho mosaic with the U-Net; return the comparison
    table and where the map went, for the demo to print."""
    from flair_pipeline.dataset.layout import RawLayout
    from flair_pipeline.dataset.splits import read_splits
    from flair_pipeline.evaluation.predict import predict_map
    from flair_pipeline.training.checkpoint import load_inference

    table = (Path(cfg.paths.eval) / "comparison.md").read_text()
    splits = read_splits(Path(cfg.paths.dataset) / "metadata" / "splits.csv")
    domain = next(d for d, s in sorted(splits.items()) if s == "test")
    raw = RawLayout(Path(cfg.paths.raw))
    inf = load_inference(Path(cfg.paths.models) / "unet" / "checkpoints" / "best.ckpt")
    out = Path(cfg.paths.eval) / f"map_{domain}_unet.tif"
    report = predict_map(
        inf.model, raw.ortho_dir(domain), out, patch_size=inf.patch_size,
        overlap=cfg.eval.overlap, batch_size=cfg.eval.batch_size, mean=inf.mean, std=inf.std,
        dsm=raw.dsm(domain), dtm=raw.dtm(domain), elevation_scale=inf.elevation_scale,
        downsample=inf.downsample,
    )  # fmt: skip
    return (
        f"\n{table}\nmap of {domain} (U-Net): {out} ({report.km2:.2f} km², {report.seconds:.1f} s)"
    )


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

"""Evaluation: rate, distortion and perception of our models and of baseline codecs on an image folder.

`cli.py` (`onestep eval`) runs `runner.py` over codecs (`baselines.py`: JPEG, WebP, AVIF, JPEG XL;
`models.py`: our model folders through `onestep.api`) and images (`dataset.py`), with results cached on
disk (`cache.py`). Metrics (`metrics.py`) are PSNR and MS-SSIM (`fidelity.py`), the offline
EfficientNet-Lite0 metrics ENL0-dist and FD-ENL0 (`perceptual.py`), and the published LPIPS, DISTS and
FID/KID (`lpips.py`, `dists.py`, `inception.py`, weights found by `weights.py`) on FID/256 patches
(`patches.py`, `frechet.py`). `results.py`, `bdrate.py`, `plots.py` and `report.py` turn measurements into
CompressAI-style JSON, CSV, BD-rates, RD plots and an HTML report.
"""

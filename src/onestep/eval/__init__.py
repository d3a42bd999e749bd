"""Evaluation: rate, distortion and perception of our models and of baseline codecs on an image folder.

`cli.py` (`onestep eval`) runs `runner.py` over codecs (`baselines.py`: JPEG, WebP, AVIF, JPEG XL and
downscaled AVIF/WebP; `models.py`: our model folders through `onestep.api`, with their rate-control
qualities and `training.json`) and images (`dataset.py`, named protocols), with results cached on disk
(`cache.py`). Metrics (`metrics.py`) are PSNR and MS-SSIM (`fidelity.py`), SSIMULACRA2 (`ssimulacra2.py`,
checked against libjxl by `validate_ssimulacra2.py`) and Butteraugli (`codec_metrics.py`), the offline
EfficientNet-Lite metrics ENL0-dist, ENL2-dist and FD-ENL0 (`perceptual.py`, `efficientnet_variants.py`),
and the published LPIPS, DISTS and FID/KID (`lpips.py`, `dists.py`, `inception.py`, weights found by
`weights.py`) on FID/256 patches (`patches.py`, `frechet.py`). `results.py`, `bdrate.py`, `matched.py`,
`plots.py`, `report.py` and `environment.py` turn measurements into CompressAI-style JSON, CSV, BD-rates,
matched-rate tables, RD plots and an HTML report that say how they were made.
"""

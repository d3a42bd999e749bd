"""Training: `onestep pack` (compact shards of images or latents) and `onestep train CONFIG.yaml`.

data.py, shards.py, pack.py   image folders, image/latent shards, the resumable batch plan
augment.py                    the reference's per-step resolution schedule
config.py, build.py           YAML config with overrides; the pipeline and what trains
stage1.py                     L1 + perceptual + lambda(t) bpp (+ latent MSE) + semantic distillation
semantic.py, codeformer.py,   the Codeformer head and its teachers (MaskGIT VQGAN, or the EfficientNet
maskgit_vqgan.py              k-means substitute)
stage2.py, score.py           DMD with a frozen teacher, fake score network, diffusion-GAN heads
engine.py, checkpoint.py      the accelerate loop, exact-resume checkpoints, export
validation.py                 Kodak-style validation (bpp, PSNR, MS-SSIM, perceptual)
"""

"""Training the demo's base generator from scratch on catalog images and captions: first the
autoencoder (checked to keep colours), then the UNet and the text encoder together, with
caption dropout (for classifier-free guidance), warm-up + cosine learning rate, EMA and a time
budget. The recipe that worked on a 2-core CPU is in ENVIRONMENT.md."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from pydantic import BaseModel
from tqdm.auto import tqdm


class BaseTrainConfig(BaseModel):
    vae_minutes: float = 1.0
    vae_steps: int = 750
    vae_batch_size: int = 32
    # 2e-3 swung between runs: colour kept through a round trip 0.40 / 0.63 / 0.91; 5e-4: 0.89 / 0.87 (two batch orders) and
    # 0.88 / 0.89 (633 / 707 steps). The step size, not where training stops, is the cause: cosine decay from 1e-3 kept 0.67-0.72, from 2e-3 0.34
    vae_lr: float = 5e-4
    vae_color_weight: float = 5.0  # MSE of 4x4-pooled images: keeps colours (without it ~40% of reconstructions changed colour)
    unet_minutes: float = 4.0
    unet_steps: int = 2000
    unet_batch_size: int = 128
    unet_lr: float = 1e-3
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    colorless_captions: float = 0.2  # share of captions without their colour ("a dress"); see train_unet
    ema_decay: float = 0.995
    max_grad_norm: float = 1.0
    seed: int = 0


def to_model_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_vae(vae, pixels: np.ndarray, config: BaseTrainConfig) -> dict:
    """L1 + MSE reconstruction + a small KL + a low-frequency colour term; returns figures
    (steps, loss, scaling factor)."""
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    vae.train()
    start, step, loss = time.perf_counter(), 0, torch.tensor(0.0)
    with tqdm(total=config.vae_steps, desc="train autoencoder", mininterval=2) as bar:
        while step < config.vae_steps and time.perf_counter() - start < 60 * config.vae_minutes:
            x = to_model_range(pixels[rng.choice(len(pixels), config.vae_batch_size, replace=False)])
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            loss = (recon - x).abs().mean() + ((recon - x) ** 2).mean() + 1e-5 * posterior.kl().mean()
            if config.vae_color_weight:
                pooled = torch.nn.functional.avg_pool2d
                loss = loss + config.vae_color_weight * torch.nn.functional.mse_loss(pooled(recon, 4), pooled(x, 4))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            bar.update()
    vae.eval()
    with torch.no_grad():
        sample = to_model_range(pixels[rng.choice(len(pixels), min(1024, len(pixels)), replace=False)])
        latents = vae.encode(sample).latent_dist.mean
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    return {"vae_steps": step, "vae_loss": float(loss.detach()), "vae_seconds": round(time.perf_counter() - start, 1), "scaling_factor": scaling}


@torch.no_grad()
def encode_latents(vae, pixels: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    out = [vae.encode(to_model_range(pixels[i:i + batch_size])).latent_dist.mean for i in range(0, len(pixels), batch_size)]
    return torch.cat(out) * vae.config.scaling_factor


def train_unet(pipe, latents: torch.Tensor, captions: list[str], config: BaseTrainConfig, short_captions: list[str] | None = None) -> list[dict]:
    """Epsilon-prediction training of the UNet and text encoder; the UNet ends as its EMA.
    `short_captions` (aligned with `captions`, e.g. "a dress" for "a red dress") replace a
    `colorless_captions` share of them, as real captions often leave attributes out: trained
    only on coloured captions, the demo's generator drew 90% grey for "a dress" (parity distance
    0.83) instead of the catalog's colour mix."""
    rng = np.random.default_rng(config.seed + 1)
    unet, text, scheduler, tokenizer = pipe.unet, pipe.text_encoder, pipe.scheduler, pipe.tokenizer

    def tokenize(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids

    tokens = tokenize(captions)
    if short_captions is not None and len(short_captions) != len(captions):
        raise ValueError(f"train_unet: {len(short_captions)} short captions for {len(captions)} captions; they must be aligned")
    short_tokens = tokenize(short_captions) if short_captions is not None and config.colorless_captions > 0 else None
    empty = tokenize([""])
    params = list(unet.parameters()) + list(text.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2)

    horizon = [config.unet_steps]  # shortened once the time budget's pace is known

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, horizon[0] - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_at)
    ema = copy.deepcopy(unet).requires_grad_(False)
    unet.train()
    text.train()
    history, start, step = [], time.perf_counter(), 0
    generator = torch.Generator().manual_seed(config.seed)
    with tqdm(total=config.unet_steps, desc="train generator", mininterval=2) as bar:
        while step < config.unet_steps and time.perf_counter() - start < 60 * config.unet_minutes:
            rows = torch.as_tensor(rng.choice(len(latents), config.unet_batch_size, replace=False))
            ids = tokens[rows].clone()
            if short_tokens is not None:
                shorten = torch.as_tensor(rng.random(len(rows)) < config.colorless_captions)
                ids[shorten] = short_tokens[rows][shorten]
            ids[torch.as_tensor(rng.random(len(rows)) < config.caption_dropout)] = empty[0]
            x0 = latents[rows]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(rows),), generator=generator)
            pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=text(ids)[0]).sample
            loss = torch.nn.functional.mse_loss(pred, noise)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), unet.parameters()):
                    e.lerp_(p, 1 - config.ema_decay)
            step += 1
            bar.update()
            if step == 20:  # the cosine schedule ends when the time budget does
                pace = (time.perf_counter() - start) / step
                horizon[0] = min(config.unet_steps, int(60 * config.unet_minutes / pace))
                bar.total = horizon[0]
            if step % 50 == 0:
                history.append({"step": step, "loss": float(loss.detach()), "lr": schedule.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 1)})
    unet.load_state_dict(ema.state_dict())
    unet.eval()
    text.eval()
    return history

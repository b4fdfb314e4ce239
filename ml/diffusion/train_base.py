"""Training the demo's base generator from scratch on catalog images and captions: first the
autoencoder (checked to keep colours), then the UNet and the text encoder together, with
caption dropout (for classifier-free guidance), warm-up + cosine learning rate, EMA, in one
time budget that the UNet gets the rest of. The recipe that worked on a 2-core CPU is in
ENVIRONMENT.md."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from pydantic import BaseModel
from tqdm.auto import tqdm


class BaseTrainConfig(BaseModel):
    base_minutes: float = 5.0  # autoencoder + UNet; the UNet gets what the autoencoder leaves
    # The autoencoder trains until a round trip keeps vae_color_target of held-out images' colours (checked every
    # vae_check_every steps), or for at most vae_max_share of base_minutes. Colour is learned late and suddenly: kept 0.32-0.48
    # until step 300-400, 0.90 at 700-800 (batch 16 or 32, lr 5e-4 or 1e-3). A fixed minute gave 633-707 steps on one machine
    # and 323 on a slower one, whose base then drew the prompted colour 0.30 of the time.
    vae_color_target: float = 0.9
    # ...and every colour at least this share (0: no floor). The overall share hides the colours the autoencoder learns last:
    # at the 811d1da demo's stop (300 steps, 0.926 overall) black kept 0.86 and green 0.77, and per category far less
    # (sandals: green 0.36, black 0.42; pullovers: black 0.62), which read grey; a colour the autoencoder cannot give back
    # the generator cannot draw, so the parity ceiling starts here
    vae_min_color_kept: float = 0.0
    # ...and every category (when train_vae is given them) at least this share: a category that is a tenth of the images
    # hides in the per-colour shares, as sandals did (per colour >= 0.85 while sandals' black kept 0.47, blue 0.67). With area
    # weighting alone the sandals kept 0.89 at 600 steps (black 0.39); measured in demos only with both options below (0.92)
    vae_min_category_kept: float = 0.0
    vae_check_every: int = 100
    vae_check_images: int = 512
    vae_max_share: float = 0.5
    # ...but not before this share of base_minutes. Past the colour target the autoencoder still sharpens: the catalog judge's
    # category accuracy on round trips of 1,000 held-out images (whitened colour loss) was 0.52 / 0.56 / 0.63 / 0.67 / 0.69 at
    # 300 / 400 / 500 / 700 / 800 steps (originals 0.87). Yet on the slow machine 0.4 (autoencoder 600 steps, UNet 450) drew
    # the prompted category 0.49 and colour 0.87, against 0.47 and 1.0 for stopping at the target (300 steps, UNet 700): the
    # UNet's steps were worth more there, so the default stops at the target
    vae_min_share: float = 0.0
    # ...nor before this many steps, unless vae_min_steps_share of base_minutes has passed. Steps, so that a fast machine, whose
    # UNet meets its unet_steps with minutes to spare, spends them sharpening; the share keeps a slow machine's UNet steps. In
    # demos of 800 UNet steps the base's category accuracy followed the autoencoder: 0.56 after 300 steps, 0.68 after 500, 0.72
    # after 900 and 1,200 (orchestration.resources.GenerationResource.vae_min_steps says why the demo leaves it off)
    vae_min_steps: int = 0
    vae_min_steps_share: float = 0.3
    vae_steps: int = 5000
    vae_batch_size: int = 32
    # 2e-3 swung between runs: colour kept through a round trip 0.40 / 0.63 / 0.91; 5e-4: 0.89 / 0.87 (two batch orders) and
    # 0.88 / 0.89 (633 / 707 steps). The step size, not where training stops, is the cause: cosine decay from 1e-3 kept 0.67-0.72, from 2e-3 0.34
    vae_lr: float = 5e-4
    vae_color_weight: float = 5.0  # MSE of 4x4-pooled images: keeps colours (without it ~40% of reconstructions changed colour)
    # that MSE measured along the principal axes of the catalog's pooled colours, each scaled to the luminance axis's variance
    # (colour_whitening). In RGB the green-magenta axis has 1/20 of luminance's variance and weighed as little: at 600 steps a
    # round trip kept green 2% of the time (black or grey instead) and purple 71%, so the generator could not draw green even
    # when asked (21%). Whitened: green 0.84 / 0.89 at 300 / 400 steps, all colours 0.894 / 0.936 (RGB: 0.477 / 0.619)
    vae_color_whiten: bool = True
    # Each image's colour term divided by its inked share (mean 1 over the batch): averaged over all pixels, a sandal (18% of
    # its image inked) weighed 2.5x less than a pullover (45%), and its round trip kept 0.82 (black 0.36, green 0.55) when
    # every other category kept >= 0.91. With the weighting 0.87 at 400 steps, 0.89 at 600 (one seed each, 4,000 images).
    # Off by default: in a demo with it alone black never reached the 0.85 floor (0.83), the autoencoder ran to its cap (873
    # steps), the UNet got 450 steps, and the win-rate was 0.75 (README, "What holds the sandals back")
    vae_color_area_weighted: bool = False
    # MSE of 4x4 max-pooled ink (1 - pixel): keeps the darkest pixel of a thin strap dark. Averaging blurs a black strap to
    # grey, and the colour reader tells black from grey by its strongest pixels: sandals' black kept 0.39-0.45 with the
    # pooled term alone, 0.67 / 0.88 with this at 400 / 600 steps (sandals overall 0.89 / 0.965; all categories 0.957 / 0.979).
    # Off by default: with it (5.0, area-weighted, category floor 0.92) the round trip kept >= 0.93 in every category, parity
    # fell 51-61%, but the RL's win-rate was 0.67-0.72 in four runs (0.74-0.88 in five without)
    vae_peak_ink_weight: float = 0.0
    unet_steps: int = 2000
    unet_batch_size: int = 128
    unet_lr: float = 1e-3
    # The UNet's and text encoder's forward (and so backward) under bf16 autocast where the hardware has bf16 kernels
    # (bf16_supported); weights, optimiser, EMA and the loss stay fp32. Off here; the demo's GenerationResource turns it on
    unet_bf16: bool = False
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    colorless_captions: float = 0.2  # share of captions without their colour ("a dress"); see train_unet
    # Each image drawn with probability proportional to (its caption's image count) ** -unet_cell_balance: 0 draws the catalog's
    # mix (the demo's blue is 44% trousers and shirts, its dresses 5%), 1 draws every "a {colour} {category}" equally
    unet_cell_balance: float = 0.0
    ema_decay: float = 0.995
    max_grad_norm: float = 1.0
    seed: int = 0


def to_model_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def colour_whitening(pixels: np.ndarray, pool: int = 4) -> torch.Tensor:
    """3 x 3 matrix M: pooled colour errors e (N x 3, model range) -> e @ M weighs each principal
    axis of the images' pooled colours by (largest variance / its variance), so a rare chroma
    axis (green-magenta in the demo catalog) counts as much as luminance; luminance keeps weight 1."""
    pooled = torch.nn.functional.avg_pool2d(to_model_range(pixels), pool).permute(0, 2, 3, 1).reshape(-1, 3).double()
    variances, axes = torch.linalg.eigh(torch.cov(pooled.T))
    variances = variances.clamp(min=variances.max() * 1e-4)  # a colourless catalog: no axis weighted beyond 100x
    return (axes * (variances.max() / variances).sqrt()).float()


def _inverse_area_weights(x: torch.Tensor, min_ink: float = 40 / 127.5, floor: float = 0.04) -> torch.Tensor:
    """Per image 1 / (share of pixels inked away from white), normalised to mean 1 over the batch."""
    share = ((1 - x).norm(dim=1) > min_ink).float().flatten(1).mean(dim=1).clamp(min=floor)
    weights = 1 / share
    return weights / weights.mean()


@torch.no_grad()
def round_trip(vae, pixels: np.ndarray) -> np.ndarray:
    """uint8 images -> the same images encoded and decoded (the posterior's mode), uint8; the
    autoencoder's training mode is left as it was."""
    from ml.diffusion.sampling import images_to_uint8

    training = vae.training
    vae.eval()
    recon = vae.decode(vae.encode(to_model_range(pixels)).latent_dist.mode()).sample
    vae.train(training)
    return images_to_uint8((recon + 1) / 2)


def color_kept(reads, colors: np.ndarray, categories: np.ndarray | None = None) -> tuple[float, dict[str, float], dict[str, float]]:
    """Share of round trips whose colour read (`reads`) matches the original's (`colors`), overall,
    per colour and per category (an overall share hides a colour or a category the autoencoder
    cannot represent)."""
    from ml.fairness.color_reader import NO_READ

    same = np.asarray(reads, dtype=object) == colors
    by_color = {str(c): round(float(same[colors == c].mean()), 3) for c in sorted(set(colors.tolist()) - {NO_READ})}
    readable = colors != NO_READ
    by_category = {} if categories is None else \
        {str(k): round(float(same[(categories == k) & readable].mean()), 3) for k in sorted(set(categories[readable].tolist()))}
    return float(same.mean()), by_color, by_category


def train_vae(vae, pixels: np.ndarray, config: BaseTrainConfig, read_color=None, categories=None) -> dict:
    """L1 + MSE reconstruction + a small KL + a low-frequency colour term (whitened; optionally
    area-weighted) + optionally a peak-ink term (see BaseTrainConfig); returns figures (steps, seconds, colour kept overall,
    per colour and per category, why it stopped, scaling factor). With `read_color` (uint8 images
    -> colour names) it holds `vae_check_images` out and stops once they keep their colour (see
    BaseTrainConfig); without it, at the time or step cap. `categories` (one per image) add the
    per-category floor."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(pixels))
    held = order[:min(config.vae_check_images, len(pixels) // 10)] if read_color is not None else order[:0]
    train = order[len(held):]
    held_colors = np.asarray(read_color(pixels[held]), dtype=object) if len(held) else None
    held_categories = np.asarray(categories, dtype=object)[held] if categories is not None and len(held) else None

    def check() -> tuple[float, dict[str, float], dict[str, float]]:  # the held-out images' colour through a round trip
        return color_kept(read_color(round_trip(vae, pixels[held])), held_colors, held_categories)

    whiten = colour_whitening(pixels[rng.choice(train, min(4000, len(train)), replace=False)]) if config.vae_color_whiten and config.vae_color_weight else None
    optimiser = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    vae.train()
    start, step, loss, kept, by_color, by_category, stopped = time.perf_counter(), 0, torch.tensor(0.0), None, {}, {}, "steps"
    limit, earliest = 60 * config.base_minutes * config.vae_max_share, 60 * config.base_minutes * config.vae_min_share
    steps_waived = 60 * config.base_minutes * config.vae_min_steps_share  # the time after which vae_min_steps no longer holds it
    with tqdm(total=config.vae_steps, desc="train autoencoder", mininterval=2) as bar:
        while step < config.vae_steps:
            if time.perf_counter() - start >= limit:
                stopped = "time"
                break
            x = to_model_range(pixels[rng.choice(train, min(config.vae_batch_size, len(train)), replace=False)])
            weights = _inverse_area_weights(x) if config.vae_color_area_weighted else torch.ones(len(x))  # per image, mean 1
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            loss = (recon - x).abs().mean() + ((recon - x) ** 2).mean() + 1e-5 * posterior.kl().mean()
            if config.vae_color_weight:
                error = torch.nn.functional.avg_pool2d(recon, 4) - torch.nn.functional.avg_pool2d(x, 4)
                if whiten is not None:
                    error = error.permute(0, 2, 3, 1) @ whiten
                loss = loss + config.vae_color_weight * (weights * (error**2).flatten(1).mean(dim=1)).mean()
            if config.vae_peak_ink_weight:
                peak = torch.nn.functional.max_pool2d(1 - recon, 4) - torch.nn.functional.max_pool2d(1 - x, 4)
                loss = loss + config.vae_peak_ink_weight * (weights * (peak**2).flatten(1).mean(dim=1)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            bar.update()
            if len(held) and step % config.vae_check_every == 0:
                kept, by_color, by_category = check()
                bar.set_postfix(colour_kept=f"{kept:.2f}")
                elapsed = time.perf_counter() - start
                if kept >= config.vae_color_target and min(by_color.values(), default=1.0) >= config.vae_min_color_kept \
                        and (not by_category or min(by_category.values()) >= config.vae_min_category_kept) and elapsed >= earliest \
                        and (step >= config.vae_min_steps or elapsed >= steps_waived):
                    stopped = "colour target"
                    break
    if len(held) and (kept is None or step % config.vae_check_every):
        kept, by_color, by_category = check()
    vae.eval()
    with torch.no_grad():
        sample = to_model_range(pixels[rng.choice(len(pixels), min(1024, len(pixels)), replace=False)])
        latents = vae.encode(sample).latent_dist.mean
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    return {"vae_steps": step, "vae_loss": float(loss.detach()), "vae_seconds": round(time.perf_counter() - start, 1),
            "vae_color_kept": kept, "vae_color_kept_by_color": by_color,
            "vae_color_kept_by_category": by_category, "vae_stopped": stopped, "scaling_factor": scaling}


@torch.no_grad()
def encode_latents(vae, pixels: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    out = [vae.encode(to_model_range(pixels[i:i + batch_size])).latent_dist.mean for i in range(0, len(pixels), batch_size)]
    return torch.cat(out) * vae.config.scaling_factor


def caption_draw_weights(captions: list[str], balance: float) -> np.ndarray:
    """Per image, a draw probability proportional to (images sharing its caption) ** -balance: 1 gives each caption
    the same share of draws, 0 each image."""
    _, cell, counts = np.unique(np.asarray(captions, dtype=object), return_inverse=True, return_counts=True)
    weights = counts[cell].astype(float) ** -balance
    return weights / weights.sum()


def bf16_supported(device_type: str) -> bool:
    """Where bf16 autocast computes in bf16: CUDA, or a CPU whose oneDNN has bf16 kernels (AVX-512 and up); elsewhere
    train_unet stays in fp32."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _batch_plan(rng: np.random.Generator, n: int, config: BaseTrainConfig, draw: np.ndarray | None, shorten: bool):
    """Each step's (image rows, rows captioned without their colour, rows with the empty caption)."""
    while True:
        rows = rng.choice(n, config.unet_batch_size, replace=False, p=draw)
        short = rng.random(len(rows)) < config.colorless_captions if shorten else None
        yield rows, short, rng.random(len(rows)) < config.caption_dropout


def train_unet(pipe, latents: torch.Tensor | Callable[[np.ndarray], torch.Tensor], captions: list[str], config: BaseTrainConfig,
               short_captions: list[str] | None = None, minutes: float | None = None) -> list[dict]:
    """Epsilon-prediction training of the UNet and text encoder for `minutes` (default: the whole
    base budget); the UNet ends as its EMA.
    `latents`: every image's (aligned with `captions`), or a function from image rows to theirs. The `unet_steps` steps'
    draws are planned before the clock starts, and the function is called once, with the rows they reach: with the
    cell-balanced draw, 800 steps of 128 draw 70% of the demo's images, and encoding them all took longer than 100 UNet steps.
    `short_captions` (aligned with `captions`, e.g. "a dress" for "a red dress") replace a
    `colorless_captions` share of them, as real captions often leave attributes out: trained
    only on coloured captions, the demo's generator drew 90% grey for "a dress" (parity distance
    0.83) instead of the catalog's colour mix."""
    minutes = config.base_minutes if minutes is None else minutes
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
    history, step = [], 0

    def record(loss: torch.Tensor) -> None:
        history.append({"step": step, "loss": float(loss.detach()), "lr": schedule.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 1),
                        "bf16": bf16})

    generator = torch.Generator().manual_seed(config.seed)
    draw = caption_draw_weights(captions, config.unet_cell_balance) if config.unet_cell_balance else None
    # the draws planned ahead, so only the images they reach are encoded (or, given every latent, kept)
    draws = _batch_plan(rng, len(captions), config, draw, short_tokens is not None)
    plan = [next(draws) for _ in range(config.unet_steps)]
    drawn = np.unique(np.concatenate([rows for rows, _, _ in plan])) if plan else np.zeros(0, np.int64)
    encode = latents if callable(latents) else (lambda rows: latents[torch.as_tensor(rows)])
    table, position = encode(drawn) if len(drawn) else None, np.zeros(len(captions), np.int64)
    position[drawn] = np.arange(len(drawn))
    plan = iter(plan)
    bf16 = config.unet_bf16 and bf16_supported(unet.device.type)
    start = time.perf_counter()  # the budget's clock, once the latents are there
    with tqdm(total=config.unet_steps, desc="train generator", mininterval=2) as bar:
        while step < config.unet_steps and time.perf_counter() - start < 60 * minutes:
            rows, short, drop = next(plan)
            latent_rows, rows = torch.as_tensor(position[rows]), torch.as_tensor(rows)
            ids = tokens[rows].clone()
            if short is not None:
                shorten = torch.as_tensor(short)
                ids[shorten] = short_tokens[rows][shorten]
            ids[torch.as_tensor(drop)] = empty[0]
            x0 = table[latent_rows]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(rows),), generator=generator)
            with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=text(ids)[0]).sample
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
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
                horizon[0] = min(config.unet_steps, int(60 * minutes / pace))
                bar.total = horizon[0]
            if step % 50 == 0:
                record(loss)
    if step and (not history or history[-1]["step"] != step):  # the last step too, wherever the budget ended the loop
        record(loss)
    unet.load_state_dict(ema.state_dict())
    unet.eval()
    text.eval()
    return history


def train_base(pipe, pixels: np.ndarray, captions: list[str], short_captions: list[str], config: BaseTrainConfig, read_color,
               categories=None) -> tuple[dict, list[dict]]:
    """Autoencoder, then UNet and text encoder for the rest of `base_minutes`: a slow machine
    spends longer on colour and less on the UNet, instead of getting an autoencoder that loses it."""
    figures = train_vae(pipe.vae, pixels, config, read_color, categories)
    minutes = max(config.base_minutes - figures["vae_seconds"] / 60, config.base_minutes * (1 - config.vae_max_share))
    encoded = {}

    def latents(rows: np.ndarray) -> torch.Tensor:
        started = time.perf_counter()
        out = encode_latents(pipe.vae, pixels[rows])
        encoded.update(latent_images=len(rows), latent_seconds=round(time.perf_counter() - started, 1))
        return out

    history = train_unet(pipe, latents, captions, config, short_captions=short_captions, minutes=minutes)
    # unet_minutes: the UNet's time budget; unet_seconds: what its unet_steps took (less when the step budget ends it first)
    figures.update({"unet_minutes": round(minutes, 3), "unet_seconds": history[-1]["seconds"] if history else 0.0, **encoded,
                    "unet_steps": history[-1]["step"] if history else 0, "unet_precision": "bf16" if history and history[-1]["bf16"] else "fp32",
                    "unet_loss": history[-1]["loss"] if history else None, "training_images": len(pixels)})
    return figures, history

"""Sampling with trajectories: prompts -> images, keeping every latent and each step's
log-probability (what the RL trainer learns from). Classifier-free guidance as in sampling for
users; fixed seeds give the same images for the same prompts (evaluation)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from pydantic import BaseModel

from ml.diffusion.ddim import ddim_step_with_logprob


CODE_SEED_OFFSET = 7_919_000  # evaluation's diversity codes come from seeds apart from its noise's


class SamplingConfig(BaseModel):
    num_inference_steps: int = 20
    guidance_scale: float = 5.0
    eta: float = 1.0


@dataclass
class Trajectories:
    prompt_embeds: torch.Tensor  # B x L x D
    latents: torch.Tensor  # B x (T + 1) x C x H x W: x_T ... x_0
    log_probs: torch.Tensor  # B x T
    timesteps: torch.Tensor  # T
    images: torch.Tensor  # B x 3 x H x W in [0, 1]
    codes: torch.Tensor | None = None  # B diversity codes (ml.diffusion.diversity), when the model has them


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    tokens = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt")
    return pipe.text_encoder(tokens.input_ids.to(pipe.device))[0]


def guided_noise(unet, latents: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, negative: torch.Tensor, guidance: float) -> torch.Tensor:
    """The UNet's noise prediction with classifier-free guidance (one batched call); a one-row
    `negative` serves the whole batch."""
    if guidance == 1.0:
        return unet(latents, t, encoder_hidden_states=embeds).sample
    if negative.shape[0] == 1:
        negative = negative.expand(len(latents), -1, -1)
    both = unet(torch.cat([latents, latents]), torch.cat([t, t]) if t.ndim else t, encoder_hidden_states=torch.cat([negative, embeds])).sample
    uncond, cond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


def decode_with_grad(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images B x 3 x H x W in [0, 1], carrying gradient (the RL trainer's pathwise loss)."""
    return (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)


@torch.no_grad()
def decode(pipe, latents: torch.Tensor) -> torch.Tensor:
    return decode_with_grad(pipe.vae, latents)


@torch.no_grad()
def sample_trajectories(pipe, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor, config: SamplingConfig,
                        generator: torch.Generator | None = None, unet=None, steer_embeds: torch.Tensor | None = None,
                        steer_steps: int = 0, diversity=None, codes: torch.Tensor | None = None) -> Trajectories:
    """`steer_embeds` (B x L x D): the condition of the first `steer_steps` steps instead of
    `prompt_embeds` (RL exploration); the trajectories keep `prompt_embeds`, and the steered
    steps' log-probabilities are those of the steering condition (the trainer re-scores them).
    `diversity` (ml.diffusion.diversity.DiversityCodes) with `codes` (B): each row's code is added
    to its condition; the trajectories keep the plain `prompt_embeds` and the codes."""
    unet = unet or pipe.unet
    condition_embeds = prompt_embeds if diversity is None else diversity(prompt_embeds, codes)
    if diversity is not None and steer_embeds is not None:
        steer_embeds = diversity(steer_embeds, codes)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(config.num_inference_steps, device=pipe.device)
    b = prompt_embeds.shape[0]
    channels, size = unet.config.in_channels, unet.config.sample_size
    latents = torch.randn((b, channels, size, size), generator=generator, device=pipe.device, dtype=prompt_embeds.dtype)
    negative = negative_embeds.expand(b, -1, -1) if negative_embeds.shape[0] == 1 else negative_embeds
    all_latents, log_probs = [latents], []
    for k, t in enumerate(scheduler.timesteps):
        condition = steer_embeds if steer_embeds is not None and k < steer_steps else condition_embeds
        noise = guided_noise(unet, latents, t, condition, negative, config.guidance_scale)
        latents, log_prob = ddim_step_with_logprob(scheduler, noise, t, latents, config.num_inference_steps, config.eta, generator=generator)
        all_latents.append(latents)
        log_probs.append(log_prob)
    return Trajectories(prompt_embeds, torch.stack(all_latents, 1), torch.stack(log_probs, 1), scheduler.timesteps.clone(), decode(pipe, latents),
                        None if diversity is None else codes)


@torch.no_grad()
def generate(pipe, prompts: list[str], sampling: SamplingConfig, seed: int = 0, batch_size: int = 64, unet=None, diversity=None,
             adapter_names: list[str] | None = None) -> torch.Tensor:
    """Images B x 3 x H x W in [0, 1]; the batch starting at row `start` uses seed + start (fixed
    seeds for evaluation: the same prompts, seed and batch_size give the same images). With
    `diversity` (default: the pipeline's own codes, unless another `unet` is given) the codes come
    from a generator of their own, so a model with codes and one without start from the same noise.
    `adapter_names` (one per prompt): each prompt's LoRA adapter, for a UNet with prompt-routed
    adapters (ml.diffusion.adapters; default: the pipeline's own router, if it has one); codes that
    follow one adapter go only to its rows."""
    from ml.diffusion.adapters import routed_adapters

    if adapter_names is not None and len(adapter_names) != len(prompts):
        raise ValueError(f"{len(adapter_names)} adapter names for {len(prompts)} prompts")
    if diversity is None and unet is None:
        diversity = getattr(pipe, "diversity_codes", None)
    if adapter_names is None and unet is None and getattr(pipe, "adapter_router", None) is not None:
        adapter_names = pipe.adapter_router(prompts)
    negative = encode_prompts(pipe, [""])
    out = []
    for start in range(0, len(prompts), batch_size):
        generator = torch.Generator(device=pipe.device).manual_seed(seed + start)
        batch = prompts[start:start + batch_size]
        names = None if adapter_names is None else adapter_names[start:start + batch_size]
        codes = None if diversity is None else diversity.draw(len(batch), torch.Generator().manual_seed(CODE_SEED_OFFSET + seed + start), names)
        routing = nullcontext() if names is None else routed_adapters(unet or pipe.unet, names)
        with routing:
            out.append(sample_trajectories(pipe, encode_prompts(pipe, batch), negative, sampling, generator, unet=unet, diversity=diversity,
                                           codes=codes).images)
    return torch.cat(out)


def images_to_uint8(images: torch.Tensor):
    """B x 3 x H x W in [0, 1] -> numpy uint8 B x H x W x 3."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

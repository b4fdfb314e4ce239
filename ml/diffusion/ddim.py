"""One DDIM step that also returns the log-probability of the step taken, the policy that
RL differentiates. With eta > 0 the step is a Gaussian around the DDIM mean; with eta = 1 it is
DDPM-like ancestral sampling (the paper's setting). Works for a batch of different timesteps.

The log-probability is the Gaussian log-density averaged over latent elements (as DDPO does),
so a PPO clip range means the same thing for any latent size."""

from __future__ import annotations

import math

import torch


def _alphas(scheduler, timestep: torch.Tensor, num_inference_steps: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alphas = scheduler.alphas_cumprod.to(like.device)
    prev = timestep - scheduler.config.num_train_timesteps // num_inference_steps
    alpha_t = alphas[timestep]
    # the last step lands on "before t=0": the scheduler's final alpha (no clamping to index 0 first)
    alpha_prev = torch.where(prev >= 0, alphas[prev.clamp(min=0)], scheduler.final_alpha_cumprod.to(like.device))
    shape = (-1,) + (1,) * (like.ndim - 1)
    return alpha_t.reshape(shape).to(like.dtype), alpha_prev.reshape(shape).to(like.dtype)


def predicted_original(scheduler, noise_pred: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor, num_inference_steps: int) -> torch.Tensor:
    """x0 as the model predicts it at `timestep` (what a reader of the final image can score
    mid-chain)."""
    alpha_t, _ = _alphas(scheduler, torch.as_tensor(timestep, device=sample.device).long().expand(sample.shape[0]), num_inference_steps, sample)
    return (sample - (1 - alpha_t).sqrt() * noise_pred) / alpha_t.sqrt()


def ddim_step_with_logprob(scheduler, noise_pred: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor,
                           num_inference_steps: int, eta: float = 1.0, prev_sample: torch.Tensor | None = None,
                           generator: torch.Generator | None = None, return_mean: bool = False):
    """(prev_sample, log_prob per batch element[, mean, std]). Given `prev_sample`, scores it
    instead of sampling."""
    timestep = torch.as_tensor(timestep, device=sample.device).long().expand(sample.shape[0])
    alpha_t, alpha_prev = _alphas(scheduler, timestep, num_inference_steps, sample)
    pred_original = (sample - (1 - alpha_t).sqrt() * noise_pred) / alpha_t.sqrt()
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    std = eta * variance.clamp(min=0).sqrt()
    direction = (1 - alpha_prev - std**2).clamp(min=0).sqrt() * noise_pred
    mean = alpha_prev.sqrt() * pred_original + direction
    if prev_sample is None:
        noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        prev_sample = mean + std * noise
    std = std.clamp(min=1e-12)
    log_prob = -((prev_sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - math.log(math.sqrt(2 * math.pi))
    log_prob = log_prob.mean(dim=tuple(range(1, sample.ndim)))
    return (prev_sample, log_prob, mean, std) if return_mean else (prev_sample, log_prob)

"""How much of an RL update is signal: at the base generator of a demo state, the policy
gradient of one batch of trajectories is split into minibatch gradients per denoising step, and
for several choices of trained steps this prints the expected cosine between two independent
update directions of B samples (1.0: every batch points the same way; ~0: each update is noise).
Measures the estimator in about a minute on CPU (LoRA: the per-step gradients are kept in
memory), without a full RL run; not part of `make bench`.

    python -m benchmarks.rl_gradient_noise --home .shopwindow --prompts 8 --samples 64
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.demo_state import manifest
from benchmarks.rl_recipes import resolve_recipe


def expected_cosine(grads: np.ndarray, minibatch: int, batch: int) -> float:
    """grads: M x D gradients of `minibatch` samples each. Signal |mu|^2 (bias-corrected) against
    the noise of a `batch`-sample mean; the expected cosine of two such means."""
    mu = grads.mean(0)
    noise = ((grads - mu) ** 2).sum(1).mean()
    signal = max(float(mu @ mu - noise / len(grads)), 0.0)
    return signal / (signal + noise * minibatch / batch) if signal > 0 else 0.0


def main() -> None:
    from ml.catalog.store import read_table
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.prompts import prompt_metadata
    from ml.diffusion.sampling import encode_prompts, sample_trajectories
    from ml.diffusion.stat_tracking import PerPromptStatTracker
    from ml.diffusion.trainer import RLTrainer
    from ml.rewards import make_multi_reward
    from ml.rewards.demo import demo_reward_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=".shopwindow")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=64, help="per prompt")
    parser.add_argument("--minibatch", type=int, default=8)
    parser.add_argument("--parity-weight", type=float, default=None, help="default: GenerationResource's")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps (the demo's default)")
    args = parser.parse_args()
    torch.manual_seed(0)
    home = Path(args.home)
    prompts = read_table(manifest(home, "rl_prompts")["uris"]["prompts"])
    prompts = prompts[prompts["suite"].isin(["titles", "fairness"]) & prompts["split"].isin(["train", "both"])]
    demo, _, reward_settings = resolve_recipe({} if args.parity_weight is None else {"parity_weight": args.parity_weight})
    reward = make_multi_reward(demo_reward_spec(manifest(home, "dual_encoder")["uris"]["model"], prompts, **reward_settings))
    pipe = load_pipeline(manifest(home, "base_generator")["uris"]["pipeline"])
    config = demo.model_copy(update={"prompts_per_iteration": args.prompts, "samples_per_prompt": args.samples, "finetune": "lora", "lr": 0.0,
                                     "seed": args.seed, "sampling": demo.sampling.model_copy(update={"num_inference_steps": args.steps})})
    trainer = RLTrainer(pipe, reward, list(prompts["prompt"]), prompt_metadata(prompts), config)
    chosen, metadata = trainer._choose_prompts()
    with torch.no_grad():
        trajectories = sample_trajectories(pipe, encode_prompts(pipe, chosen), trainer.negative, config.sampling, trainer.generator, unet=trainer.unet)
    total, _ = reward(trajectories.images, chosen, metadata)
    tracker = PerPromptStatTracker(buffer_size=args.samples, min_count=1)  # a buffer that holds all of each prompt's samples
    advantages = torch.as_tensor(tracker.advantages(chosen, total), dtype=torch.float32)
    n, horizon = trajectories.log_probs.shape
    order = np.random.default_rng(0).permutation(n)
    grads, stds = [], []
    for step in range(horizon):
        per_step = []
        for start in range(0, n, args.minibatch):
            rows = torch.as_tensor(order[start:start + args.minibatch])
            trainer.optimizer.zero_grad(set_to_none=True)
            log_prob, _, std, *_ = trainer._policy_step(trajectories, rows, torch.full((len(rows),), step))
            (-(advantages[rows] * log_prob).mean()).backward()
            per_step.append(torch.cat([p.grad.flatten() for p in trainer.trainable]).numpy().copy())
        grads.append(np.stack(per_step))
        stds.append(float(std.flatten()[0]))
    grads, stds = np.stack(grads), np.asarray(stds)  # steps x minibatches x parameters
    print(f"{sorted(set(chosen))}; {n} samples; step std {stds[0]:.3f} (first) .. {stds[-2]:.3f} .. {stds[-1]:.3f} (last)")
    print("step squared norm of a minibatch gradient (relative to the first step): "
          + " ".join(f"{v:.0f}" for v in (grads ** 2).sum(2).mean(1) / (grads[0] ** 2).sum(1).mean()))
    steps = np.arange(horizon)
    choices = {"all steps": np.ones(horizon), "all but the last": (steps < horizon - 1) * 1.0,
               "first half": (steps < horizon // 2) * 1.0, "second half but the last": ((steps >= horizon // 2) & (steps < horizon - 1)) * 1.0,
               "all but the last, x std^2": (steps < horizon - 1) * (stds / stds.mean()) ** 2}
    batches = (16, 32, 128, 512)
    print(f"{'trained steps':<28}" + "".join(f"B={b:<7}" for b in batches))
    for name, weights in choices.items():
        combined = np.tensordot(weights, grads, axes=1)
        print(f"{name:<28}" + "".join(f"{expected_cosine(combined, args.minibatch, b):<9.3f}" for b in batches))


if __name__ == "__main__":
    main()

"""One RL configuration timed: LoRA or full fine-tuning of a generator at a fixed recipe (the
demo's trained generator when it exists, else a tiny random one of the demo's shape), with a
cheap reward so the trainer is what is measured. Prints time per iteration and samples/s."""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ml.diffusion.sampling import SamplingConfig
from ml.diffusion.trainer import RLConfig, RLTrainer
from ml.rewards import MultiReward


class Redness:
    name = "redness"

    def __call__(self, images, prompts, metadata):
        return (images[:, 0] - images[:, 1:].mean(1)).mean((1, 2)).float().cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--finetune", choices=["lora", "full"], required=True)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--pipeline", default="")
    parser.add_argument("--train-timesteps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.pipeline and Path(args.pipeline).exists():
        from ml.diffusion.pipeline import load_pipeline

        pipe, source = load_pipeline(args.pipeline), args.pipeline
    else:
        import tempfile

        from ml.diffusion.pipeline import TinyPipelineConfig, build_tiny_pipeline

        pipe, source = build_tiny_pipeline(TinyPipelineConfig(), tempfile.mkdtemp()), "random tiny pipeline (demo shape)"
    config = RLConfig(iterations=args.iterations, prompts_per_iteration=4, samples_per_prompt=8, sampling=SamplingConfig(num_inference_steps=20, guidance_scale=5.0),
                      train_timesteps=args.train_timesteps, minibatch_size=16, finetune=args.finetune, lr=3e-4)
    trainer = RLTrainer(pipe, MultiReward({"redness": (Redness(), 1.0)}), ["a red dress", "a blue bag", "a coat", "a grey pullover"], [{}] * 4, config)
    trainer.step()  # warm-up, not timed
    start = time.perf_counter()
    for _ in range(args.iterations):
        trainer.step()
    seconds = (time.perf_counter() - start) / args.iterations
    timed = trainer.history[1:]
    print(json.dumps({"finetune": args.finetune, "source": source, "trainable_params": sum(p.numel() for p in trainer.trainable),
                      "iteration_s": round(seconds, 2), "samples_per_s": round(config.batch_size / seconds, 1),
                      "sample_s": round(float(np.mean([h["sample_s"] for h in timed])), 2), "train_s": round(float(np.mean([h["train_s"] for h in timed])), 2),
                      "batch": config.batch_size, "train_timesteps": args.train_timesteps}))


if __name__ == "__main__":
    main()

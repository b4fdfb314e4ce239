"""RL fine-tuning outside Dagster, on one or many GPUs:

    accelerate launch --num_processes 4 -m ml.diffusion.launch \\
        --pipeline path/to/generator --prompts rl_prompts.parquet --output runs/rl \\
        --rewards '{"pickscore": {"weight": 1.0}}' --config '{"iterations": 200, "finetune": "lora"}'

Every process samples its own prompts (seeded by its rank), rewards are gathered for batch-wide
advantages, and every process stops at the same iteration. `--resume` continues from a
checkpoint folder (checkpoints/iteration-NNNNNN) exactly. The fine-tuned pipeline is saved with
save_pretrained under OUTPUT/pipeline (LoRA fused in; the adapter alone under OUTPUT/lora)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.diffusion.launch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, help="StableDiffusionPipeline folder (or a cached hub id)")
    parser.add_argument("--prompts", required=True, help="Parquet with prompt, names_color[, suite, split] (the rl_prompts asset's file)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--rewards", default='{"color_parity": {"weight": 1.0}}', help="JSON {reward name: {weight, options}}")
    parser.add_argument("--config", default="{}", help="JSON of RLConfig fields")
    parser.add_argument("--resume", default=None, help="checkpoint folder to continue from")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch
    from accelerate import Accelerator

    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.prompts import prompt_metadata
    from ml.diffusion.trainer import RLConfig, RLTrainer
    from ml.rewards import make_multi_reward

    config = RLConfig(**json.loads(args.config))
    accelerator = Accelerator(mixed_precision=config.mixed_precision if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available())
    prompts = pd.read_parquet(args.prompts)
    if "split" in prompts:
        prompts = prompts[prompts["split"].isin(["train", "both"])]
    pipe = load_pipeline(args.pipeline, device=str(accelerator.device))
    metadata = prompt_metadata(prompts)
    trainer = RLTrainer(pipe, make_multi_reward(json.loads(args.rewards)), list(prompts["prompt"]), metadata, config,
                        output_dir=args.output, accelerator=accelerator)
    if args.resume:
        trainer.load_checkpoint(args.resume)
    history = trainer.train()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        output = Path(args.output)
        trainer.save_pipeline(output / "pipeline", lora_folder=output / "lora")
        (output / "history.json").write_text(json.dumps(history))
        print(json.dumps({"iterations": trainer.iteration, "reward_first": history[0]["reward"] if history else None,
                          "reward_last": history[-1]["reward"] if history else None, "pipeline": str(output / "pipeline")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

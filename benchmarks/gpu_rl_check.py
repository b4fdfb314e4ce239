"""The RL trainer on a GPU (device check, not CI): bf16 mixed precision and gradient
checkpointing run, the ratio is 1 before any update, losses stay finite; LoRA vs full
fine-tuning speed for the demo-shaped pipeline and a larger one (64 px, wider UNet).

    python -m benchmarks.gpu_rl_check   # on a machine with CUDA
"""

import json
import tempfile
import time

import torch

from ml.diffusion.pipeline import TinyPipelineConfig, build_tiny_pipeline
from ml.diffusion.sampling import SamplingConfig, encode_prompts, sample_trajectories
from ml.diffusion.trainer import RLConfig, RLTrainer
from benchmarks.rl_case import Redness
from ml.rewards import MultiReward


SHAPES = {
    "demo (32 px, UNet 64-64)": TinyPipelineConfig(),
    "larger (64 px, UNet 128-256)": TinyPipelineConfig(image_size=64, vae_channels=(32, 64, 128), unet_channels=(128, 256), attention_head_dim=8,
                                                       norm_groups=32, text_hidden=128, text_ffn=512, max_tokens=32),
}


def run(shape: str, finetune: str, mixed: str, checkpointing: bool, iterations: int = 5) -> dict:
    pipe = build_tiny_pipeline(SHAPES[shape], tempfile.mkdtemp()).to("cuda")
    config = RLConfig(iterations=iterations + 1, prompts_per_iteration=8, samples_per_prompt=8, minibatch_size=32, finetune=finetune,
                      mixed_precision=mixed, gradient_checkpointing=checkpointing, sampling=SamplingConfig(num_inference_steps=20, guidance_scale=5.0))
    trainer = RLTrainer(pipe, MultiReward({"redness": (Redness(), 1.0)}), ["a red dress", "a blue bag", "a coat", "a grey pullover"], [{}] * 4, config)
    embeds = encode_prompts(pipe, ["a red dress"] * 4)
    with torch.no_grad():
        trajectories = sample_trajectories(pipe, embeds, trainer.negative, config.sampling, torch.Generator("cuda").manual_seed(0), unet=trainer.unet)
    trainer.unet.train()
    log_prob, *_ = trainer._policy_step(trajectories, torch.arange(4, device="cuda"), torch.full((4,), 3, device="cuda"))
    ratio_error = float((torch.exp(log_prob - trajectories.log_probs[:, 3]) - 1).abs().max())
    trainer.step()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        record = trainer.step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iterations
    return {"shape": shape, "finetune": finetune, "mixed_precision": mixed, "gradient_checkpointing": checkpointing,
            "iteration_s": round(seconds, 3), "samples_per_s": round(config.batch_size / seconds, 1), "ratio_error_before_update": ratio_error,
            "loss_finite": bool(torch.isfinite(torch.tensor(record["loss"]))), "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20),
            "trainable_params": sum(p.numel() for p in trainer.trainable)}


def main() -> None:
    """Each configuration in its own process: accelerate's state (mixed precision) is per process."""
    import subprocess
    import sys

    if len(sys.argv) == 5:
        print(json.dumps(run(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1")), flush=True)
        return
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    for shape in SHAPES:
        for finetune in ("lora", "full"):
            for mixed, checkpointing in (("no", "0"), ("bf16", "1")):
                out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_rl_check", shape, finetune, mixed, checkpointing], capture_output=True, text=True)
                print(out.stdout.strip().splitlines()[-1] if out.returncode == 0 else f"FAILED {shape} {finetune} {mixed}: {out.stderr[-800:]}", flush=True)


if __name__ == "__main__":
    main()

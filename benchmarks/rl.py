"""RL trainer speed: LoRA vs full fine-tuning at a fixed config, interleaved (noisy machine)."""

import os

from benchmarks.measure import run_case


def main() -> None:
    home = os.environ.get("SHOPWINDOW_HOME", ".shopwindow")
    pipelines = sorted(p for p in __import__("pathlib").Path(home, "data", "models").glob("*/generator_base")) if os.path.isdir(home) else []
    pipeline = str(pipelines[-1]) if pipelines else ""
    results = {"lora": [], "full": []}
    for _ in range(2):
        for finetune in ("lora", "full"):
            results[finetune].append(run_case("benchmarks.rl_case", "--finetune", finetune, "--pipeline", pipeline))
    for finetune, runs in results.items():
        best = min(runs, key=lambda r: r["iteration_s"])
        print(f"RL {finetune:>4}: {best['iteration_s']} s/iteration ({best['batch']} samples, 20 DDIM steps, {best['train_timesteps']} trained), "
              f"{best['samples_per_s']} samples/s (sampling {best['sample_s']} s, training {best['train_s']} s), "
              f"{best['trainable_params']:,} trainable parameters, peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB; runs "
              f"{[r['iteration_s'] for r in runs]}; generator: {best['source']}", flush=True)
    ratio = min(r["iteration_s"] for r in results["full"]) / min(r["iteration_s"] for r in results["lora"])
    print(f"RL full / LoRA time per iteration: {ratio:.2f}x (same run, interleaved)")


if __name__ == "__main__":
    main()

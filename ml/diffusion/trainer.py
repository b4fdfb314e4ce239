"""The RL trainer (DDPO-style policy gradient over the DDIM chain, as in large-scale RL for
diffusion): sample trajectories, score them with several rewards, normalise advantages over
the batch or per prompt, and take PPO-clip steps on a random subset of each trajectory's
timesteps. LoRA (peft) or full fine-tuning; optional diffusion-loss regulariser on real
images and KL to the base; accelerate for multi-GPU; checkpoints that resume exactly."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, model_validator
from tqdm.auto import tqdm

from ml.diffusion.adapters import BASE, OPEN_ADAPTER, TITLE_ADAPTER, open_rows_adapters, routed_adapters
from ml.diffusion.ddim import ddim_step_with_logprob, predicted_original
from ml.diffusion.sampling import SamplingConfig, decode_with_grad, encode_prompts, generate, guided_noise, sample_trajectories
from ml.diffusion.stat_tracking import PerPromptStatTracker, batch_advantages
from ml.rewards.base import MultiReward

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
DIVERSITY_KEY = "diversity_codes.embedding"  # the codes' entry in a checkpoint's trainable tensors


class RLConfig(BaseModel):
    iterations: int = Field(40, ge=1)
    prompts_per_iteration: int = Field(4, ge=1)
    samples_per_prompt: int = Field(8, ge=1, description="same prompt, different seeds: per-prompt statistics and parity need groups")
    sampling: SamplingConfig = SamplingConfig()
    train_timesteps: int = Field(5, ge=1, description="random timesteps per trajectory trained on (the paper's variant)")
    skip_final_steps: int = Field(1, ge=0, description="last denoising steps never trained on: their tiny std makes the score "
                                  "function's noise dominate the gradient while the image barely changes")
    clip_range: float = Field(1e-4, gt=0)
    advantage: Literal["batch", "per_prompt"] = "batch"
    advantage_scale: Literal["prompt", "batch"] = Field("prompt", description="per_prompt advantages: divide by each prompt's std or by the "
                                                       "batch's (keeps parity's larger spread from being shrunk to fidelity's)")
    advantage_clip: float = 10.0
    stat_buffer: int = 32
    stat_min_count: int = 8
    inner_epochs: int = Field(1, ge=1)
    minibatch_size: int = Field(8, ge=1)
    fused_timesteps: int = Field(1, ge=1, description="trained timesteps of each row taken in one UNet call (the same loss and "
                                 "gradient, fewer and larger calls): on the demo's CPU UNet one call of 64 latents took 0.050 s "
                                 "against 0.079 s for four of 16; activation memory grows with it")
    gradient_accumulation: int = Field(1, ge=1, description="minibatches per optimizer step")
    lr: float = 3e-4
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    finetune: Literal["lora", "full"] = "lora"
    lora_rank: int = 4
    lora_alpha: float = 4.0
    open_adapter: bool = Field(False, description="prompts that leave a parity group open get a LoRA of their own "
                               "(ml.diffusion.adapters): every row goes through its prompt's adapter, so the parity side's training "
                               "does not reach the titles' weights, nor the titles' the open prompts'")
    codes_open_only: bool = Field(False, description="with open_adapter and diversity codes: only rows routed to the open adapter "
                                  "draw a code, so titles keep their condition as written and the invariance term has nothing to do "
                                  "(without open_adapter every row draws one)")
    pretrain_weight: float = Field(0.0, ge=0, description="diffusion loss on real images (the paper's pretraining term)")
    pretrain_balanced: bool = Field(False, description="that term's images evenly over (category, colour) cells rather than in "
                                    "the catalog's proportions (PretrainData.from_catalog)")
    kl_weight: float = Field(0.0, ge=0, description="KL of each trained step to the base model's step")
    pathwise_parity_weight: float = Field(0.0, ge=0, description="weight of the parity rewards' pathwise loss: the image the model "
                                          "predicts at a trained step is decoded and its group membership moved toward what its prompt lacks")
    pathwise_step: int | None = Field(None, ge=0, description="the chain step whose predicted image the pathwise loss decodes (None: "
                                      "one of each trajectory's trained steps, at random)")
    pathwise_fidelity_weight: float = Field(0.0, ge=0, description="weight of the differentiable rewards' own gradient (e.g. prompt_fidelity's): "
                                            "the image predicted at `pathwise_fidelity_step` is decoded and scored, and the score's gradient "
                                            "reaches the UNet through that step's noise prediction (DRaFT-1); every sample gets a direction, "
                                            "where a policy gradient only compares samples")
    pathwise_fidelity_step: int | None = Field(None, description="the chain step that term predicts from (None: one of each trajectory's "
                                               "trained steps, at random; -1: the last, whose prediction is the image (DRaFT-1) but which "
                                               "moves it least)")
    pathwise_fidelity_skip_open: bool = Field(False, description="leave samples whose prompt leaves a parity group open (a garment "
                                              "with no colour named) out of that term: there it pulls toward the encoder's typical colour")
    explore_share: float = Field(0.0, ge=0, le=1, description="share of a parity prompt's samples whose first `explore_steps` steps are "
                                 "steered by a prompt naming a group it lacks (re-scored under the real prompt)")
    explore_steps: int = Field(1, ge=1)
    mixture_distill_weight: float = Field(0.0, ge=0, description="weight of a distillation term for prompts that leave a parity group "
                                          "open: along the base model's trajectories of the prompt with a group named (the groups "
                                          "shared out as `mixture_distill_groups` says), the policy's guided noise prediction under the "
                                          "open prompt learns the base's under the named one; its minimiser is the base's mixture of "
                                          "the named groups in those shares")
    mixture_distill_groups: Literal["even", "lacking"] = Field("even", description="the named groups' shares in that term: even, or "
                                                               "in proportion to what the prompt's remembered reads lack (the parity "
                                                               "reward's quota), which steers the policy's own shares toward even")
    mixture_distill_steps: int | None = Field(None, ge=1, description="the first chain steps that term trains on (None: those the "
                                              "policy gradient trains on, all but skip_final_steps)")
    mixture_distill_from_step: int = Field(0, ge=0, description="the first chain step that term trains on (1: not the first, whose "
                                           "latent is pure noise and whose target can only be the groups' mean)")
    mixture_distill_codes_only: bool = Field(False, description="that term trains the diversity codes alone, not the LoRA or UNet: "
                                              "the codes carry the groups and the shared weights, which also draw the prompts that name "
                                              "their group, do not learn the named prompts' images (needs diversity_codes)")
    diversity_codes: int = Field(0, ge=0, description="K > 1: each sample also draws a code uniformly from K, added to its text "
                                 "condition (ml.diffusion.diversity); the codes start at zero and train with the LoRA, and the "
                                 "distillation term's group g trains under code g mod K (0: no codes)")
    diversity_lr: float | None = Field(None, gt=0, description="the codes' learning rate (None: lr)")
    code_invariance_weight: float = Field(0.0, ge=0, description="weight of a term that keeps a code from changing a prompt that "
                                          "names its group: for those rows, at one trained step, the policy's guided noise prediction "
                                          "with the row's code learns its own prediction without one (unused with codes_open_only: those rows draw none)")
    title_anchor_weight: float = Field(0.0, ge=0, description="weight of a term that holds prompts naming their group near the base: "
                                       "for those rows, at one trained step, the policy's guided noise prediction (with the row's code) "
                                       "learns the base's without one. The parity side's training reaches titles through the shared "
                                       "weights; this pulls them back where the other terms do not need them moved")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="> 0: the policy that is evaluated and saved is an exponential moving "
                             "average of the trained weights (updated once per iteration with this decay), not the last iterate: "
                             "the average keeps the updates' common direction and cancels much of their noise (0: the last iterate)")
    checkpoint_every: int = Field(0, ge=0, description="iterations between checkpoints (0: only at the end)")
    max_minutes: float = 60.0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = 0

    @model_validator(mode="after")
    def _steps_inside_the_chain(self) -> "RLConfig":
        horizon = self.sampling.num_inference_steps
        if self.pathwise_step is not None and self.pathwise_step >= horizon:
            raise ValueError(f"pathwise_step={self.pathwise_step}: the chain has steps 0..{horizon - 1}")
        if self.pathwise_fidelity_step is not None and not -horizon <= self.pathwise_fidelity_step < horizon:
            raise ValueError(f"pathwise_fidelity_step={self.pathwise_fidelity_step}: use a step in 0..{horizon - 1}, or -1 for the last")
        if self.open_adapter and self.finetune != "lora":
            raise ValueError("open_adapter routes prompts between LoRA adapters: it needs finetune 'lora'")
        return self

    @property
    def mixture_distill_range(self) -> range:
        """The chain steps the distillation term trains on."""
        horizon = self.sampling.num_inference_steps
        last = min(self.mixture_distill_steps or max(1, horizon - self.skip_final_steps), horizon)
        return range(min(self.mixture_distill_from_step, last - 1), last)

    @property
    def batch_size(self) -> int:
        return self.prompts_per_iteration * self.samples_per_prompt


def ppo_clip_loss(advantages: torch.Tensor, ratio: torch.Tensor, clip_range: float) -> torch.Tensor:
    """Per-sample PPO-clip surrogate (to minimise): once the ratio has moved past the clip range
    in the advantage's direction, the sample stops contributing gradient."""
    return torch.maximum(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range))


def train_step_indices(rng: np.random.Generator, n: int, horizon: int, k: int, skip_final: int) -> np.ndarray:
    """n x min(k, trainable) distinct step indices per trajectory, drawn from all but the last
    `skip_final` steps. On the demo's 20-step chain the last step's std is 0.03 (0.16 the step
    before), so its score function ~ noise / std carried most of the gradient's norm with almost
    no signal; leaving it out tripled the reward gain of a 5-minute run."""
    trainable = max(1, horizon - skip_final)
    return np.argsort(rng.random((n, trainable)), axis=1)[:, :min(k, trainable)]


def largest_remainder(shares: np.ndarray, n: int) -> np.ndarray:
    """n items split in proportion to `shares` (summing to 1) as whole counts: floors first, the
    rest to the largest remainders."""
    exact = np.asarray(shares, np.float64) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[:n - counts.sum()]] += 1
    return counts


@dataclass
class PretrainData:
    """Real images as VAE latents (already scaled) with their captions, for the regulariser."""

    latents: torch.Tensor
    prompts: list[str]

    @classmethod
    def from_catalog(cls, vae, items, pixels, limit: int = 5000, balanced: bool = False) -> "PretrainData":
        """The first `limit` catalog items with a colour, captioned the way the base generator was
        trained ("a {colour} {category}"). `items`: rows with color and category, aligned with `pixels`.
        `balanced`: the first items of each (category, colour) cell, as many per cell as fit in
        `limit`, so a rare pair (a blue dress) is drawn as often as a common one (a red dress)."""
        from ml.diffusion.quality import prompt
        from ml.diffusion.train_base import encode_latents

        coloured = items.dropna(subset=["color"])
        if balanced and len(coloured):
            cells = coloured.groupby(["category", "color"], sort=False)
            coloured = cells.head(-(-limit // cells.ngroups))
        keep = coloured.index.to_numpy()[:limit]
        return cls(encode_latents(vae, pixels[keep]), [prompt(c, k) for c, k in zip(items.loc[keep, "color"], items.loc[keep, "category"])])


class RLTrainer:
    def __init__(self, pipe, reward: MultiReward, prompts: list[str], metadata: list[dict], config: RLConfig,
                 output_dir: str | Path | None = None, pretrain: PretrainData | None = None, accelerator=None,
                 prompt_weights: list[float] | None = None):
        """`prompt_weights`: how often each prompt is drawn (default uniform); e.g. to give a small
        fairness suite as many draws as a large fidelity suite."""
        from accelerate import Accelerator

        if len(prompts) != len(metadata) or not prompts:
            raise ValueError("RLTrainer needs one metadata dict per prompt, and at least one prompt")
        self.pipe, self.reward, self.config = pipe, reward, config
        self.prompts, self.metadata = list(prompts), list(metadata)
        weights = np.ones(len(prompts)) if prompt_weights is None else np.asarray(prompt_weights, np.float64)
        if weights.shape != (len(prompts),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("prompt_weights needs one non-negative weight per prompt, not all zero")
        self.prompt_p = weights / weights.sum()
        self.output_dir = Path(output_dir) if output_dir else None
        self.pretrain = pretrain
        self.accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision if torch.cuda.is_available() else "no",
                                                      cpu=not torch.cuda.is_available())
        self.iteration = 0
        self.history: list[dict] = []
        self.rng = np.random.default_rng([config.seed, self.accelerator.process_index])
        self.generator = torch.Generator(device=pipe.device).manual_seed(config.seed * 1000 + self.accelerator.process_index)
        self.tracker = PerPromptStatTracker(config.stat_buffer, config.stat_min_count)
        self._row_adapters: list[str] | None = None  # this iteration's rows' adapters (open_adapter)
        self.pathwise = [r for r, _ in reward.components.values() if getattr(r, "differentiable_read", None) is not None]
        self.explorers = [r for r, _ in reward.components.values() if getattr(r, "group_prompt", None) is not None]
        self.parity = [r for r, _ in reward.components.values() if hasattr(r, "applies")]
        self.fidelity_pathwise = [(r, w) for r, w in reward.components.values() if w > 0 and hasattr(r, "reward_loss")]
        if config.pathwise_parity_weight > 0 and not self.pathwise:
            raise ValueError("pathwise_parity_weight > 0 needs a parity reward with a differentiable reader (e.g. color_parity)")
        if config.mixture_distill_weight > 0 and not self.explorers:
            raise ValueError("mixture_distill_weight > 0 needs a parity reward that can name its groups in a prompt (e.g. color_parity)")
        if config.mixture_distill_codes_only and config.diversity_codes < 2:
            raise ValueError("mixture_distill_codes_only needs diversity_codes > 1: the codes are what that term trains")
        if config.pathwise_fidelity_weight > 0 and not self.fidelity_pathwise:
            raise ValueError("pathwise_fidelity_weight > 0 needs a weighted reward that is differentiable in the pixels (e.g. prompt_fidelity)")
        self._prepare_model()
        with torch.no_grad():
            self.negative = encode_prompts(pipe, [""])

    # -- set-up ------------------------------------------------------------------------------

    def _prepare_model(self) -> None:
        pipe, config = self.pipe, self.config
        for module in (pipe.vae, pipe.text_encoder):
            module.requires_grad_(False)
            module.eval()
        unet = pipe.unet
        unet.requires_grad_(False)
        if config.finetune == "lora":
            from peft import LoraConfig

            adapters = [TITLE_ADAPTER, OPEN_ADAPTER] if config.open_adapter else [TITLE_ADAPTER]
            for offset, adapter in enumerate(adapters):
                with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # the adapter's random A matrices follow config.seed, not whatever ran before
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")  # peft's note on a second adapter
                    torch.manual_seed(config.seed + offset)
                    unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, init_lora_weights="gaussian",
                                                target_modules=LORA_TARGETS), adapter_name=adapter)
            unet.set_adapter(TITLE_ADAPTER)  # what an unrouted call uses; set_adapter also freezes the others, undone below
            for name, param in unet.named_parameters():
                param.requires_grad_("lora_" in name)
        else:
            unet.requires_grad_(True)
            if config.kl_weight > 0 or config.mixture_distill_weight > 0 or config.title_anchor_weight > 0:  # a frozen base for the KL, distillation and anchor terms
                import copy

                self.base_unet = copy.deepcopy(unet).requires_grad_(False).eval()
        if config.gradient_checkpointing and torch.cuda.is_available():
            unet.enable_gradient_checkpointing()
        self.trainable = [p for p in unet.parameters() if p.requires_grad]
        groups = [{"params": list(self.trainable)}]
        self.diversity = None
        if config.diversity_codes > 1:
            from ml.diffusion.diversity import DiversityCodes

            self.diversity = DiversityCodes(config.diversity_codes, pipe.text_encoder.config.hidden_size,
                                            adapter=OPEN_ADAPTER if config.codes_open_only and config.open_adapter else None).to(pipe.device)
            groups.append({"params": [self.diversity.embedding], "lr": config.diversity_lr or config.lr, "weight_decay": 0.0})
            self.trainable.append(self.diversity.embedding)
            pipe.diversity_codes = self.diversity  # the pipeline is the policy: generate(pipe) draws its codes
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        self.unet, self.optimizer, self.scheduler = self.accelerator.prepare(unet, optimizer, scheduler)
        # every process holds the same weights after each step, so the same average
        self.average = {name: p.detach().clone() for name, p in self.trainable_params().items()} if config.ema_decay > 0 else None

    def trainable_params(self) -> dict[str, torch.nn.Parameter]:
        """The trained tensors by name: the UNet's (LoRA or all) and the diversity codes."""
        unet = self.accelerator.unwrap_model(self.unet)
        params = {name: p for name, p in unet.named_parameters() if p.requires_grad}
        if self.diversity is not None:
            params[DIVERSITY_KEY] = self.diversity.embedding
        return params

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained weights as they are now (the last iterate, not the average)."""
        return {name: p.detach().cpu().clone() for name, p in self.trainable_params().items()}

    @torch.no_grad()
    def update_average(self, average: dict[str, torch.Tensor], decay: float) -> None:
        """One step of a moving average of the trained tensors, in place (the trainer's own with
        ema_decay > 0; a benchmark may keep others)."""
        for name, param in self.trainable_params().items():
            average[name].lerp_(param.detach(), 1 - decay)

    @torch.no_grad()
    def _assign(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy `weights` (by name, as trainable_params) into the trained tensors."""
        for name, param in self.trainable_params().items():
            param.copy_(weights[name])

    @contextmanager
    def holding(self, weights: dict[str, torch.Tensor] | None):
        """Inside, the trained tensors hold `weights` (by name, as trainable_params; None: left as
        they are); afterwards they are back to what they were."""
        if weights is None:
            yield
            return
        trained = {name: p.detach().clone() for name, p in self.trainable_params().items()}
        self._assign(weights)
        try:
            yield
        finally:
            self._assign(trained)

    def averaged(self):
        """Inside, the model holds the averaged weights (ema_decay > 0; else nothing changes): the
        policy that is evaluated and saved. Training goes on from the last iterate afterwards."""
        return self.holding(self.average)

    def adapter_names(self, metadata: list[dict]) -> list[str] | None:
        """Each prompt's adapter with open_adapter (the open one where a parity reward applies), else
        None: one LoRA for every prompt."""
        if not self.config.open_adapter:
            return None
        return open_rows_adapters([any(r.applies(m) for r in self.parity) for m in metadata])

    def _routed(self, rows: torch.Tensor | list[int] | None = None, names: list[str] | None = None):
        """Inside, each UNet row goes through its adapter: this iteration's `rows`, or `names` given."""
        if not self.config.open_adapter:
            return nullcontext()
        if names is None:
            names = [self._row_adapters[i] for i in (rows.tolist() if torch.is_tensor(rows) else rows)]
        return routed_adapters(self.unet, names)

    def _coded(self, embeds: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor:
        """The policy's text condition: with diversity codes, each row's code added."""
        return embeds if self.diversity is None else self.diversity(embeds, codes)

    def _trajectory_condition(self, trajectories, rows: torch.Tensor) -> torch.Tensor:
        """The policy's text condition for trajectory rows, with the codes they were sampled under."""
        return self._coded(trajectories.prompt_embeds[rows], None if trajectories.codes is None else trajectories.codes[rows])

    # -- one iteration ------------------------------------------------------------------------

    def _choose_prompts(self) -> tuple[list[str], list[dict]]:
        n_nonzero = int((self.prompt_p > 0).sum())
        chosen = self.rng.choice(len(self.prompts), self.config.prompts_per_iteration, replace=n_nonzero < self.config.prompts_per_iteration, p=self.prompt_p)
        rows = np.repeat(chosen, self.config.samples_per_prompt)
        return [self.prompts[i] for i in rows], [self.metadata[i] for i in rows]

    def _advantages(self, prompts: list[str], rewards: np.ndarray) -> np.ndarray:
        everything = self.accelerator.gather(torch.as_tensor(rewards, device=self.accelerator.device)).cpu().numpy()
        if self.config.advantage == "batch":  # over the whole (all-process) batch
            normalised = batch_advantages(everything, self.config.advantage_clip)
            start = self.accelerator.process_index * len(rewards)
            return normalised[start:start + len(rewards)]
        return self.tracker.advantages(prompts, rewards, self.config.advantage_clip, self.config.advantage_scale)

    def _policy_step(self, trajectories, rows: torch.Tensor, steps: torch.Tensor):
        """Current policy's log-prob (and mean, std) of the stored step for each (row, step)."""
        config = self.config.sampling
        latents = trajectories.latents[rows, steps]
        next_latents = trajectories.latents[rows, steps + 1]
        t = trajectories.timesteps[steps]
        embeds = self._trajectory_condition(trajectories, rows)
        with self._routed(rows):
            noise = guided_noise(self.unet, latents, t, embeds, self.negative, config.guidance_scale)
        _, log_prob, mean, std = ddim_step_with_logprob(self.pipe.scheduler, noise, t, latents, config.num_inference_steps, config.eta,
                                                        prev_sample=next_latents, return_mean=True)
        return log_prob, mean, std, latents, t, rows

    @torch.no_grad()
    def _base_noise(self, latents: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """The base model's guided noise prediction (LoRA: every row routed around the adapters;
        disable_adapters/enable_adapters would leave only the active adapter trainable)."""
        guidance = self.config.sampling.guidance_scale
        if self.config.finetune == "lora":
            with routed_adapters(self.unet, [BASE] * len(latents)):
                return guided_noise(self.unet, latents, t, embeds, self.negative, guidance)
        return guided_noise(self.base_unet, latents, t, embeds, self.negative, guidance)

    def _kl_to_base(self, trajectories, latents, t, rows, mean, std) -> torch.Tensor:
        config = self.config.sampling
        with torch.no_grad():
            base_noise = self._base_noise(latents, t, trajectories.prompt_embeds[rows])
            _, _, base_mean, _ = ddim_step_with_logprob(self.pipe.scheduler, base_noise, t, latents, config.num_inference_steps, config.eta,
                                                        prev_sample=latents, return_mean=True)
        return (((mean - base_mean) ** 2) / (2 * std**2)).mean()

    def _predicted_images(self, trajectories, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The images the policy predicts (x0) at the given steps, decoded by the frozen
        autoencoder; gradient reaches the UNet through its noise prediction."""
        config = self.config.sampling
        latents = trajectories.latents[rows, steps]
        t = trajectories.timesteps[steps]
        embeds = self._trajectory_condition(trajectories, rows)
        with self._routed(rows):
            noise = guided_noise(self.unet, latents, t, embeds, self.negative, config.guidance_scale)
        return decode_with_grad(self.pipe.vae, predicted_original(self.pipe.scheduler, noise, t, latents, config.num_inference_steps))

    def _pathwise_loss(self, trajectories, rows: torch.Tensor, steps: torch.Tensor, prompts: list[str], metadata: list[dict]):
        """The parity rewards' pathwise loss on the images predicted at the given steps. None when
        no row of the minibatch has a prompt that leaves the group open."""
        images = self._predicted_images(trajectories, rows, steps)
        chosen_prompts, chosen_meta = [prompts[i] for i in rows.tolist()], [metadata[i] for i in rows.tolist()]
        losses = [loss for reward in self.pathwise if (loss := reward.pathwise_loss(images, chosen_prompts, chosen_meta)) is not None]
        return sum(losses) if losses else None

    def _pathwise_fidelity_loss(self, trajectories, rows: torch.Tensor, steps: torch.Tensor, prompts: list[str], metadata: list[dict]) -> torch.Tensor:
        """Minus the differentiable rewards (their weights applied) of the images predicted at the
        given steps, through one UNet call each (DRaFT-1 when the step is the last)."""
        images = self._predicted_images(trajectories, rows, steps)
        chosen_prompts, chosen_meta = [prompts[i] for i in rows.tolist()], [metadata[i] for i in rows.tolist()]
        return sum(weight * reward.reward_loss(images, chosen_prompts, chosen_meta) for reward, weight in self.fidelity_pathwise)

    def _pathwise_fidelity_rows(self, rows: torch.Tensor, metadata: list[dict]) -> torch.Tensor:
        """The minibatch rows the pathwise fidelity term scores: all, or (skip_open) those whose
        prompt no parity reward applies to."""
        return self._named_rows(rows, metadata) if self.config.pathwise_fidelity_skip_open else rows

    def _named_rows(self, rows: torch.Tensor, metadata: list[dict]) -> torch.Tensor:
        """The rows whose prompt no parity reward applies to: it names its group (a title)."""
        keep = [not any(r.applies(metadata[i]) for r in self.parity) for i in rows.tolist()]
        return rows[torch.as_tensor(keep, dtype=torch.bool)]

    def _steering(self, prompts: list[str], metadata: list[dict], embeds: torch.Tensor) -> tuple[torch.Tensor | None, list[int]]:
        """(steering embeddings, steered rows): for `explore_share` of the samples whose prompt
        leaves a group open, a prompt naming a group it lacks. A policy gradient barely raises a
        group the policy almost never draws; a steered start draws it, and the re-scored steps
        credit the real prompt's policy for going there."""
        steer = {}
        for i, (prompt, meta) in enumerate(zip(prompts, metadata)):
            if self.rng.random() < self.config.explore_share:
                named = next((p for r in self.explorers if (p := r.exploration_prompt(prompt, meta, self.rng))), None)
                if named:
                    steer[i] = named
        if not steer:
            return None, []
        steered = embeds.clone()
        steered[list(steer)] = encode_prompts(self.pipe, list(steer.values()))
        return steered, list(steer)

    @torch.no_grad()
    def _rescore(self, trajectories, rows: list[int]) -> None:
        """The steered steps' log-probabilities under the real prompt (what PPO's ratio starts from)."""
        config = self.config.sampling
        index = torch.as_tensor(rows)
        for k in range(min(self.config.explore_steps, len(trajectories.timesteps))):
            t = trajectories.timesteps[k]
            embeds = self._trajectory_condition(trajectories, index)
            with self._routed(index):
                noise = guided_noise(self.unet, trajectories.latents[index, k], t, embeds, self.negative, config.guidance_scale)
            _, log_prob = ddim_step_with_logprob(self.pipe.scheduler, noise, t, trajectories.latents[index, k], config.num_inference_steps,
                                                 config.eta, prev_sample=trajectories.latents[index, k + 1])
            trajectories.log_probs[index, k] = log_prob

    @torch.no_grad()
    def _mixture_targets(self, prompts: list[str], metadata: list[dict]) -> dict | None:
        """The distillation term's data for this iteration: for each sample whose prompt leaves a
        group open, a group (within a prompt, whole counts of the `mixture_distill_groups` shares,
        in random order), and the base's trajectory of the prompt naming it over the first chain
        steps with the base's guided noise prediction at each. The latents come from the named
        prompt's own chain, so each already carries its group: the policy is asked to continue
        what it is given, not to guess a group from noise. None when no prompt leaves a group open."""
        config = self.config
        rows, named, codes = [], [], []
        for prompt in dict.fromkeys(p for p, m in zip(prompts, metadata) if any(r.applies(m) for r in self.explorers)):
            members = [i for i, p in enumerate(prompts) if p == prompt]
            reward = next(r for r in self.explorers if r.applies(metadata[members[0]]))
            k = len(reward.groups)
            shares = reward.quota(prompt, batch=len(members)) if config.mixture_distill_groups == "lacking" else np.full(k, 1 / k)
            groups = self.rng.permutation(np.repeat(np.arange(k), largest_remainder(shares, len(members))))
            for i, g in zip(members, groups):
                if (text := reward.group_prompt(reward.groups[g], metadata[i])) is not None:
                    rows.append(i)
                    named.append(text)
                    codes.append(int(g) % config.diversity_codes if config.diversity_codes > 1 else 0)
        if not rows:
            return None
        horizon = config.sampling.num_inference_steps
        steps = config.mixture_distill_range.stop
        scheduler = self.pipe.scheduler
        scheduler.set_timesteps(horizon, device=self.pipe.device)
        named_embeds = encode_prompts(self.pipe, named)
        unet = self.accelerator.unwrap_model(self.unet)
        latents = torch.randn((len(rows), unet.config.in_channels, unet.config.sample_size, unet.config.sample_size), generator=self.generator,
                              device=self.pipe.device, dtype=named_embeds.dtype)
        all_latents, targets = [], []
        for t in scheduler.timesteps[:steps]:
            noise = self._base_noise(latents, t, named_embeds)
            all_latents.append(latents)
            targets.append(noise)
            latents, _ = ddim_step_with_logprob(scheduler, noise, t, latents, horizon, config.sampling.eta, generator=self.generator)
        return {"rows": torch.as_tensor(rows), "named": named, "codes": torch.as_tensor(codes), "latents": torch.stack(all_latents, 1), "targets": torch.stack(targets, 1),
                "timesteps": scheduler.timesteps[:steps].clone()}

    def _mixture_loss(self, mixture: dict, part: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """Mean squared error between the policy's guided noise prediction under the open prompt
        and the base's under the named one, at one random step of each chosen sample."""
        trained = self.config.mixture_distill_range
        at = torch.as_tensor(self.rng.integers(trained.start, trained.stop, len(part)))
        latents = mixture["latents"][part, at]
        condition = self._coded(embeds[mixture["rows"][part]], mixture["codes"][part])
        with self._routed(mixture["rows"][part]):
            noise = guided_noise(self.unet, latents, mixture["timesteps"][at], condition, self.negative, self.config.sampling.guidance_scale)
        return torch.nn.functional.mse_loss(noise, mixture["targets"][part, at])

    def _mixture_backward(self, mixture: dict, part: torch.Tensor, embeds: torch.Tensor) -> float:
        """The distillation term's gradient, into the codes alone with mixture_distill_codes_only."""
        config = self.config
        loss = self._mixture_loss(mixture, part, embeds)
        self.accelerator.backward(config.mixture_distill_weight * loss / config.gradient_accumulation,
                                  inputs=[self.diversity.embedding] if config.mixture_distill_codes_only else None)
        return float(loss.detach())

    def _coded_prediction_gap(self, trajectories, rows: torch.Tensor, steps: torch.Tensor, target) -> torch.Tensor:
        """Mean squared distance of the policy's coded guided noise prediction on (rows, steps) from
        `target(latents, t, plain_embeds)`, computed without gradient: what the title terms hold."""
        latents, t = trajectories.latents[rows, steps], trajectories.timesteps[steps]
        with self._routed(rows):
            with torch.no_grad():
                goal = target(latents, t, trajectories.prompt_embeds[rows])
            policy = guided_noise(self.unet, latents, t, self._trajectory_condition(trajectories, rows), self.negative,
                                  self.config.sampling.guidance_scale)
        return torch.nn.functional.mse_loss(policy, goal)

    def _code_invariance_loss(self, trajectories, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Mean squared change a row's code makes to the policy's guided noise prediction: on
        prompts that name their group the codes should change nothing."""
        return self._coded_prediction_gap(
            trajectories, rows, steps, lambda latents, t, embeds: guided_noise(self.unet, latents, t, embeds, self.negative, self.config.sampling.guidance_scale))

    def _title_anchor_loss(self, trajectories, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of a titled row's guided noise prediction from the base's."""
        return self._coded_prediction_gap(trajectories, rows, steps, self._base_noise)

    def _pretrain_loss(self) -> torch.Tensor:
        data = self.pretrain
        rows = torch.as_tensor(self.rng.choice(len(data.latents), self.config.minibatch_size, replace=len(data.latents) < self.config.minibatch_size))
        latents = data.latents[rows].to(self.accelerator.device)
        noise = torch.randn(latents.shape, generator=self.generator, device=latents.device)
        t = torch.as_tensor(self.rng.integers(0, self.pipe.scheduler.config.num_train_timesteps, len(rows)), device=latents.device)
        noisy = self.pipe.scheduler.add_noise(latents, noise, t)
        embeds = encode_prompts(self.pipe, [data.prompts[i] for i in rows.tolist()])
        names = [TITLE_ADAPTER] * len(rows)  # captions name their colour
        if self.diversity is not None:  # whatever the code (if titles draw one), the image is the caption's
            embeds = self.diversity(embeds, self.diversity.draw(len(rows), self.generator, names))
        with self._routed(names=names):
            return torch.nn.functional.mse_loss(self.unet(noisy, t, encoder_hidden_states=embeds).sample, noise)

    def step(self) -> dict:
        """One iteration: sample, reward, advantages, PPO-clip updates. Returns its statistics."""
        config = self.config
        started = time.perf_counter()
        prompts, metadata = self._choose_prompts()
        self.unet.eval()
        with torch.no_grad():
            embeds = encode_prompts(self.pipe, prompts)
            steer, steered = self._steering(prompts, metadata, embeds) if config.explore_share > 0 else (None, [])
            self._row_adapters = self.adapter_names(metadata)
            codes = None if self.diversity is None else self.diversity.draw(len(prompts), self.generator, self._row_adapters)
            with self._routed(names=self._row_adapters):
                trajectories = sample_trajectories(self.pipe, embeds, self.negative, config.sampling, self.generator, unet=self.unet,
                                                   steer_embeds=steer, steer_steps=config.explore_steps, diversity=self.diversity, codes=codes)
            if steered:
                self._rescore(trajectories, steered)
        sampled = time.perf_counter()
        if steered:  # their reads are scored but kept out of the parity memory (they are not the policy's own draws)
            steered_rows = set(steered)
            metadata = [dict(m, steered=True) if i in steered_rows else m for i, m in enumerate(metadata)]
        total, components = self.reward(trajectories.images, prompts, metadata)
        advantages = torch.as_tensor(self._advantages(prompts, total), dtype=torch.float32, device=self.accelerator.device)
        rewarded = time.perf_counter()
        # the base's chains are training work (train_s, not reward_s); after the reward, whose reads are in the quota
        mixture = self._mixture_targets(prompts, metadata) if config.mixture_distill_weight > 0 else None

        self.unet.train()
        n, horizon = trajectories.log_probs.shape
        stats = {"loss": [], "ratio": [], "clipfrac": [], "approx_kl": [], "kl_to_base": [], "pretrain_loss": [], "pathwise_loss": [],
                 "pathwise_fidelity_loss": [], "mixture_loss": [], "code_invariance_loss": [], "title_anchor_loss": []}
        updates = 0
        for _ in range(config.inner_epochs):
            order = torch.as_tensor(self.rng.permutation(n))
            steps = torch.as_tensor(train_step_indices(self.rng, n, horizon, config.train_timesteps, config.skip_final_steps))
            k = steps.shape[1]
            minibatches = [order[i:i + config.minibatch_size] for i in range(0, n, config.minibatch_size)]
            # the distillation samples, shared out over the minibatches
            mixture_parts = torch.tensor_split(torch.as_tensor(self.rng.permutation(len(mixture["rows"]))), len(minibatches)) if mixture else []
            for m, rows in enumerate(minibatches):
                loss_total = 0.0
                for first in range(0, k, config.fused_timesteps):
                    # `fused` of each row's trained steps in one UNet call: (row, step) pairs, row-major
                    fused = min(config.fused_timesteps, k - first)
                    pair_rows = rows.repeat_interleave(fused)
                    step_index = steps[rows, first:first + fused].reshape(-1)
                    log_prob, mean, std, latents, t, _ = self._policy_step(trajectories, pair_rows, step_index)
                    old = trajectories.log_probs[pair_rows, step_index]
                    ratio = torch.exp(log_prob - old)
                    loss = ppo_clip_loss(advantages[pair_rows], ratio, config.clip_range).mean()
                    if config.kl_weight > 0:
                        kl = self._kl_to_base(trajectories, latents, t, pair_rows, mean, std)
                        loss = loss + config.kl_weight * kl
                        stats["kl_to_base"].append(float(kl.detach()))
                    self.accelerator.backward(loss * fused / (k * config.gradient_accumulation))
                    loss_total += float(loss.detach()) * fused / k
                    stats["ratio"].append(float(ratio.detach().mean()))
                    stats["clipfrac"].append(float(((ratio.detach() - 1).abs() > config.clip_range).float().mean()))
                    stats["approx_kl"].append(float(0.5 * ((log_prob.detach() - old) ** 2).mean()))
                if config.pathwise_parity_weight > 0:
                    open_rows = rows[torch.as_tensor([any(r.applies(metadata[i]) for r in self.pathwise) for i in rows.tolist()], dtype=torch.bool)]
                    at = steps[open_rows, 0] if config.pathwise_step is None else torch.full((len(open_rows),), config.pathwise_step)
                    pathwise = self._pathwise_loss(trajectories, open_rows, at, prompts, metadata) if len(open_rows) else None
                    if pathwise is not None:
                        self.accelerator.backward(config.pathwise_parity_weight * pathwise / config.gradient_accumulation)
                        stats["pathwise_loss"].append(float(pathwise.detach()))
                scored = self._pathwise_fidelity_rows(rows, metadata) if config.pathwise_fidelity_weight > 0 else rows[:0]
                if len(scored):  # weighted by its share of the minibatch, as if the left-out rows scored 0
                    at = steps[scored, 0] if config.pathwise_fidelity_step is None else torch.full((len(scored),), config.pathwise_fidelity_step % horizon)
                    fidelity = self._pathwise_fidelity_loss(trajectories, scored, at, prompts, metadata)
                    self.accelerator.backward(config.pathwise_fidelity_weight * fidelity * len(scored) / len(rows) / config.gradient_accumulation)
                    stats["pathwise_fidelity_loss"].append(float(fidelity.detach()))
                named_rows = self._named_rows(rows, metadata)
                if config.title_anchor_weight > 0 and len(named_rows):
                    anchor = self._title_anchor_loss(trajectories, named_rows, steps[named_rows, 0])
                    self.accelerator.backward(config.title_anchor_weight * anchor * len(named_rows) / len(rows) / config.gradient_accumulation)
                    stats["title_anchor_loss"].append(float(anchor.detach()))
                if self.diversity is not None and self.diversity.adapter is None and config.code_invariance_weight > 0 and len(named_rows):
                    invariance = self._code_invariance_loss(trajectories, named_rows, steps[named_rows, 0])
                    self.accelerator.backward(config.code_invariance_weight * invariance * len(named_rows) / len(rows) / config.gradient_accumulation)
                    stats["code_invariance_loss"].append(float(invariance.detach()))
                if mixture is not None and len(mixture_parts[m]):
                    stats["mixture_loss"].append(self._mixture_backward(mixture, mixture_parts[m], trajectories.prompt_embeds))
                if config.pretrain_weight > 0 and self.pretrain is not None:
                    pretrain_loss = self._pretrain_loss()
                    self.accelerator.backward(config.pretrain_weight * pretrain_loss / config.gradient_accumulation)
                    stats["pretrain_loss"].append(float(pretrain_loss.detach()))
                stats["loss"].append(loss_total)
                if (m + 1) % config.gradient_accumulation == 0 or m == len(minibatches) - 1:
                    if self.diversity is not None and self.accelerator.num_processes > 1:  # DDP averages the UNet's gradients, not the codes'
                        grad = self.diversity.embedding.grad
                        self.diversity.embedding.grad = self.accelerator.reduce(torch.zeros_like(self.diversity.embedding) if grad is None else grad, "mean")
                    if config.max_grad_norm:
                        self.accelerator.clip_grad_norm_(self.trainable, config.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    updates += 1
        if self.average is not None:
            self.update_average(self.average, self.config.ema_decay)
        self.iteration += 1
        done = time.perf_counter()
        record = {"iteration": self.iteration, "reward": float(total.mean()), "reward_std": float(total.std()),
                  **{f"reward.{name}": float(v.mean()) for name, v in components.items()},
                  **{key: float(np.mean(v)) for key, v in stats.items() if v}, "updates": updates,
                  "sample_s": round(sampled - started, 3), "reward_s": round(rewarded - sampled, 3), "train_s": round(done - rewarded, 3),
                  "samples_per_s": round(n / (done - started), 2), "stat_fallbacks": self.tracker.fallbacks, "steered": len(steered)}
        self.history.append(record)
        return record

    def train(self, callback: Callable[["RLTrainer", dict], None] | None = None) -> list[dict]:
        """Run until `iterations` (counting iterations done before a resume) or `max_minutes`;
        every process stops at the same iteration (no multi-GPU hang)."""
        started = time.perf_counter()
        remaining = self.config.iterations - self.iteration
        with tqdm(total=self.config.iterations, initial=self.iteration, desc="RL fine-tuning", disable=not self.accelerator.is_main_process,
                  mininterval=2) as bar:
            for _ in range(remaining):
                record = self.step()
                bar.update()
                bar.set_postfix(reward=f"{record['reward']:.3f}", clipfrac=f"{record.get('clipfrac', 0):.2f}")
                if callback:
                    callback(self, record)
                if self.output_dir and self.config.checkpoint_every and self.iteration % self.config.checkpoint_every == 0:
                    self.save_checkpoint(self.output_dir / "checkpoints" / f"iteration-{self.iteration:06d}")
                over = torch.tensor(float(time.perf_counter() - started > 60 * self.config.max_minutes), device=self.accelerator.device)
                if float(self.accelerator.reduce(over, "max")) > 0:
                    break
        if self.output_dir:
            self.save_checkpoint(self.output_dir / "checkpoints" / f"iteration-{self.iteration:06d}")
        return self.history

    # -- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, prompts: list[str], metadata: list[dict], seed: int = 1234, batch_size: int = 64,
                 averaged: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray], torch.Tensor]:
        """Rewards of fresh samples with a fixed seed: the same noise for the same prompts every time;
        the averaged policy's with ema_decay > 0 (`averaged` False: the weights the model holds now)."""
        with self.averaged() if averaged else nullcontext():
            return evaluate_rewards(self.pipe, self.reward, prompts, metadata, self.config.sampling, seed, batch_size, unet=self.unet,
                                    diversity=self.diversity, adapter_names=self.adapter_names(metadata))

    def save_pipeline(self, folder: str | Path, lora_folder: str | Path | None = None) -> Path:
        """The trained policy as a pipeline folder load_pipeline reads: a LoRA fused into the UNet
        (its adapter alone under `lora_folder` when given), the diversity codes beside it; with
        open_adapter the base UNet with both adapters and their router; with ema_decay > 0 the
        averaged weights. Fusing or unloading ends training: call it once, after the last step."""
        folder = Path(folder)
        if self.average is not None:
            self._assign(self.average)
        unet = self.accelerator.unwrap_model(self.unet)
        if self.config.open_adapter:  # two adapters cannot both be fused: saved beside the base UNet with their router
            from ml.diffusion.adapters import save_routed_adapters

            adapters = save_routed_adapters(unet, folder, sorted({g for r in self.parity for g in r.groups}))
            if lora_folder is not None:
                shutil.copytree(adapters, lora_folder, dirs_exist_ok=True)
        elif self.config.finetune == "lora":
            if lora_folder is not None:
                unet.save_lora_adapter(str(lora_folder))
            unet.fuse_lora()
            unet.unload_lora()
        self.pipe.unet = unet
        self.pipe.save_pretrained(folder)
        if self.diversity is not None:  # load_pipeline attaches them and generate draws them
            self.diversity.save(folder)
        return folder

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            save_file(self.trainable_state(), str(folder / "trainable.safetensors"))
            if self.average is not None:
                save_file({name: t.detach().cpu().contiguous() for name, t in self.average.items()}, str(folder / "average.safetensors"))
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, folder / "optimizer.pt")
            state = {"iteration": self.iteration, "history": self.history, "config": self.config.model_dump(), "finetune": self.config.finetune}
            (folder / "trainer_state.json").write_text(json.dumps(state))
        self.accelerator.wait_for_everyone()
        # each process's own draws (prompts, noise) and what it has seen (tracker, parity memory)
        rank = self.accelerator.process_index
        save_file({"generator": self.generator.get_state(), "torch": torch.get_rng_state()}, str(folder / f"rng-{rank}.safetensors"))
        (folder / f"process-{rank}.json").write_text(json.dumps({"numpy_rng": self.rng.bit_generator.state, "tracker": self.tracker.state_dict(),
                                                                 "reward": self.reward.state_dict()}))
        self.accelerator.wait_for_everyone()
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Continue exactly where the checkpoint stopped: trainable weights, optimizer and
        scheduler state, iteration, history and every process's random generators, stat tracker
        and reward memory (resumed by as many processes as wrote it). Refuses a checkpoint
        whose weights do not fit this model (so a resume never silently starts from the base)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "trainer_state.json").exists():
            raise FileNotFoundError(f"{folder} is not an RL checkpoint (no trainer_state.json); point at checkpoints/iteration-NNNNNN")
        state = json.loads((folder / "trainer_state.json").read_text())
        if state["finetune"] != self.config.finetune:
            raise ValueError(f"checkpoint {folder} was {state['finetune']} fine-tuning; this trainer is {self.config.finetune}")
        weights = load_file(str(folder / "trainable.safetensors"))
        params = self.trainable_params()
        if set(weights) != set(params):
            raise ValueError(f"checkpoint {folder} holds {len(weights)} tensors that do not match the {len(params)} trainable ones")
        self._assign(weights)
        if self.average is not None:  # a checkpoint written without an average starts one from its weights
            saved = folder / "average.safetensors"
            average = load_file(str(saved)) if saved.exists() else weights
            if set(average) != set(params):
                raise ValueError(f"checkpoint {folder}: its average holds {len(average)} tensors that do not match the {len(params)} trainable ones")
            self.average = {name: average[name].to(params[name].device).clone() for name in params}
        optim = torch.load(folder / "optimizer.pt", weights_only=True)
        self.optimizer.load_state_dict(optim["optimizer"])
        self.scheduler.load_state_dict(optim["scheduler"])
        rank = self.accelerator.process_index
        if not (folder / f"process-{rank}.json").exists():
            raise FileNotFoundError(f"checkpoint {folder} has no state for process {rank}: written by fewer processes than resume it, "
                                    "or before each process kept its own (rng.safetensors): resume with the code that wrote it")
        rng, own = load_file(str(folder / f"rng-{rank}.safetensors")), json.loads((folder / f"process-{rank}.json").read_text())
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        self.rng.bit_generator.state = own["numpy_rng"]
        self.tracker.load_state_dict(own["tracker"])
        self.reward.load_state_dict(own.get("reward", {}))
        self.iteration, self.history = state["iteration"], state["history"]


@torch.no_grad()
def evaluate_rewards(pipe, reward: MultiReward, prompts: list[str], metadata: list[dict], sampling: SamplingConfig, seed: int = 1234,
                     batch_size: int = 64, unet=None, diversity=None, adapter_names: list[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], torch.Tensor]:
    """(total, components, images) for the prompts, sampled with fixed seeds (`generate`)."""
    model = unet or pipe.unet
    was_training = model.training
    model.eval()
    images = generate(pipe, prompts, sampling, seed, batch_size, unet=unet, diversity=diversity, adapter_names=adapter_names)
    model.train(was_training)
    with reward.memory_off():
        total, components = reward(images, prompts, metadata)
    return total, components, images

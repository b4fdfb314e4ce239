"""Text-to-image pipelines: one entry point that resolves a name or path. Production: any
StableDiffusionPipeline-compatible checkpoint (local folder, or a hub id already in the cache).
Demo: a tiny pipeline of the same classes (AutoencoderKL, UNet2DConditionModel, CLIPTextModel
with the real CLIP BPE tokenizer, DDIMScheduler), built here and trained on the catalog."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class GeneratorUnavailable(RuntimeError):
    """A checkpoint that cannot be loaded here (offline, missing files)."""


class TinyPipelineConfig(BaseModel):
    image_size: int = 32
    vae_channels: tuple[int, ...] = (16, 32, 64)
    latent_channels: int = 4
    unet_channels: tuple[int, int] = (64, 64)
    attention_head_dim: int = 4
    norm_groups: int = 16
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 256
    max_tokens: int = 16


def ddim_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="trailing",
                         prediction_type="epsilon")


def build_tiny_pipeline(config: TinyPipelineConfig, tokenizer_dir: str | Path, seed: int = 0):
    """A randomly initialised StableDiffusionPipeline of the demo's size (no safety checker)."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ml.diffusion.tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(tokenizer_dir, config.max_tokens)
    n = len(config.vae_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                        block_out_channels=config.vae_channels, layers_per_block=1, latent_channels=config.latent_channels,
                        norm_num_groups=min(16, config.vae_channels[0]), sample_size=config.image_size)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=config.text_hidden, num_hidden_layers=config.text_layers,
                                        num_attention_heads=config.text_heads, intermediate_size=config.text_ffn,
                                        max_position_embeddings=config.max_tokens, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(sample_size=config.image_size // 2 ** (n - 1), in_channels=config.latent_channels,
                                out_channels=config.latent_channels, block_out_channels=config.unet_channels, layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=config.text_hidden, attention_head_dim=config.attention_head_dim,
                                norm_num_groups=config.norm_groups)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=ddim_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.diversity_codes = None
    pipe.adapter_router = None
    return pipe


def load_pipeline(name_or_path: str, device: str = "cpu", dtype=None):
    """A local folder written by save_pretrained, or a hub id already in the local cache (the
    hub is never contacted: `local_files_only`). The scheduler is replaced by DDIM (RL needs
    its per-step log-probabilities). A folder's diversity codes (ml.diffusion.diversity), when RL
    trained some, come as `pipe.diversity_codes` (else None), and its prompt-routed adapters
    (ml.diffusion.adapters) as `pipe.adapter_router`; `generate` uses both."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from ml.diffusion.adapters import load_routed_adapters
    from ml.diffusion.diversity import DiversityCodes

    path = Path(name_or_path)
    if not path.exists() and "/" not in name_or_path:
        raise GeneratorUnavailable(f"generator {name_or_path!r}: no such folder, and not a hub id (owner/name)")
    try:
        pipe = StableDiffusionPipeline.from_pretrained(str(path) if path.exists() else name_or_path, local_files_only=True,
                                                       safety_checker=None, requires_safety_checker=False, torch_dtype=dtype)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise GeneratorUnavailable(
            f"generator {name_or_path!r} could not be loaded offline ({type(exc).__name__}: {str(exc)[:200]}). Put the checkpoint "
            "in a local folder (StableDiffusionPipeline.save_pretrained / a downloaded snapshot) and point the generator at it, "
            "or pre-populate the Hugging Face cache on a machine with network access.") from exc
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    codes = DiversityCodes.load(path) if path.exists() else None
    pipe.diversity_codes = None if codes is None else codes.to(device)
    pipe.adapter_router = load_routed_adapters(pipe.unet, path) if path.exists() else None
    return pipe.to(device)

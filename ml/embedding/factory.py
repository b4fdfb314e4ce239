"""One entry point that resolves a dual encoder from a name, tag, hub id, folder or config.

- `"ViT-B-32"` + pretrained `"openai"`: an open_clip built-in with pretrained weights (hub).
- `"hf-hub:org/repo"`: an open_clip model published on the Hugging Face Hub.
- `"local-dir:/path"` or an existing folder: open_clip's own format, `open_clip_config.json`
  plus `open_clip_model.safetensors`, as `save_dual_encoder` writes it.
- a name from CUSTOM_CONFIGS (the demo's small models), randomly initialised.

Offline, the hub forms fail at once with a message that says what to do, never a hang.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE, WEIGHTS_FILE = "open_clip_config.json", "open_clip_model.safetensors"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# Small configs the demo trains from scratch on CPU (32 px catalog images).
CUSTOM_CONFIGS: dict[str, dict[str, Any]] = {
    # ModifiedResNet at 32 px (1.3M params) + a 2-layer text transformer: on 2 CPU cores it beat
    # a ViT of similar cost on category and trained ~20% faster (prototype, issue 3 notes).
    "shopwindow-tiny-32": {
        "model_cfg": {
            "embed_dim": 64,
            "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
            "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
        },
        "preprocess_cfg": {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    },
}


class ModelUnavailable(RuntimeError):
    """A model that cannot be had here: offline hub, missing folder, unknown name."""


@dataclass(frozen=True)
class Preprocessor:
    """Stored uint8 images -> the normalised float tensor the image tower expects."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "Preprocessor":
        size = cfg.get("size", 224)
        return cls(int(size[0] if isinstance(size, (list, tuple)) else size),
                   tuple(cfg.get("mean", OPENAI_MEAN)), tuple(cfg.get("std", OPENAI_STD)))

    def resize_uint8(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 at the model's size (unchanged when it already is)."""
        if pixels.shape[1:3] == (self.size, self.size):
            return pixels
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(p).resize((self.size, self.size), Image.Resampling.BICUBIC)) for p in pixels])

    def tensor(self, pixels: np.ndarray):
        """uint8 N x H x W x 3 -> float N x 3 x S x S, resized if the store's size differs."""
        import torch

        return self.normalise(torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0))

    def normalise(self, x):
        """Float N x 3 x H x W in [0, 1] -> the tower's input; differentiable (a reward's gradient
        reaches a generator's pixels through it)."""
        import torch
        import torch.nn.functional as F

        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        return (x - torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)) / torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def load_preprocess(folder: str | Path) -> Preprocessor:
    """The preprocessing of a saved model without loading its weights (cheap CPU stages)."""
    config = json.loads((Path(folder) / CONFIG_FILE).read_text())
    cfg = {**config.get("preprocess_cfg", {})}
    cfg.setdefault("size", config["model_cfg"]["vision_cfg"]["image_size"])
    return Preprocessor.from_cfg(cfg)


@dataclass
class DualEncoder:
    """An open_clip CLIP model with its tokenizer and the image normalisation it expects."""

    model: Any  # open_clip.CLIP (a torch.nn.Module)
    tokenizer: Any
    preprocess_cfg: dict[str, Any]
    source: str
    model_cfg: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else int(self.model_cfg["embed_dim"])

    def image_tensor(self, pixels: np.ndarray):
        return Preprocessor.from_cfg(self.preprocess_cfg).tensor(pixels)

    def encode_images(self, pixels: np.ndarray, batch_size: int = 512) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                out.append(self.model.encode_image(self.image_tensor(pixels[start : start + batch_size]), normalize=True).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_texts(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start : start + batch_size]))
                out.append(self.model.encode_text(tokens, normalize=True).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://", 1)[-1].split("/", 1)[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_error(what: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"{what} needs the Hugging Face Hub, which is not reachable from here (or HF_HUB_OFFLINE is set). "
        "Download it on a connected machine and pass its folder as 'local-dir:/path' "
        "(open_clip_config.json + weights), or use the demo profile's 'shopwindow-tiny-32'."
    )


def _load_local(folder: Path, source: str):
    import open_clip

    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelUnavailable(f"{folder}: no {CONFIG_FILE}; expected a folder written by save_dual_encoder or open_clip's push_to_hf_hub")
    config = json.loads(config_path.read_text())
    model = open_clip.create_model(f"local-dir:{folder}", weights_only=True)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    preprocess = {**config.get("preprocess_cfg", {})}
    preprocess.setdefault("size", config["model_cfg"]["vision_cfg"]["image_size"])
    return DualEncoder(model, tokenizer, preprocess, source, config["model_cfg"])


def create_dual_encoder(name: str, pretrained: str | None = None) -> DualEncoder:
    """Resolve `name` (see the module docstring) into a DualEncoder on the CPU."""
    import open_clip

    if name in CUSTOM_CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, CONFIG_FILE).write_text(json.dumps(CUSTOM_CONFIGS[name]))
            encoder = _load_local(Path(tmp), name)  # no weights file: random initialisation
        return encoder
    if name.startswith("local-dir:") or Path(name).is_dir():
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not folder.is_dir():
            raise ModelUnavailable(f"{name}: no such folder")
        return _load_local(folder, name)
    if name.startswith("hf-hub:"):
        if not _hub_reachable():
            raise _offline_error(name)
        model, _, preprocess = open_clip.create_model_and_transforms(name)
        return DualEncoder(model, open_clip.get_tokenizer(name), _preprocess_cfg(model), name)
    if name in open_clip.list_models():
        if pretrained and pretrained not in open_clip.list_pretrained_tags_by_model(name) and not Path(pretrained).is_file():
            raise ModelUnavailable(f"{name}: unknown pretrained tag {pretrained!r}; known: {', '.join(open_clip.list_pretrained_tags_by_model(name))}")
        if pretrained and not Path(pretrained).is_file() and not _hub_reachable():
            raise _offline_error(f"{name} with pretrained={pretrained!r}")
        model = open_clip.create_model(name, pretrained=pretrained, weights_only=True)
        return DualEncoder(model, open_clip.get_tokenizer(name), _preprocess_cfg(model), f"{name}:{pretrained or 'random'}")
    raise ModelUnavailable(
        f"{name!r} is not a custom config ({', '.join(CUSTOM_CONFIGS)}), an open_clip built-in, "
        "an 'hf-hub:' id or a folder"
    )


def _preprocess_cfg(model) -> dict[str, Any]:
    cfg = dict(getattr(getattr(model, "visual", None), "preprocess_cfg", {}) or {})
    size = getattr(model.visual, "image_size", 224)
    cfg.setdefault("size", size[0] if isinstance(size, (list, tuple)) else size)
    return cfg


def save_dual_encoder(encoder: DualEncoder, folder: str | Path) -> Path:
    """open_clip's folder format with safetensors weights; loads back with create_dual_encoder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    config = {"model_cfg": encoder.model_cfg, "preprocess_cfg": encoder.preprocess_cfg}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return folder

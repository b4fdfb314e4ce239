"""The demo's rewards. Prompt fidelity: cosine between the generated image and its prompt in
the pipeline's own dual encoder. Colour parity: for prompts that name no colour, each sample
is rewarded for being of a colour its prompt group has too few of (target: uniform over the
palette), the analogue of skin-tone parity; an image whose colour cannot be read scores -1."""

from __future__ import annotations

import numpy as np

from ml.diffusion.sampling import images_to_uint8
from ml.rewards.base import register_reward


@register_reward("prompt_fidelity")
class PromptFidelity:
    name = "prompt_fidelity"

    def __init__(self, model: str, scale: float = 1.0):
        from ml.embedding.factory import create_dual_encoder

        self.encoder = create_dual_encoder(model if ":" in model else f"local-dir:{model}")
        self.scale = scale
        self._texts: dict[str, np.ndarray] = {}

    def __call__(self, images, prompts: list[str], metadata: list[dict]) -> np.ndarray:
        missing = sorted(set(prompts) - set(self._texts))
        if missing:
            self._texts.update(zip(missing, self.encoder.encode_texts(missing)))
        image = self.encoder.encode_images(images_to_uint8(images))
        text = np.stack([self._texts[p] for p in prompts])
        image = image / np.maximum(np.linalg.norm(image, axis=1, keepdims=True), 1e-12)
        text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
        return self.scale * (image * text).sum(axis=1)


@register_reward("color_parity")
class ColorParity:
    """Batch-level: within each group of samples sharing a colour-free prompt, reward_i =
    1/K - (share of i's colour in the group). The group's mean reward is exactly minus the
    squared L2 distance of its colour distribution to uniform, so maximising it is parity; each
    sample's share of the credit favours the colours the group has too few of."""

    name = "color_parity"

    def __init__(self, palette: dict[str, tuple[int, int, int]] | None = None, no_read_penalty: float = -1.0):
        from ml.fairness.color_reader import ColorReader, ColorReaderConfig, demo_color_reader

        self.reader = ColorReader(ColorReaderConfig(palette=palette)) if palette else demo_color_reader()
        self.no_read_penalty = no_read_penalty

    def __call__(self, images, prompts: list[str], metadata: list[dict]) -> np.ndarray:
        from ml.fairness.color_reader import NO_READ

        out = np.zeros(len(prompts))
        applies = np.array([not m.get("names_color", False) for m in metadata])
        if not applies.any():
            return out
        rows = np.flatnonzero(applies)
        colors = np.asarray(self.reader.read(images_to_uint8(images[rows])), dtype=object)
        k = len(self.reader.names)
        groups = np.asarray(prompts, dtype=object)[rows]
        for prompt in np.unique(groups):
            members = groups == prompt
            read = colors[members] != NO_READ
            counts = {c: int((colors[members] == c).sum()) for c in self.reader.names}
            n = max(int(read.sum()), 1)
            values = np.array([1 / k - counts[c] / n if c != NO_READ else self.no_read_penalty for c in colors[members]])
            out[rows[members]] = values
        return out

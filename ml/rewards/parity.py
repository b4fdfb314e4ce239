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

import math

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
                 objective: str = "l2", max_ratio: float = 8.0, differentiable_read: Callable | None = None,
                 group_prompt: Callable[[str, dict], str | None] | None = None):
        if memory < 0:
            raise ValueError(f"memory={memory}: the number of earlier reads per prompt to count, 0 for none")
        self.name, self.read_groups, self.groups, self.applies = name, read_groups, list(groups), applies
        self.no_read_penalty, self.soft_read, self.memory = no_read_penalty, soft_read, memory
        if objective not in ("l2", "kl"):
            raise ValueError(f"objective={objective!r}: use 'l2' (squared distance to uniform) or 'kl' (KL from uniform)")
        self.objective, self.max_ratio = objective, max_ratio
        self.differentiable_read, self.group_prompt = differentiable_read, group_prompt
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

    def quota(self, prompt: str, counts: np.ndarray | None = None, batch: int = 0) -> np.ndarray:
        """Each group's share of what the prompt lacks for its remembered reads (or `counts` when
        nothing is remembered) plus `batch` more samples to be even; uniform when nothing lacks."""
        k = len(self.groups)
        remembered = self.recent.get(prompt) if self.memory else None
        seen = remembered.sum(axis=0) if remembered is not None and len(remembered) else (np.zeros(k) if counts is None else counts)
        lack = np.maximum((seen.sum() + batch) / k - seen, 0)
        return lack / lack.sum() if lack.sum() > 0 else np.full(k, 1 / k)

    def exploration_prompt(self, prompt: str, metadata: dict, rng: np.random.Generator) -> str | None:
        """A prompt that names a group this prompt lacks (drawn in proportion to the quota), to
        steer the first denoising steps of an RL sample with (RLConfig.explore_share); None when
        the prompt names its group already or no `group_prompt` is known."""
        if self.group_prompt is None or not self.applies(metadata):
            return None
        return self.group_prompt(self.groups[int(rng.choice(len(self.groups), p=self.quota(prompt)))], metadata)

    def pathwise_loss(self, images, prompts: list[str], metadata: list[dict], sinkhorn_iterations: int = 50, no_read_weight: float = 10.0):
        """A loss whose gradient moves each image's own group toward one its prompt lacks.
        `differentiable_read` gives log memberships log p_i(g), differentiable in the pixels
        (torch images B x 3 x H x W in [0, 1]). Per prompt, each group's quota is what it lacks
        for the prompt's remembered reads (this batch's included; without a memory, this batch's
        memberships) plus this batch to be even; Sinkhorn-Knopp (as SwAV balances clusters) assigns the
        samples to groups so that the quotas are met while each sample moves as little as its
        memberships allow, the assignment is rounded to one group per sample, and the loss is the
        cross-entropy to it. Every sample counts, readable or not, plus `no_read_weight` x its
        foreground shortfall: when only readable images were scored, fading the garment out of
        the image escaped the loss (no-read share 0.1% -> 6-24% in 196 demo iterations). A policy gradient
        credits only the groups samples happened to draw, so a colour drawn 1% of the time is
        rarely reinforced; here some samples of a prompt are pulled toward it every time. A pull
        toward every missing group at once (a soft target) turned black garments grey, the mean
        of the missing colours; one group per sample does not. None when no sample's prompt leaves
        the group open."""
        import torch

        if self.differentiable_read is None:
            raise ValueError(f"{self.name}: no differentiable reader, so no pathwise loss")
        rows = [i for i, m in enumerate(metadata) if self.applies(m)]
        if not rows:
            return None
        log_p, _, shortfall = self.differentiable_read(images[rows])
        prompt_of = np.asarray(prompts, dtype=object)[rows]
        losses = []
        for prompt in np.unique(prompt_of):
            members = torch.as_tensor(np.flatnonzero(prompt_of == prompt))
            quota = self.quota(prompt, log_p[members].detach().exp().sum(0).cpu().numpy(), len(members))
            soft = sinkhorn_assignment(log_p[members].detach(), torch.as_tensor(quota, dtype=log_p.dtype, device=log_p.device),
                                       sinkhorn_iterations)
            target = torch.as_tensor(round_assignment(soft.cpu().numpy(), quota * len(members)), device=log_p.device)
            losses.append(-log_p[members].gather(1, target[:, None]).squeeze(1) + no_read_weight * shortfall[members])
        return torch.cat(losses).mean() if losses else None

    def __call__(self, images, prompts: list[str], metadata: list[dict]) -> np.ndarray:
        out = np.zeros(len(prompts))
        rows = np.flatnonzero([self.applies(m) for m in metadata])
        if len(rows) == 0:
            return out
        k = len(self.groups)
        prompt_of = np.asarray(prompts, dtype=object)[rows]
        memberships, readable = self.memberships(images_to_uint8(images[rows]))
        own = np.array([not metadata[i].get("steered", False) for i in rows])  # steered samples say nothing of the policy's shares
        for prompt in np.unique(prompt_of):
            members = np.flatnonzero(prompt_of == prompt)
            ok = members[readable[members] & own[members]]
            seen = memberships[ok]
            if self.memory:
                seen = np.concatenate([self.recent.get(prompt, np.zeros((0, k))), seen])
                self.recent[prompt] = seen[-self.memory:]
            share = seen.mean(axis=0) if len(seen) else np.full(k, 1 / k)
            out[rows[members]] = np.where(readable[members], memberships[members] @ self.need(share), self.no_read_penalty)
        return out


def sinkhorn_assignment(log_p, quota, iterations: int = 50):
    """Soft assignment of n samples to K groups (rows sum to 1) whose column sums are n x quota,
    closest to the memberships exp(log_p): Sinkhorn-Knopp in log space (a membership of 1e-30
    still gets its share when the quota needs it)."""
    import torch

    n = log_p.shape[0]
    log_quota = torch.log(quota.clamp_min(1e-12)) + math.log(n)
    log_q = log_p.clone()
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) + log_quota  # columns to their quotas
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)  # each sample's row to 1
    return log_q.exp()


def round_assignment(soft: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """One group per sample from a soft n x K assignment: the most confident (sample, group) pairs
    first while the group has capacity left (n x quota), then any sample left over to its
    likeliest group. Samples that look alike still go to different groups when the quotas say so."""
    n = soft.shape[0]
    left, out = capacity.astype(np.float64).copy(), np.full(n, -1)
    for flat in np.argsort(-soft, axis=None, kind="stable"):
        i, g = divmod(int(flat), soft.shape[1])
        if out[i] < 0 and left[g] >= 0.5:
            out[i], left[g] = g, left[g] - 1
    unassigned = out < 0
    out[unassigned] = soft[unassigned].argmax(axis=1)
    return out


@register_reward("color_parity")
def color_parity(palette: dict[str, tuple[int, int, int]] | None = None, no_read_penalty: float = -1.0,
                 temperature: float = 0.0, memory: int = 0, objective: str = "l2", pathwise_temperature: float = 500.0) -> GroupParity:
    """The demo's analogue of skin-tone parity: garment colour over prompts that name none.
    `temperature` > 0 reads soft memberships (softmax of -reader score / temperature; reader
    scores of a clear garment differ by thousands between its colour and the next).
    `pathwise_temperature`: the memberships' temperature in the pathwise loss (RLConfig.pathwise_parity_weight)."""
    from ml.fairness.color_reader import ColorReader, ColorReaderConfig, demo_color_reader

    reader = ColorReader(ColorReaderConfig(palette=palette)) if palette else demo_color_reader()
    soft = (lambda images: reader.probabilities(images, temperature)) if temperature > 0 else None
    return GroupParity("color_parity", reader.read, reader.names, lambda m: not m.get("names_color", False), no_read_penalty, soft, memory,
                       objective, differentiable_read=lambda images: reader.differentiable_log_probabilities(images, pathwise_temperature),
                       group_prompt=lambda color, meta: f"a {color} {meta['category']}" if meta.get("category") else None)


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

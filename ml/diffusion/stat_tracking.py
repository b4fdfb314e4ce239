"""Advantages: rewards normalised over the whole batch (the paper's default) or per prompt
(DDPO's stat tracking: a running buffer of each prompt's recent rewards). When a prompt has
fewer than `min_count` rewards its batch statistics are used, and that is counted, not silent."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np


def batch_advantages(rewards: np.ndarray, clip: float = 10.0) -> np.ndarray:
    return np.clip((rewards - rewards.mean()) / (rewards.std() + 1e-8), -clip, clip)


class PerPromptStatTracker:
    def __init__(self, buffer_size: int = 32, min_count: int = 8):
        self.buffer_size, self.min_count = buffer_size, min_count
        self.buffers: dict[str, deque] = defaultdict(lambda: deque(maxlen=buffer_size))
        self.fallbacks = 0

    def advantages(self, prompts: list[str], rewards: np.ndarray, clip: float = 10.0, scale: str = "prompt") -> np.ndarray:
        """Each reward minus its prompt's running mean, divided by the prompt's running std
        (`scale` "prompt", DDPO) or by the std of the whole batch's centred rewards ("batch"). Per
        prompt, a suite whose rewards barely vary (fidelity of an easy prompt) gets as large
        advantages as one that varies a lot (parity), so its noise takes as much of each update;
        the batch scale keeps the rewards' own proportions between prompts."""
        if scale not in ("prompt", "batch"):
            raise ValueError(f"advantage scale {scale!r}: use 'prompt' or 'batch'")
        out = np.empty(len(rewards), np.float64)
        prompts = np.asarray(prompts, dtype=object)
        for prompt in np.unique(prompts):
            rows = prompts == prompt
            buffer = self.buffers[prompt]
            buffer.extend(rewards[rows].tolist())
            if len(buffer) < self.min_count:
                mean, std = rewards.mean(), rewards.std()
                self.fallbacks += int(rows.sum())
            else:
                mean, std = np.mean(buffer), np.std(buffer)
            out[rows] = (rewards[rows] - mean) / (std + 1e-8 if scale == "prompt" else 1.0)
        if scale == "batch":
            out /= out.std() + 1e-8
        return np.clip(out, -clip, clip)

    def state_dict(self) -> dict:
        return {"buffers": {k: list(v) for k, v in self.buffers.items()}, "fallbacks": self.fallbacks}

    def load_state_dict(self, state: dict) -> None:
        self.buffers.clear()
        for k, v in state["buffers"].items():
            self.buffers[k].extend(v)
        self.fallbacks = state["fallbacks"]

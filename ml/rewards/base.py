"""The reward protocol and registry. A reward maps a batch (images B x 3 x H x W in [0, 1], the
prompts, one metadata dict per sample) to one float per sample; it may look at the whole batch
(parity rewards do). Implementations register by name; production ones import their libraries
only when built and fail with `RewardUnavailable` saying what is missing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol, runtime_checkable

import numpy as np

_REGISTRY: dict[str, Callable[..., "Reward"]] = {}


class RewardUnavailable(RuntimeError):
    """A reward whose model or package is not available here (offline, not installed)."""


@runtime_checkable
class Reward(Protocol):
    name: str

    def __call__(self, images: Any, prompts: list[str], metadata: list[dict]) -> np.ndarray: ...


def register_reward(name: str):
    """Class or factory decorator: `make_reward(name, **kwargs)` builds it."""
    def decorate(factory):
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"reward {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory
    return decorate


def registered_rewards() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def make_reward(name: str, **kwargs) -> Reward:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    reward = _REGISTRY[name](**kwargs)
    reward.name = getattr(reward, "name", name) or name
    return reward


class MultiReward:
    """Weighted sum of rewards; each component is returned separately for logging."""

    name = "multi"

    def __init__(self, components: dict[str, tuple[Reward, float]]):
        if not components:
            raise ValueError("a multi-reward needs at least one component")
        self.components = components

    def __call__(self, images, prompts: list[str], metadata: list[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        parts = {name: np.asarray(reward(images, prompts, metadata), np.float64) for name, (reward, _) in self.components.items()}
        for name, values in parts.items():
            if values.shape != (len(prompts),):
                raise ValueError(f"reward {name!r} returned shape {values.shape}, expected ({len(prompts)},)")
        total = sum(self.components[name][1] * values for name, values in parts.items())
        return total, parts

    def state_dict(self) -> dict:
        """The state of components that keep some (parity memory), for checkpoints."""
        return {name: reward.state_dict() for name, (reward, _) in self.components.items() if hasattr(reward, "state_dict")}

    def load_state_dict(self, state: dict) -> None:
        for name, component_state in state.items():
            self.components[name][0].load_state_dict(component_state)

    @contextmanager
    def memory_off(self):
        """Score an evaluation batch on its own: components with a training memory neither use nor update it."""
        with ExitStack() as stack:
            for reward, _ in self.components.values():
                if hasattr(reward, "memory_off"):
                    stack.enter_context(reward.memory_off())
            yield self

    @property
    def weights(self) -> dict[str, float]:
        return {name: weight for name, (_, weight) in self.components.items()}


def make_multi_reward(spec: dict[str, dict]) -> MultiReward:
    """{name: {"weight": w, **kwargs}} -> MultiReward."""
    components = {}
    for name, options in spec.items():
        options = dict(options)
        weight = float(options.pop("weight", 1.0))
        components[name] = (make_reward(name, **options), weight)
    return MultiReward(components)


def _load_builtins() -> None:
    import ml.rewards.demo  # noqa: F401  (registers prompt_fidelity)
    import ml.rewards.parity  # noqa: F401  (registers color_parity, skin_tone_parity, gender_parity)
    import ml.rewards.hub  # noqa: F401  (registers the production rewards)

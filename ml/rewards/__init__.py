"""Rewards for RL fine-tuning: one protocol, a registry by name, a weighted multi-reward.

    from ml.rewards import make_multi_reward
    reward = make_multi_reward({"prompt_fidelity": {"weight": 1.0, "model": "path/to/dual_encoder"},
                                "color_parity": {"weight": 0.5}})
    total, components = reward(images, prompts, metadata)
"""

from ml.rewards.base import MultiReward, Reward, RewardUnavailable, make_multi_reward, make_reward, register_reward, registered_rewards

__all__ = ["MultiReward", "Reward", "RewardUnavailable", "make_multi_reward", "make_reward", "register_reward", "registered_rewards"]

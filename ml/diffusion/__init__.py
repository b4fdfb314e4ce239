"""Text-to-image generation and its RL fine-tuning (large-scale RL for diffusion): pipeline
building and loading, DDIM with log-probabilities, sampling, the policy-gradient trainer."""

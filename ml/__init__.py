"""shopwindow's library: catalog, embedding, attributes, collections, diffusion, rewards,
fairness, compute and tracking. Knows nothing of Dagster or of the demo."""

"""open_clip dual encoders: one factory, contrastive training, batch encoding, ANN indexes."""

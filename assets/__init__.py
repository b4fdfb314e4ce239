"""Software-defined assets and checks; each is a thin call into ml/."""

"""Speed, memory and quality benchmarks. `make bench` runs them; CI does not."""

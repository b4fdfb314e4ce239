"""`python -m benchmarks` (make bench): every benchmark, figures printed."""

from benchmarks import collections, embeddings, ingest, rl

if __name__ == "__main__":
    ingest.main()
    embeddings.main()
    collections.main()
    rl.main()

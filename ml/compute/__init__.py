"""Map a function over batches on a local process pool or on Ray, with one interface."""

from ml.compute.batch_map import BatchMapper, ComputeSettings, LocalBatchMapper, RayBatchMapper, make_mapper

__all__ = ["BatchMapper", "ComputeSettings", "LocalBatchMapper", "RayBatchMapper", "make_mapper"]

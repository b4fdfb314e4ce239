from functools import partial

import pytest

from ml.compute import ComputeSettings, LocalBatchMapper, make_mapper


def _square_all(batch, offset=0):
    return [x * x + offset for x in batch]


BATCHES = [list(range(i, i + 7)) for i in range(0, 70, 7)]
EXPECTED = [_square_all(b, 1) for b in BATCHES]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_mapper_keeps_order(workers):
    mapper = LocalBatchMapper(workers=workers, max_in_flight=3)
    try:
        assert list(mapper.map(partial(_square_all, offset=1), BATCHES)) == EXPECTED
    finally:
        mapper.close()


@pytest.mark.slow
def test_ray_backend_ingests_exactly_like_local(bad_catalog, tmp_path):
    """Real local Ray (2 CPUs); the image work runs in Ray tasks."""
    ray = pytest.importorskip("ray")
    from ml.catalog.contract import IngestSettings
    from ml.catalog.ingest import ingest_snapshot, snapshot_catalog
    from ml.catalog.store import read_table

    raw = str(tmp_path / "raw.parquet")
    snapshot_catalog(str(bad_catalog), raw)
    outputs = {}
    for backend in ("local", "ray"):
        mapper = make_mapper(ComputeSettings(backend=backend, workers=2))
        try:
            assert mapper.name == backend
            ingest_snapshot(raw, str(bad_catalog.parent), str(tmp_path / backend), IngestSettings(), mapper, progress=False)
        finally:
            mapper.close()
        outputs[backend] = read_table(str(tmp_path / backend / "items.parquet"))
    ray.shutdown()
    assert len(outputs["ray"]) == 4
    assert outputs["ray"].equals(outputs["local"])

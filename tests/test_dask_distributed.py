"""transconv.dask on dask.distributed: a LocalCluster of two worker processes, and a Zarr
array streamed through conv_transpose by workers whose memory limit is below its size."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import transconv as tc
import transconv.dask as tcd

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

MEMORY_LIMIT = 400 * 10**6  # bytes per worker; a worker process with transconv imported holds ~240 MB


def _example():
    path = Path(__file__).resolve().parents[1] / "examples" / "dask_zarr_upsample.py"
    spec = importlib.util.spec_from_file_location("dask_zarr_upsample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def client():
    # worker processes are spawned (distributed's default), so numba's OpenMP threads of this
    # process are not forked into them
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, memory_limit=MEMORY_LIMIT) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_local_cluster_conv_and_conv_transpose_equal_in_memory(client):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 50, 41)).astype(np.float32)
    w = rng.standard_normal((4, 2, 5, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    xd = da.from_array(x, chunks=(2, 4, 13, 9))
    kwargs = dict(stride=(2, 3), padding=((2, 1), 1), dilation=(1, 2), groups=2, padding_mode="reflect")
    got = client.compute(tcd.conv(xd, w.transpose(1, 0, 2, 3).reshape(4, 2, 5, 3), b, **kwargs)).result()
    want = tc.conv(x, w.transpose(1, 0, 2, 3).reshape(4, 2, 5, 3), b, **kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    got = client.compute(tcd.conv_transpose(xd, w, b, stride=2, padding=1, output_padding=1, groups=2)).result()
    np.testing.assert_allclose(got, tc.conv_transpose(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
                               rtol=1e-5, atol=1e-4)
    assert len(client.scheduler_info()["workers"]) == 2


def test_zarr_array_larger_than_a_worker_streams_through_conv_transpose(client, tmp_path):
    example = _example()
    report = example.stream(client, str(tmp_path), size=5120, chunk=512, check_tiles=3)
    assert report["output_bytes"] > MEMORY_LIMIT  # 400 MiB of output through workers of 400 MB
    assert all(peak < MEMORY_LIMIT for peak in report["peak_rss"].values())
    assert report["max_error"] < 1e-5
    assert len(client.scheduler_info()["workers"]) == 2

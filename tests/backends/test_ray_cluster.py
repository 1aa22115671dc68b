"""The Ray backend on a real two-node Ray cluster: placement on both nodes, a node killed
and its instance replaced, a crashed worker restarted by Ray, load failures, scaling."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from sluice.backends.ray_cluster import RayBackend, RayInstance, instance_resources
from sluice.entities import Model
from sluice.errors import ModelError, ModelLoadError, ValidationError
from sluice.settings import Settings
from sluice.workers.pool import WorkerPool
from tests import models
from tests.backends.conftest import RayCluster
from tests.conftest import RunningServer
from tests.e2e.helpers import aws_client, metric
from tests.e2e.test_sagemaker_workflow import clients, until
from tests.e2e.test_transform import csv_rows, finished, model, out, put, transform

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

ROWS = models.digits()[0]
ROW = json.dumps([ROWS[0].tolist()]).encode()


def _model(model_dir: Path, runtime: str = "sklearn", **environment: str) -> Model:
    return Model(
        name=model_dir.name,
        artifact_uri=f"file://{model_dir}",
        model_dir=str(model_dir),
        runtime=runtime,
        image=None,
        environment=environment,
        created_at=datetime.now(UTC),
    )


@pytest.fixture
async def backend(ray_cluster: RayCluster, tmp_path: Path) -> AsyncIterator[RayBackend]:
    settings = Settings(
        home=tmp_path,
        backend="ray",
        ray_address=ray_cluster.address,
        worker_restart_backoff_s=0.05,
        model_load_timeout_s=60,
    )
    backend = RayBackend(settings)
    yield backend
    await backend.close()


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.1)


def _instances(pool: WorkerPool) -> list[RayInstance]:
    return [w for w in pool.instances if isinstance(w, RayInstance)]


async def test_instances_spread_over_both_nodes_and_answer(
    backend: RayBackend, ray_cluster: RayCluster, artifacts: dict[str, Path]
) -> None:
    pool = await backend.start_variant("ep/A", _model(artifacts["logreg"]), 2, lambda: None)
    assert isinstance(pool, WorkerPool)
    try:
        nodes = {ray_cluster.node_resource(w.node or "") for w in _instances(pool)}
        assert nodes == {"head", "second"}
        rows = [json.dumps([row.tolist()]).encode() for row in ROWS[:200]]
        answers = await asyncio.gather(
            *(pool.invoke(row, "application/json", "application/json") for row in rows)
        )
        expected = models.digits_logreg().predict(ROWS[:200]).tolist()
        assert [json.loads(a.body)["predictions"][0] for a in answers] == expected
        with pytest.raises(ValidationError, match="not valid JSON"):
            await pool.invoke(b"[[", "application/json", "application/json")
        await wait_until(lambda: len(pool.usage()) == 2, timeout=15)
        for cpu, rss in pool.usage().values():
            assert cpu > 0 and rss > 10_000_000  # a Python process with scikit-learn loaded
    finally:
        await pool.stop()


async def test_a_crashed_worker_is_restarted_by_ray_and_served_again(
    backend: RayBackend, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    dying = models.write_handler(tmp_path / "dying", models.DYING)
    restarts: list[int] = []
    pool = await backend.start_variant(
        "ep/C", _model(dying, "python"), 1, lambda: restarts.append(1)
    )
    assert isinstance(pool, WorkerPool)
    try:
        (instance,) = _instances(pool)
        first_pid = instance.pid
        with pytest.raises(ModelError, match="exited while handling"):
            await pool.invoke(b"[[-1]]", "application/json", "application/json")
        await wait_until(lambda: bool(pool.live) and instance.pid != first_pid, timeout=60)
        answer = await pool.invoke(ROW, "application/json", "application/json")
        assert json.loads(answer.body)["predictions"] == [0]
        assert restarts == [1] and pool.restarts == 1
        # A worker killed from outside (the out-of-memory killer) is replaced the same way.
        assert instance.pid is not None
        os.kill(instance.pid, signal.SIGKILL)
        await wait_until(lambda: pool.restarts == 2 and bool(pool.live), timeout=60)
    finally:
        await pool.stop()


async def test_a_model_that_cannot_load_fails_the_start_with_its_error(
    backend: RayBackend, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="failed to load"):
        await backend.start_variant("ep/D", _model(broken), 1, lambda: None)


async def test_models_that_need_the_gateways_files_are_refused(backend: RayBackend) -> None:
    with pytest.raises(ValidationError, match="local backend only"):
        await backend.start_variant("ep/E", _model(Path("/nonexistent"), "multi-model"), 1, print)


async def test_an_instance_no_node_can_hold_fails_with_what_it_asked_for(
    ray_cluster: RayCluster, tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    settings = Settings(
        home=tmp_path,
        ray_address=ray_cluster.address,
        model_load_timeout_s=3,
        instance_resources={"ml.p4d.24xlarge": {"CPU": 8, "GPU": 8}},
    )
    backend = RayBackend(settings)
    try:
        with pytest.raises(ModelLoadError, match="CPU 8, GPU 8"):
            await backend.start_variant(
                "ep/F", _model(artifacts["logreg"]), 1, print, instance_type="ml.p4d.24xlarge"
            )
    finally:
        await backend.close()


async def test_scale_out_and_in_drops_no_request(
    backend: RayBackend, artifacts: dict[str, Path]
) -> None:
    pool = await backend.start_variant(
        "ep/G", _model(artifacts["slow"], "python", SLOW_SECONDS="0.05"), 1, lambda: None
    )
    assert isinstance(pool, WorkerPool)
    try:
        load = [asyncio.create_task(pool.invoke(ROW, "application/json", "")) for _ in range(60)]
        await pool.scale(3)
        assert len(pool.live) == 3
        await pool.scale(1)
        answers = await asyncio.gather(*load)
        assert {json.loads(a.body)["predictions"][0] for a in answers} == {0}
        assert len(pool.instances) == 1
    finally:
        await pool.stop()


def test_instance_resources_come_from_the_settings() -> None:
    settings = Settings(instance_resources={"ml.g5.xlarge": {"CPU": 4, "GPU": 1, "a10g": 1}})
    assert instance_resources(settings, "ml.g5.xlarge", 2048) == {
        "CPU": 4,
        "GPU": 1,
        "a10g": 1,
        "memory": 2048 * 1024 * 1024,
    }
    assert instance_resources(settings, "ml.m5.large", None) == {"CPU": 1.0}


def test_a_server_on_the_ray_backend_serves_boto3_unchanged(
    ray_cluster: RayCluster, tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(
        tmp_path / "home",
        env={"SLUICE_BACKEND": "ray", "SLUICE_RAY_ADDRESS": ray_cluster.address},
    )
    try:
        sagemaker = aws_client("sagemaker", server.url)
        runtime = aws_client("sagemaker-runtime", server.url)
        sagemaker.create_model(
            ModelName="logreg",
            PrimaryContainer={"ModelDataUrl": f"file://{artifacts['logreg_tar']}"},
            ExecutionRoleArn="arn:aws:iam::000000000000:role/sluice",
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName="cfg",
            ProductionVariants=[
                {
                    "VariantName": "A",
                    "ModelName": "logreg",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 2,
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName="digits", EndpointConfigName="cfg")
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName="digits", WaiterConfig={"Delay": 1, "MaxAttempts": 90}
        )
        expected = models.digits_logreg().predict(ROWS[:20]).tolist()
        for row, label in zip(ROWS[:20], expected, strict=True):
            answer = runtime.invoke_endpoint(
                EndpointName="digits",
                ContentType="application/json",
                Body=json.dumps([row.tolist()]),
            )
            assert json.loads(answer["Body"].read())["predictions"] == [label]
        deadline = time.monotonic() + 20
        while metric(server.url, "sluice_worker_memory_bytes", endpoint="digits") == 0:
            assert time.monotonic() < deadline, "no worker memory was reported"
            time.sleep(0.5)
        assert metric(server.url, "sluice_worker_processes", endpoint="digits") == 2
        sagemaker.delete_endpoint(EndpointName="digits")
        deadline = time.monotonic() + 30
        while _ray_workers():
            assert time.monotonic() < deadline, "the endpoint's workers outlived it"
            time.sleep(0.2)
    finally:
        server.stop()


def _ray_workers() -> list[psutil.Process]:
    """Worker processes listening on TCP (the Ray backend's) on this machine."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "sluice.workers.main" in command and "--listen" in command:
            found.append(process)
    return found


def test_batch_transform_runs_on_ray_data_and_resumes_after_a_killed_server(
    ray_cluster: RayCluster, tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    env = {
        "SLUICE_BACKEND": "ray",
        "SLUICE_RAY_ADDRESS": ray_cluster.address,
        "SLUICE_TRANSFORM_CHUNK_BYTES": "4000",  # ~25 rows a chunk: many chunks
    }
    estimator = models.digits_logreg()

    def expected(rows: Any) -> list[str]:
        return [str(v) for v in estimator.predict(rows)]

    server = RunningServer(tmp_path / "home", env)
    try:
        sm, _ = clients(server.url)
        model(sm, artifacts)
        put(server, "in/a.csv", csv_rows(ROWS[:300]))
        transform(sm, "csv", "s3://bucket/in/", instances=2)
        job = finished(sm, "csv", timeout=120)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        assert out(server, "out/csv/a.csv.out").read_text().splitlines() == expected(ROWS[:300])

        rows = ROWS[:90].copy()
        rows[41, 3] = float("nan")  # row 42: the model refuses it
        target = out(server, "pq/rows.parquet")
        target.parent.mkdir(parents=True)
        table = pa.table({f"p{i}": rows[:, i] for i in range(64)})
        pq.write_table(table, target, row_group_size=25)
        transform(sm, "parquet", "s3://bucket/pq/", content_type="application/x-parquet",
                  Environment={"SLUICE_ON_BAD_RECORD": "continue"})  # fmt: skip
        job = finished(sm, "parquet", timeout=120)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = out(server, "out/parquet/rows.parquet.out").read_text().splitlines()
        assert lines == expected(np.delete(rows, 41, axis=0))
        (error,) = [
            json.loads(line) for line in out(server, "out/parquet/rows.parquet.out.errors").open()
        ]
        assert error["line"] == 42

        many = ROWS[:1200]
        model(sm, artifacts, name="slow", SLOW_SECONDS="0.2")
        put(server, "big/rows.csv", csv_rows(many))
        transform(sm, "resumed", "s3://bucket/big/", model="slow", instances=2)
        parts = server.home / "transforms" / "resumed"
        until(lambda: len(list(parts.glob("*.out"))) >= 5, timeout=120)
        assert not _ray_workers()  # Ray Data's actors hold the model, not worker processes
        server.stop(signal.SIGKILL)
        assert not out(server, "out/resumed/rows.csv.out").exists(), "finished before the kill"
    finally:
        server.stop()
    restarted = RunningServer(tmp_path / "home", env)
    try:
        sm, _ = clients(restarted.url)
        job = finished(sm, "resumed", timeout=180)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = out(restarted, "out/resumed/rows.csv.out").read_text().splitlines()
        assert lines == expected(many)
    finally:
        restarted.stop()


# Last in this module: the second node stays dead.
async def test_a_killed_node_has_its_instance_replaced_on_the_other(
    backend: RayBackend, ray_cluster: RayCluster, artifacts: dict[str, Path]
) -> None:
    restarts: list[int] = []
    pool = await backend.start_variant(
        "ep/B", _model(artifacts["logreg"]), 2, lambda: restarts.append(1)
    )
    assert isinstance(pool, WorkerPool)
    try:
        on_second = [
            w for w in _instances(pool) if ray_cluster.node_resource(w.node or "") == "second"
        ]
        assert len(on_second) == 1
        ray_cluster.second.kill()
        # Once the gateway has seen its connection drop, requests go to the head alone
        # (one in flight on the killed worker would fail: it may have been the cause).
        await wait_until(lambda: len(pool.live) == 1, timeout=10)
        for _ in range(20):
            answer = await pool.invoke(ROW, "application/json", "application/json")
            assert json.loads(answer.body)["predictions"] == [0]
        await wait_until(
            lambda: (
                len(pool.live) == 2
                and all(ray_cluster.node_resource(w.node or "") == "head" for w in _instances(pool))
            ),
            timeout=90,
        )
        assert restarts == [1]
        answers = await asyncio.gather(
            *(pool.invoke(ROW, "application/json", "") for _ in range(50))
        )
        assert {json.loads(a.body)["predictions"][0] for a in answers} == {0}
    finally:
        await pool.stop()

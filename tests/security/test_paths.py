"""Paths a request names: read and written only under the allowed roots, safely copied."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluice.client import Client
from sluice.errors import SluiceError, ValidationError
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path_factory.mktemp("paths") / "home", {"SLUICE_MAX_ARTIFACT_BYTES": str(2**20)}
    )
    yield running
    running.stop()


def refused(server: RunningServer, artifact: str, match: str) -> None:
    """The server refuses a path of its own machine (a file:// URI: the client uploads
    plain paths it can read itself)."""
    if "://" not in artifact:
        artifact = Path(artifact).as_uri()
    with Client(server.url) as client, pytest.raises(ValidationError, match=match) as info:
        client.create_model("refused", artifact)
    assert info.value.field == "artifact"
    with Client(server.url) as client:
        assert "refused" not in [m.name for m in client.list_models()]


def test_model_data_outside_the_allowed_roots_is_refused(server: RunningServer) -> None:
    for outside in ("/root", "/etc", "file:///etc/passwd", "/dev/zero", "/proc/self/environ"):
        refused(server, outside, "outside the folders")
    refused(server, str(server.home), "home")
    refused(server, str(server.home / "sluice.db"), "home")
    refused(server, str(server.home.parent), "home")  # a folder holding the home
    refused(server, str(server.home / "s3" / ".." / "credentials.json"), "home")


def test_special_files_and_links_out_are_refused(server: RunningServer, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(server, str(fifo), "not a regular file")
    linked = models.write_sklearn(tmp_path / "linked", models.digits_logreg())
    (linked / "secrets.txt").symlink_to("/etc/passwd")
    refused(server, str(linked), "links outside")
    (linked / "secrets.txt").unlink()
    (linked / "etc").symlink_to("/etc")
    refused(server, str(linked), "links outside")
    (linked / "etc").unlink()
    os.mkfifo(linked / "pipe")
    refused(server, str(linked), "not a regular file")
    (linked / "pipe").unlink()
    (linked / "alias.joblib").symlink_to(linked / "model.joblib")  # inside: fine
    with Client(server.url) as client:
        assert client.create_model("linked", linked.as_uri()).runtime == "sklearn"


def test_copies_are_capped_and_leave_nothing_half_done(
    server: RunningServer, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "model.joblib").write_bytes(b"\0" * (2**20 + 1))
    refused(server, str(big), "over 1,048,576 bytes")
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = 8 * 2**20
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    assert bomb.stat().st_size < 2**20  # small packed, large unpacked
    refused(server, str(bomb), "over 1,048,576 bytes")
    assert not list((server.home / "models").glob(".staging-*"))


def test_a_registry_report_is_never_loadable_as_a_model(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        client.create_package_group("reports")
        package = client.register_package("reports", str(artifacts["logreg"]))
        r = client.http.post(
            f"/api/v1/model-package-groups/reports/packages/{package.version}/reports",
            json={"name": "model.tar.gz", "content": "{}"},
        )
        assert r.status_code < 300, r.text
    kept = list((server.home / "registry").rglob("model.tar.gz"))
    assert kept
    refused(server, str(kept[0]), "home")


def test_a_package_keeps_its_own_copy(server: RunningServer, tmp_path: Path) -> None:
    source = models.write_sklearn(tmp_path / "moving", models.digits_logreg())
    with Client(server.url) as client:
        client.create_package_group("kept")
        package = client.register_package("kept", source.as_uri(), approval="Approved")
        shutil.rmtree(source)  # the training workspace is gone
        model = client.create_model("from-package", package=f"kept/{package.version}")
        assert model.name == "from-package"
        assert "kept_dir" not in json.dumps(
            client.http.get(f"/api/v1/model-package-groups/kept/packages/{package.version}").json()
        )
    with Client(server.url) as client, pytest.raises(ValidationError) as info:
        client.register_package("kept", "file:///etc")
    assert info.value.field == "artifact_uri"


def test_capture_and_experiment_destinations_are_checked(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    with Client(server.url) as client:
        client.create_model("d", str(artifacts["logreg"]))
        for destination in ("/etc/sluice-capture", str(server.home / "capture-here"), "/"):
            with pytest.raises(ValidationError) as info:
                client.create_endpoint_config(
                    "c-bad", [{"name": "A", "model": "d"}],
                    data_capture={"destination": destination},
                )  # fmt: skip
            assert info.value.field == "DestinationS3Uri"
        for fine in ("s3://bucket/capture", str(tmp_path / "capture")):
            client.create_endpoint_config(
                f"c-{abs(hash(fine)) % 1000}", [{"name": "A", "model": "d"}],
                data_capture={"destination": fine},
            )  # fmt: skip


def test_monitoring_baselines_are_checked_and_kept(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    with Client(server.url) as client:
        client.create_model("mon", str(artifacts["logreg"]))
        client.create_endpoint_config("mon", [{"name": "A", "model": "mon"}])
        client.create_endpoint("mon", "mon", wait=True)
    outside = {"name": "s-out", "schedule": "rate(1 hour)",
               "job": {"endpoint": "mon", "baseline": "/etc"}}  # fmt: skip
    r = httpx.post(f"{server.url}/api/v1/monitoring-schedules", json=outside)
    assert r.status_code == 400 and r.json()["field"] == "Baseline", r.text
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    for document in ("statistics.json", "constraints.json"):
        (baseline / document).write_text(json.dumps({"version": 0.0, "features": []}))
    inside = {"name": "s-in", "schedule": "rate(1 hour)",
              "job": {"endpoint": "mon", "baseline": str(baseline)}}  # fmt: skip
    r = httpx.post(f"{server.url}/api/v1/monitoring-schedules", json=inside)
    assert r.status_code == 201, r.text
    kept = Path(r.json()["job"]["baseline"])
    assert server.home in kept.parents and (kept / "statistics.json").is_file()
    shutil.rmtree(baseline)
    assert (kept / "constraints.json").is_file()


def test_clients_upload_what_is_on_their_disk(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    """A server with the defaults (auth on, no allowed roots): the client's own files reach
    it by upload only."""
    server = RunningServer(
        tmp_path / "home",
        {"SLUICE_ALLOWED_ROOTS": "[]", "SLUICE_MAX_ARTIFACT_BYTES": str(4 * 2**20)},
        auth=True,
    )
    try:
        with Client(server.url, token=server.token) as client:
            client.create_model("from-folder", str(artifacts["logreg"]))  # packed, uploaded
            client.create_model("from-tarball", str(artifacts["logreg_tar"]))
            models_ = {m.name: m for m in client.list_models()}
            assert models_["from-folder"].artifact.startswith(str(server.home / "uploads"))
            client.create_endpoint_config("c", [{"name": "A", "model": "from-tarball"}])
            client.create_endpoint("ep", "c", wait=True)
            answer = client.invoke("ep", json.dumps([models.digits()[0][0].tolist()]))
            assert answer.variant == "A"
            with pytest.raises(ValidationError, match="outside the folders"):
                client.create_model("server-path", f"file://{artifacts['logreg']}")
            not_tar = tmp_path / "notes.txt"
            not_tar.write_text("hello")
            with pytest.raises(ValidationError, match="tar archive"):
                client.upload(not_tar)
            big = tmp_path / "big"
            big.mkdir()
            (big / "weights.bin").write_bytes(os.urandom(5 * 2**20))
            with pytest.raises(SluiceError, match="over 4,194,304 bytes") as info:
                client.upload(big)
            assert info.value.code == "PayloadTooLarge"
        assert sorted(p.name for p in (server.home / "uploads").iterdir()) == sorted(
            p.name for p in (server.home / "uploads").glob("*.tar.gz")
        )  # no partial upload left
        r = httpx.post(
            f"{server.url}/api/v1/uploads",
            content=artifacts["logreg_tar"].read_bytes(),
            headers={"Authorization": "Bearer nope-nope-nope-nope"},
        )
        assert r.status_code == 401
    finally:
        server.stop()

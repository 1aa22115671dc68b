"""Ground truth and outcomes posted to a running server, then joined by a shadow report
to the capture that server wrote while real models answered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from sluice.client import Client
from sluice.errors import SluiceError
from sluice.reports.compare import Source, shadow_report
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import digit_rows, send_many

pytestmark = pytest.mark.slow


def test_labels_posted_before_and_after_predictions_join_the_capture(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    _, y = models.digits()
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_model("tree", str(artifacts["tree"]))
        client.create_endpoint_config(
            "cfg",
            [{"name": "A", "model": "logreg"}],
            [{"name": "shadow", "model": "tree", "sampling_percentage": 100}],
            {"sampling_percentage": 100},
        )
        client.create_endpoint("ep", "cfg", wait=True, timeout=60)
        # Half the labels arrive before the requests are even made (JSON records) ...
        early = [{"inference_id": f"req-{i}", "label": int(y[i])} for i in range(0, 200)]
        assert client.put_ground_truth("ep", early) == 200
        replies = asyncio.run(send_many(server.url, "ep", digit_rows(400)))
        assert {r.status for r in replies} == {200}
        # ... the rest afterwards, as a CSV upload.
        csv = "inference_id,label\n" + "".join(f"req-{i},{int(y[i])}\n" for i in range(200, 400))
        assert client.put_ground_truth("ep", csv.encode(), "text/csv") == 200
        client.delete_endpoint("ep")  # flushes capture
    home = server.home
    report = shadow_report(Source("ep", home / "capture", home / "ground-truth"), "A", ["shadow"])
    c = report["comparisons"][0]
    assert c["paired_rows"] == 400
    assert c["quality"]["labelled_rows"] == 400
    # Accuracy as the models themselves score on the same rows.
    x, _ = models.digits()
    logreg, tree = models.digits_logreg(), models.digits_tree()
    expected_a = float((logreg.predict(x[:400]) == y[:400]).mean())
    expected_b = float((tree.predict(x[:400]) == y[:400]).mean())
    assert c["quality"]["baseline"]["accuracy"]["value"] == pytest.approx(expected_a, abs=1e-6)
    assert c["quality"]["candidate"]["accuracy"]["value"] == pytest.approx(expected_b, abs=1e-6)
    agreement = float((logreg.predict(x[:400]) == tree.predict(x[:400])).mean())
    assert c["agreement"]["rate"]["value"] == pytest.approx(agreement, abs=1e-6)
    assert c["agreement"]["top_k"]["rows"] == 400  # both return probabilities
    files = list((home / "ground-truth" / "ep").rglob("*.jsonl"))
    record = json.loads(files[0].read_text().splitlines()[0])
    assert set(record) == {"groundTruthData", "eventMetadata", "eventVersion"}


def test_bad_label_posts_are_refused_whole(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_endpoint_config("cfg", [{"name": "A", "model": "logreg"}])
        client.create_endpoint("ep", "cfg", wait=True, timeout=60)
        with pytest.raises(SluiceError, match="does not exist") as unknown:
            client.put_ground_truth("nope", [{"inference_id": "a", "label": 1}])
        assert unknown.value.status == 404
        cases = [
            (
                [{"inference_id": "a", "label": 1}, {"inference_id": "", "label": 2}],
                "records[1].inference_id",
            ),
            ([{"inference_id": "a"}], "records[0].label"),
            ([{"inference_id": "a", "label": {"x": 1}}], "records[0].label"),
            ([{"inference_id": "x" * 65, "label": 1}], "records[0].inference_id"),
        ]
        for records, field in cases:
            with pytest.raises(SluiceError) as bad:
                client.put_ground_truth("ep", records)
            assert (bad.value.status, bad.value.field) == (400, field)
        for body, kind, words in [
            (b"{not json", "application/json", "not JSON"),
            (b'{"inference_id": "a", "label": 1}\n{oops', "application/jsonlines", "line 2"),
            (b"id,label\na,1\n", "text/csv", "header row"),
            (b"a,1", "application/xml", "not accepted"),
        ]:
            with pytest.raises(SluiceError, match=words):
                client.put_ground_truth("ep", body, kind)
        with pytest.raises(SluiceError, match="finite number") as outcome:
            client.put_outcomes("ep", [{"inference_id": "a", "name": "revenue", "value": "lots"}])
        assert outcome.value.field == "records[0].value"
        assert not (server.home / "ground-truth").exists() or not list(
            (server.home / "ground-truth").rglob("*.jsonl")
        )
        assert not (server.home / "outcomes").exists()
        assert (
            client.put_outcomes("ep", [{"inference_id": "a", "name": "revenue", "value": 9.5}]) == 1
        )
        response = httpx.post(
            f"{server.url}/api/v1/endpoints/ep/outcomes",
            content=json.dumps(
                {"outcomeData": {"name": "click", "value": 1}, "eventMetadata": {"eventId": "b"}}
            ).encode(),
            headers={"Content-Type": "application/jsonlines"},
        )
        assert response.status_code == 200 and response.json() == {"accepted": 1}

"""Cache keys: what changes them and what does not."""

from __future__ import annotations

from typing import Any

from sluice.pipelines.caching import expire_after_s, explain, key

DIGESTS = {"s3://b/e1/code.py": "c1", "s3://b/e1/data": "d1", "s3://b/e2/data": "d1"}


def arguments(execution: str, data: str = "s3://b/e1/data", image: str = "img:1") -> dict[str, Any]:
    return {
        "AppSpecification": {"ImageUri": image},
        "ProcessingInputs": [
            {"S3Input": {"S3Uri": "s3://b/e1/code.py"}},
            {"S3Input": {"S3Uri": data}},
        ],
        "ProcessingOutputConfig": {
            "Outputs": [{"S3Output": {"S3Uri": f"s3://b/pipe/{execution}/out"}}]
        },
    }


def test_the_key_ignores_the_execution_and_where_same_bytes_came_from() -> None:
    first, _ = key("Processing", arguments("exec1"), "exec1", DIGESTS.__getitem__)
    again, _ = key("Processing", arguments("exec2"), "exec2", DIGESTS.__getitem__)
    moved, _ = key("Processing", arguments("exec3", "s3://b/e2/data"), "exec3", DIGESTS.__getitem__)
    assert first == again == moved


def test_the_key_changes_with_code_data_or_arguments_and_says_why() -> None:
    _, before = key("Processing", arguments("e1"), "e1", DIGESTS.__getitem__)
    changed = {**DIGESTS, "s3://b/e1/code.py": "c2"}
    other, now = key("Processing", arguments("e2"), "e2", changed.__getitem__)
    assert other != key("Processing", arguments("e1"), "e1", DIGESTS.__getitem__)[0]
    assert explain(now, before) == [
        "input ProcessingInputs[0].S3Input.S3Uri holds other bytes now (s3://b/e1/code.py)"
    ]
    _, image = key("Processing", arguments("e2", image="img:2"), "e2", DIGESTS.__getitem__)
    assert explain(image, before) == ["argument AppSpecification.ImageUri: 'img:1' -> 'img:2'"]


def test_expiry_reads_iso_8601_durations() -> None:
    assert expire_after_s("P30D") == 30 * 86400
    assert expire_after_s("PT1H30M") == 5400
    assert expire_after_s("P1W") == 7 * 86400
    assert expire_after_s(None) is None
    assert expire_after_s("soon") is None


def test_a_transform_keys_by_what_its_model_is_not_by_its_name() -> None:
    def transform(model: str) -> dict[str, Any]:
        return {"ModelName": model, "TransformInput": {"DataSource": {"S3DataSource": {
            "S3Uri": "s3://b/e1/data"}}}}  # fmt: skip

    first, _ = key("Transform", transform("m-e1-aaa"), "e1", DIGESTS.__getitem__, {"m-e1-aaa": "x"})
    again, _ = key("Transform", transform("m-e2-bbb"), "e2", DIGESTS.__getitem__, {"m-e2-bbb": "x"})
    other, _ = key("Transform", transform("m-e3-ccc"), "e3", DIGESTS.__getitem__, {"m-e3-ccc": "y"})
    assert first == again != other

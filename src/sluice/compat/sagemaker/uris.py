"""S3 URIs on a server without S3: `s3://bucket/key` lives at `<home>/s3/bucket/key`.

Scripts written for SageMaker name S3 locations for model data and captures; here they
work unchanged, against a directory that stands in for S3. Other URIs pass through.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from sluice.compat.sagemaker.shapes import ValidationException


def local_uri(uri: str, s3_root: Path, field: str) -> str:
    """A path or file:// URI for `uri`; s3:// URIs map under `s3_root`."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "s3":
        return uri
    key = parsed.path.lstrip("/")
    if not parsed.netloc or ".." in Path(key).parts:
        raise ValidationException(f"{uri!r} is not an s3://bucket/key URI", field=field)
    return str(s3_root / parsed.netloc / key)

"""The SluiceError tree. Each class fixes its error code and HTTP status; nothing web here."""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every error sluice reports to a user."""

    code = "InternalFailure"
    status = 500
    retry_after_s: int | None = None
    """Set where retrying is the remedy: sent as the Retry-After header."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def server_side(self) -> bool:
        """Counts as a 5xx (the service's or the model's fault) rather than a 4xx."""
        return self.status >= 500

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class ValidationError(SluiceError):
    """The request is malformed or names something invalid."""

    code = "ValidationError"
    status = 400


class UnsupportedContentType(ValidationError):
    code = "UnsupportedContentType"
    status = 415


class PayloadTooLarge(ValidationError):
    code = "PayloadTooLarge"
    status = 413


class NotFound(SluiceError):
    code = "ResourceNotFound"
    status = 404

    def __init__(
        self, message: str, *, field: str | None = None, resource: tuple[str, str] | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.resource = resource
        """What is missing and its name, e.g. ("endpoint config", "cfg-2")."""


class AlreadyExists(SluiceError):
    code = "ResourceInUse"
    status = 409

    def __init__(
        self, message: str, *, field: str | None = None, resource: tuple[str, str] | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.resource = resource
        """What exists already and its name, e.g. ("model", "logreg")."""


class InvalidState(SluiceError):
    """The resource exists but is not in a state that allows the operation."""

    code = "ResourceInUse"
    status = 409


class ModelError(SluiceError):
    """The model raised while handling a request (SageMaker's ModelError, HTTP 424)."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, *, original_status: int = 500) -> None:
        super().__init__(message)
        self.original_status = original_status

    @property
    def server_side(self) -> bool:
        return self.original_status >= 500


class WorkerUnavailable(SluiceError):
    """No worker could take the request, or the worker died while holding it."""

    code = "ServiceUnavailable"
    status = 503


class Restoring(WorkerUnavailable):
    """The endpoint is coming back after a restart of the server: worth retrying."""

    retry_after_s = 1


class ModelNotReady(SluiceError):
    """A multi-model endpoint's target model is still being loaded: retry."""

    code = "ModelNotReadyException"
    status = 429
    retry_after_s = 1


class ModelLoadError(SluiceError):
    """A model could not be loaded by its runtime."""

    code = "ModelLoadError"
    status = 500


class LimitExceeded(SluiceError):
    """A request would go over a limit (SageMaker's ResourceLimitExceeded)."""

    code = "ResourceLimitExceeded"
    status = 400

"""Every named exception edgecv raises, in one place.

Each carries a stable ``code`` (used as the job ``error.code`` and in HTTP bodies) and a message that
tells the user what to do. Translation to user text happens only at the edges (CLI, HTTP).
"""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``str(err)`` is the human message."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(EdgecvError):
    """A setting is wrong. ``key`` is the dotted key (``workers``, ``sync.url``) when one is to blame,
    ``value`` the offending value, ``hint`` what is expected, ``choices`` the valid keys or names."""

    code = "config_invalid"

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: object = None,
        hint: str | None = None,
        choices: tuple[str, ...] | list[str] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.key = key
        self.value = value
        self.hint = hint
        self.choices = tuple(choices)


class ModelNotFound(EdgecvError):
    code = "model_not_found"


class ModelPackageError(EdgecvError):
    """A model package is malformed, its weights are missing, or a sha256 does not match."""

    code = "model_package_invalid"


class ModelBundleError(EdgecvError):
    """A model bundle (``.edgecv``) cannot be packed, trusted or installed: a bad or untrusted signature,
    a changed or missing file, a truncated archive, a package that does not match its manifest."""

    code = "model_bundle_invalid"


class AcceptanceFailed(ModelBundleError):
    """A bundle's acceptance check failed on this device: the model is not switched to."""

    code = "acceptance_failed"


class InstallInProgress(ModelBundleError):
    """Another ``edgecv models install`` or ``rollback`` of the same model is running."""

    code = "install_in_progress"


class ImageUnreadable(EdgecvError):
    code = "image_unreadable"


class InferenceError(EdgecvError):
    code = "inference_error"


class PrivacyError(EdgecvError):
    """An image could not be checked for faces (undecodable, the face model failed): it stays here."""

    code = "privacy_check_failed"


class PipelineError(EdgecvError):
    code = "pipeline_error"


class RejectedFile(EdgecvError):
    """Ingest refused a file; it is quarantined with this message as the reason."""

    code = "rejected"


class JobNotFound(EdgecvError):
    code = "job_not_found"


class ObservationNotFound(EdgecvError):
    code = "observation_not_found"


class StoreError(EdgecvError):
    code = "store_error"


class SchemaTooNew(StoreError):
    code = "schema_too_new"


class AgentLocked(EdgecvError):
    code = "data_dir_locked"


class WebhookNotFound(EdgecvError):
    code = "webhook_not_found"


class WebhookVerificationError(EdgecvError):
    """A webhook's signature, id or timestamp did not check out; do not trust its body."""

    code = "webhook_invalid"


class CatalogError(EdgecvError):
    """A catalogue operation cannot be done as asked (bad SKU id, unusable image, malformed sku.json)."""

    code = "catalog_invalid"


class SkuNotFound(CatalogError):
    code = "sku_not_found"


class ApiError(EdgecvError):
    """An HTTP API answered with an error. ``status`` is the HTTP status, ``code`` the body's code."""

    code = "api_error"

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class ApiAuthError(ApiError):
    code = "unauthorized"


class ApiNotFound(ApiError):
    code = "not_found"


class WaitTimeout(EdgecvError):
    code = "wait_timeout"


class SyncNotConfigured(EdgecvError):
    """Upstream sync needs ``sync.url`` (and usually ``sync.api_key``)."""

    code = "sync_not_configured"


class UpstreamUnreachable(EdgecvError):
    """The tenant API could not be reached or did not answer in time (network error, timeout)."""

    code = "upstream_unreachable"


class DiskBudgetExceeded(EdgecvError):
    """The spool and job log are over ``sync.disk_budget_mb`` even after retention; new images are refused."""

    code = "disk_budget_exceeded"


class DiskFull(EdgecvError):
    """The filesystem is full (ENOSPC, SQLite's "database or disk is full", or less free space than
    ``min_free_mb``). Nothing accepted is lost: the write is retried once space returns."""

    code = "disk_full"

    @classmethod
    def writing(cls, what: str, where: object) -> DiskFull:
        return cls(
            f"disk full while writing {what} ({where}); free space on that filesystem "
            "(delete old files, raise the volume size) and edgecv resumes by itself"
        )


def is_disk_full(exc: BaseException) -> bool:
    """An OSError that means the filesystem (or the user's quota) is full."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class CannotKeep(EdgecvError):
    """An image cannot be kept for labelling (edgecv.hard_images): its job is not completed, its image is
    no longer here, or the kept images' disk share is used up."""

    code = "cannot_keep"


class ExportError(EdgecvError):
    """``edgecv export`` cannot write where it was asked to (a file in the way, an unknown format)."""

    code = "export_invalid"


class DatasetError(EdgecvError):
    """An evaluation dataset folder cannot be used (no usable labels, an unreadable annotation file)."""

    code = "dataset_invalid"


class TrainingError(EdgecvError):
    """``edgecv models train`` cannot start or go on (torch missing, a base package that cannot seed
    training, no stopped run to resume, a name already taken)."""

    code = "training_failed"


class DataDirError(EdgecvError):
    """The data dir (or a folder in it) cannot be created or written by this user."""

    code = "data_dir_unwritable"


class PortInUse(ConfigError):
    """The local API's port (``api.port``) is taken (another agent or ``edgecv serve``?)."""

    code = "port_in_use"

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message, key="api.port", value=port, hint="a free port")
        self.host = host
        self.port = port

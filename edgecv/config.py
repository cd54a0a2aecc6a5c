"""One typed configuration, read once from ``edgecv.toml`` + ``EDGECV_*`` env vars + CLI flags.

Precedence (highest first): CLI flags, environment, the TOML file, defaults. Nothing else in edgecv
reads the environment.

TOML layout: top-level keys are agent settings (``data_dir``, ``inbox``, ``default_model`` …);
``[folders]`` maps inbox sub-folders to model names; ``[sync]``, ``[api]`` and ``[webhooks]`` are
sections. Env vars: ``EDGECV_<KEY>`` for top-level keys (``EDGECV_DATA_DIR``), and
``EDGECV_<SECTION>_<KEY>`` for section keys (``EDGECV_SYNC_URL``, ``EDGECV_API_PORT``).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import math
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "EDGECV_CONFIG"
PRICE_READERS = ("price-rec", "ppocr")
FACE_POLICIES = ("blur", "box", "off")
DEFAULT_CONFIG_NAME = "edgecv.toml"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/edgecv`` (``~/.local/share/edgecv``) per user; ``/var/lib/edgecv`` for root services."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "edgecv"


@dataclass
class SyncSettings:
    url: str | None = None  # tenant API base URL; None = sync disabled
    api_key: str | None = field(default=None, repr=False)  # never logged
    device_id: str | None = None  # default: derived once and stored in the data dir
    batch_max_items: int = 100
    batch_max_bytes: int = 1_000_000
    timeout_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    image_policy: str = "none"  # none | thumbnail | full
    disk_budget_mb: int = 2048
    poll_interval_s: float = 2.0  # relay: how often to look for new results when idle
    auth_probe_s: float = 60.0  # paused on 401/403: re-try this often (no attempts counted)
    retry_after_max_s: float = 3600.0  # cap on a server's Retry-After
    thumbnail_max_px: int = 320  # image_policy = thumbnail: longest side
    retention_days: int = 30  # acknowledged outbox rows are forgotten after this (jobs stay)


@dataclass
class ApiSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8470
    token: str | None = field(default=None, repr=False)  # required when host is not loopback
    max_upload_mb: int = 25
    # Host names (besides 127.0.0.1, localhost, [::1]) the API answers to: DNS-rebinding guard
    allowed_hosts: list[str] = field(default_factory=list)


@dataclass
class WebhookSettings:
    endpoints: list[str] = field(default_factory=list)
    secret: str | None = field(default=None, repr=False)  # whsec_<base64>; required with endpoints
    events: list[str] = field(default_factory=lambda: ["job.completed", "job.failed"])
    timeout_s: float = 10.0
    max_attempts: int = 12  # then the delivery is marked failed
    backoff_base_s: float = 5.0  # first retry after ~5 s, doubling, with jitter
    backoff_max_s: float = 3600.0


@dataclass
class PrivacySettings:
    # Faces in images that leave the device (upstream image uploads, the image route for non-loopback
    # API clients): "blur" (default), "box" (filled with a flat colour) or "off" (originals leave: only
    # when you say so here). Detection results are always computed on the original, on the device.
    faces: str = "blur"
    face_threshold: float = 0.2  # face detector score from which a face is blurred (lower: more recall)
    detect_px: int = 640  # the face detector sees the image with its longer side scaled down to this


@dataclass
class RetentionSettings:
    # Spooled images / job results older than this many days are removed once synced upstream (never
    # before). 0 = keep forever. A sweep runs in the agent at start and then daily.
    images_days: int = 0
    jobs_days: int = 0


@dataclass
class MqttSettings:
    # MQTT events (edgecv.mqtt, docs/mqtt.md): off until host is set.
    host: str | None = None
    port: int | None = None  # None: 1883, or 8883 with tls
    tls: bool = False
    ca_file: Path | None = None  # with tls: the CA that signed the broker's certificate (unset: system CAs)
    cert_file: Path | None = None  # client certificate (brokers that require one)
    key_file: Path | None = None  # its private key (unset: inside cert_file)
    tls_insecure: bool = False  # skip the broker host name check (the certificate chain is still checked)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged; or EDGECV_MQTT_PASSWORD
    password_file: Path | None = None  # a file holding the password (first line), instead of password
    client_id: str | None = None  # unset: edgecv-<device id>
    topic_prefix: str | None = None  # unset: edgecv/<device id>
    qos: int = 1  # 1: at least once (acknowledged by the broker); 0: at most once
    include_result: bool = False  # the whole job result (all detections) in every event
    discovery: bool = True  # Home Assistant MQTT discovery messages for the state sensors
    discovery_prefix: str = "homeassistant"
    keepalive_s: int = 30  # the broker publishes "offline" (last will) ~1.5x this after a lost link
    state_interval_s: float = 5.0  # how often the retained state topics are refreshed (when changed)


@dataclass
class ModelPullSettings:
    # The agent asks the upstream model catalogue (sync.url) for newer signed bundles every interval_s
    # and installs them as `edgecv models install` would (docs/model-package.md). Off by default.
    enabled: bool = False
    interval_s: float = 3600.0
    models: list[str] = field(default_factory=list)  # names to follow; empty = the ones installed here


HARD_REASONS = ("low_confidence", "out_of_domain", "price_mismatch")


@dataclass
class HardImagesSettings:
    # Keep images the models find hard, for labelling (docs/hard-images.md). User flags are always kept.
    enabled: bool = False
    reasons: list[str] = field(default_factory=lambda: list(HARD_REASONS))
    rate: float = 1.0  # fraction of hard images kept (decided per job id: the same answer every time)
    confidence_low: float = 0.25  # a detection with confidence in [low, high) makes an image hard
    confidence_high: float = 0.5
    per_class_per_day: int = 20  # kept images per class (or reason) per UTC day
    max_mb: int = 256  # disk for kept images, at most this many MiB ...
    max_percent: float = 10.0  # ... and at most this share of sync.disk_budget_mb
    # Send kept images (through the privacy filter) with their results as COCO pre-labels to the tenant
    # API ([sync] url) when online. Off: they stay on the device for `edgecv export`.
    upload: bool = False


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    inbox: Path | None = None
    default_model: str = "shelf-detection-v2"
    tenant_id: str = "local"
    models_dirs: list[Path] = field(default_factory=list)  # searched before the shipped models
    device: str = "CPU"  # CPU | GPU | NPU | AUTO
    backend: str = "auto"  # auto | openvino | onnx
    precision: str | None = None  # None = the package default (int8)
    poll: bool = False  # polling observer for network shares
    poll_interval_s: float = 1.0
    settle_s: float = 2.0  # polling mode: size/mtime must be stable this long
    workers: int = 1
    preload: bool = True  # compile the default and folder models before reporting ready
    backlog_min: int = 3  # queued jobs from which a worker switches to overlapped (throughput) processing
    backlog_batch: int = 8  # jobs claimed at a time on the backlog path (1 disables it)
    backlog_mode: str = "auto"  # lanes (CPU) | queue (OpenVINO request queue) | auto: lanes on the CPU
    max_attempts: int = 3
    lease_s: float = 300.0
    max_image_pixels: int = 50_000_000
    max_file_mb: int = 100
    # Intake pauses while the data dir's filesystem has less free space than this (MiB): the job log,
    # results and the images already accepted keep room to finish (docs/operations.md)
    min_free_mb: int = 64
    log_level: str = "INFO"
    folders: dict[str, str] = field(default_factory=dict)  # inbox sub-folder → model name
    planograms: dict[str, Path] = field(default_factory=dict)  # inbox sub-folder → planogram JSON file
    # Without a planogram, name out-of-stock SKUs by reading empty-slot tags' name line with PP-OCR
    # (~8 ms per tag; legible from ~20 px tag height, i.e. 1080p and up). Off: no cost, unnamed gaps.
    read_tag_names: bool = False
    # Scene check (edgecv.runtime.scene): an image that does not look like its model's domain (a cat sent
    # to the shelf model) completes with no detections and result.domain.inDomain false. Off: every
    # image goes to the detector. domain_threshold overrides every package's own (model.json).
    domain_check: bool = True
    domain_threshold: float | None = None
    # The price reader: the shipped CRNN ("price-rec"), or PP-OCR ("ppocr"; slower, a fallback)
    price_ocr: str = "price-rec"
    # The product catalogue (edgecv.catalog): catalog/<SKU id>/*.jpg|png (+ sku.json). Shelf products are
    # named by matching them against its reference images; a product like none of them is "unknown
    # product". Unset: <data dir>/catalog. A catalogue with no SKU: products keep the detector's labels.
    catalog: Path | None = None
    catalog_threshold: float = 0.75  # similarity a product needs to be named (edgecv.catalog.matching)
    # Public keys whose signed model bundles `edgecv models install` accepts: base64 Ed25519 keys or
    # paths of .pub files from `edgecv models keygen` (relative paths: to the config file's folder).
    trusted_keys: list[str] = field(default_factory=list)
    sync: SyncSettings = field(default_factory=SyncSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    model_pull: ModelPullSettings = field(default_factory=ModelPullSettings)
    hard_images: HardImagesSettings = field(default_factory=HardImagesSettings)

    # The edgecv.toml this was read from (None: defaults, env and flags only). Not a dataclass field, so
    # not a settable key.
    source_file = None

    # Derived locations inside the data dir.
    @property
    def db_path(self) -> Path:
        return self.data_dir / "edgecv.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def catalog_dir(self) -> Path:
        return self.catalog if self.catalog is not None else self.data_dir / "catalog"

    @property
    def damaged_dir(self) -> Path:
        """Where a job log that failed the start-up check is set aside (edgecv.store.recovery)."""
        return self.data_dir / "damaged"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def hard_images_dir(self) -> Path:
        """Images kept for labelling (edgecv.hard_images)."""
        return self.data_dir / "hard"

    @property
    def user_models_dir(self) -> Path:
        return self.data_dir / "models"


_SECTIONS = {
    "sync": SyncSettings,
    "api": ApiSettings,
    "webhooks": WebhookSettings,
    "retention": RetentionSettings,
    "privacy": PrivacySettings,
    "mqtt": MqttSettings,
    "model_pull": ModelPullSettings,
    "hard_images": HardImagesSettings,
}
_MAPPINGS = {"folders", "planograms"}


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def _expected(value: Any, typ: Any, key: str, where: str) -> ConfigError:
    """``workers: must be an integer, got 'two'`` (the source, e.g. the file, in front)."""
    origin = typing.get_origin(typ)
    wanted = {list: "a list", dict: "a table"}.get(origin) or _TYPE_NAMES.get(typ, str(typ))
    hint = f"must be {wanted}"
    return ConfigError(f"{where}{key}: {hint}, got {value!r}", key=key, value=value, hint=hint)


def _coerce(value: Any, typ: Any, key: str, where: str = "") -> Any:
    """Turn a TOML or env value into the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value == ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, where)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value.strip() if isinstance(value, str) else value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):  # nan, inf: no setting means that
                raise ValueError(value)
            return number
        if typ is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError(value)
            return str(value)
        if typ is Path:
            if not isinstance(value, (str, os.PathLike)) or "\x00" in str(value):
                raise ValueError(value)
            try:
                return Path(value).expanduser()
            except RuntimeError:  # ~name of a user this system does not have
                raise ConfigError(
                    f"{where}{key}: cannot expand {str(value).split('/')[0]!r} (no such user's home); "
                    "write the full path",
                    key=key,
                    value=value,
                    hint="a path",
                ) from None
        if origin is list:
            if not isinstance(value, (str, list)):
                raise ValueError(value)
            items = value.split(",") if isinstance(value, str) else value
            return [
                _coerce(v.strip() if isinstance(v, str) else v, args[0], key, where) for v in items if v != ""
            ]
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): _coerce(v, args[1], f"{key}.{k}", where) for k, v in value.items()}
    except (TypeError, ValueError, OverflowError):
        raise _expected(value, typ, key, where) from None
    raise ConfigError(f"{where}{key}: unsupported type {typ}", key=key)  # pragma: no cover


def _apply(target: Any, values: dict[str, Any], where: str, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in names or key in _SECTIONS and not prefix:
            continue
        setattr(target, key, _coerce(value, hints[key], f"{prefix}{key}", where))


def _unknown_key(source: str, key: str, known: set[str], section: str = "") -> ConfigError:
    shown = f"{section}.{key!r}" if section else repr(key)
    return ConfigError(
        f"{source}: unknown key {shown}; known keys: {', '.join(sorted(known))}",
        key=f"{section}.{key}" if section else key,
        hint="a known key",
        choices=sorted(known),
    )


def _check_unknown(raw: dict[str, Any], source: str) -> None:
    top = {f.name for f in dataclasses.fields(Config)}
    for key, value in raw.items():
        if key not in top:
            raise _unknown_key(source, key, top)
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table", key=key, hint="must be a table")
            known = {f.name for f in dataclasses.fields(_SECTIONS[key])}
            for sub in value:
                if sub not in known:
                    raise _unknown_key(source, sub, known, key)


def _env_values(environ: typing.Mapping[str, str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for f in dataclasses.fields(Config):
        if f.name in _SECTIONS or f.name in _MAPPINGS:
            continue
        env = f"EDGECV_{f.name.upper()}"
        if env in environ:
            top[f.name] = environ[env]
    for name, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            env = f"EDGECV_{name.upper()}_{f.name.upper()}"
            if env in environ:
                sections[name][f.name] = environ[env]
    return top, sections


def find_config_file(explicit: Path | None, environ: typing.Mapping[str, str]) -> Path | None:
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Config:
    """Build the one Config: defaults ← TOML ← env ← ``overrides`` (CLI flags; ``None`` values ignored).

    ``overrides`` keys are top-level names or ``"section.key"``.
    """
    environ = os.environ if environ is None else environ
    cfg = Config()
    path = find_config_file(config_file, environ)
    if path is not None:
        raw = read_toml(path)
        cfg.source_file = path
        _check_unknown(raw, str(path))
        _apply(cfg, raw, f"{path}: ")
        for name in _SECTIONS:
            if name in raw:
                _apply(getattr(cfg, name), raw[name], f"{path}: ", f"{name}.")
        if "data_dir" in raw and not Path(raw["data_dir"]).expanduser().is_absolute():
            cfg.data_dir = (path.parent / cfg.data_dir).resolve()
        if "inbox" in raw and cfg.inbox is not None and not cfg.inbox.is_absolute():
            cfg.inbox = (path.parent / cfg.inbox).resolve()
        if "catalog" in raw and cfg.catalog is not None and not cfg.catalog.is_absolute():
            cfg.catalog = (path.parent / cfg.catalog).resolve()
        cfg.trusted_keys = [_relative_key_path(path.parent, k) for k in cfg.trusted_keys]
        for key in ("ca_file", "cert_file", "key_file", "password_file"):
            value = getattr(cfg.mqtt, key)
            if value is not None and not value.is_absolute():
                setattr(cfg.mqtt, key, (path.parent / value).resolve())
        cfg.planograms = {
            k: v if v.is_absolute() else (path.parent / v).resolve() for k, v in cfg.planograms.items()
        }
    top, sections = _env_values(environ)
    _apply(cfg, top, "env: ")
    for name, values in sections.items():
        _apply(getattr(cfg, name), values, "env: ", f"{name}.")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:
            section, sub = key.split(".", 1)
            _apply(getattr(cfg, section), {sub: value}, "option: ", f"{section}.")
        else:
            _apply(cfg, {key: value}, "option: ")
    validate(cfg)
    return cfg


def _relative_key_path(base: Path, entry: str) -> str:
    """A ``trusted_keys`` entry from the file: a relative ``.pub`` path becomes relative to ``base``; a
    base64 key (32 bytes) or an absolute path stays as it is."""
    try:
        if len(base64.b64decode(entry, validate=True)) == 32:
            return entry
    except ValueError:
        pass
    if Path(entry).expanduser().is_absolute():
        return entry
    return str((base / Path(entry)).resolve())


def _invalid(key: str, value: Any, hint: str, shown: str | None = None) -> ConfigError:
    """``key: hint, got value`` as a ConfigError carrying its fields."""
    return ConfigError(f"{key}: {hint}, got {shown or repr(value)}", key=key, value=value, hint=hint)


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def _allowed_host(name: str) -> str:
    """One ``api.allowed_hosts`` entry, lower-cased, IPv6 without brackets; ConfigError if not a bare name."""
    bare = name.strip().lower()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if len(bare) > 253 or not _HOST_NAME.fullmatch(bare):
        raise ConfigError(
            f"api.allowed_hosts: {name!r} is not a host name or IP address; list bare names such as "
            "'edge-12.local' or '192.168.1.20' (no scheme, port, path or wildcard)",
            key="api.allowed_hosts",
            value=name,
        )
    return bare


def validate(cfg: Config) -> None:
    """Checks that need more than a type: ranges and enumerations. Raises ConfigError naming the key."""
    if cfg.device.upper() not in ("CPU", "GPU", "NPU", "AUTO"):
        raise _invalid("device", cfg.device, "expected one of CPU, GPU, NPU, AUTO")
    cfg.device = cfg.device.upper()
    if cfg.backend not in ("auto", "openvino", "onnx"):
        raise _invalid("backend", cfg.backend, "expected auto, openvino or onnx")
    if cfg.backlog_mode.lower() not in ("auto", "lanes", "queue"):
        raise _invalid("backlog_mode", cfg.backlog_mode, "expected auto, lanes or queue")
    cfg.backlog_mode = cfg.backlog_mode.lower()
    if cfg.price_ocr not in PRICE_READERS:
        raise _invalid("price_ocr", cfg.price_ocr, f"expected {' or '.join(PRICE_READERS)}")
    if cfg.precision not in (None, "int8", "fp32", "fp16"):
        raise _invalid("precision", cfg.precision, "expected int8, fp32 or fp16")
    for key in ("workers", "backlog_min", "backlog_batch", "max_attempts", "max_image_pixels", "max_file_mb"):
        if getattr(cfg, key) < 1:
            raise _invalid(key, getattr(cfg, key), "must be at least 1", str(getattr(cfg, key)))
    if cfg.min_free_mb < 0:
        raise _invalid("min_free_mb", cfg.min_free_mb, "must be 0 or more", str(cfg.min_free_mb))
    if cfg.sync.image_policy not in ("none", "thumbnail", "full"):
        raise _invalid("sync.image_policy", cfg.sync.image_policy, "expected none, thumbnail or full")
    if cfg.privacy.faces not in FACE_POLICIES:
        raise _invalid("privacy.faces", cfg.privacy.faces, "expected blur, box or off")
    if not 0.0 < cfg.privacy.face_threshold < 1.0:
        raise _invalid(
            "privacy.face_threshold", cfg.privacy.face_threshold, "expected a number between 0 and 1"
        )
    if not 64 <= cfg.privacy.detect_px <= 4096:
        raise _invalid(
            "privacy.detect_px", cfg.privacy.detect_px, "expected 64..4096", str(cfg.privacy.detect_px)
        )
    for key in ("images_days", "jobs_days"):
        if getattr(cfg.retention, key) < 0:
            value = getattr(cfg.retention, key)
            raise _invalid(f"retention.{key}", value, "must be 0 (keep forever) or more days", str(value))
    hard = cfg.hard_images
    for reason in hard.reasons:
        if reason not in HARD_REASONS:
            raise _invalid("hard_images.reasons", reason, f"expected any of {', '.join(HARD_REASONS)}")
    if not 0.0 <= hard.rate <= 1.0:
        raise _invalid("hard_images.rate", hard.rate, "expected a number in 0..1")
    if not 0.0 <= hard.confidence_low < hard.confidence_high <= 1.0:
        raise _invalid(
            "hard_images.confidence_low",
            (hard.confidence_low, hard.confidence_high),
            "expected 0 <= confidence_low < confidence_high <= 1",
        )
    for key in ("per_class_per_day", "max_mb"):
        if getattr(hard, key) < 0:
            raise _invalid(f"hard_images.{key}", getattr(hard, key), "must be 0 or more")
    if not 0.0 <= hard.max_percent <= 100.0:
        raise _invalid("hard_images.max_percent", hard.max_percent, "expected 0..100")
    if cfg.model_pull.interval_s < 1:
        raise _invalid("model_pull.interval_s", cfg.model_pull.interval_s, "must be at least 1 second")
    if not (0 <= cfg.api.port < 65536):
        raise _invalid("api.port", cfg.api.port, "expected 0..65535 (0 = any free port)", str(cfg.api.port))
    cfg.api.allowed_hosts = [_allowed_host(name) for name in cfg.api.allowed_hosts]
    _validate_mqtt(cfg.mqtt)
    if not 0.0 <= cfg.catalog_threshold <= 1.0:
        raise _invalid("catalog_threshold", cfg.catalog_threshold, "expected a number in 0..1")
    if cfg.domain_threshold is not None and not 0.0 <= cfg.domain_threshold <= 1.0:
        raise _invalid("domain_threshold", cfg.domain_threshold, "expected a number in 0..1")
    for folder, path in cfg.planograms.items():
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ConfigError(
                f"planograms.{folder}: must be a path relative to the inbox", key=f"planograms.{folder}"
            )
        if not path.is_file():
            raise ConfigError(
                f"planograms.{folder}: file {path} does not exist", key=f"planograms.{folder}", value=path
            )
    for folder, model in cfg.folders.items():
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ConfigError(
                f"folders.{folder}: must be a path relative to the inbox", key=f"folders.{folder}"
            )
        if not model:
            raise ConfigError(f"folders.{folder}: model name is empty", key=f"folders.{folder}", value=model)


def _validate_mqtt(mqtt: MqttSettings) -> None:
    if mqtt.port is not None and not 0 < mqtt.port < 65536:
        raise _invalid("mqtt.port", mqtt.port, "expected 1..65535", str(mqtt.port))
    if mqtt.qos not in (0, 1):
        raise _invalid("mqtt.qos", mqtt.qos, "expected 0 or 1 (1: at least once)", str(mqtt.qos))
    if mqtt.keepalive_s < 5:
        raise _invalid("mqtt.keepalive_s", mqtt.keepalive_s, "must be at least 5", str(mqtt.keepalive_s))
    if mqtt.state_interval_s <= 0:
        raise _invalid("mqtt.state_interval_s", mqtt.state_interval_s, "must be more than 0")
    for key in ("topic_prefix", "discovery_prefix"):
        value = getattr(mqtt, key)
        if value is not None and (
            not value.strip("/") or value != value.strip("/") or any(c in value for c in "+#\x00")
        ):
            hint = "expected a topic such as 'edgecv/store-12' (no +, # or outer /)"
            raise _invalid(f"mqtt.{key}", value, hint)
    if mqtt.password is not None and mqtt.password_file is not None:
        raise ConfigError(
            "mqtt: set password or password_file, not both", key="mqtt.password_file", hint="one of them"
        )
    for key in ("ca_file", "cert_file", "key_file", "password_file"):
        value = getattr(mqtt, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"mqtt.{key}: file {value} does not exist", key=f"mqtt.{key}", value=value)
    if (mqtt.cert_file or mqtt.key_file or mqtt.ca_file or mqtt.tls_insecure) and not mqtt.tls:
        raise ConfigError(
            "mqtt: ca_file, cert_file, key_file and tls_insecure need tls = true", key="mqtt.tls", hint="true"
        )
    if mqtt.key_file is not None and mqtt.cert_file is None:
        raise ConfigError("mqtt.key_file: needs cert_file (the client certificate)", key="mqtt.cert_file")

"""Model bundles: one signed file (``NAME-VERSION.edgecv``) that carries a model package to a device.

A bundle is an uncompressed tar (the weights are already dense) whose first two members are:

- ``bundle.json``: the manifest: format, model name, version, labels and input size, the sha256 and size
  of every other member, and the acceptance settings;
- ``bundle.sig``: an Ed25519 signature over the exact bytes of ``bundle.json`` and the signer's key id.

then ``package/…`` (the package folder: ``model.json``, weights, card) and ``acceptance/…`` (a few
images and ``expected.json``: the detections the package gave on them when it was packed). The signature
is checked before anything else is read, so a member that changed after signing fails on its sha256.
Installing (gating, switching, rollback) is :mod:`edgecv.runtime.lifecycle`; the format is documented in
``docs/model-package.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from edgecv.errors import EdgecvError, ModelBundleError
from edgecv.imageio import decode, read_file, sniff
from edgecv.records import utc_now
from edgecv.runtime.package import NAME_RE, ModelPackage, load_package

FORMAT = "edgecv-bundle/1"
SUFFIX = ".edgecv"
KEY_FILE = "edgecv-signing.key"
PUB_FILE = "edgecv-signing.pub"
MANIFEST, SIGNATURE = "bundle.json", "bundle.sig"
EXPECTED = "acceptance/expected.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
MIN_AGREEMENT = 0.9  # the device's detections vs the bundle's expected ones (F1 of matched boxes)
MIN_PRECISION_AGREEMENT = 0.8  # INT8 vs FP32 on this device, where the package has both
MIN_CLASS_AGREEMENT = 0.5  # the worst class (with enough boxes) in both checks: a lost class fails
MAX_IMAGES = 16


# -- keys ----------------------------------------------------------------------------------------------


def _crypto():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def key_id(public_key) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def _raw(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public_key) -> str:
    """The base64 of the raw 32-byte key: what a ``.pub`` file holds and ``trusted_keys`` accepts."""
    return base64.b64encode(_raw(public_key)).decode("ascii")


def generate_keys(out_dir: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) and its public key (base64, one line)."""
    serialization, ed25519 = _crypto()
    out_dir = Path(out_dir)
    key_path, pub_path = out_dir / KEY_FILE, out_dir / PUB_FILE
    if not force and (key_path.exists() or pub_path.exists()):
        raise ModelBundleError(f"{key_path} already exists; keep it, or pass --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = key_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, key_path)
    pub_path.write_text(public_key_text(private.public_key()) + "\n", encoding="ascii")
    return key_path, pub_path


def load_private_key(path: Path):
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise ModelBundleError(
            f"no signing key at {path}; create one with `edgecv models keygen` or pass --key"
        ) from None
    except (ValueError, TypeError, OSError) as exc:
        raise ModelBundleError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ModelBundleError(f"{path} is not an Ed25519 key; make one with `edgecv models keygen`")
    return key


def _public_from_b64(text: str):
    _, ed25519 = _crypto()
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return ed25519.Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None


def is_inline_key(entry: str) -> bool:
    """Whether a ``trusted_keys`` entry is a base64 key itself (else it is the path of a ``.pub`` file)."""
    return _public_from_b64(entry) is not None


def trusted_public_keys(entries: list[str]) -> dict[str, object]:
    """``trusted_keys`` from the config (base64 keys or paths of ``.pub`` files) by key id."""
    keys: dict[str, object] = {}
    for entry in entries:
        key = _public_from_b64(entry)
        if key is None:
            try:
                key = _public_from_b64(Path(entry).expanduser().read_text(encoding="ascii"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelBundleError(
                    f"trusted_keys: cannot read {entry} ({getattr(exc, 'strerror', None) or exc}); "
                    "list base64 public keys or paths of .pub files made by `edgecv models keygen`"
                ) from None
            if key is None:
                raise ModelBundleError(
                    f"trusted_keys: {entry} does not hold a base64 Ed25519 public key (32 bytes); "
                    "use the .pub file `edgecv models keygen` wrote"
                )
        keys[key_id(key)] = key
    return keys


# -- packing -------------------------------------------------------------------------------------------


def _file_entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def detections_to_json(detections, labels: list[str]) -> list[dict]:
    return [
        {
            "classId": int(c),
            "label": labels[int(c)] if 0 <= int(c) < len(labels) else str(int(c)),
            "confidence": round(float(s), 4),
            "box": [round(float(v), 2) for v in box],
        }
        for box, s, c in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True)
    ]


def acceptance_set(package: ModelPackage, images: list[Path]) -> tuple[dict[str, bytes], dict]:
    """The acceptance members: the images as they are and ``expected.json``: the detections each weight
    set of the package (``openvino/int8``, ``onnx/fp32``, …, each on its own backend) gives on them, so a
    device compares the weights it runs with the same weights' output here."""
    from edgecv.runtime.detector import Detector

    if not images:
        raise ModelBundleError("an acceptance set needs at least one image; pass --images DIR")
    files: dict[str, bytes] = {}
    decoded = []
    for i, path in enumerate(images[:MAX_IMAGES]):
        data = read_file(path)
        if sniff(data) is None:
            raise ModelBundleError(f"{path} is not an image edgecv reads (JPEG, PNG, WebP, BMP)")
        name = f"acceptance/{i:03d}{Path(path).suffix.lower() or '.img'}"
        files[name] = data
        try:
            decoded.append((name, Path(path).name, decode(data)))
        except EdgecvError as exc:
            raise ModelBundleError(f"{path}: {exc}") from None
    detections: dict[str, list] = {}
    for ws in package.weights:
        detector = Detector.open(package, backend=ws.backend, precision=ws.precision)
        detections[ws.key] = [
            detections_to_json(detector.detect(image), package.labels) for _, _, image in decoded
        ]
    expected = {
        "images": [{"file": name, "source": source} for name, source, _ in decoded],
        "detections": detections,
    }
    return files, expected


def image_files(folder: Path) -> list[Path]:
    """The images in ``folder`` (sorted, by content sniffing), at most ``MAX_IMAGES``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelBundleError(f"{folder} is not a folder of images")
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and sniff(p.read_bytes()[:64]) is not None]
    if not found:
        raise ModelBundleError(f"{folder} holds no image (JPEG, PNG, WebP, BMP)")
    return found[:MAX_IMAGES]


def package_members(pkg_dir: Path) -> dict[str, bytes]:
    """Every regular file of the package folder as ``package/<relative path>`` (hidden files left out)."""
    members = {}
    for path in sorted(Path(pkg_dir).rglob("*")):
        rel = path.relative_to(pkg_dir)
        if path.is_file() and not path.is_symlink() and not any(p.startswith(".") for p in rel.parts):
            members[f"package/{rel.as_posix()}"] = path.read_bytes()
    return members


def write_bundle(
    package: ModelPackage,
    out: Path,
    private_key,
    acceptance_files: dict[str, bytes],
    expected: dict,
    *,
    min_agreement: float = MIN_AGREEMENT,
    min_precision_agreement: float = MIN_PRECISION_AGREEMENT,
    min_class_agreement: float = MIN_CLASS_AGREEMENT,
) -> dict:
    """Write the signed bundle for ``package`` (atomically) and return its manifest."""
    members = {**package_members(package.path), **acceptance_files}
    members[EXPECTED] = (json.dumps(expected, indent=1) + "\n").encode()
    manifest = {
        "format": FORMAT,
        "model": {
            "name": package.name,
            "version": package.version,
            "labels": list(package.labels),
            "input": {"width": package.input.width, "height": package.input.height},
        },
        "createdAt": utc_now(),
        "acceptance": {
            "minAgreement": min_agreement,
            "minPrecisionAgreement": min_precision_agreement,
            "minClassAgreement": min_class_agreement,
            "iou": 0.5,
        },
        "files": {name: _file_entry(data) for name, data in members.items()},
    }
    manifest_bytes = (json.dumps(manifest, indent=1) + "\n").encode()
    public = private_key.public_key()
    signature = {
        "algorithm": "ed25519",
        "keyId": key_id(public),
        "signature": base64.b64encode(private_key.sign(manifest_bytes)).decode("ascii"),
    }
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [
            (MANIFEST, manifest_bytes),
            (SIGNATURE, json.dumps(signature).encode()),
            *members.items(),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return manifest


def pack(
    pkg_dir: Path,
    out: Path,
    key_path: Path,
    images: list[Path],
) -> dict:
    """``edgecv models pack``: verify the package, run it on ``images`` for the acceptance set, sign."""
    private_key = load_private_key(key_path)
    package = load_package(Path(pkg_dir), verify=True)
    files, expected = acceptance_set(package, images)
    return write_bundle(package, out, private_key, files, expected)


# -- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle whose signature verified against a trusted key (its members are not read yet)."""

    path: Path
    manifest: dict
    key_id: str

    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["model"]["version"]


def _damaged(path: Path, exc: BaseException) -> ModelBundleError:
    return ModelBundleError(
        f"{path} is truncated or is not an edgecv bundle ({exc}); copy it again from the source"
    )


def _read_member(tar: tarfile.TarFile, expected_name: str, path: Path, limit: int = 1 << 20) -> bytes:
    member = tar.next()
    if member is None or member.name != expected_name or not member.isfile() or member.size > limit:
        raise ModelBundleError(
            f"{path}: {expected_name} is not where a bundle has it; this is not an edgecv bundle"
        )
    fh = tar.extractfile(member)
    data = fh.read() if fh is not None else b""
    if len(data) != member.size:
        raise _damaged(path, EOFError("unexpected end of data"))
    return data


def open_bundle(path: Path, trusted: dict[str, object]) -> Bundle:
    """Read ``bundle.json`` and verify ``bundle.sig`` against the ``trusted`` keys (by key id)."""
    path = Path(path)
    if not path.is_file():
        raise ModelBundleError(f"{path} does not exist")
    try:
        with tarfile.open(path, "r:") as tar:
            manifest_bytes = _read_member(tar, MANIFEST, path)
            signature_bytes = _read_member(tar, SIGNATURE, path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _damaged(path, exc) from None
    try:
        signature = json.loads(signature_bytes)
        kid, sig = signature["keyId"], base64.b64decode(signature["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ModelBundleError(f"{path}: bundle.sig is not a signature; the bundle is damaged") from None
    if not trusted:
        raise ModelBundleError(
            f"{path} is signed by key {kid}, and no key is trusted here; add the signer's .pub file "
            "to trusted_keys in edgecv.toml"
        )
    key = trusted.get(kid)
    if key is None:
        raise ModelBundleError(
            f"{path} is signed by key {kid}, which is not in trusted_keys ({', '.join(sorted(trusted))}); "
            "add the signer's .pub file to trusted_keys if you trust it"
        )
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(sig, manifest_bytes)
    except InvalidSignature:
        raise ModelBundleError(
            f"{path}: the signature does not match bundle.json (key {kid}); the bundle was changed after "
            "it was signed: do not install it"
        ) from None
    return Bundle(path, _check_manifest(path, manifest_bytes), kid)


def _check_manifest(path: Path, data: bytes) -> dict:
    try:
        manifest = json.loads(data)
        model, files = manifest["model"], manifest["files"]
        name, version = model["name"], model["version"]
        ok = manifest.get("format") == FORMAT and isinstance(files, dict)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ModelBundleError(
            f"{path}: bundle.json is not a {FORMAT} manifest; pack it again with this edgecv"
        )
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ModelBundleError(f"{path}: model name {name!r} is not a valid package name")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ModelBundleError(f"{path}: model version {version!r} is not usable as a folder name")
    for rel in files:
        parts = Path(rel).parts
        if (
            Path(rel).is_absolute()
            or ".." in parts
            or parts[0] not in ("package", "acceptance")
            or len(parts) < 2
        ):
            raise ModelBundleError(f"{path}: bundle.json lists {rel!r}, outside package/ and acceptance/")
    if EXPECTED not in files or "package/model.json" not in files:
        raise ModelBundleError(f"{path}: bundle.json lists no package/model.json or {EXPECTED}")
    return manifest


def extract_bundle(bundle: Bundle, dest: Path) -> None:
    """Write every member into ``dest`` (``package/`` as ``dest/<name>``), checking each sha256 and that
    each listed member is there once. ``dest`` is a staging folder the caller removes on failure."""
    files: dict = bundle.manifest["files"]
    seen: set[str] = set()
    try:
        with tarfile.open(bundle.path, "r:") as tar:
            for member in tar:
                if member.name in (MANIFEST, SIGNATURE):
                    continue
                entry = files.get(member.name)
                if entry is None or member.name in seen or not member.isfile():
                    raise ModelBundleError(
                        f"{bundle.path}: member {member.name!r} is not listed in the signed bundle.json; "
                        "the bundle was changed after it was signed"
                    )
                seen.add(member.name)
                _extract_one(tar, member, entry, _target(bundle, dest, member.name), bundle.path)
    except (tarfile.TarError, EOFError) as exc:
        raise _damaged(bundle.path, exc) from None
    missing = sorted(set(files) - seen)
    if missing:
        raise _damaged(bundle.path, EOFError(f"{len(missing)} file(s) missing, first {missing[0]}"))


def _target(bundle: Bundle, dest: Path, name: str) -> Path:
    top, _, rest = name.partition("/")
    return dest / (bundle.name if top == "package" else top) / rest


def _extract_one(
    tar: tarfile.TarFile, member: tarfile.TarInfo, entry: dict, target: Path, path: Path
) -> None:
    if member.size != entry.get("size"):
        raise ModelBundleError(
            f"{path}: {member.name} is {member.size} bytes, bundle.json says {entry.get('size')}; "
            "the bundle was changed after it was signed"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fh = tar.extractfile(member)
    written = 0
    with open(target, "wb") as out:
        while fh is not None and (chunk := fh.read(1 << 20)):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
    if written != member.size:
        raise _damaged(path, EOFError(f"{member.name} ends early"))
    if digest.hexdigest() != entry.get("sha256"):
        raise ModelBundleError(
            f"{path}: {member.name} does not match its sha256 in the signed bundle.json "
            f"(expected {entry.get('sha256')}, got {digest.hexdigest()}); the file was changed: do not install it"
        )

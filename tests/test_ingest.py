"""Bad input loses nothing: each case is quarantined with a reason, or ends as a failed job with a code."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import pytest
from helpers.images import distinct_jpeg, jpeg_bytes

from edgecv.ingest import ingest_file
from edgecv.logging_setup import configure_logging, log_name
from edgecv.store.counts import jobs_by_status
from edgecv.upstream.budget import DiskBudget
from edgecv.work.worker import Worker


def quarantined(config) -> dict[str, str]:
    """Quarantined file name → its reason text."""
    qdir = config.quarantine_dir
    if not qdir.exists():
        return {}
    return {
        p.name: (qdir / (p.name + ".reason")).read_text()
        for p in qdir.iterdir()
        if not p.name.endswith(".reason")
    }


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width×height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def drop(inbox: Path, name: str, data: bytes) -> Path:
    path = inbox / name
    path.write_bytes(data)
    return path


def old(path: Path) -> Path:
    """Make a file look written long ago (an incomplete old file is truncated, not still being written)."""
    os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    return path


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.jpg", b"", "empty_file"),
        ("text.jpg", b"hello, I am not a picture\n" * 10, "not_an_image"),
        ("bomb.png", png_bomb(), "too_many_pixels"),
    ],
)
def test_unusable_files_are_quarantined_with_a_reason(store, config, inbox, name, data, code):
    path = old(drop(inbox, name, data))  # a fresh empty file may still be being written (next test)
    assert ingest_file(store, config, path, inbox) is None
    assert not path.exists()
    reasons = quarantined(config)
    assert len(reasons) == 1
    ((qname, reason),) = reasons.items()
    assert qname.endswith(name) and f"code: {code}" in reason
    assert jobs_by_status(store) == {"queued": 0, "processing": 0, "completed": 0, "failed": 0}


def test_empty_file_just_created_is_retried_not_quarantined(store, config, inbox):
    from edgecv.ingest import NotReady

    path = drop(inbox, "opened.jpg", b"")  # created, not yet written (a new-folder scan sees this)
    with pytest.raises(NotReady):
        ingest_file(store, config, path, inbox)
    assert path.exists() and not quarantined(config)


def test_truncated_jpeg_is_quarantined_once_it_is_old(store, config, inbox):
    data = jpeg_bytes()
    path = old(drop(inbox, "cut.jpg", data[: len(data) // 2]))
    assert ingest_file(store, config, path, inbox) is None
    assert "code: truncated" in next(iter(quarantined(config).values()))


def test_truncated_jpeg_still_being_written_is_retried_not_quarantined(store, config, inbox):
    from edgecv.ingest import NotReady

    data = jpeg_bytes()
    path = drop(inbox, "growing.jpg", data[: len(data) // 2])
    with pytest.raises(NotReady):
        ingest_file(store, config, path, inbox)
    assert path.exists() and not quarantined(config)


def test_symlink_outside_the_inbox_is_quarantined_and_target_untouched(store, config, inbox, tmp_path):
    target = tmp_path / "secret.jpg"
    target.write_bytes(jpeg_bytes())
    link = inbox / "link.jpg"
    link.symlink_to(target)
    assert ingest_file(store, config, link, inbox) is None
    assert target.exists() and not os.path.lexists(link)
    assert "symlink_outside" in next(iter(quarantined(config).values()))


def test_unreadable_file_is_quarantined(store, config, inbox, monkeypatch):
    path = drop(inbox, "locked.jpg", jpeg_bytes())
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads anything: make the open fail the way it does for the service user
        import builtins

        real_open = builtins.open

        def deny(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied")
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", deny)
    assert ingest_file(store, config, path, inbox) is None
    monkeypatch.undo()
    assert "code: unreadable" in next(iter(quarantined(config).values()))


def test_malformed_sidecar_quarantines_image_and_sidecar(store, config, inbox):
    image = drop(inbox, "shelf.jpg", jpeg_bytes())
    drop(inbox, "shelf.json", b'{"model": "rect", oops}')
    assert ingest_file(store, config, image, inbox) is None
    reasons = quarantined(config)
    assert sorted(n.split("_", 1)[1] for n in reasons) == ["shelf.jpg", "shelf.json"]
    assert all("sidecar_invalid" in r and "not valid JSON" in r for r in reasons.values())
    assert list(inbox.iterdir()) == []


@pytest.mark.parametrize("name", ["unicode é 棚 photo.jpg", "spaces  in name.jpg", "new\nline.jpg"])
def test_odd_file_names_are_processed(store, config, inbox, name):
    path = drop(inbox, name, jpeg_bytes())
    result = ingest_file(store, config, path, inbox)
    assert result.created and result.observation.original_name == name
    assert not path.exists()
    spooled = config.data_dir / result.observation.spool_path
    assert spooled.read_bytes() == jpeg_bytes() and result.observation.sha256 in spooled.name


def test_unknown_model_fails_the_job_with_a_clear_code(store, config, inbox):
    image = drop(inbox, "x.jpg", jpeg_bytes())
    drop(inbox, "x.json", b'{"model": "no-such-model", "tags": ["aisle-3"]}')
    result = ingest_file(store, config, image, inbox)
    assert result.job.model == "no-such-model"
    assert result.observation.metadata["tags"] == ["aisle-3"]
    job = Worker(store, config).run_once()
    assert job.status == "failed" and job.error_code == "model_not_found"
    assert "'no-such-model' is not installed" in job.error_message and "rect" in job.error_message


def test_image_that_decodes_to_nothing_fails_the_job(store, config, inbox):
    data = jpeg_bytes()
    dht = data.index(b"\xff\xc4")  # a Huffman table claiming 16 × 255 codes: libjpeg refuses to decode
    garbled = data[: dht + 5] + b"\xff" * 16 + data[dht + 21 :]
    path = drop(inbox, "garbled.jpg", garbled)
    result = ingest_file(store, config, path, inbox)  # the header (size, end marker) is intact: accepted
    job = Worker(store, config).run_once()
    assert job.id == result.job.id
    assert job.status == "failed" and job.error_code == "image_unreadable"
    assert "could not be decoded" in job.error_message


def test_same_bytes_twice_return_the_existing_job(store, config, inbox):
    first = ingest_file(store, config, drop(inbox, "a.jpg", distinct_jpeg(1)), inbox)
    second = ingest_file(store, config, drop(inbox, "copy-of-a.jpg", distinct_jpeg(1)), inbox)
    assert second.job.id == first.job.id and not second.created
    assert list(inbox.iterdir()) == []


def test_folder_mapping_then_default_model(store, config, inbox):
    config.folders = {"facades": "building-model", "facades/close": "damage-model"}
    (inbox / "facades" / "close").mkdir(parents=True)
    a = ingest_file(store, config, drop(inbox / "facades", "a.jpg", distinct_jpeg(2)), inbox)
    b = ingest_file(store, config, drop(inbox / "facades" / "close", "b.jpg", distinct_jpeg(3)), inbox)
    c = ingest_file(store, config, drop(inbox, "c.jpg", distinct_jpeg(4)), inbox)
    assert (a.job.model, b.job.model, c.job.model) == ("building-model", "damage-model", "rect")


def test_exif_orientation_is_applied(store, config, inbox):
    from edgecv.imageio import decode, read_header

    data = jpeg_bytes(width=320, height=240)
    rotated = _with_exif_orientation(data, 6)  # rotate 90° clockwise on display
    header = read_header(rotated)
    assert (header.width, header.height, header.orientation) == (240, 320, 6)
    assert decode(rotated).shape[:2] == (320, 240)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM" + struct.pack(">HI", 42, 8) + ifd
    body = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + app1 + jpeg[2:]


def test_full_disk_budget_leaves_the_file_in_the_inbox(store, config, inbox):
    import numpy as np

    from edgecv.ingest import NotReady

    noise = np.random.default_rng(3).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    import cv2

    data = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert len(data) > 1_100_000
    config.sync.disk_budget_mb = 1
    path = drop(inbox, "big.jpg", data)
    with pytest.raises(NotReady, match="budget") as caught:
        ingest_file(store, config, path, inbox, budget=DiskBudget.from_config(store, config))
    assert caught.value.retry_s >= 10
    assert path.exists() and not quarantined(config)
    assert store.find_observation_by_hash(__import__("hashlib").sha256(data).hexdigest()) is None


def test_folder_planogram_is_recorded_with_the_observation(store, config, inbox, tmp_path):
    import json

    plan = tmp_path / "aisle-3.json"
    plan.write_text(
        json.dumps({"planogram": [{"row": 0, "items": [{"sku": "Fizzo Cola 330ml", "facings": 4}]}]})
    )
    config.planograms = {"aisle-3": plan}
    (inbox / "aisle-3").mkdir()
    a = ingest_file(store, config, drop(inbox / "aisle-3", "a.jpg", distinct_jpeg(70)), inbox)
    b = ingest_file(store, config, drop(inbox, "b.jpg", distinct_jpeg(71)), inbox)
    assert a.observation.metadata["planogram"][0]["items"][0]["facings"] == 4
    assert "planogram" not in b.observation.metadata


def test_spooled_image_whose_observation_was_lost_is_recovered(store, config, inbox):
    from edgecv.ingest import recover_spool

    kept = ingest_file(store, config, drop(inbox, "kept.jpg", distinct_jpeg(90)), inbox)
    lost = ingest_file(store, config, drop(inbox, "lost.jpg", distinct_jpeg(91)), inbox)
    with store.transaction() as conn:  # what a power loss can do to the last WAL transactions
        conn.execute("DELETE FROM jobs WHERE id = ?", (lost.job.id,))
        conn.execute("DELETE FROM observations WHERE id = ?", (lost.observation.id,))
    (config.spool_dir / "ab").mkdir(parents=True, exist_ok=True)
    (config.spool_dir / "ab" / ".half-written.jpg.1.2.tmp").write_bytes(b"junk")
    assert recover_spool(store, config) == 1
    again = store.find_observation_by_hash(lost.observation.sha256)
    assert again.metadata == {"recoveredFromSpool": True}
    assert [j.model for j in store.jobs_for_observation(again.id)] == ["rect"]
    assert store.find_observation_by_hash(kept.observation.sha256).id == kept.observation.id
    assert not (config.spool_dir / "ab" / ".half-written.jpg.1.2.tmp").exists()
    assert recover_spool(store, config) == 0


def test_a_name_with_control_characters_is_one_log_line(store, config, inbox, capsys):
    handler = configure_logging("INFO", "text", force=True)
    try:
        ingest_file(store, config, drop(inbox, "evil\nINFO forged.jpg", jpeg_bytes()), inbox)
        ingest_file(store, config, drop(inbox, "bad\r\x1b[2Jname.jpg", b"not an image"), inbox)
    finally:
        logging.getLogger().removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert " INFO edgecv.ingest: queued " in lines[0] and "for evil\\nINFO forged.jpg (" in lines[0]
    assert " WARNING edgecv.ingest: quarantined " in lines[1] and "bad\\r\\x1b[2Jname.jpg" in lines[1]
    reason = next(config.quarantine_dir.glob("*.reason")).read_text()
    assert reason.count("\n") == 3 and "bad\\r\\x1b[2Jname.jpg" in reason


@pytest.mark.parametrize(
    ("name", "logged"),
    [
        ("plain é 棚.jpg", "plain é 棚.jpg"),
        ("a\nb\tc\\d", "a\\nb\\tc\\\\d"),
        ("x\u2028y\x7f", "x\\u2028y\\x7f"),
        (os.fsdecode(b"raw\xffbyte"), "raw\\udcffbyte"),
    ],
)
def test_log_name_escapes_like_repr(name, logged):
    assert log_name(name) == logged

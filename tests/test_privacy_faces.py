"""Faces in images that leave the device: blurred (or blocked out) in the bytes that leave, found by the
shipped face model; originals only with ``[privacy] faces = "off"``; results computed on the original."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from helpers.api import live_api
from helpers.images import jpeg_bytes
from starlette.requests import Request

from edgecv.api.routes import get_observation_image
from edgecv.config import PrivacySettings, load_config
from edgecv.errors import ConfigError, PrivacyError
from edgecv.ingest import ingest_bytes
from edgecv.privacy import PrivacyFilter, blur_faces, privacy_header
from edgecv.runtime.faces import FaceDetector

FIXTURE = Path(__file__).parent / "fixtures" / "astronaut.jpg"
FACE = (180, 62, 268, 175)  # x1 y1 x2 y2, drawn by hand


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return FIXTURE.read_bytes()


def _sharpness(image: np.ndarray, box) -> float:
    x1, y1, x2, y2 = box
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_the_shipped_detector_finds_the_face_and_nothing_on_a_plain_image(photo, backend):
    detector = FaceDetector(backend=backend)
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    boxes = detector.detect(image)
    assert len(boxes) == 1
    x1, y1, x2, y2, score = boxes[0]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert FACE[0] < cx < FACE[2] and FACE[1] < cy < FACE[3] and score > 0.5
    assert len(detector.detect(cv2.imdecode(np.frombuffer(jpeg_bytes(), np.uint8), cv2.IMREAD_COLOR))) == 0


def test_a_face_at_40_px_in_a_1280x720_frame_is_found(detector, photo):
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    scale = 40 / (FACE[3] - FACE[1])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[300 : 300 + small.shape[0], 900 : 900 + small.shape[1]] = small
    boxes = detector.detect(frame, PrivacySettings().face_threshold)
    centre = (900 + (FACE[0] + FACE[2]) / 2 * scale, 300 + (FACE[1] + FACE[3]) / 2 * scale)
    assert any(b[0] < centre[0] < b[2] and b[1] < centre[1] < b[3] for b in boxes)


def test_outgoing_blurs_the_face_and_leaves_the_rest(photo):
    out = PrivacyFilter(PrivacySettings()).outgoing(photo, "image/jpeg")
    original = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    sent = cv2.imdecode(np.frombuffer(out.data, np.uint8), cv2.IMREAD_COLOR)
    assert out.report == {"faces": "blur", "found": 1, "detector": "centerface"}
    assert privacy_header(out.report) == "detector=centerface; faces=blur; found=1"
    assert out.media_type == "image/jpeg" and sent.shape == original.shape
    assert _sharpness(sent, FACE) < _sharpness(original, FACE) / 10  # no features left
    corner = (400, 380, 500, 500)  # the helmet, far from the face: as before (JPEG re-encoding aside)
    assert np.abs(sent[380:500, 400:500].astype(int) - original[380:500, 400:500]).mean() < 4
    assert _sharpness(sent, corner) > _sharpness(original, corner) / 2


def test_box_mode_blocks_the_face_out_and_off_sends_the_original(photo):
    boxed = PrivacyFilter(PrivacySettings(faces="box")).outgoing(photo, "image/jpeg")
    image = cv2.imdecode(np.frombuffer(boxed.data, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = FACE
    assert np.abs(image[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].astype(int) - 128).max() < 12
    off = PrivacyFilter(PrivacySettings(faces="off")).outgoing(photo, "image/jpeg")
    assert off.data == photo and off.report == {"faces": "off"}


def test_an_image_that_cannot_be_checked_never_leaves_as_it_is():
    with pytest.raises(PrivacyError, match="image not sent: it could not be checked for faces"):
        PrivacyFilter(PrivacySettings()).outgoing(b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")


def test_blur_faces_clips_boxes_at_the_border():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    out = blur_faces(image.copy(), np.array([[-10, -10, 30, 40, 0.9], [110, 90, 140, 130, 0.8]], np.float32))
    assert out.shape == image.shape and not np.array_equal(out[:40, :30], image[:40, :30])
    assert np.array_equal(out[60:80, 40:80], image[60:80, 40:80])


def test_privacy_settings_are_validated():
    with pytest.raises(ConfigError, match="privacy.faces: expected blur, box or off, got 'pixelate'"):
        load_config(overrides={"privacy.faces": "pixelate"}, environ={})
    with pytest.raises(ConfigError, match="privacy.face_threshold"):
        load_config(overrides={"privacy.face_threshold": 1.5}, environ={})
    assert load_config(environ={"EDGECV_PRIVACY_FACES": "off"}).privacy.faces == "off"


# -- where images leave --------------------------------------------------------------------------


def _remote_request(host: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": (host, 50123)})


def test_the_image_route_blurs_for_remote_clients_and_not_for_this_machine(config, store, photo):
    obs = ingest_bytes(store, config, photo, name="aisle.jpg", model="rect").observation
    with live_api(config, store) as api:
        local = requests.get(f"{api.url}/v1/tenants/local/observations/{obs.id}/image", timeout=30)
        assert local.content == photo
        assert local.headers["x-edgecv-privacy"] == "client=loopback; faces=original"
        state = api.app.state.edgecv
    remote = get_observation_image(state, obs.id, _remote_request("192.0.2.10"))
    assert (
        remote.status_code == 200
        and remote.headers["x-edgecv-privacy"] == "detector=centerface; faces=blur; found=1"
    )
    sent = cv2.imdecode(np.frombuffer(remote.body, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    assert _sharpness(sent, FACE) < _sharpness(original, FACE) / 10
    off = dataclasses.replace(state, privacy=PrivacyFilter(PrivacySettings(faces="off")))
    assert (
        get_observation_image(off, obs.id, _remote_request("192.0.2.10")).headers["x-edgecv-privacy"]
        == "faces=off"
    )


def test_jobs_record_the_policy_their_image_leaves_under(tmp_path, models_root, photo):
    from click.testing import CliRunner

    from edgecv.cli import main

    path = tmp_path / "face.jpg"
    path.write_bytes(photo)
    env = {
        "EDGECV_DATA_DIR": str(tmp_path / "d"),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_CONFIG": "",
    }
    result = CliRunner(env=env).invoke(main, ["run", str(path), "--model", "rect", "--json"])
    assert json.loads(result.stdout)[0]["result"]["privacy"] == {"faces": "blur"}
    env["EDGECV_PRIVACY_FACES"] = "off"
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())  # a new job
    result = CliRunner(env=env).invoke(main, ["run", str(path), "--model", "rect", "--json"])
    assert json.loads(result.stdout)[0]["result"]["privacy"] == {"faces": "off"}


@pytest.mark.process
@pytest.mark.parametrize("faces", ["blur", "off"])
def test_uploaded_images_are_blurred_unless_the_config_says_off(tmp_path, photo, faces):
    from helpers.sync_server import device_config, make_jobs, start_server

    from edgecv.store import Store
    from edgecv.upstream.summary import sync_all

    server = start_server(tmp_path / "upstream.db")
    device = Store(tmp_path / "device" / "edgecv.db")
    try:
        make_jobs(device, 2)
        spool = tmp_path / "device" / "spool"
        spool.mkdir(parents=True)
        (spool / "img-0.jpg").write_bytes(photo)
        (spool / "img-1.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")  # cannot be checked: stays here
        cfg = device_config(tmp_path / "device", server.url, image_policy="full")
        cfg.privacy = PrivacySettings(faces=faces)
        summary = sync_all(device, cfg, progress=False)
        assert summary.complete and summary.images_uploaded == (1 if faces == "blur" else 2)
        rows = server.upstream.conn.execute("SELECT data, privacy FROM images").fetchall()
        kept = device.conn.execute(
            "SELECT state, privacy, last_error FROM sync_images ORDER BY 1, 3"
        ).fetchall()
    finally:
        device.close()
        server.stop()
    if faces == "off":
        assert sorted(r[0] for r in rows) == sorted([photo, b"\xff\xd8\xff\xe0 broken"])
        assert {r[1] for r in rows} == {"faces=off"}
        return
    assert len(rows) == 1 and rows[0][1] == "detector=centerface; faces=blur; found=1"
    sent = cv2.imdecode(np.frombuffer(rows[0][0], np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    assert _sharpness(sent, FACE) < _sharpness(original, FACE) / 10
    assert kept[0][0] == "missing" and "could not be checked for faces" in kept[0][2]
    assert kept[1][0] == "sent" and json.loads(kept[1][1]) == {
        "detector": "centerface",
        "faces": "blur",
        "found": 1,
    }

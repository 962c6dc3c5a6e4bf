"""Screenshots: refused like events, blacked out, encrypted in chunks, read for a purpose."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin
from sqlalchemy import text

from tests.conftest import make_dataset

BLOBS = "/v1/datasets/ux/blobs"


def png(width: int = 64, height: int = 48, note: str = "CANARY-SCREEN-7f3a") -> bytes:
    image = Image.new("RGB", (width, height), (200, 120, 40))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", note)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def upload(client, headers, clock, body: bytes, **params):
    query = {"subject": "emp-1", "time": clock().isoformat(), "app": "Figma", **params}
    return client.post(BLOBS, params=query, content=body, headers=headers)


def test_upload_black_out_and_read_back(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    collector = auth("col-1", "collector")
    regions = json.dumps([{"x": 0, "y": 0, "w": 10, "h": 5}])
    stored = upload(client, collector, clock, png(), regions=regions)
    assert stored.status_code == 201, stored.text
    blob = stored.json()
    assert blob["regions"] == 1

    reader = auth("rd-1", "reader", purpose="agent_training")
    got = client.get(f"{BLOBS}/{blob['id']}", headers=reader)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(got.content))
    assert image.getpixel((3, 2)) == (0, 0, 0)
    assert image.getpixel((30, 30)) == (200, 120, 40)
    assert b"CANARY-SCREEN" not in got.content  # metadata dropped on re-encoding

    with vault.db.read() as conn:
        stored_bytes = b"".join(
            bytes(c) for (c,) in conn.execute(text("SELECT ciphertext FROM blobs"))
        )
    assert b"\x89PNG" not in stored_bytes
    assert b"CANARY" not in stored_bytes

    # Purpose, role and dataset checks as for events.
    bad = auth("rd-1", "reader", purpose="performance_review")
    assert client.get(f"{BLOBS}/{blob['id']}", headers=bad).status_code == 403
    assert client.get(f"{BLOBS}/{blob['id']}", headers=collector).status_code == 403
    make_dataset(vault, "other")
    other = f"/v1/datasets/other/blobs/{blob['id']}"
    assert client.get(other, headers=reader).status_code == 404


def test_refused_and_malformed_uploads(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    collector = auth("col-1", "collector")
    refused = upload(client, collector, clock, png(), app="1Password")
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"reason": "excluded_app"}
    private = upload(client, collector, clock, png(), private_window="true")
    assert private.json()["error"]["details"] == {"reason": "private_window"}
    assert upload(client, collector, clock, b"not an image").status_code == 422
    outside = json.dumps([{"x": 500, "y": 0, "w": 1, "h": 1}])
    assert upload(client, collector, clock, png(), regions=outside).status_code == 422
    assert upload(client, collector, clock, png(), regions="{bad").status_code == 400
    assert upload(client, collector, clock, png(), regions='[{"x": -1}]').status_code == 422
    assert upload(client, collector, clock, png(), time="yesterday").status_code == 422
    assert upload(client, auth("rd", "reader"), clock, png()).status_code == 403
    with vault.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM blobs")).scalar_one() == 0


def test_tampered_and_erased_blobs(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    collector = auth("col-1", "collector")
    reader = auth("rd-1", "reader", purpose="agent_training")
    first = upload(client, collector, clock, png()).json()["id"]
    second = upload(client, collector, clock, png(), subject="emp-2").json()["id"]
    with vault.db.engine.begin() as conn:
        raw = bytearray(
            conn.execute(
                text("SELECT ciphertext FROM blobs WHERE id = :i"), {"i": second}
            ).scalar_one()
        )
        raw[-20] ^= 1
        conn.execute(
            text("UPDATE blobs SET ciphertext = :c WHERE id = :i"), {"c": bytes(raw), "i": second}
        )
    broken = client.get(f"{BLOBS}/{second}", headers=reader)
    assert broken.status_code == 500
    assert broken.json()["error"]["code"] == "integrity_error"

    client.delete("/v1/subjects/emp-1", headers=auth("po", "privacy_officer"))
    gone = client.get(f"{BLOBS}/{first}", headers=reader)
    assert gone.status_code == 410

"""Files: upload limits and types, list/get/delete/content, ownership."""

from __future__ import annotations

import uuid

import pytest

from gigapy.emulator import Account, Emulator

from .conftest import Api

MB = 1024 * 1024


def upload(api: Api, name: str, data: bytes, mime: str, **extra: str) -> dict:
    response = api.post("files", files={"file": (name, data, mime)}, data={"purpose": "general", **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_upload_get_list_delete(api: Api) -> None:
    record = upload(api, "invoice.pdf", b"%PDF-1.4 fake", "application/pdf")
    assert uuid.UUID(record["id"]).version == 4
    assert record["object"] == "file" and record["bytes"] == 13 and record["filename"] == "invoice.pdf"
    assert record["purpose"] == "general" and record["access_policy"] == "private"
    assert record["modalities"] == ["text"] and isinstance(record["created_at"], int)
    assert api.get(f"files/{record['id']}").json() == record
    assert record in api.get("files").json()["data"]
    assert api.get(f"files/{record['id']}/content").content == b"%PDF-1.4 fake"
    deleted = api.post(f"files/{record['id']}/delete", files={"file": ("x", record["id"].encode())})
    assert deleted.json() == {"id": record["id"], "deleted": True, "access_policy": "private"}
    assert api.get(f"files/{record['id']}").json() == {"status": 404, "message": "File not found"}
    assert record["id"] not in [f["id"] for f in api.get("files").json()["data"]]


@pytest.mark.parametrize(
    ("name", "mime", "modality"),
    [
        ("a.png", "image/png", "image"),
        ("a.jpg", "image/jpeg", "image"),
        ("song.mp3", "audio/mpeg", "audio"),
        ("a.wav", "audio/x-wav", "audio"),
        ("a.txt", "text/plain", "text"),
        ("a.docx", "application/octet-stream", "text"),
        ("b.ogg", "application/octet-stream", "audio"),
    ],
)
def test_types(api: Api, name: str, mime: str, modality: str) -> None:
    assert upload(api, name, b"0123456789", mime)["modalities"] == [modality]


def test_unsupported_type_is_400(api: Api) -> None:
    response = api.post("files", files={"file": ("a.exe", b"MZ", "application/x-msdownload")})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Unsupported file type")
    assert api.post("files", files={"file": ("a.zzz", b"?", "application/octet-stream")}).status_code == 400


def test_size_limits(api: Api) -> None:
    big = b"\0" * (15 * MB + 1)
    response = api.post("files", files={"file": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert response.json() == {"status": 413, "message": "Payload too large"}
    assert upload(api, "ok.txt", big, "text/plain")["bytes"] == len(big)  # text allows 40 MB


def test_bad_uploads(api: Api) -> None:
    assert api.post("files", json={"file": "x"}).status_code == 400
    assert (
        api.post("files", data={"purpose": "general"}, files={"other": ("a.txt", b"x", "text/plain")}).json()["message"]
        == "file is required"
    )
    assert api.post("files", files={"file": ("a.txt", b"x", "text/plain")}, data={"purpose": "evil"}).status_code == 400


def test_files_are_private_to_their_owner() -> None:
    other = Account("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "other-secret")
    with Emulator(accounts=(other,)) as emu:
        mine, theirs = Api(emu), Api(emu, key=other.credentials)
        record = upload(mine, "a.txt", b"secret", "text/plain")
        assert theirs.get(f"files/{record['id']}").status_code == 404
        assert theirs.get(f"files/{record['id']}/content").status_code == 404
        assert theirs.get("files").json() == {"data": []}
        assert theirs.post(f"files/{record['id']}/delete").status_code == 404
        mine.close()
        theirs.close()


def test_file_store_is_capped() -> None:
    with Emulator(max_files=3) as emu:
        api = Api(emu)
        ids = [upload(api, f"{i}.txt", b"x", "text/plain")["id"] for i in range(5)]
        assert [f["id"] for f in api.get("files").json()["data"]] == ids[2:]
        api.close()

"""Assistants over raw HTTP: create, get, modify, delete, file detach; validation, 404s, ownership."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from gigapy.emulator import Account, Emulator

from ..conftest import needs_shared
from .conftest import PAYLOADS, Api

OTHER = Account("aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff", "other-secret")
WEATHER = {
    "name": "get_weather",
    "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def own_emu() -> Iterator[Emulator]:
    with Emulator(accounts=(OTHER,)) as emu:
        yield emu


@pytest.fixture(scope="module")
def mine(own_emu: Emulator) -> Iterator[Api]:
    api = Api(own_emu)
    yield api
    api.close()


@pytest.fixture(scope="module")
def theirs(own_emu: Emulator) -> Iterator[Api]:
    api = Api(own_emu, key=OTHER.credentials)
    yield api
    api.close()


def upload(api: Api, name: str = "notes.txt") -> str:
    response = api.post(
        "files", files={"file": (name, b"assistant notes", "text/plain")}, data={"purpose": "assistant"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create(api: Api, **body: object) -> dict:
    response = api.post("assistants", json={"model": "GigaChat-Pro", "name": "helper", **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_create_get_modify_delete(mine: Api) -> None:
    file_id = upload(mine, "cats.txt")
    created = create(
        mine, instructions="Answer briefly", metadata={"test": 234}, file_ids=[file_id], functions=[WEATHER]
    )
    assert set(created) == {"assistant_id", "created_at"}
    assert uuid.UUID(created["assistant_id"]).version == 4 and isinstance(created["created_at"], int)
    assistant_id = created["assistant_id"]

    (got,) = mine.get("assistants", params={"assistant_id": assistant_id}).json()["data"]
    assert got["assistant_id"] == assistant_id and got["created_at"] == created["created_at"]
    assert got["name"] == "helper" and got["instructions"] == "Answer briefly" and got["model"] == "GigaChat-Pro"
    assert got["metadata"] == {"test": 234} and got["file_ids"] == [file_id]
    assert got["files"] == [{"file_id": file_id, "name": "cats.txt"}]
    assert got["functions"] == [WEATHER] and got["threads_count"] == 0
    assert "description" not in got and got["updated_at"] >= got["created_at"]
    assert got in mine.get("assistants").json()["data"]

    # the official SDK sends every field, null meaning "leave as is"
    modified = mine.post(
        "assistants/modify",
        json={
            "assistant_id": assistant_id,
            "name": "lonely_assistant",
            "description": "Knows cats",
            "instructions": None,
            "file_ids": None,
            "metadata": None,
        },
    ).json()
    assert modified["name"] == "lonely_assistant" and modified["description"] == "Knows cats"
    assert modified["instructions"] == "Answer briefly" and modified["file_ids"] == [file_id]
    assert {k: v for k, v in modified.items() if k not in ("name", "description", "updated_at")} == {
        k: v for k, v in got.items() if k not in ("name", "updated_at")
    }

    detached = mine.post("assistants/files/delete", json={"assistant_id": assistant_id, "file_id": file_id})
    assert detached.json() == {"file_id": file_id, "deleted": True}
    assert mine.get(f"files/{file_id}").status_code == 200  # detached, not deleted
    again = mine.post("assistants/files/delete", json={"assistant_id": assistant_id, "file_id": file_id})
    assert again.status_code == 404 and again.json() == {"status": 404, "message": "File not found"}

    deleted = mine.post("assistants/delete", json={"assistant_id": assistant_id})
    assert deleted.json() == {"assistant_id": assistant_id, "deleted": True}
    gone = mine.get("assistants", params={"assistant_id": assistant_id})
    assert gone.status_code == 404 and gone.json() == {"status": 404, "message": "Assistant not found"}
    assert assistant_id not in [a["assistant_id"] for a in mine.get("assistants").json()["data"]]


@needs_shared
def test_shapes_match_the_recordings(mine: Api) -> None:
    def recorded(name: str) -> dict:
        return dict(json.loads((PAYLOADS / "assistants" / name).read_text()))

    file_id = upload(mine)
    created = mine.post(
        "assistants",
        json={
            "model": "GigaChat-Pro",
            "name": "lonely",
            "instructions": "Assistant",
            "metadata": {"test": 234},
            "file_ids": [file_id],
        },
    ).json()
    assert set(created) == set(recorded("post_assistants.json"))
    assistant_id = created["assistant_id"]
    (got,) = mine.get("assistants", params={"assistant_id": assistant_id}).json()["data"]
    listed = recorded("get_assistants.json")["data"][0]
    assert list(got)[: len(listed)] == list(listed)  # the recorded keys, in the recorded order
    modified = mine.post("assistants/modify", json={"assistant_id": assistant_id, "name": "lonely_assistant"}).json()
    modify_keys = list(recorded("post_assistant_modify.json"))
    assert list(modified)[: len(modify_keys)] == modify_keys
    detached = mine.post("assistants/files/delete", json={"assistant_id": assistant_id, "file_id": file_id}).json()
    assert list(detached) == list(recorded("post_assistant_files_delete.json"))
    deleted = mine.post("assistants/delete", json={"assistant_id": assistant_id}).json()
    assert list(deleted) == list(recorded("post_assistant_delete.json"))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "x"}, 422, "Invalid params: model is required"),
        ({"model": "NoSuchModel", "name": "x"}, 404, "No such model"),
        ({"model": "Embeddings", "name": "x"}, 404, "No such model"),
        ({"model": "GigaChat"}, 422, "Invalid params: name is required"),
        ({"model": "GigaChat", "name": 5}, 422, "Invalid params: name must be a non-empty string"),
        ({"model": "GigaChat", "name": "x", "instructions": 1}, 422, "Invalid params: instructions must be a string"),
        (
            {"model": "GigaChat", "name": "x", "file_ids": "f"},
            422,
            "Invalid params: file_ids must be an array of strings",
        ),
        ({"model": "GigaChat", "name": "x", "file_ids": [str(uuid.uuid4())]}, 404, "File not found"),
        ({"model": "GigaChat", "name": "x", "metadata": []}, 422, "Invalid params: metadata must be an object"),
        (
            {"model": "GigaChat", "name": "x", "metadata": {str(i): i for i in range(17)}},
            422,
            "Invalid params: metadata must have at most 16 keys",
        ),
        (
            {"model": "GigaChat", "name": "x", "functions": [{"name": "9bad", "parameters": {}}]},
            422,
            "Invalid params: Invalid function names. Only Latin letters (A-Z or a-z), underscore (_), hyphen (-), "
            "dot (.) and digits (not leading) are allowed.: [9bad]",
        ),
    ],
)
def test_create_validation(mine: Api, body: dict, status: int, message: str) -> None:
    response = mine.post("assistants", json=body)
    assert (response.status_code, response.json()) == (status, {"status": status, "message": message})


def test_broken_json_and_unknown_ids(mine: Api) -> None:
    broken = mine.post("assistants", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.json() == {"status": 400, "message": "Your request contains invalid JSON syntax."}
    unknown = str(uuid.uuid4())
    for path, body in [
        ("assistants/modify", {"assistant_id": unknown, "name": "x"}),
        ("assistants/delete", {"assistant_id": unknown}),
        ("assistants/files/delete", {"assistant_id": unknown, "file_id": unknown}),
    ]:
        response = mine.post(path, json=body)
        assert (response.status_code, response.json()["message"]) == (404, "Assistant not found")
    missing = mine.post("assistants/delete", json={})
    assert missing.json() == {"status": 422, "message": "Invalid params: assistant_id is required"}


def test_assistants_are_private_to_their_account(mine: Api, theirs: Api) -> None:
    assistant_id = create(mine)["assistant_id"]
    assert theirs.get("assistants", params={"assistant_id": assistant_id}).status_code == 404
    assert assistant_id not in [a["assistant_id"] for a in theirs.get("assistants").json()["data"]]
    assert theirs.post("assistants/delete", json={"assistant_id": assistant_id}).status_code == 404
    assert theirs.post("assistants/modify", json={"assistant_id": assistant_id, "name": "x"}).status_code == 404
    assert mine.get("assistants", params={"assistant_id": assistant_id}).status_code == 200


def test_both_path_styles_auth_and_echo(mine: Api) -> None:
    for path in ("/v1/assistants", "/api/v1/assistants"):
        response = mine.get(path, headers={"X-Request-ID": "req-a", "X-Client-ID": "cli-a"})
        assert response.status_code == 200 and "data" in response.json()
        assert response.headers["X-Request-ID"] == "req-a" and response.headers["X-Client-ID"] == "cli-a"
        assert uuid.UUID(response.headers["X-Session-ID"]).version == 4
    anonymous = mine.http.post("/api/v1/assistants", json={"model": "GigaChat", "name": "x"})
    assert anonymous.status_code == 401 and anonymous.json() == {"status": 401, "message": "Unauthorized"}


def test_faults_hit_assistant_routes(own_emu: Emulator, mine: Api) -> None:
    own_emu.faults.enqueue("503", routes=["/assistants"])
    failed = mine.get("assistants")
    assert failed.status_code == 503 and failed.json()["status"] == 503
    assert mine.get("assistants").status_code == 200


def test_assistant_store_is_capped() -> None:
    with Emulator(max_assistants=2) as emu:
        api = Api(emu)
        ids = [create(api, name=f"a{i}")["assistant_id"] for i in range(4)]
        assert [a["assistant_id"] for a in api.get("assistants").json()["data"]] == ids[2:]
        assert emu.stats()["assistants"] == 2
        api.close()

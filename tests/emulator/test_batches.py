"""Batches: JSONL in, created → in_progress → completed, output file out."""

from __future__ import annotations

import json

import pytest

from gigapy.emulator import Emulator, wait_until

from .conftest import Api


def jsonl(*items: dict) -> bytes:
    return "\n".join(json.dumps(i) for i in items).encode()


def wait_completed(api: Api, batch_id: str, timeout: float = 10) -> dict:
    statuses: list[str] = []

    def completed() -> dict | None:
        batch = api.get("batches", params={"batch_id": batch_id}).json()["batches"][0]
        statuses.append(batch["status"])
        return {**batch, "seen": statuses} if batch["status"] == "completed" else None

    return wait_until(completed, timeout, what=f"the batch completes (seen: {statuses})")


def test_chat_batch(api_corp: Api) -> None:
    body = jsonl(
        {"id": "q1", "request": {"model": "GigaChat", "messages": [{"role": "user", "content": "Hi"}]}},
        {"id": "q2", "request": {"model": "Nope", "messages": [{"role": "user", "content": "Hi"}]}},
        {"id": "q3", "request": {"model": "GigaChat", "messages": [{"role": "user", "content": "Count from 1 to 3"}]}},
    )
    created = api_corp.post(
        "batches",
        params={"method": "chat_completions"},
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    ).json()
    assert created["status"] == "created" and created["method"] == "chat_completions"
    assert created["request_counts"] == {"total": 3}
    assert isinstance(created["created_at"], int) and isinstance(created["updated_at"], int)
    done = wait_completed(api_corp, created["id"])
    assert done["seen"][0] == "created"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    output = api_corp.get(f"files/{done['output_file_id']}/content").content.decode().splitlines()
    lines = {item["id"]: item for item in map(json.loads, output)}
    assert lines["q1"]["response"]["status_code"] == 200
    assert lines["q1"]["response"]["body"]["object"] == "chat.completion"
    assert lines["q2"]["error"] == {"status": 404, "message": "No such model"}
    assert lines["q3"]["response"]["body"]["choices"][0]["message"]["content"] == "1, 2, 3"
    listed = [b["id"] for b in api_corp.get("batches").json()["batches"]]
    assert created["id"] in listed


def test_embedder_batch(api_corp: Api) -> None:
    body = jsonl({"id": "e1", "request": {"model": "Embeddings", "input": ["hello"]}})
    created = api_corp.post("batches", params={"method": "embedder"}, content=body).json()
    done = wait_completed(api_corp, created["id"])
    (line,) = map(json.loads, api_corp.get(f"files/{done['output_file_id']}/content").content.splitlines())
    assert len(line["response"]["body"]["data"][0]["embedding"]) == 1024


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("other", jsonl({"id": "1", "request": {}})),
        ("embedder", b"not json"),
        ("embedder", b""),
        ("embedder", jsonl({"id": "1"})),
        ("embedder", jsonl({"id": "1", "request": {}}, {"id": "1", "request": {}})),
    ],
)
def test_bad_batches(api_corp: Api, method: str, body: bytes) -> None:
    response = api_corp.post("batches", params={"method": method}, content=body)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_unknown_batch_and_tariffs(api_corp: Api, api: Api) -> None:
    missing = api_corp.get("batches", params={"batch_id": "nope"})
    assert missing.status_code == 404 and missing.json() == {"status": 404, "message": "Batch task not found"}
    assert api.get("batches").status_code == 403  # prepaid scopes: batches are pay-as-you-go only
    with Emulator(enforce_tariffs=False) as emu:
        prepaid = Api(emu)
        assert prepaid.get("batches").json() == {"batches": []}
        prepaid.close()

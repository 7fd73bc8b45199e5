"""Retrieval-augmented generation: answer questions from your own documents with embeddings.

Shows: ``client.embed_many()`` (batched, concurrent, order kept) to index a small knowledge base
once, ``client.embedding()`` for the question, cosine similarity in plain Python to pick the
closest passages, and a completion that must answer from those passages only. The index is a
plain JSON file (``--index``), so a second run does not embed the documents again.

Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 &)"        # sets GIGACHAT_* for this shell
    python examples/rag.py "Какая глубина у Байкала?"
    python examples/rag.py --top 2 "Куда впадает Волга?" "Кто создал Python?"
    kill "$GIGAPY_EMULATOR_PID"

For a real corpus, replace ``DOCUMENTS`` with your passages (a few hundred words each) and keep
the index next to them; ``embed_many`` splits any number of texts into requests for you.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from gigapy import GigaChat

DOCUMENTS = [
    "Байкал — самое глубокое озеро в мире: его наибольшая глубина 1642 метра. В нём около 20% "
    "мировых запасов пресной озёрной воды.",
    "Эльбрус — самая высокая гора России и Европы, 5642 метра. Это потухший вулкан на Кавказе.",
    "Волга — самая длинная река Европы, около 3530 километров. Она впадает в Каспийское море.",
    "Python — язык программирования, который создал Гвидо ван Россум; первая версия вышла в 1991 году.",
    "Эрмитаж в Санкт-Петербурге — один из крупнейших художественных музеев мира, основан в 1764 году.",
]
EMBEDDINGS_MODEL = "Embeddings"


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def load_index(client: GigaChat, path: Path | None) -> list[list[float]]:
    """Vectors of DOCUMENTS, from ``path`` when it matches, else embedded (and saved there)."""
    if path is not None and path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("documents") == DOCUMENTS and saved.get("model") == EMBEDDINGS_MODEL:
            return saved["vectors"]  # type: ignore[no-any-return]
    vectors = client.embed_many(DOCUMENTS, model=EMBEDDINGS_MODEL)
    if path is not None:
        path.write_text(
            json.dumps({"model": EMBEDDINGS_MODEL, "documents": DOCUMENTS, "vectors": vectors}), encoding="utf-8"
        )
    return vectors


def answer(client: GigaChat, index: list[list[float]], question: str, top: int) -> tuple[str, list[int]]:
    """The model's answer to ``question`` from the ``top`` closest documents, and their numbers."""
    query = client.embedding(question, model=EMBEDDINGS_MODEL).vectors[0]
    ranked = sorted(range(len(DOCUMENTS)), key=lambda i: cosine(query, index[i]), reverse=True)[:top]
    context = "\n".join(f"[{i}] {DOCUMENTS[i]}" for i in ranked)
    reply = client.completion(
        [
            {
                "role": "system",
                "content": "Отвечай только по контексту ниже. Если ответа в нём нет, так и скажи.\n"
                f"Контекст:\n{context}",
            },
            {"role": "user", "content": question},
        ],
        temperature=0.1,
    )
    return reply.text, ranked


def main() -> int:
    """Answer each question given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--top", type=int, default=1, help="how many passages to give the model")
    parser.add_argument("--index", type=Path, help="cache the document vectors in this JSON file")
    args = parser.parse_args()
    with GigaChat() as client:
        index = load_index(client, args.index)
        for question in args.questions:
            text, sources = answer(client, index, question, args.top)
            print(f"Q: {question}\nsources: {', '.join(map(str, sources))}\nA: {text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Structured extraction: turn free text into validated pydantic objects.

Shows: ``client.parse(..., response_format=Model)`` returning a validated instance (the native
``json_schema`` response format where the model supports it, a forced function call otherwise;
an invalid answer gets one repair round), ``StructuredOutputError`` with the raw text when the
answer still does not validate, and JSON Lines output that other tools can read.

Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 &)"        # sets GIGACHAT_* for this shell
    python examples/extract.py "Иван Петров, ivan@example.com, +7 912 345-67-89, хочет 3 ноутбука к пятнице"
    printf '%s\\n' "Анна из ООО Ромашка: 10 кресел, anna@romashka.ru" | python examples/extract.py -
    kill "$GIGAPY_EMULATOR_PID"
"""

from __future__ import annotations

import argparse
import sys

from pydantic import BaseModel, Field

from gigapy import GigaChat, LengthFinishReasonError, StructuredOutputError


class Item(BaseModel):
    """One thing the customer wants."""

    name: str = Field(description="Что заказано, например «ноутбук»")
    quantity: int = Field(ge=1, description="Сколько штук")


class Order(BaseModel):
    """A customer's request, as a sales team would file it."""

    customer: str = Field(description="Имя клиента или название компании")
    email: str | None = Field(default=None, description="Электронная почта, если указана")
    phone: str | None = Field(default=None, description="Телефон, если указан")
    items: list[Item] = Field(description="Что нужно клиенту")
    deadline: str | None = Field(default=None, description="Срок, если назван")


INSTRUCTIONS = "Извлеки из сообщения клиента данные заказа. Не выдумывай того, чего в тексте нет."


def extract(client: GigaChat, text: str) -> Order:
    """The order described in ``text``."""
    return client.parse(
        [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}],
        response_format=Order,
        temperature=0.1,
    )


def main() -> int:
    """Extract an order from each argument (``-`` reads one text per line from stdin)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+", help="messages to read; - for stdin")
    args = parser.parse_args()
    texts = [line for t in args.texts for line in (sys.stdin.read().splitlines() if t == "-" else [t]) if line.strip()]
    failures = 0
    with GigaChat() as client:
        for text in texts:
            try:
                order = extract(client, text)
            except (StructuredOutputError, LengthFinishReasonError) as exc:
                failures += 1
                print(f"could not extract an order from {text!r}: {exc}", file=sys.stderr)
                continue
            print(order.model_dump_json())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

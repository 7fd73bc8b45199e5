"""A function-calling agent: the model decides which Python function to call, gigapy runs it.

Shows: ``client.run_tools()`` with plain Python functions (their type hints and docstrings become
the function schemas GigaChat sees), arguments validated before each call, results sent back as
JSON, the loop ending at the first answer without a function call (``max_steps`` bounds it), and
``run.calls`` recording what ran, with which arguments, and what came back. A tool that raises is
reported to the model as ``{"error": ...}`` instead of crashing the agent.

Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 &)"        # sets GIGACHAT_* for this shell
    python examples/agent.py "Какая погода в Казани?"
    python examples/agent.py "Сколько будет 1500 рублей в юанях?"
    kill "$GIGAPY_EMULATOR_PID"

``python -c "from gigapy.schema import function_schema; ..."`` shows the schema of any function
(see the function-calling guide).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from typing import Literal

from gigapy import GigaChat, ToolLoopError

RATES = {"USD": 90.0, "EUR": 98.0, "CNY": 12.5}  # roubles per unit; a real agent would call an API
OFFSETS = {"москва": 3, "казань": 3, "новосибирск": 7, "владивосток": 10}


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
    """Текущая погода в городе.

    Args:
        city: Название города, например «Казань»
        unit: Единицы температуры: c (Цельсий) или f (Фаренгейт)
    """
    celsius = 12 + len(city) % 7
    return {
        "city": city,
        "temperature": celsius if unit == "c" else round(celsius * 9 / 5 + 32),
        "unit": unit,
        "sky": "облачно",
    }


def convert_currency(amount: float, currency: Literal["USD", "EUR", "CNY"]) -> dict[str, object]:
    """Перевести сумму в рублях в другую валюту по текущему курсу.

    Args:
        amount: Сумма в рублях
        currency: Код валюты: USD, EUR или CNY (юани)
    """
    return {"roubles": amount, "currency": currency, "amount": round(amount / RATES[currency], 2)}


def local_time(city: str) -> str:
    """Текущее местное время в российском городе.

    Args:
        city: Название города
    """
    offset = OFFSETS.get(city.strip().lower())
    if offset is None:
        raise ValueError(f"не знаю часовой пояс города {city!r}")  # the model sees this as {"error": ...}
    return (datetime.now(timezone.utc) + timedelta(hours=offset)).strftime("%H:%M")


def main() -> int:
    """Run the agent on each request given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", nargs="+")
    parser.add_argument("--max-steps", type=int, default=5)
    args = parser.parse_args()
    with GigaChat() as client:
        for request in args.requests:
            try:
                run = client.run_tools(
                    request,
                    tools=[get_weather, convert_currency, local_time],
                    max_steps=args.max_steps,
                    temperature=0.1,
                )
            except ToolLoopError as exc:
                print(f"{request}\n  gave up: {exc}", file=sys.stderr)
                continue
            print(request)
            for call in run.calls:
                outcome = f"error: {call.error}" if call.error else call.result
                print(f"  called {call.name}({call.arguments}) -> {outcome}")
            print(f"  answer: {run.text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

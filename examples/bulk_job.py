"""A bulk job: thousands of prompts through ``gigapy.batch.run_batch``, resumable and exactly once.

Shows: writing the input in the service's batch format (one ``{"id", "request"}`` per line),
``run_batch`` running every line concurrently with retries and adaptive concurrency (it backs off
on 429), a progress callback, and the summary. Answers are appended to the output as each one
finishes: stop the job at any moment (Ctrl-C, ``kill -9``, a crash) and run the same command
again; it skips what is done and runs only the rest, with no duplicates. Requests that still
fail land in ``OUTPUT.errors.jsonl``; ``--retry-failed`` runs them again.

Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 --no-limits &)"    # sets GIGACHAT_* for this shell
    python examples/bulk_job.py --count 200 --output answers.jsonl
    python examples/bulk_job.py --count 200 --output answers.jsonl   # nothing left to do
    kill "$GIGAPY_EMULATOR_PID"

The same job from the shell: ``gigapy batch prompts.jsonl -o answers.jsonl`` (see the CLI guide).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gigapy import AsyncGigaChat
from gigapy.batch import BatchProgress, run_batch

PRODUCTS = ["чайник", "пылесос", "велосипед", "палатка", "кофемолка", "рюкзак", "фонарик", "термос"]


def write_prompts(path: Path, count: int) -> None:
    """``count`` requests in the batch format: a one-line product description each."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            product = PRODUCTS[i % len(PRODUCTS)]
            request = {
                "messages": [
                    {"role": "system", "content": "Ты копирайтер интернет-магазина. Одно предложение."},
                    {"role": "user", "content": f"Напиши описание товара: {product} (вариант {i})"},
                ],
                "max_tokens": 80,
            }
            out.write(json.dumps({"id": f"item-{i}", "request": request}, ensure_ascii=False) + "\n")


def show(progress: BatchProgress) -> None:
    """One progress line on stderr."""
    print(
        f"\r{progress.finished}/{progress.total} done, {progress.failed} failed, "
        f"{progress.in_flight} in flight, concurrency {progress.concurrency:.0f}",
        end="",
        file=sys.stderr,
    )


async def run(args: argparse.Namespace) -> int:
    if not args.input.exists():
        write_prompts(args.input, args.count)
    async with AsyncGigaChat() as client:
        summary = await run_batch(
            client,
            args.input,
            args.output,
            concurrency=args.concurrency,
            retry_failed=args.retry_failed,
            on_progress=show,
        )
    print(file=sys.stderr)
    print(json.dumps({k: summary.to_dict()[k] for k in ("total", "done", "failed", "skipped", "tokens")}))
    first = args.output.read_text(encoding="utf-8").splitlines()[:1]
    if first:
        line = json.loads(first[0])
        print(line["id"], "->", line["response"]["choices"][0]["message"]["content"])
    return 1 if summary.failed else 0


def main() -> int:
    """Parse the arguments and run the job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=Path("prompts.jsonl"), help="created if missing")
    parser.add_argument("--output", type=Path, default=Path("answers.jsonl"))
    parser.add_argument("--count", type=int, default=100, help="how many prompts to write into a new input")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--retry-failed", action="store_true", help="run the ids in the errors file again")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""A terminal chat bot that remembers the conversation.

Shows: ``client.conversation()`` keeping the history and one X-Session-ID for every turn (so
the service reuses its prompt cache, see ``usage.precached_prompt_tokens``), trimming the oldest
turns when the history would not fit ``--max-context-tokens``, and saving the history to a JSON
file (``--history``) so the next run picks the conversation up again.

Type a message and press Enter; ``/reset`` forgets the conversation, ``/exit`` (or Ctrl-D) quits.
Piped input works too: one message per line.

Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 &)"        # sets GIGACHAT_* for this shell
    python examples/chat_bot.py
    printf 'Меня зовут Аня.\\nКак меня зовут?\\n' | python examples/chat_bot.py
    kill "$GIGAPY_EMULATOR_PID"

Against the real service, set ``GIGACHAT_CREDENTIALS`` (and ``GIGACHAT_SCOPE``) instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gigapy import GigaChat, GigaChatError

SYSTEM = "Ты дружелюбный и лаконичный помощник. Отвечай по-русски."


def main() -> int:
    """Chat until end of input; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, help="load the conversation from this JSON file and save it back")
    parser.add_argument("--max-context-tokens", type=int, default=8000, help="trim the oldest turns beyond this")
    args = parser.parse_args()

    interactive = sys.stdin.isatty()
    with GigaChat() as client:
        chat = client.conversation(SYSTEM, max_context_tokens=args.max_context_tokens, temperature=0.7)
        if args.history and args.history.exists():
            saved = json.loads(args.history.read_text(encoding="utf-8"))
            chat.messages[1:] = saved  # keep our system prompt, restore the turns
            print(f"(restored {len(saved)} messages from {args.history})")
        while True:
            try:
                line = input("you> " if interactive else "")
            except EOFError:
                break
            text = line.strip()
            if not text:
                continue
            if text == "/exit":
                break
            if text == "/reset":
                del chat.messages[1:]
                print("(forgotten)")
                continue
            try:
                answer = chat.say(text)
            except GigaChatError as exc:  # one readable line; the conversation goes on
                print(f"error: {exc}", file=sys.stderr)
                continue
            print(f"bot> {answer.text}")
        if args.history:
            args.history.write_text(json.dumps(chat.messages[1:], ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"({len(chat.messages) - 1} messages, session {chat.session_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

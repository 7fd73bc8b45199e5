"""Cold start: a fresh process imports, builds a client, fetches a token, runs one completion, prints it.

Targets: gigapy's script <= 0.75x the official SDK's and <= 1.5x raw httpx doing the same two
requests; ``gigapy chat "..."`` (one-shot) within 1.2x of gigapy's script.

Contenders, each a fresh ``python`` process against one emulator process (``--no-limits``):

- ``gigapy``: ``from gigapy import GigaChat``, ``with GigaChat(...)``, ``completion()``, print;
- ``sdk``: the same with the official ``gigachat`` package (``GigaChat.chat``);
- ``raw``: ``httpx.Client``: the OAuth POST, the completion POST, ``json.loads``, print;
- ``cli``: ``gigapy chat PROMPT`` (the console script; settings from ``GIGACHAT_*``).

Two ways to load gigapy's own code, both measured:

- ``bytecode``: every module loads from a shared compiled-bytecode cache, as an installed
  package (pip compiles on install) has it (``PYTHONPYCACHEPREFIX`` pointing at a cache
  filled by a warm-up run);
- ``source``: gigapy's modules compile from source in every process, as an editable install
  on a machine with ``PYTHONDONTWRITEBYTECODE=1`` does (the same cache with gigapy's own
  entries removed; the standard library and site-packages still load compiled).

The official SDK and raw httpx live in site-packages and always load compiled. Rounds are
interleaved (the order rotates), medians reported; the figures are wall time of the whole
process and its CPU time (user + system, from ``wait4``), which other load on a shared machine
moves far less. Targets are judged on CPU time.

    .venv/bin/python -m benchmarks.bench_coldstart            # 15 rounds, print the figures
    .venv/bin/python -m benchmarks.bench_coldstart --write    # also update "## Cold start" in RESULTS.md
    .venv/bin/python -m benchmarks.bench_coldstart --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

from benchmarks._common import WORK, EmulatorProcess, machine, results_path, versions  # noqa: E402 - needs the path above

RESULTS = results_path()
PROMPT = "What is the capital of France?"

SCRIPTS = {
    "gigapy": """\
import os
from gigapy import GigaChat
url = os.environ["CS_URL"]
with GigaChat(credentials=os.environ["CS_KEY"], scope="GIGACHAT_API_PERS", base_url=url + "/api/v1",
              auth_url=url + "/api/v2/oauth", model="GigaChat") as client:
    print(client.completion(os.environ["CS_PROMPT"]).choices[0].message.content)
""",
    "sdk": """\
import os
from gigachat import GigaChat
url = os.environ["CS_URL"]
with GigaChat(credentials=os.environ["CS_KEY"], scope="GIGACHAT_API_PERS", base_url=url + "/api/v1",
              auth_url=url + "/api/v2/oauth", model="GigaChat", verify_ssl_certs=False) as client:
    print(client.chat(os.environ["CS_PROMPT"]).choices[0].message.content)
""",
    "raw": """\
import json, os, uuid
import httpx
url = os.environ["CS_URL"]
with httpx.Client() as http:
    auth = http.post(url + "/api/v2/oauth", data={"scope": "GIGACHAT_API_PERS"},
                     headers={"Authorization": "Basic " + os.environ["CS_KEY"], "RqUID": str(uuid.uuid4())})
    token = json.loads(auth.content)["access_token"]
    body = {"model": "GigaChat", "messages": [{"role": "user", "content": os.environ["CS_PROMPT"]}]}
    resp = http.post(url + "/api/v1/chat/completions", content=json.dumps(body).encode(),
                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    print(json.loads(resp.content)["choices"][0]["message"]["content"])
""",
}
# (contender, mode): mode "bytecode" loads gigapy compiled; "source" compiles gigapy's modules
CONTENDERS = [("gigapy", "bytecode"), ("gigapy", "source"), ("cli", "bytecode"), ("cli", "source"),
              ("sdk", "bytecode"), ("raw", "bytecode")]


def label(contender: str, mode: str) -> str:
    names = {"gigapy": "gigapy script", "sdk": "official SDK script", "raw": "raw httpx script",
             "cli": '`gigapy chat "..."`'}
    return names[contender] + ("" if contender in ("sdk", "raw") else f" ({mode})")


class Caches:
    """Two bytecode caches: ``full`` (everything compiled) and ``nogigapy`` (gigapy's own removed)."""

    def __init__(self) -> None:
        self.full = WORK / "coldstart-pycache"
        self.nogigapy = WORK / "coldstart-pycache-nogigapy"

    def prepare(self, run: Any) -> None:
        for path in (self.full, self.nogigapy):
            shutil.rmtree(path, ignore_errors=True)
        for contender in ("gigapy", "cli", "sdk", "raw"):  # fill the cache: one run each, bytecode written
            run(contender, "warm")
        shutil.copytree(self.full, self.nogigapy)
        ours = self.nogigapy / str(ROOT / "src").lstrip(os.sep)
        shutil.rmtree(ours, ignore_errors=True)
        # A __pycache__ next to the sources (a run without PYTHONDONTWRITEBYTECODE) does not count:
        # with PYTHONPYCACHEPREFIX set, as in every run here, Python reads and writes compiled files
        # only under the prefix, so the "source" mode still compiles gigapy's modules.


def base_env(url: str) -> dict[str, str]:
    from gigapy.emulator import DEMO_CREDENTIALS

    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("GIGACHAT_", "GIGAPY_", "PYTHON")) and "PROXY" not in k.upper()}
    env.update(CS_URL=url, CS_KEY=DEMO_CREDENTIALS, CS_PROMPT=PROMPT, NO_PROXY="127.0.0.1,localhost",
               GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS, GIGACHAT_BASE_URL=f"{url}/api/v1",
               GIGACHAT_AUTH_URL=f"{url}/api/v2/oauth", GIGACHAT_SCOPE="GIGACHAT_API_PERS",
               GIGACHAT_MODEL="GigaChat", GIGAPY_CONFIG_DIR=str(WORK / "coldstart-config"))
    return env


def runner(url: str, caches: Caches) -> Any:
    scripts_dir = WORK / "coldstart-scripts"
    scripts_dir.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        (scripts_dir / f"cold_{name}.py").write_text(text)
    env0 = base_env(url)
    gigapy_bin = str(Path(sys.executable).parent / "gigapy")

    def run(contender: str, mode: str) -> dict[str, float]:
        env = dict(env0)
        if mode == "warm":
            env["PYTHONPYCACHEPREFIX"] = str(caches.full)
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env["PYTHONPYCACHEPREFIX"] = str(caches.full if mode == "bytecode" else caches.nogigapy)
        if contender == "cli":
            cmd = [sys.executable, gigapy_bin, "chat", PROMPT]
        else:
            cmd = [sys.executable, str(scripts_dir / f"cold_{contender}.py")]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=WORK)
        out, err = proc.communicate(timeout=120)
        wall = time.perf_counter() - t0
        usage = _last_child_usage()  # communicate() reaped it: its CPU is in RUSAGE_CHILDREN now
        if proc.returncode != 0 or len(out.strip()) < 20:
            raise RuntimeError(f"{contender} ({mode}) failed: exit {proc.returncode}: {err.decode()[-600:]}")
        return {"wall_ms": wall * 1e3, "cpu_ms": usage}

    return run


_CHILD_CPU = [0.0]


def _last_child_usage() -> float:
    """CPU ms of the child just reaped (the delta of RUSAGE_CHILDREN since the last call)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (ru.ru_utime + ru.ru_stime) * 1e3
    delta, _CHILD_CPU[0] = total - _CHILD_CPU[0], total
    return delta


def measure(rounds: int, only: list[tuple[str, str]] | None = None) -> dict[tuple[str, str], list[dict[str, float]]]:
    caches = Caches()
    chosen = only or CONTENDERS
    results: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in chosen}
    with EmulatorProcess() as emu:
        run = runner(emu.url, caches)
        caches.prepare(run)
        _last_child_usage()  # reset the children's CPU baseline
        for r in range(rounds):
            order = chosen[r % len(chosen):] + chosen[:r % len(chosen)]
            for contender, mode in order:
                res = run(contender, mode)
                results[(contender, mode)].append(res)
                print(f"round {r + 1}/{rounds} {label(contender, mode):40} wall {res['wall_ms']:7.1f} ms  "
                      f"cpu {res['cpu_ms']:7.1f} ms", file=sys.stderr, flush=True)
    return results


def med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict[tuple[str, str], list[dict[str, float]]], rounds: int, load: tuple[float, float],
           commit: str) -> str:
    m, v = machine(), versions()
    lines = [
        "## Cold start",
        "",
        "`benchmarks/bench_coldstart.py`: a fresh process imports, builds a client, fetches a token, runs one "
        "small completion and prints it, against one emulator process (`--no-limits`) on loopback. "
        f"{rounds} interleaved rounds (the order rotates), medians (min–max). \"bytecode\": gigapy's modules "
        "load from a shared compiled cache, as an installed package has it; \"source\": they compile in every "
        "process, as an editable install with `PYTHONDONTWRITEBYTECODE=1` does (the standard library and "
        "site-packages load compiled in both). CPU is the process's user + system time, the figure the "
        "targets are judged on (wall time moves with the machine's load).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, {m['python']}; gigapy {v['gigapy']} at {commit}, "
        f"gigachat SDK {v['gigachat']}, httpx {v['httpx']}, pydantic {v['pydantic']}; load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end.",
        "",
        "| contender | CPU ms | wall ms |",
        "|---|---|---|",
    ]
    for key in CONTENDERS:
        runs = results[key]
        cpu = [r["cpu_ms"] for r in runs]
        wall = [r["wall_ms"] for r in runs]
        lines.append(f"| {label(*key)} | {statistics.median(cpu):.0f} ({min(cpu):.0f}–{max(cpu):.0f}) | "
                     f"{statistics.median(wall):.0f} ({min(wall):.0f}–{max(wall):.0f}) |")
    lines += ["", "| target | bytecode: CPU (wall) | source: CPU (wall) | verdict |", "|---|---|---|---|"]

    def ratio(a: tuple[str, str], b: tuple[str, str], key: str) -> float:
        return med(results[a], key) / med(results[b], key)

    checks = [("gigapy script ≤ 0.75× the official SDK", "gigapy", ("sdk", "bytecode"), 0.75),
              ("gigapy script ≤ 1.5× raw httpx", "gigapy", ("raw", "bytecode"), 1.5),
              ('`gigapy chat "..."` ≤ 1.2× gigapy\'s script', "cli", None, 1.2)]
    for text, mine, other, limit in checks:
        cells, verdicts = [], []
        for mode in ("bytecode", "source"):
            against = other or ("gigapy", mode)
            cpu, wall = ratio((mine, mode), against, "cpu_ms"), ratio((mine, mode), against, "wall_ms")
            cells.append(f"{cpu:.2f}× ({wall:.2f}×)")
            verdicts.append(cpu <= limit)
        verdict = "met" if all(verdicts) else ("met with bytecode" if verdicts[0] else "**missed**")
        lines.append(f"| {text} | {cells[0]} | {cells[1]} | {verdict} |")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_results(section: str, notes: str = "") -> None:
    """Replace (or append) the '## Cold start' section of RESULTS.md, keeping its hand-written notes."""
    import re

    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Cold start\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    found = pattern.search(current)
    kept = ""
    if found:
        marker = "\n### Where the time goes"
        old = found.group(0)
        kept = old[old.index(marker):].rstrip("\n") + "\n" if marker in old else ""
    text = section + (kept or notes)
    if found:
        current = current[:found.start()] + text.rstrip("\n") + "\n\n" + current[found.end():].lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current.rstrip("\n") + "\n")
    print(f"updated {RESULTS}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--write", action="store_true", help="update the ## Cold start section of RESULTS.md")
    parser.add_argument("--only", help="comma-separated contender:mode pairs (e.g. gigapy:bytecode,raw:bytecode); "
                                       "prints the medians only")
    args = parser.parse_args()
    rounds = 3 if args.quick else max(1, args.rounds)
    load0 = os.getloadavg()[0]
    if args.only:
        only = [tuple(item.split(":", 1)) for item in args.only.split(",")]
        unknown = [item for item in only if item not in CONTENDERS]
        if unknown:
            parser.error(f"unknown contender {unknown[0]}; choose from {CONTENDERS}")
        for key, runs in measure(rounds, only).items():  # type: ignore[arg-type]
            print(f"{label(*key):40} cpu {med(runs, 'cpu_ms'):7.1f} ms  wall {med(runs, 'wall_ms'):7.1f} ms")
        return
    results = measure(rounds)
    section = report(results, rounds, (load0, os.getloadavg()[0]), git_commit())
    print()
    print(section)
    if args.write:
        write_results(section)


if __name__ == "__main__":
    main()

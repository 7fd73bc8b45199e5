"""``python -m benchmarks all``: the summary it writes (targets harvested, sections kept, index rebuilt)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.run_all import PLAN, TARGET_ROW, summary, write_summary


def test_every_benchmark_has_a_quick_and_a_full_command() -> None:
    assert {"client", "coldstart", "scaling", "cli", "emulator", "telemetry", "openai", "fleet"} <= set(PLAN)
    for full, quick in PLAN.values():
        assert full and quick and full != quick


def test_summary_counts_met_and_missed_and_keeps_the_sections(tmp_path: Path) -> None:
    log = [
        "| 1 | async64 | ≥ 8× the official SDK | 11.15× | met |",
        "| 2 | stream | ≥ 0.9× raw | 0.72× | **missed** |",
        "| `gigapy --help` start-up | 216 ms ✔ | < 300 ms |",
        "| scenario | unit | gigapy |",  # a plain table row: no target
    ]
    targets = [line for line in log if TARGET_ROW.search(line)]
    assert len(targets) == 3
    text = summary([("client", 0, 90.0, targets)], quick=True, commit="abc1234", started="2026-01-01 00:00 UTC")
    assert "| client | 0 | 1.5 | 2 | 1 |" in text
    assert "stream | ≥ 0.9× raw" in text and "abc1234" in text

    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\nSections: [Old](#old)\n\n## Client\n\nfigures\n\n## CLI\n\nmore\n")
    write_summary(path, text)
    write_summary(path, text)  # a second run replaces its own section
    body = path.read_text()
    assert body.count("## Summary") == 1
    assert body.index("## Summary") < body.index("## Client") < body.index("## CLI")
    assert "Sections: [Summary](#summary) · [Client](#client) · [CLI](#cli)\n" in body
    assert "figures" in body and "more" in body


def test_a_partial_run_keeps_the_other_rows_of_the_summary() -> None:
    first = summary(
        [("client", 0, 60.0, ["| 2 | stream | ≥ 0.9× raw | 0.72× | **missed** |"]), ("coldstart", 1, 6.0, [])],
        quick=False,
        commit="aaa1111",
        started="2026-01-01 00:00 UTC",
    )
    again = summary(
        [("coldstart", 0, 120.0, ["| `gigapy chat` ≤ 1.2× the script | 1.17× | met |"])],
        quick=False,
        commit="bbb2222",
        started="2026-01-02 00:00 UTC",
        previous=first,
    )
    assert "| client | 0 | 1.0 | 0 | 1 |" in again  # kept from the first run
    assert "| coldstart | 0 | 2.0 | 1 | 0 |" in again and "| coldstart | 1 |" not in again  # replaced
    assert "- client: | 2 | stream" in again  # its missed line kept too
    assert "--only coldstart" in again and "aaa1111" in again and "bbb2222" in again

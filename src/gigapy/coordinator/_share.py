"""Several ``gigapy batch`` workers on one input: each id is claimed through the coordinator,
and every id ends up exactly once in the union of the workers' OUTPUT and errors files.

Each worker writes its own OUTPUT (and errors file), as a single run does. Before it runs an id
it claims it (a claim lapses ``lease_ttl`` seconds after its worker dies); after the answer's line
is written it marks the id done. The fleet's files must be visible to every worker (they share the
input anyway), and they, not the store, are the truth: a worker that takes over an id whose claim
lapsed first reads the other workers' files, so an answer its dead owner wrote but never marked
done is found there and not run again.

The store may lose its claims and done marks (flushed, restarted empty or from an older
snapshot). The coordinator notices (a new epoch, see :mod:`._coordinator`) and grants no claim for
a grace period; meanwhile every live worker takes its claims back and republishes every id in its
files, and the files of every worker it has heard of. From then on each worker reads the others'
files before it runs an id, so even an id whose worker died meanwhile is not run twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._coordinator import Coordinator


def job_name(input_path: Path) -> str:
    """A name for a shared job that every worker computes alike: a digest of the input's size and
    its first and last 64 KiB (the same file under any path or mount)."""
    size = input_path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with input_path.open("rb") as fh:
        digest.update(fh.read(65536))
        if size > 65536:
            fh.seek(max(65536, size - 65536))
            digest.update(fh.read(65536))
    return digest.hexdigest()[:24]


def item_name(key: Any) -> str:
    """The claim name of an input key (an id, or the line number of a line without one)."""
    return f"id:{key}" if isinstance(key, str) else f"line:{key}"


class FleetShare:
    """One worker's part of a shared job."""

    def __init__(self, coordinator: Coordinator, job: str, output: Path, errors: Path) -> None:
        self.coordinator = coordinator
        self.job = job
        self.mine = {str(Path(os.path.realpath(output))), str(Path(os.path.realpath(errors)))}
        self._offsets: dict[str, int] = {}
        self._elsewhere: set[str] = set()
        self._finishing: set[asyncio.Future[None]] = set()
        self._held: set[str] = set()
        self._accounted: set[str] = set()  # every id in this worker's files (republished after a store loss)
        self._files: set[str] = set(self.mine)  # every worker's files this one has heard of
        self._guard = threading.Lock()  # _accounted and _files are read by the heartbeat thread too
        self._files_read = 0.0
        self._seen_fallbacks = coordinator.fallbacks
        self._seen_losses = coordinator.losses
        self._careful = False  # after the store was unreachable: check the other files before every run
        self.taken_over = 0  # ids whose claim lapsed and that this worker took over
        self.found_elsewhere = 0  # of those, ids a dead worker had already written
        self._unlisten = coordinator.on_state_lost(self._republish)

    async def start(self, accounted: Iterable[Any]) -> None:
        """Register this worker's files and publish the ids they already hold as done."""
        names = [item_name(k) for k in accounted]
        with self._guard:
            self._accounted.update(names)
        await asyncio.to_thread(self._publish, names, sorted(self.mine))
        await asyncio.to_thread(self._learn_files)
        await asyncio.to_thread(self.coordinator.claim_wait)  # learns the store's epoch

    def _publish(self, names: list[str], files: list[str]) -> None:
        self.coordinator.add_to(f"files:{self.job}", files)
        for i in range(0, len(names), 1000):
            self.coordinator.finish(self.job, names[i : i + 1000])

    def _republish(self) -> None:
        """After the store lost its state: every id in this worker's files is done again, and
        every worker's files this one knows are listed again (a dead worker's too)."""
        with self._guard:
            names, files = sorted(self._accounted), sorted(self._files)
        self._publish(names, files)

    def _learn_files(self) -> list[str]:
        """The fleet's files as the store lists them now (remembered, to republish them)."""
        found = self.coordinator.members(f"files:{self.job}")
        with self._guard:
            self._files.update(found)
        self._files_read = time.monotonic()
        return found

    async def _steady(self) -> None:
        """Wait while the store is unreachable (no new claims then: only what is in flight goes
        on, under local limits). After an outage the store may have lost every claim and done mark:
        republish this worker's ids, let every worker re-take its in-flight claims (the recovery
        grace), and from then on check the other files before running an id."""
        c = self.coordinator
        while True:
            healthy = await asyncio.to_thread(c.healthy)
            if healthy and c.fallbacks == self._seen_fallbacks and c.losses == self._seen_losses:
                return
            if healthy:
                outage = c.fallbacks != self._seen_fallbacks
                self._seen_fallbacks, self._seen_losses = c.fallbacks, c.losses
                self._careful = True
                await asyncio.to_thread(self._republish)
                if outage:  # the others put their claims back within the grace (a lost state: the store waits)
                    until = time.monotonic() + c.recovery_grace
                    while time.monotonic() < until:
                        await asyncio.sleep(0.1)
                continue
            await asyncio.sleep(0.1)

    async def take(self, key: Any) -> str:
        """Claim ``key`` for this worker: ``"mine"`` (run it), ``"done"`` (some worker finished it)
        or ``"busy"`` (another worker holds it now; ask again later: its claim lapses if it dies)."""
        name = item_name(key)
        c = self.coordinator
        while True:
            if c.degraded or c.fallbacks != self._seen_fallbacks or c.losses != self._seen_losses:
                await self._steady()
            wait = c.claim_wait()
            if wait > 0:  # a new store, or one recovering from a loss: it grants no claim yet
                await asyncio.sleep(wait)
            seen = (c.fallbacks, c.losses)
            got = await asyncio.to_thread(self._take, name)
            if (c.fallbacks, c.losses) == seen and not c.degraded:
                break  # else the store was lost during the call: do not trust its answer
            if got == "mine":
                await asyncio.to_thread(c.unclaim, self.job, name)
        if got == "mine":
            self._held.add(name)
        return got

    def _take(self, name: str) -> str:
        c = self.coordinator
        got = c.claim_item(self.job, name)
        if got in ("done", "busy"):
            return got
        if got == "new" and not (self._careful or c.recovered):
            if time.monotonic() - self._files_read > 2.0:
                self._learn_files()  # so that a loss of the store can list them again
            return "mine"
        if got == "again":
            self.taken_over += 1  # its previous owner's claim lapsed: did it write the answer before it died?
        self._scan_others()
        if name in self._elsewhere:
            self.found_elsewhere += 1
            c.finish(self.job, [name])
            return "done"
        return "mine"

    def _scan_others(self) -> None:
        from .._bulk_files import result_key

        self._learn_files()
        with self._guard:
            known = sorted(self._files)  # also those the store forgot (listed again by their readers)
        for path in known:
            if path in self.mine:
                continue
            errors = path.endswith(".errors.jsonl")
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    for raw in fh:
                        if not raw.endswith(b"\n"):
                            break  # a torn last line: not an answer (its owner's rerun cuts it)
                        offset += len(raw)
                        key = result_key(raw, errors)
                        if key is not None:
                            self._elsewhere.add(item_name(key))
            except OSError:
                continue
            self._offsets[path] = offset

    async def states(self, keys: list[Any]) -> list[str]:
        """Where these keys stand, in one call for all of them: ``done`` (some worker finished
        it), ``busy`` (another worker's live claim) or ``free`` (worth a :meth:`take`: its
        claim was given back or lapsed)."""
        if not keys:
            return []
        names = [item_name(k) for k in keys]
        return await asyncio.to_thread(self.coordinator.item_states, self.job, names)

    def written(self, keys: list[Any]) -> None:
        """Lines for these keys are in this worker's files: mark them done (off the event loop)."""
        if not keys:
            return
        names = [item_name(k) for k in keys]
        self._held.difference_update(names)
        with self._guard:
            self._accounted.update(names)
        future = asyncio.ensure_future(asyncio.to_thread(self.coordinator.finish, self.job, names))
        self._finishing.add(future)
        future.add_done_callback(self._finishing.discard)

    async def aclose(self) -> None:
        """Wait for the last done marks and give back the claims of ids this worker did not
        finish (stopped early); a failure here leaves claims to lapse: the files stay the truth."""
        self._unlisten()
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        held, self._held = sorted(self._held), set()

        def give_back() -> None:
            for name in held:
                self.coordinator.unclaim(self.job, name)

        if held:
            await asyncio.to_thread(give_back)

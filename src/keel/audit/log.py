"""The audit log in the store: appending, checkpointing, listing, verifying, exporting.

Appending is safe with any number of writers (processes, replicas): each append is one
transaction that first takes the log's lock -- an UPDATE of one ``keel_meta`` row, which
PostgreSQL holds until commit and which on SQLite takes the database's write lock -- then
reads the last entry and inserts the next ``seq`` (a primary key: two writers can never
both add entry ``n``; a writer that loses a race retries). Nothing in keel updates or
deletes an entry.

Every ``checkpoint_every`` entries the appender also writes a checkpoint, in the same
transaction: the Merkle tree head of the log so far and the hash of its last entry, signed
with ``KEEL_AUDIT_KEY`` when the process has it. Before signing, it checks the entries since
the previous good checkpoint (it never signs a broken log), extending that checkpoint's
stored peaks, so a checkpoint costs ``O(checkpoint_every)``, not the whole log. Once
committed, a checkpoint is logged (WARNING, visible at keel's default level) and published
to the witness (``witness.py``), outside the database; ``verify`` checks the log against
the witnessed checkpoints, so deleting or recomputing what they cover is detected.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.audit.bundle import BUNDLE_FORMAT
from keel.audit.chain import (
    CHECKPOINT_FIELDS,
    ENTRY_FIELDS,
    GENESIS,
    Verifier,
    VerifyReport,
    content_hash,
    entry_hash,
    key_id,
    seal,
    sign,
    signature_ok,
)
from keel.audit.merkle import Frontier
from keel.audit.witness import SAME_FIELDS, Witness, WitnessError, read_known
from keel.errors import KeelError
from keel.store import Store
from keel.store.db import row_dict
from keel.store.keys import bump_counter
from keel.store.schema import audit_checkpoints, audit_entries

if TYPE_CHECKING:
    from keel.config import KeelConfig, Settings
    from keel.store.retention import PurgeReport

log = logging.getLogger("keel.audit")

LOCK = "audit_appends"  # the keel_meta row whose update serializes appends
PAGE = 2000
_RETRIES = 5


class AuditLogBroken(KeelError):
    """The stored log does not verify, so it cannot be exported as a verifiable bundle."""

    status = 409
    code = "audit_log_broken"


def local_user() -> str:
    """Who runs this process (the actor of CLI commands)."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "unknown"


def _detail_text(detail: Mapping[str, Any] | None) -> str | None:
    if detail is None:
        return None
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _clip(value: str | None, n: int) -> str | None:
    return value[:n] if value is not None else None


def public_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """An entry for people and APIs: ``detail`` decoded (the stored text is what is hashed)."""
    out = {k: row[k] for k in ENTRY_FIELDS}
    try:
        out["detail"] = orjson.loads(row["detail"]) if row["detail"] else None
    except orjson.JSONDecodeError:  # a damaged entry is shown as stored
        out["detail"] = row["detail"]
    return out


def _checkpoint_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored checkpoint as verifiers and bundles see it (``peaks`` decoded)."""
    out = {k: row[k] for k in CHECKPOINT_FIELDS}
    try:
        out["peaks"] = orjson.loads(row["peaks"])
    except (orjson.JSONDecodeError, TypeError):
        out["peaks"] = None  # damaged: verification will not use it
    return out


class AuditLog:
    """The audit trail of one store. ``key``: HMAC secret that signs checkpoints (None:
    they are unsigned); ``checkpoint_every``: entries between automatic checkpoints;
    ``witness``: where each checkpoint is published, and read back by ``verify``."""

    def __init__(self, store: Store, *, key: str | None = None,
                 checkpoint_every: int = 100, witness: Witness | None = None) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.store = store
        self.key = key or None
        self.kid = key_id(key) if key else None
        self.checkpoint_every = checkpoint_every
        self.witness = witness or Witness()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings | None = None) -> AuditLog:
        """With the process's settings (``KEEL_AUDIT_KEY``, ``KEEL_AUDIT_CHECKPOINT_EVERY``,
        ``KEEL_AUDIT_WITNESS``); what a code path uses when its caller did not hand it the
        server's log."""
        if settings is None:
            from keel.config import Settings

            settings = Settings()
        return cls(store, key=settings.audit_key,
                   checkpoint_every=settings.audit_checkpoint_every,
                   witness=Witness.from_setting(settings.audit_witness, settings.data_dir))

    # --- appending ---------------------------------------------------------------------------

    async def record(self, action: str, *, actor: str | None = None, target: str | None = None,
                     before: str | None = None, after: str | None = None,
                     detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append one entry; returns it. ``before``/``after``: hashes of the changed thing
        (e.g. ``content_hash`` of a record, a prompt version's content hash)."""
        event = {"action": action, "actor": actor, "target": target, "before_hash": before,
                 "after_hash": after, "detail": detail}
        return (await self._append(lambda: [event]))[0]

    async def try_record(self, action: str, **kw: Any) -> dict[str, Any] | None:
        """``record`` for hooks that run after their change has committed: a failure is
        logged (the change stands) instead of failing the caller."""
        try:
            return await self.record(action, **kw)
        except Exception:
            log.exception("could not write the audit entry for %s %s", action,
                          kw.get("target") or "")
            return None

    async def _append(
        self, events: Callable[[], Sequence[Mapping[str, Any]]],
        skip: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> list[dict[str, Any]]:
        """Append the entries ``events()`` returns, in one transaction. ``skip(conn)`` runs
        first, under the lock: if it returns True nothing is appended ("only if changed");
        ``events`` is called after it, so it can use what ``skip`` read."""
        for attempt in range(_RETRIES):
            try:
                async with self.store.begin() as conn:
                    await bump_counter(conn, LOCK)
                    if skip is not None and await skip(conn):
                        return []
                    seq, prev = await _head(conn)
                    out: list[dict[str, Any]] = []
                    for ev in events():
                        seq += 1
                        row = {"seq": seq, "at": time.time(),
                               "actor": _clip(ev.get("actor"), 128),
                               "action": str(ev["action"])[:64],
                               "target": _clip(ev.get("target"), 512),
                               "before_hash": _clip(ev.get("before_hash"), 128),
                               "after_hash": _clip(ev.get("after_hash"), 128),
                               "detail": _detail_text(ev.get("detail")), "prev_hash": prev}
                        row["hash"] = prev = entry_hash(row)
                        out.append(row)
                    if not out:
                        return []
                    await conn.execute(audit_entries.insert(), out)
                    cp = await self._checkpoint_if_due(conn, seq, prev)
                await self._published(cp)
                return out
            except IntegrityError:  # another writer took the seq (or created the lock row)
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    # --- checkpoints -------------------------------------------------------------------------

    async def _last_checkpoint(self, conn: AsyncConnection) -> dict[str, Any] | None:
        """The newest checkpoint this process would build on: with a key, the newest one
        signed with it; without, the newest one."""
        q = sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc(),
                                                   audit_checkpoints.c.id.desc()).limit(1)
        if self.kid is not None:
            q = q.where(audit_checkpoints.c.key_id == self.kid,
                        audit_checkpoints.c.signature.is_not(None))
        row = (await conn.execute(q)).first()
        return row_dict(row) if row else None

    async def _checkpoint_if_due(self, conn: AsyncConnection, size: int,
                                 head: str) -> dict[str, Any] | None:
        last = await self._last_checkpoint(conn)
        if size - (last["size"] if last else 0) >= self.checkpoint_every:
            return await self._write_checkpoint(conn, size, head, base=last)
        return None

    async def _published(self, cp: Mapping[str, Any] | None) -> None:
        """A checkpoint just committed: logged, and sent to the witness."""
        if cp is None:
            return
        log.warning("audit checkpoint #%d: size %d, tree head %s, last entry hash %s, %s",
                    cp["id"], cp["size"], cp["root"], cp["head"],
                    "signed" if cp["signature"] else "unsigned")
        try:  # the checkpoint stands: a witness that fails is logged, never the append
            await self.witness.publish(cp)
        except Exception:
            log.exception("could not publish audit checkpoint #%s to the witness", cp["id"])

    async def checkpoint(self, *, force: bool = False) -> dict[str, Any] | None:
        """Write a checkpoint of the whole log now, unless the last one (signed, if this
        process has the key) already covers it; ``force``: even then. Returns the
        checkpoint covering the log (None for an empty log)."""
        async with self.store.begin() as conn:
            await bump_counter(conn, LOCK)
            size, head = await _head(conn)
            last = await self._last_checkpoint(conn)
            if size == 0:
                return None
            if last is not None and last["size"] == size and not force:
                return _checkpoint_row(last)
            cp = await self._write_checkpoint(conn, size, head, base=last)
        await self._published(cp)
        return cp

    def _base_ok(self, cp: Mapping[str, Any]) -> Frontier | None:
        """The tree of a stored checkpoint, if its peaks and signature are sound."""
        try:
            frontier = Frontier(int(cp["size"]), [bytes.fromhex(p)
                                                   for p in orjson.loads(cp["peaks"])])
        except (ValueError, TypeError, orjson.JSONDecodeError):
            return None
        if frontier.root().hex() != cp["root"]:
            return None
        if self.key is not None and not signature_ok(self.key, cp):
            return None
        return frontier

    async def _write_checkpoint(self, conn: AsyncConnection, size: int, head: str, *,
                                base: Mapping[str, Any] | None) -> dict[str, Any] | None:
        frontier = self._base_ok(base) if base is not None else None
        if base is None or frontier is None:
            if base is not None:
                log.error("audit checkpoint #%s does not check out; re-reading the whole log",
                          base["id"])
            base = None
        verifier = Verifier((), key=self.key, start_size=base["size"] if base else 0,
                            start_peaks=frontier.peaks if frontier else (),
                            start_head=base["head"] if base else GENESIS)
        async for row in _entries_from(conn, verifier.size):
            if not verifier.feed(row):
                break
        report = verifier.finish()
        if not report.ok or verifier.size != size:
            log.error("not writing an audit checkpoint: the log does not verify (%s); run "
                      "`keel audit verify`", report.problem or "entries changed meanwhile")
            return None
        at = time.time()
        root = verifier.frontier.root().hex()
        cp: dict[str, Any] = {
            "size": size, "root": root, "head": head, "at": at,
            "peaks": orjson.dumps([p.hex() for p in verifier.frontier.peaks]).decode(),
            "key_id": self.kid,
            "signature": sign(self.key, size=size, root=root, head=head, at=at)
            if self.key else None,
        }
        res = await conn.execute(audit_checkpoints.insert().values(**cp))
        cp["id"] = int(res.inserted_primary_key[0])  # type: ignore[index]
        return _checkpoint_row(cp)

    # --- reading -----------------------------------------------------------------------------

    async def entries(self, *, since: float | None = None, until: float | None = None,
                      action: str | None = None, limit: int = 50,
                      before_seq: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns (entries, cursor for the next page or None). ``action``
        matches exactly, or a prefix ending in '.' (``prompt.``)."""
        c = audit_entries.c
        cond: list[Any] = []
        if since is not None:
            cond.append(c.at >= since)
        if until is not None:
            cond.append(c.at < until)
        if action:
            cond.append(c.action.startswith(action, autoescape=True) if action.endswith(".")
                        else c.action == action)
        if before_seq is not None:
            cond.append(c.seq < before_seq)
        q = sa.select(audit_entries).where(*cond).order_by(c.seq.desc()).limit(limit + 1)
        async with self.store.connect() as conn:
            rows = [row_dict(r) for r in (await conn.execute(q)).all()]
        more = len(rows) > limit
        rows = rows[:limit]
        return [public_entry(r) for r in rows], (int(rows[-1]["seq"]) if more else None)

    async def checkpoints(self) -> list[dict[str, Any]]:
        async with self.store.connect() as conn:
            return [row_dict(r) for r in (await conn.execute(
                sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size,
                                                      audit_checkpoints.c.id))).all()]

    # --- verifying and exporting -------------------------------------------------------------

    async def verify(self, known: Sequence[Mapping[str, Any]] = (), *,
                     witness: bool = True) -> VerifyReport:
        """Check every entry and checkpoint; the report names the first broken one.

        Also against checkpoints known from outside the database: ``known`` (read with
        ``witness.read_known`` or ``witness.parse_known``) and, with ``witness``, those in
        this log's witness files. The log must be at least as long as each, its tree head
        at each one's size must be the known one, and a witnessed checkpoint must still be
        in the database, unchanged."""
        notes: list[str] = []
        known = list(known)
        if witness:
            try:
                known += await self._witnessed(notes)
            except (OSError, WitnessError) as exc:
                return VerifyReport(ok=False, problem=f"the audit witness cannot be read: "
                                                      f"{exc}")
        stored = [_checkpoint_row(c) for c in await self.checkpoints()]
        by_id = {c["id"]: c for c in stored}
        twins: set[int] = set()
        extra: list[Mapping[str, Any]] = []  # checked against the entries themselves
        mismatch: tuple[Mapping[str, Any], dict[str, Any] | None] | None = None
        for k in known:
            twin = by_id.get(k["id"]) if k.get("id") is not None else None
            if twin is not None and all(twin.get(f) == k.get(f) for f in SAME_FIELDS):
                twins.add(twin["id"])  # the stored checkpoint is the witnessed one
                continue
            extra.append(k)
            if mismatch is None and k.get("id") is not None:
                mismatch = (k, twin)
        verifier = Verifier([*stored, *extra], key=self.key)
        async with self.store.connect() as conn:
            async for row in _entries_from(conn, 0):
                if not verifier.feed(row):
                    break
        report = verifier.finish()
        if report.ok and mismatch is not None:
            k, twin = mismatch
            report.ok, report.broken_checkpoint = False, k["id"]
            if twin is None:
                report.problem = (f"checkpoint #{k['id']} (size {k['size']}, {k['source']}) is "
                                  "not in the database: checkpoints were deleted")
            else:
                diff = [f for f in SAME_FIELDS if twin.get(f) != k.get(f)]
                report.problem = (f"checkpoint #{k['id']} in the database is not the one "
                                  f"{k['source']} (its {', '.join(diff)} differ): the stored "
                                  "checkpoint was altered or replaced")
        if report.ok and known:
            report.witnessed = len(known)
            report.witnessed_size = max(int(k["size"]) for k in known)
        unwitnessed = len(stored) - len(twins)
        if report.ok and unwitnessed and any(k.get("id") is not None for k in known):
            notes.append(f"{unwitnessed} checkpoint(s) in the database are not in the witness "
                         "(written by a process that publishes elsewhere, or before the "
                         "witness was set up)")
        if stored:
            report.notes.extend(notes)
        return report

    async def _witnessed(self, notes: list[str]) -> list[dict[str, Any]]:
        """The checkpoints in this log's witness files; a note for each one missing."""
        if not self.witness.sinks:
            notes.append("no audit witness is configured (KEEL_AUDIT_WITNESS=none): the "
                         "checkpoints were checked against the database only")
        known: list[dict[str, Any]] = []
        for path in self.witness.files:
            if path.is_file():
                known.extend(await asyncio.to_thread(read_known, path))
            else:
                notes.append(f"there is no witness file at {path}: the checkpoints were "
                             "checked against the database only")
        return known

    async def export(self, since: float | None = None) -> dict[str, Any]:
        """A bundle of the entries recorded at or after ``since`` that verifies offline
        (``verify_bundle``): the entries, the Merkle peaks and last hash of the log before
        them, and the checkpoints that cover them -- the last one written now."""
        covering = await self.checkpoint()
        end = covering["size"] if covering else 0
        checkpoints = [_checkpoint_row(c) for c in await self.checkpoints() if c["size"] <= end]
        async with self.store.connect() as conn:
            q = sa.select(sa.func.min(audit_entries.c.seq)).where(audit_entries.c.seq <= end)
            if since is not None:
                q = q.where(audit_entries.c.at >= since)
            first = (await conn.execute(q)).scalar()
            start = int(first) - 1 if first is not None else end
            verifier = Verifier(checkpoints, key=self.key)
            peaks: list[str] = []
            head = GENESIS
            entries: list[dict[str, Any]] = []
            async for row in _entries_from(conn, 0, upto=end):
                if not verifier.feed(row):
                    break
                if verifier.size == start:
                    peaks, head = [p.hex() for p in verifier.frontier.peaks], verifier.head
                elif verifier.size > start:
                    entries.append({k: row[k] for k in ENTRY_FIELDS})
        report = verifier.report
        if not report.ok:
            raise AuditLogBroken(f"the audit log does not verify, so it cannot be exported: "
                                 f"{report.problem}; see `keel audit verify`")
        bundle: dict[str, Any] = {
            "format": BUNDLE_FORMAT, "version": 1, "exported_at": time.time(),
            "since": since, "start": {"size": start, "peaks": peaks, "head": head},
            "end": {"size": end, "root": covering["root"] if covering else None},
            "entries": entries,
            "checkpoints": [c for c in checkpoints if c["size"] >= start],
        }
        bundle["seal"] = seal(self.key, bundle) if self.key else None
        return bundle

    async def record_purge(self, report: PurgeReport, *,
                           actor: str | None = None) -> dict[str, Any] | None:
        """A retention purge that deleted something: counts per feature and the cut-offs."""
        if report.dry_run or not any(report.total.values()):
            return None
        return await self.try_record("retention.purge", actor=actor, detail={
            "at": report.at, "total": report.total, "features": report.features})

    # --- config ------------------------------------------------------------------------------

    async def record_config(self, config: KeelConfig, path: str | None, *,
                            policies: Mapping[str, str],
                            actor: str | None = None) -> list[dict[str, Any]]:
        """Record the loaded config if it differs from the last recorded one: a
        ``config.change`` entry (before/after: hashes of the whole config; detail: a hash
        per section and which changed), ``budgets.change`` when the budgets did, and a
        ``policy.change`` per guardrail policy added, changed or removed (before/after: its
        versions; ``policies``: each compiled policy's name and version)."""
        sections = {k: content_hash(v) for k, v in config.model_dump(mode="json").items()}
        after = content_hash(sections)
        file_hash = _file_sha256(path)
        last: dict[str, Any] = {}

        async def unchanged(conn: AsyncConnection) -> bool:
            row = (await conn.execute(
                sa.select(audit_entries.c.after_hash, audit_entries.c.detail)
                .where(audit_entries.c.action == "config.change")
                .order_by(audit_entries.c.seq.desc()).limit(1))).first()
            if row is None:
                return False
            last["hash"] = row[0]
            detail = orjson.loads(row[1]) if row[1] else {}
            last["sections"] = detail.get("sections", {})
            last["policies"] = detail.get("policies", {})
            return bool(row[0] == after)

        def events() -> list[dict[str, Any]]:  # built under the lock, after `unchanged`
            before = last.get("sections", {})
            changed = sorted(k for k in sections if before.get(k) != sections[k])
            out: list[dict[str, Any]] = [{
                "action": "config.change", "actor": actor, "target": path,
                "before_hash": last.get("hash"), "after_hash": after,
                "detail": {"file_sha256": file_hash, "sections": sections, "changed": changed,
                           "policies": policies},
            }]
            # each guardrail policy added, changed or removed (versions are content hashes)
            old_policies: dict[str, str] = last.get("policies", {})
            for name in sorted({*old_policies, *policies}):
                if old_policies.get(name) != policies.get(name):
                    out.append({"action": "policy.change", "actor": actor, "target": name,
                                "before_hash": old_policies.get(name),
                                "after_hash": policies.get(name),
                                "detail": {"policy": name, "source": path}})
            # the first config recorded is compared with "no budgets"
            if sections["budgets"] != before.get("budgets", content_hash([])):
                out.append({"action": "budgets.change", "actor": actor, "target": path,
                            "before_hash": before.get("budgets"),
                            "after_hash": sections["budgets"],
                            "detail": {"budgets": [b.model_dump(mode="json")
                                                   for b in config.budgets]}})
            return out

        return await self._append(events, skip=unchanged)


def _file_sha256(path: str | None) -> str | None:
    """SHA-256 of the config file as it is on disk (None when keel runs without one)."""
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


async def _head(conn: AsyncConnection) -> tuple[int, str]:
    """(seq, hash) of the last entry; (0, GENESIS) for an empty log."""
    row = (await conn.execute(sa.select(audit_entries.c.seq, audit_entries.c.hash)
                              .order_by(audit_entries.c.seq.desc()).limit(1))).first()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


async def _entries_from(conn: AsyncConnection, after_seq: int,
                        upto: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Entries with seq > ``after_seq`` (and <= ``upto``), in order, page by page."""
    c = audit_entries.c
    last = after_seq
    while True:
        q = sa.select(audit_entries).where(c.seq > last)
        if upto is not None:
            q = q.where(c.seq <= upto)
        rows = (await conn.execute(q.order_by(c.seq).limit(PAGE))).all()
        for r in rows:
            yield row_dict(r)
        if len(rows) < PAGE:
            return
        last = int(rows[-1][0])

"""The audit trail: an append-only, tamper-evident log of governance events.

Entries (who did what to which thing, with before/after hashes) are the leaves of a hash
chain and of an RFC 6962 Merkle tree; checkpoints sign the tree head with KEEL_AUDIT_KEY
and are published to a witness outside the database (``witness.Witness``).
``AuditLog`` appends, lists, verifies (against the witness too) and exports;
``verify_bundle`` checks an export offline. Actions recorded by keel:

    config.change     budgets.change    key.create        key.revoke
    prompt.push       prompt.label      prompt.rollback   costs.reprice
    retention.purge   traces.stored

Other features record theirs (review decisions, kill switches, policy changes) through
``AuditLog.record``.
"""

from keel.audit.bundle import verify_bundle
from keel.audit.chain import VerifyReport, content_hash
from keel.audit.log import AuditLog, AuditLogBroken, local_user, public_entry

__all__ = ["AuditLog", "AuditLogBroken", "VerifyReport", "content_hash", "local_user",
           "public_entry", "verify_bundle"]

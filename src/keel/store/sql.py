"""Raw SQL pieces shared by the store's hand-built statements (the positional inserts of
trace batches and the rollup upserts), which go to the driver without SQLAlchemy's
compiler."""

from __future__ import annotations


def placeholders(paramstyle: str, n: int) -> str:
    """``n`` positional parameter markers in the DBAPI's ``paramstyle``, comma-separated."""
    if paramstyle == "qmark":
        return ", ".join("?" * n)
    if paramstyle == "numeric_dollar":
        return ", ".join(f"${i}" for i in range(1, n + 1))
    if paramstyle in ("format", "pyformat"):
        return ", ".join(["%s"] * n)
    if paramstyle == "numeric":
        return ", ".join(f":{i}" for i in range(1, n + 1))
    raise RuntimeError(f"unsupported DBAPI paramstyle {paramstyle}")

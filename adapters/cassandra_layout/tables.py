"""Table names of the keyspace: the control tables and one set of view tables per generation.

The set per generation is read from `schemas/cql/generation.cql`, so the DDL is the one list.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

CQL_PACKAGE = "schemas"
CQL_FOLDER = "cql"
GENERATION_DDL_FILE = "generation.cql"
# Tables of layouts that a migration has replaced; still dropped with their generation.
RETIRED_GENERATION_TABLES = ("audit_index",)  # the audit layout before ADR 0008
_CREATED = re.compile(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)_g\{gen\}")


def cql_text(name: str) -> str:
    """One of the CQL files shipped in schemas/cql."""
    return (resources.files(CQL_PACKAGE) / CQL_FOLDER / name).read_text()


def cql_file_names() -> list[str]:
    """The names of the CQL files shipped in schemas/cql."""
    return sorted(p.name for p in (resources.files(CQL_PACKAGE) / CQL_FOLDER).iterdir())


@cache
def generation_tables() -> tuple[str, ...]:
    """The base names of the tables every generation has, in the DDL's order."""
    return tuple(_CREATED.findall(cql_text(GENERATION_DDL_FILE)))


def table(keyspace: str, name: str, generation: int) -> str:
    """The qualified name of one generation's table."""
    return f"{keyspace}.{name}_g{generation}"

"""Bootstrap: Kafka topics and ACLs, Cassandra keyspace, migrations, generation, role grants."""

from __future__ import annotations

import asyncio
import sys

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout.catalogue import (
    active_generation,
    create_active,
    generation_ids,
)
from permstore.adapters.cassandra_layout.schema import (
    ensure_generation,
    grant_least_privilege,
    migrate,
    migrate_audit_layout,
)
from permstore.adapters.kafka_acls import ensure_acls
from permstore.adapters.kafka_topics import ensure_topics
from permstore.adapters.settings import Settings


def bootstrap(settings: Settings) -> None:
    """Create everything idempotently; safe to run on every start."""
    created = asyncio.run(ensure_topics(settings))
    print(f"kafka topics: {', '.join(created) or 'already present'}")
    acls = asyncio.run(ensure_acls(settings))
    logins = ", ".join(sorted({acl.principal for acl in acls})) or "nobody (PLAINTEXT broker)"
    print(f"kafka acls: {len(acls)} for {logins}")
    cluster, session = connect(settings, "admin", request_timeout=30.0)
    try:
        applied = migrate(session, settings)
        print(f"cassandra migrations applied: {', '.join(applied) or 'none pending'}")
        ks = settings.cassandra_keyspace
        if active_generation(session, ks) is None:
            ensure_generation(session, settings, 1)
            create_active(session, ks, 1)
            print("cassandra: generation 1 created and active")
        else:
            for generation in generation_ids(session, ks):
                ensure_generation(session, settings, generation)
                moved = migrate_audit_layout(session, ks, generation)
                if moved is not None:
                    print(f"cassandra: generation {generation}: {moved} audit rows moved")
        grant_least_privilege(session, ks)
        print("cassandra: processor may read and write, api may only read")
    finally:
        cluster.shutdown()


def main() -> None:
    """Entry point: python -m permstore.adapters.bootstrap."""
    try:
        bootstrap(Settings())
    except Exception as exc:
        print(f"bootstrap failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()

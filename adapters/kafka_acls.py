"""Least-privilege Kafka ACLs for permstore's logins, created and removed as permstore_admin."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings

ANY_HOST = "*"
ALLOW = 3  # AclPermissionType.ALLOW
SECURITY_DISABLED = 54  # the broker has no authorizer


class Resource(IntEnum):
    """Kafka's ResourceType codes used here."""

    TOPIC = 2
    GROUP = 3


class Pattern(IntEnum):
    """Kafka's PatternType codes used here."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's AclOperation codes used here."""

    READ = 3
    WRITE = 4
    DESCRIBE = 8


class KafkaAclError(RuntimeError):
    """The broker refused to create or delete an ACL."""


@dataclass(frozen=True)
class Acl:
    """One ALLOW binding: principal may do operation on a resource pattern, from any host."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def request_args(self) -> tuple[int, str, int, str, str, int, int]:
        """The fields of a CreateAcls creation or an exact DeleteAcls filter."""
        return (
            self.resource,
            self.name,
            self.pattern,
            self.principal,
            ANY_HOST,
            self.operation,
            ALLOW,
        )


def acl_table(settings: Settings) -> list[Acl]:
    """Every ACL permstore needs; topics literal (the DLQ shares the events topic's prefix)."""
    events, dlq, group = settings.events_topic, settings.dlq_topic, settings.processor_group
    usage, changes, touches = (
        settings.usage_topic,
        settings.changes_topic,
        settings.view_updates_topic,
    )
    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    topic, lit = Resource.TOPIC, Pattern.LITERAL
    # The processor's groups are `<processor_group>-g<generation>`: one prefix covers them all.
    grants: dict[str, list[tuple[Resource, str, Pattern, tuple[Operation, ...]]]] = {
        "processor": [
            (topic, events, lit, (read, describe)),
            (topic, dlq, lit, (write, describe)),
            (topic, usage, lit, (read, describe)),
            (topic, changes, lit, (write, describe)),
            (topic, touches, lit, (write, describe)),
            (Resource.GROUP, group, Pattern.PREFIXED, (read, describe)),
        ],
        # Produces events and usage records; its lag probe reads end offsets and committed ones;
        # its cache follows the touch records (no group: each worker reads from the end).
        "api": [
            (topic, events, lit, (write, describe)),
            (topic, touches, lit, (read, describe)),
            (topic, usage, lit, (write, describe)),
            (Resource.GROUP, group, Pattern.PREFIXED, (describe,)),
        ],
        "publisher": [(topic, events, lit, (write, describe))],
    }
    return [
        Acl(f"User:permstore_{role}", resource, name, pattern, operation)
        for role, rows in grants.items()
        for resource, name, pattern, operations in rows
        for operation in operations
    ]


async def _each(settings: Settings, requests: list[object], field: str) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings, "admin")
    )
    await admin.start()
    try:
        for request in requests:
            # aiokafka has the ACL requests but no public method for them.
            response = await admin._send_request(request)
            for result in getattr(response, field):
                code, message = result[0], result[1]
                if code == SECURITY_DISABLED:
                    raise KafkaAclError("the broker has no authorizer (security disabled)")
                if code != 0:
                    raise KafkaAclError(f"ACL request refused: error {code} {message}")
    finally:
        await admin.close()


async def ensure_acls(settings: Settings) -> list[Acl]:
    """Create every ACL of `acl_table` (idempotent); none where Kafka is PLAINTEXT."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return []
    table = acl_table(settings)
    await _each(
        settings, [CreateAclsRequest(*a.request_args()) for a in table], "creation_responses"
    )
    return table


async def drop_acls(settings: Settings) -> None:
    """Delete the ACLs `ensure_acls` created for these topic and group names."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    table = acl_table(settings)
    await _each(settings, [DeleteAclsRequest(*a.request_args()) for a in table], "filter_responses")

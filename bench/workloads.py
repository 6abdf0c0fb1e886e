"""A realistic mixed history of one tenant, for the rebuild and audit scenarios.

Per 100 events, about: 60 grants to users, 8 grants to groups, 8 revokes of earlier grants,
16 users joining a group, 6 leaving one, and 1 team group nested in a department group
(depth 2, about ten teams each); one role redefinition per 20,000 events (it rewrites every
row of every grant of the role: the expensive event of the lot). A fifth of the grants name
a role (viewer: 1 action, editor: 3), a quarter a folder wildcard. Groups number one per 100
events, users one per 20. The projector writes about 4.6 view rows per event on average.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bench import events as ev
from bench.common import JsonDict

ROLES = {"viewer": ["read"], "editor": ["read", "write", "comment"]}


def mixed_history(tenant: str, count: int, seed: int = 7) -> Iterator[JsonDict]:
    """`count` events of one tenant."""
    rng = random.Random(seed)
    groups = max(10, count // 100)
    depts = max(1, groups // 10)
    users = max(100, count // 20)
    folders = max(10, count // 500)
    grants: list[tuple[str, str, str]] = []
    members: list[tuple[str, str]] = []
    produced = 0
    for role, actions in ROLES.items():
        yield ev.define_role(tenant, role, actions)
        produced += 1
    while produced < count:
        produced += 1
        roll = rng.random()
        if roll < 0.60 or (roll < 0.76 and not grants):
            principal = f"user:u{rng.randrange(users)}"
            yield _grant(rng, tenant, principal, folders, grants)
        elif roll < 0.68:
            if rng.random() < 0.2:
                principal = f"group:dept{rng.randrange(depts)}"
            else:
                principal = f"group:g{rng.randrange(groups)}"
            yield _grant(rng, tenant, principal, folders, grants)
        elif roll < 0.76:
            subject, resource, permission = grants.pop(rng.randrange(len(grants)))
            yield ev.revoke(tenant, subject, resource, permission)
        elif roll < 0.92 or (roll < 0.98 and not members):
            group, member = f"group:g{rng.randrange(groups)}", f"user:u{rng.randrange(users)}"
            members.append((group, member))
            yield ev.add_member(tenant, group, member)
        elif roll < 0.98:
            group, member = members.pop(rng.randrange(len(members)))
            yield ev.remove_member(tenant, group, member)
        elif roll < 0.99:
            # Teams nest into departments: depth 2, about ten teams per department.
            team = rng.randrange(groups)
            yield ev.add_member(tenant, f"group:dept{team % depts}", f"group:g{team}")
        elif roll < 0.99005:
            actions = ["read", "write", "comment", "delete"][: rng.randrange(1, 5)]
            yield ev.define_role(tenant, "editor", actions)
        else:
            principal = f"user:u{rng.randrange(users)}"
            yield _grant(rng, tenant, principal, folders, grants)


def _grant(
    rng: random.Random,
    tenant: str,
    principal: str,
    folders: int,
    grants: list[tuple[str, str, str]],
) -> JsonDict:
    folder = rng.randrange(folders)
    if rng.random() < 0.25:
        resource = f"doc:{tenant}/f{folder}/*"
    else:
        resource = f"doc:{tenant}/f{folder}/d{rng.randrange(200)}"
    roll = rng.random()
    permission = (
        "read"
        if roll < 0.5
        else "write"
        if roll < 0.8
        else rng.choice(["role:viewer", "role:editor"])
    )
    grants.append((principal, resource, permission))
    return ev.grant(tenant, principal, resource, permission)

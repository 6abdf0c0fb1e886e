"""Reading the driver's login failures while the local Cassandra's roles are set up."""

from __future__ import annotations

from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

from permstore.deploy.cassandra_roles import _auth_refused


def test_auth_refused_reads_causes_by_host() -> None:
    """A dict of causes: refused only when one of them is an authentication failure."""
    refused = NoHostAvailable("no host", {"127.0.0.1:9042": AuthenticationFailed("bad")})
    down = NoHostAvailable("no host", {"127.0.0.1:9042": ConnectionRefusedError()})
    assert _auth_refused(refused)
    assert not _auth_refused(down)


def test_auth_refused_without_causes_is_not_a_refusal() -> None:
    """Pools failing after the control connection logged in give only hosts: no cause to read.

    Seen in a fresh-clone run while the default superuser was being disabled; it used to raise
    AttributeError and stop `make test` before any test ran.
    """
    assert not _auth_refused(NoHostAvailable("Unable to connect to any servers", ["127.0.0.1"]))
    assert not _auth_refused(NoHostAvailable("no host", None))

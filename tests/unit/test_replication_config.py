"""Replication settings: consistency per statement kind, the cluster's generated configs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cassandra import ConsistencyLevel, OperationTimedOut
from cassandra.query import SimpleStatement
from pydantic import ValidationError

from permstore.adapters.cassandra import consistency_for, execute
from permstore.adapters.settings import Settings
from permstore.deploy.stack.cassandra import CassandraNode, _cassandra_yaml
from permstore.deploy.stack.cluster import cluster_from_env
from permstore.deploy.stack.config import Settings as StackSettings
from permstore.deploy.stack.kafka import KafkaNode, _kafka_properties


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
    return {k: v for k, v in pairs}


def test_defaults_keep_the_single_node_working() -> None:
    """LOCAL_QUORUM of one replica is that replica: the single node needs nothing else."""
    settings = Settings()
    for role in ("processor", "api", "admin"):
        assert consistency_for(settings, role) == ConsistencyLevel.LOCAL_QUORUM
    assert settings.kafka_min_insync_replicas == 1
    assert settings.cassandra_speculative_delay_ms == 0


def test_levels_follow_the_statement_kind_of_each_role() -> None:
    """Writes (processor, admin) and reads (API) take their own configured level."""
    settings = Settings(cassandra_write_consistency="ALL", cassandra_read_consistency="ONE")
    assert consistency_for(settings, "processor") == ConsistencyLevel.ALL
    assert consistency_for(settings, "admin") == ConsistencyLevel.ALL
    assert consistency_for(settings, "api") == ConsistencyLevel.ONE


def test_an_unknown_level_is_refused_by_name() -> None:
    """A typo in a level fails at start with the field's name, not at the first query."""
    with pytest.raises(ValidationError, match="cassandra_read_consistency"):
        Settings(cassandra_read_consistency="QUORUMM")


def test_single_node_kafka_properties_stay_rf_1() -> None:
    """Node 1 of 1: every replication setting is 1, no unclean-election line."""
    props = _props(_kafka_properties(StackSettings.from_env({}), 3, "pw"))
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    for key in ("default.replication.factor", "min.insync.replicas"):
        assert props[key] == "1"
    assert "unclean.leader.election.enable" not in props


def test_cluster_kafka_properties_replicate_everything() -> None:
    """A broker of three: RF 3, min ISR 2 (internal topics too), own address, all voters."""
    cluster = cluster_from_env({"PERMSTORE_CLUSTER_DIR": "/tmp/permstore-cluster-unit"})
    node = cluster.nodes[1]
    voters = "1@127.0.0.1:19192,2@127.0.0.2:19193,3@127.0.0.3:19194"
    spec = KafkaNode(node_id=2, host=node.host, voters=voters, replicas=3)
    props = _props(_kafka_properties(node.settings, 3, "pw", spec))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == voters
    assert props["listeners"] == "CLIENT://127.0.0.2:19093,CONTROLLER://127.0.0.2:19193"
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert "/node2/kafka/data" in props["log.dirs"]


def test_cluster_never_takes_the_single_nodes_ports() -> None:
    """The cluster's ports are all distinct from the single node's 9092/9093/9042/7000/7199."""
    cluster = cluster_from_env({"PERMSTORE_CLUSTER_DIR": "/tmp/permstore-cluster-unit"})
    single = {9092, 9093, 9042, 7000, 7199, 8080}
    used = {p for n in cluster.nodes for p in (n.kafka_port, n.controller_port, n.jmx_port)}
    used |= {n.cassandra.port for n in cluster.nodes} | {a.port for a in cluster.apps()}
    assert not used & single
    assert {n.host for n in cluster.nodes} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_cassandra_node_yaml_binds_its_own_address() -> None:
    """Each node listens on its own loopback address, seeds from node 1, keeps hints."""
    settings = StackSettings.from_env({"PERMSTORE_CASSANDRA_STORAGE_PORT": "17000"})
    spec = CassandraNode(
        host="127.0.0.3",
        seeds="127.0.0.1:17000",
        cluster_name="permstore-cluster",
        initial_token="3074457345618258602",
        hints=True,
    )
    text = _cassandra_yaml(settings, spec)
    assert "listen_address: 127.0.0.3\n" in text
    assert "rpc_address: 127.0.0.3\n" in text
    assert 'seeds: "127.0.0.1:17000"' in text
    assert "initial_token: 3074457345618258602\n" in text
    assert "hinted_handoff_enabled: true\n" in text
    assert "cluster_name: permstore-cluster\n" in text
    single = _cassandra_yaml(settings)
    assert "hinted_handoff_enabled: false\n" in single
    assert "initial_token" not in single


class _TimingOutSession:
    """Answers execute_async like the driver: the first `failures` attempts time out."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def execute_async(self, statement: object, params: object) -> object:
        self.attempts += 1
        failed = self.attempts <= self.failures

        class Future:
            def add_callbacks(self, on_result: Any, on_error: Any) -> None:
                if failed:
                    on_error(OperationTimedOut(errors=None, last_host="127.0.0.2:9042"))
                else:
                    on_result([("row",)])

        return Future()


def _statement(idempotent: bool) -> SimpleStatement:
    return SimpleStatement("SELECT 1", is_idempotent=idempotent)


def test_an_idempotent_read_that_timed_out_is_sent_once_more() -> None:
    """A read stuck on a node that just died is asked again (another coordinator answers)."""
    session = _TimingOutSession(failures=1)
    rows = asyncio.run(execute(session, _statement(True)))
    assert rows == [("row",)] and session.attempts == 2


def test_a_second_timeout_and_any_non_idempotent_timeout_are_raised() -> None:
    """One retry only, and never for a statement that may not be applied twice."""
    twice = _TimingOutSession(failures=2)
    with pytest.raises(OperationTimedOut):
        asyncio.run(execute(twice, _statement(True)))
    assert twice.attempts == 2
    write = _TimingOutSession(failures=1)
    with pytest.raises(OperationTimedOut):
        asyncio.run(execute(write, _statement(False)))
    assert write.attempts == 1

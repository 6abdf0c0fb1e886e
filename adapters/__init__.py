"""Edges to the outside world: settings, Cassandra, Kafka."""

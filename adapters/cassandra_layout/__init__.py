"""The Cassandra layout: DDL and migrations, table names, row encodings, writer, reader, catalogue.

The only package that writes CQL (ADR "cassandra-layout-package").
"""

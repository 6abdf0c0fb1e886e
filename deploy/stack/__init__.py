"""The local Kafka and Cassandra of deploy/localstack.py, split by concern.

config (settings, constants), passwords (secret files), fetch (java, mvn, jars), processes
(pid files, launch, readiness), kafka, cassandra, cli (up, down, status, env, main). Standard
library only, like the script.
"""

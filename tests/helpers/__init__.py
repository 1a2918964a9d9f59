"""What the tests share: servers (PostgreSQL, OTLP), test programs and graphs, data, and the scripts that
subprocess tests run (``agent_process.py``, ``fleet_agent.py``, ``drift_replica_worker.py``).

Tests import these from here (``from tests.helpers.pg_server import PostgresServer``), never from a
``conftest.py`` or another ``test_*.py`` file; fixtures stay in ``conftest.py`` files.
"""

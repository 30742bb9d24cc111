"""A gRPC server speaking EventStoreDB 24.x's client protocol over the embedded store (tests only).

Start one with `tests.support.esdb_server.fixture.run_test_server(data_dir)` or
`python -m tests.support.esdb_server --port N --data-dir DIR`.
"""

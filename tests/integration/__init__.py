"""Tests of parts together with real I/O: an SQLite store in a temporary directory, a served
app, subprocess servers. tests/unit does no I/O."""

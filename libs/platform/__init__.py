"""Shared runtime pieces for the gRPC services: config, logs, db, migrations, server."""

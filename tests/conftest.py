"""Shared fixtures: the real local control plane for integration tests."""

pytest_plugins = ["numaflow_rdma.controlplane.fixtures"]

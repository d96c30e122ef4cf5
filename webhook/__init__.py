"""The mutating admission webhook that prepares Numaflow vertex pods for the RDMA network."""

"""``numaflow-rdma demo``: the whole system on one machine, with real components."""

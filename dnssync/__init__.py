"""The controller that keeps CoreDNS etcd records in step with vertex pods' RDMA addresses."""

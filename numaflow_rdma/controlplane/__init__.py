"""The local control plane: real etcd, kube-apiserver and CoreDNS on loopback.

Tests, the demo and the benchmarks run against these real processes instead
of fakes. ``ControlPlane`` starts them together; the classes of the other
modules start one each, for tests that need to stop or restart one.
"""

from numaflow_rdma.controlplane.apiserver import KubeApiServer
from numaflow_rdma.controlplane.coredns import CoreDns
from numaflow_rdma.controlplane.etcd import Etcd
from numaflow_rdma.controlplane.plane import ControlPlane
from numaflow_rdma.controlplane.process import ManagedProcess, ProcessError

__all__ = ["ControlPlane", "CoreDns", "Etcd", "KubeApiServer", "ManagedProcess", "ProcessError"]

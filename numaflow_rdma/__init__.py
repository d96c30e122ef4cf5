"""numaflow-rdma: direct frame transport between Numaflow vertices over an RDMA network.

The package holds the names shared by every component (``names``), the
command line (``cli``), and the components themselves: ``webhook``,
``dnssync`` and ``transport``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("numaflow-rdma")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

"""Fixtures of the chart tests: Helm at its pinned release, and the CRDs the chart's objects need."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chart_helpers import AdminApi

from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.plane import ControlPlane

CRD_FILES = (
    Path(binaries.__file__).parent / "crds" / "network-attachment-definition.yaml",
    Path(__file__).parent / "fixtures" / "cert-manager-crds.yaml",
)
CRD_ESTABLISH_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def helm() -> Path:
    """Return the path of Helm, building it from its Go module on first use."""
    return binaries.ensure("helm")


@pytest.fixture(scope="session")
def admin_api(control_plane: ControlPlane) -> Iterator[AdminApi]:
    """Return HTTP access to the session's API server as its admin."""
    apiserver = control_plane.apiserver
    assert apiserver is not None
    api = AdminApi(
        apiserver.url, apiserver.ca_path, apiserver.admin_cert_path, apiserver.admin_key_path
    )
    try:
        yield api
    finally:
        api.close()


def _is_established(api: AdminApi, name: str) -> bool:
    url = f"{api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    status = api.session.get(url, timeout=10).json().get("status") or {}
    return any(
        condition["type"] == "Established" and condition["status"] == "True"
        for condition in status.get("conditions") or []
    )


@pytest.fixture(scope="session")
def chart_crds(admin_api: AdminApi) -> list[str]:
    """Register the NetworkAttachmentDefinition and cert-manager CRDs; return their names."""
    url = f"{admin_api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names: list[str] = []
    for path in CRD_FILES:
        for crd in yaml.safe_load_all(path.read_text()):
            response = admin_api.session.post(url, json=crd, timeout=30)
            # Another test of the session may have registered it already.
            assert response.status_code in (201, 409), response.text
            names.append(crd["metadata"]["name"])

    deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
    pending = list(names)
    while pending and time.monotonic() < deadline:
        pending = [name for name in pending if not _is_established(admin_api, name)]
        if pending:
            time.sleep(0.2)
    assert not pending, f"CRDs not established after {CRD_ESTABLISH_TIMEOUT:.0f} s: {pending}"
    return names

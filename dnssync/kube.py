"""A small JSON client for the Kubernetes API, over the kubernetes package's ApiClient.

dnssync reads pods and namespaces as the API's JSON dicts. Watch streams
must be read line by line from the raw response anyway, and the pure record
rules take dicts, so the typed models would only add a conversion per object.
The ApiClient still does the connection work: kubeconfig or in-cluster
configuration, client certificates, bearer tokens and their rotation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

# Seconds to open a connection and to wait for a whole non-watch response.
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0


class KubeApiError(Exception):
    """The API server responded with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def api_client_from(kubeconfig: str) -> ApiClient:
    """Return an ApiClient from the kubeconfig file, or from the pod's service account when empty."""
    from kubernetes import client, config

    if kubeconfig:
        api_client: ApiClient = config.new_client_from_config(config_file=kubeconfig)
        return api_client
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


class KubeClient:
    """JSON requests to the API server, each returning the decoded body."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one request and return the JSON body; raise KubeApiError on a non-2xx status."""
        response = self._send(method, path, query, body, content_type, (CONNECT_TIMEOUT, timeout))
        try:
            data = response.data
        finally:
            response.release_conn()
        decoded: dict[str, Any] = json.loads(data) if data else {}
        return decoded

    def open_stream(self, path: str, query: Mapping[str, Any], read_timeout: float) -> LineStream:
        """Send a GET and return its body as a stream of lines, as a watch sends one event per line.

        ``read_timeout`` is the most seconds to wait for the next bytes.
        """
        response = self._send(
            "GET", path, query, None, "application/json", (CONNECT_TIMEOUT, read_timeout)
        )
        return LineStream(response)

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: tuple[float, float],
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api_client.param_serialize(
            method,
            path,
            query_params=[
                (name, value) for name, value in (query or {}).items() if value is not None
            ],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            rest_response = self.api_client.call_api(*serialized, _request_timeout=timeout)
        except ApiException as error:
            raise KubeApiError(error.status or 0, str(error.reason)) from error
        except Exception as error:  # urllib3 raises many connection error types
            raise KubeApiError(0, f"{type(error).__name__}: {error}") from error
        response = rest_response.response
        if not 200 <= response.status <= 299:
            data = response.data
            response.release_conn()
            raise _error_from_body(response.status, data)
        return response


class LineStream:
    """The lines of a streamed response body; ``shutdown`` ends a read blocked in another thread."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __iter__(self) -> Iterator[str]:
        from kubernetes.watch.watch import iter_resp_lines

        try:
            yield from iter_resp_lines(self._response)
        finally:
            self.close()

    def shutdown(self) -> None:
        """Interrupt a blocked read; safe to call from any thread."""
        self._response.shutdown()

    def close(self) -> None:
        """Close the response and give its connection back to the pool."""
        self._response.close()
        self._response.release_conn()


def _error_from_body(status: int, data: bytes | None) -> KubeApiError:
    """Build the error from a Status object body, falling back to the raw text."""
    try:
        decoded = json.loads(data or b"{}")
    except ValueError:
        return KubeApiError(status, (data or b"").decode("utf-8", "replace")[:500])
    if isinstance(decoded, dict):
        return KubeApiError(status, str(decoded.get("message", "")), str(decoded.get("reason", "")))
    return KubeApiError(status, str(decoded)[:500])

"""The small set of errors a cluster action can end in, split by whether retrying soon can help (R-CLU-4)."""
from __future__ import annotations


class ClusterActionError(Exception):
    """A cluster action did not complete; `transient` tells the queue whether a quick retry may succeed."""

    transient: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TransientClusterError(ClusterActionError):
    """Throttling (429), conflicts (409), server errors (5xx), timeouts, connection errors: retry with backoff."""

    transient = True


class PermanentClusterError(ClusterActionError):
    """Refusals (other 4xx), bad kubeconfig, missing cluster: retrying soon will not help, but the request is kept for replay."""

    transient = False


class NoCredentialsError(PermanentClusterError):
    """The server's kubeconfig secret is missing (integration §4): recorded as failed with this reason and kept for replay."""

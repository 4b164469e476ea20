"""Beam's local runner listens on loopback only while a job runs.

The DirectRunner's FnApiRunner starts gRPC servers for its workers (control,
data, state, logging) on every interface (`[::]:0`, hard-coded), so each
local run opened ports to the network. While `loopback_only()` is in force,
the `grpc` module those Beam modules call hands out servers whose
`add_insecure_port` binds `localhost` instead: the workers, which dial
`localhost:PORT`, still reach them, and nothing else can.
"""

from __future__ import annotations

import contextlib
import re

from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import worker_handlers

__all__ = ["loopback_only"]

_ANY_INTERFACE = re.compile(r"^(\[::\]|0\.0\.0\.0|\[::0\]):")


class _LoopbackGrpc:
    """The grpc module, but its servers bind loopback where they were told any interface."""

    def __init__(self, grpc_module):
        self._grpc = grpc_module

    def __getattr__(self, name):
        return getattr(self._grpc, name)

    def server(self, *args, **kwargs):
        server = self._grpc.server(*args, **kwargs)
        bind = server.add_insecure_port
        server.add_insecure_port = lambda address: bind(_ANY_INTERFACE.sub("localhost:", address))
        return server


@contextlib.contextmanager
def loopback_only():
    modules = (worker_handlers, local_job_service)
    saved = [module.grpc for module in modules]
    for module in modules:
        if not isinstance(module.grpc, _LoopbackGrpc):
            module.grpc = _LoopbackGrpc(module.grpc)
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.grpc = original

"""Loads SavedModel versions from disk and keeps them current, like TF Serving's manager.

Each model has a base path holding numeric version directories. A poller
(about once a second, as TF Serving's file-system source does) applies the
model's version policy: load versions that should be served, unload the
others. Loading happens outside the lock and the switch is a single
dictionary update, so requests already running on an old version finish on it.

As TF Serving's default (availability-preserving) policy does, an old version
is unloaded only once the version replacing it has loaded: a new version that
fails to load leaves the old one serving. A failed load is tried again
`LOAD_RETRIES` times, `LOAD_RETRY_INTERVAL_S` apart (TF Serving's
`--max_num_load_retries=5`, `--load_retry_interval_micros` of a minute), and at
once when the version's files change, so a directory still being copied is
picked up on the first poll after the copy completes. A version whose
`serving_default` does not answer [N, 10] probabilities is refused at load.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

from serving.server.config import ModelEntry
from serving.signature import check_signature

__all__ = ["Servable", "ModelManager", "ServableNotFound", "UnknownLabel", "versions_on_disk", "LOAD_RETRIES",
           "LOAD_RETRY_INTERVAL_S"]

log = logging.getLogger("formdigits.serve")

LOAD_RETRIES = 5
LOAD_RETRY_INTERVAL_S = 60.0


class ServableNotFound(LookupError):
    """No loaded version matches the request (TF Serving: NOT_FOUND)."""


class UnknownLabel(LookupError):
    """The version label is not configured (TF Serving: INVALID_ARGUMENT)."""


def _files_of(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes while a copy is still under way."""
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            found.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


@dataclasses.dataclass
class _FailedLoad:
    attempts: int
    last_try: float
    files: tuple
    reason: str = ""


def versions_on_disk(base_path: str) -> list[int]:
    """Numeric version directories holding a saved_model.pb, ascending; others are skipped."""
    try:
        names = os.listdir(base_path)
    except OSError:
        return []
    versions = []
    for name in names:
        if name.isdigit() and os.path.isfile(os.path.join(base_path, name, "saved_model.pb")):
            versions.append(int(name))
    return sorted(versions)


@dataclasses.dataclass
class Servable:
    """One loaded model version."""

    name: str
    version: int
    path: str
    functions: dict        # signature name -> concrete function
    signature_defs: dict   # signature name -> SignatureDef proto (for metadata and validation)


def _load_servable(name: str, version: int, path: str) -> Servable:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    loaded = tf.saved_model.load(path, tags=["serve"])
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as fh:
        proto.ParseFromString(fh.read())
    meta_graph = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)
    defs = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    if "serving_default" in defs:
        check_signature(defs["serving_default"], f"model {name} version {version}")
    functions = {k: loaded.signatures[k] for k in defs}
    servable = Servable(name=name, version=version, path=path, functions=functions, signature_defs=defs)
    servable._keepalive = loaded  # the functions need the loaded object's variables alive
    return servable


class ModelManager:
    """Keeps the versions each model's policy asks for loaded, and finds them for requests."""

    def __init__(self, entries: list[ModelEntry], poll_s: float = 1.0, loader=_load_servable,
                 load_retries: int = LOAD_RETRIES, load_retry_interval_s: float = LOAD_RETRY_INTERVAL_S):
        self.entries = {e.name: e for e in entries}
        self.poll_s = poll_s
        self.load_retries = load_retries
        self.load_retry_interval_s = load_retry_interval_s
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[int, Servable]] = {e.name: {} for e in entries}
        self._failed: dict[tuple[str, int], _FailedLoad] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- version policy ---------------------------------------------------
    @staticmethod
    def wanted_versions(entry: ModelEntry, on_disk: list[int]) -> list[int]:
        if entry.policy == "all":
            return on_disk
        if entry.policy == "specific":
            return [v for v in on_disk if v in entry.specific]
        return on_disk[-entry.num_latest:] if on_disk else []

    def refresh(self) -> None:
        """One poll: load what the policy wants; unload the rest once what replaces them is serving."""
        for entry in self.entries.values():
            wanted = self.wanted_versions(entry, versions_on_disk(entry.base_path))
            for version in wanted:
                if version not in self._loaded[entry.name]:
                    self._try_load(entry, version)
            current = self._loaded[entry.name]
            keep = [v for v in wanted if v in current]
            # Availability first: while wanted versions are missing, the newest of the old ones stand in.
            keep += sorted((v for v in current if v not in wanted), reverse=True)[:len(wanted) - len(keep)]
            stale = [v for v in current if v not in keep]
            if stale:
                with self._lock:
                    self._loaded[entry.name] = {v: s for v, s in self._loaded[entry.name].items() if v in keep}
                for version in stale:
                    log.info("unloaded %s version %d", entry.name, version)

    def _try_load(self, entry: ModelEntry, version: int) -> None:
        """Loads one version, unless it failed before and neither its retry time nor its files have come."""
        key, path = (entry.name, version), os.path.join(entry.base_path, str(version))
        failed, files = self._failed.get(key), _files_of(path)
        if failed is not None and failed.files == files:
            if failed.attempts > self.load_retries:
                return
            if time.monotonic() - failed.last_try < self.load_retry_interval_s:
                return
        try:
            servable = self._loader(entry.name, version, path)
        except Exception as exc:  # a broken export must not take the server down
            attempts = failed.attempts + 1 if failed is not None and failed.files == files else 1
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._failed[key] = _FailedLoad(attempts, time.monotonic(), files, reason)
            left = self.load_retries - attempts + 1
            log.error("failed to load %s version %d from %s: %s (%s)", entry.name, version, path, reason,
                      f"trying again in {self.load_retry_interval_s:.0f} s or when its files change, "
                      f"{left} more time{'s' if left != 1 else ''}" if left > 0 else
                      "no more retries until its files change")
            return
        self._failed.pop(key, None)
        with self._lock:
            self._loaded[entry.name] = {**self._loaded[entry.name], version: servable}
        log.info("loaded %s version %d from %s", entry.name, version, path)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # keep polling whatever happens to one pass
                log.exception("model poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- lookups ------------------------------------------------------------
    def failed_loads(self, name: str) -> dict[int, tuple[str, bool]]:
        """Versions of `name` whose last load failed: (reason, whether a retry is still to come)."""
        with self._lock:
            failed = {version: f for (model, version), f in self._failed.items() if model == name}
        return {version: (f.reason, f.attempts <= self.load_retries) for version, f in failed.items()}

    def loaded_versions(self, name: str) -> dict[int, Servable]:
        with self._lock:
            return dict(self._loaded.get(name, {}))

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request, with TF Serving's errors.

        Raises:
            UnknownLabel: `label` is not configured for this model.
            ServableNotFound: the model, version or labelled version is not loaded.
        """
        versions = self.loaded_versions(name)
        if label:
            entry = self.entries.get(name)
            labels = dict(entry.labels) if entry else {}
            if label not in labels:
                raise UnknownLabel(f"Unrecognized servable version label: {label}")
            version = labels[label]
        if version is not None:
            if version not in versions:
                raise ServableNotFound(f"Servable not found for request: Specific({name}, {version})")
            return versions[version]
        if not versions:
            raise ServableNotFound(f"Servable not found for request: Latest({name})")
        return versions[max(versions)]

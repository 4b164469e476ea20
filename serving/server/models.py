"""Loads SavedModel versions from disk and keeps them current, like TF Serving's manager.

Each model has a base path holding numeric version directories. A poller
(about once a second, as TF Serving's file-system source does) applies the
model's version policy: load versions that should be served, unload the
others. Loading happens outside the lock and the switch is a single
dictionary update, so requests already running on an old version finish on it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

from serving.server.config import ModelEntry

__all__ = ["Servable", "ModelManager", "ServableNotFound", "UnknownLabel", "versions_on_disk"]

log = logging.getLogger("formdigits.serve")


class ServableNotFound(LookupError):
    """No loaded version matches the request (TF Serving: NOT_FOUND)."""


class UnknownLabel(LookupError):
    """The version label is not configured (TF Serving: INVALID_ARGUMENT)."""


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
    functions = {k: loaded.signatures[k] for k in defs}
    servable = Servable(name=name, version=version, path=path, functions=functions, signature_defs=defs)
    servable._keepalive = loaded  # the functions need the loaded object's variables alive
    return servable


class ModelManager:
    """Keeps the versions each model's policy asks for loaded, and finds them for requests."""

    def __init__(self, entries: list[ModelEntry], poll_s: float = 1.0, loader=_load_servable):
        self.entries = {e.name: e for e in entries}
        self.poll_s = poll_s
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[int, Servable]] = {e.name: {} for e in entries}
        self._failed: set[tuple[str, int]] = set()
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
        """One poll: load what the policy wants, unload the rest."""
        for entry in self.entries.values():
            wanted = self.wanted_versions(entry, versions_on_disk(entry.base_path))
            current = self._loaded[entry.name]
            for version in wanted:
                if version in current or (entry.name, version) in self._failed:
                    continue
                path = os.path.join(entry.base_path, str(version))
                try:
                    servable = self._loader(entry.name, version, path)
                except Exception as exc:  # a broken export must not take the server down
                    self._failed.add((entry.name, version))
                    log.error("failed to load %s version %d from %s: %s", entry.name, version, path, exc)
                    continue
                with self._lock:
                    self._loaded[entry.name] = {**self._loaded[entry.name], version: servable}
                log.info("loaded %s version %d from %s", entry.name, version, path)
            stale = [v for v in self._loaded[entry.name] if v not in wanted]
            if stale:
                with self._lock:
                    self._loaded[entry.name] = {v: s for v, s in self._loaded[entry.name].items() if v in wanted}
                for version in stale:
                    log.info("unloaded %s version %d", entry.name, version)

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

"""What a served model must answer to be read as a digit classifier: [N, 10] probabilities.

Checked by the local server when it loads a version, and by the job against any server (the real TF Serving
included) at start, on every new version, and on every response.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASSES", "UnfitModel", "check_signature", "check_probabilities"]

CLASSES = 10


class UnfitModel(ValueError):
    """A model (version) that does not answer [N, 10] probabilities, or an answer that is not such."""


def check_signature(signature_def, where: str) -> None:
    """Raises UnfitModel unless `signature_def` (a SignatureDef proto) outputs `probabilities` of [N, 10].

    Args:
        signature_def: the `serving_default` SignatureDef.
        where: "model m version v", for the message.
    """
    outputs = signature_def.outputs
    if "probabilities" not in outputs:
        raise UnfitModel(f"{where}: serving_default has no 'probabilities' output (it has "
                         f"{', '.join(sorted(outputs)) or 'none'}); formdigits reads [N, {CLASSES}] digit "
                         "probabilities")
    dims = [d.size for d in outputs["probabilities"].tensor_shape.dim]
    if len(dims) != 2 or dims[1] != CLASSES:
        shape = "[" + ", ".join("N" if d < 0 else str(d) for d in dims) + "]"
        raise UnfitModel(f"{where}: serving_default answers probabilities of shape {shape}, not "
                         f"[N, {CLASSES}]: not a digit classifier")


def check_probabilities(probabilities: np.ndarray, crops: int, where: str) -> None:
    """Raises UnfitModel unless `probabilities` is [crops, 10] of finite values, each row summing to 1."""
    if probabilities.shape != (crops, CLASSES):
        raise UnfitModel(f"{where} answered probabilities of shape {list(probabilities.shape)} for {crops} crops, "
                         f"not [{crops}, {CLASSES}]")
    if not np.isfinite(probabilities).all():
        raise UnfitModel(f"{where} answered probabilities that are not finite numbers (NaN or infinity)")
    sums = probabilities.sum(axis=1, dtype=np.float64)
    if len(sums) and (np.abs(sums - 1.0).max() > 1e-3 or probabilities.min() < 0):
        raise UnfitModel(f"{where} answered rows that are not probabilities (they sum to "
                         f"{sums.min():.3f}..{sums.max():.3f}, not 1)")

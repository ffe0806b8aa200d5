"""Pieces shared by the v2 codecs (REST and gRPC alike); pure, no KServe types.

Inputs: one ``[N, F]`` tensor or one ``[N]`` tensor per feature. Outputs: each requested output's
v2 datatype and values, ``predict_proba`` carrying its class labels as a JSON string.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import orjson

from predictor.errors import PayloadError
from predictor.inference.batch import Batch
from predictor.inference.features import documents, matrix_to_features, strings_wanted
from predictor.inference.signature import NUMERIC, PREDICT_PROBA, STRING, Signature


def takes_columns(input_names: Sequence[str], signature: Signature) -> bool:
    """Whether v2 inputs with these names are one tensor per feature (else one matrix)."""
    names = signature.feature_names
    return names is not None and (
        len(input_names) > 1 or (len(names) == 1 and input_names[0] in names)
    )


def decode_matrix(
    name: str,
    datatype: str,
    array: np.ndarray,
    signature: Signature,
    outputs: tuple[str, ...],
    frame: bool,
) -> Batch:
    """Decode the values of one v2 input tensor that holds every feature: ``[N, F]``.

    For a text model, the tensor holds one document per row: ``[N]`` (or ``[N, 1]``) BYTES.
    """
    if signature.text:
        return decode_documents(name, datatype, array, outputs)
    if not signature.all_numeric and datatype != STRING:
        raise PayloadError(f"input '{name}': {strings_wanted(signature, f'datatype {datatype}')}")
    if array.ndim == 1 and signature.n_features == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise PayloadError(
            f"input '{name}': expected shape [N, {signature.n_features}], got {list(array.shape)}"
        )
    if array.shape[0] == 0:
        raise PayloadError(f"input '{name}' has no rows; send at least one")
    return Batch(
        features=matrix_to_features(array, signature, frame), n_rows=array.shape[0], outputs=outputs
    )


def decode_documents(
    name: str, datatype: str, array: np.ndarray, outputs: tuple[str, ...]
) -> Batch:
    """One BYTES tensor of documents, ``[N]`` or ``[N, 1]``, for a text model."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise PayloadError(f"input '{name}': expected shape [N] (one text per row)")
    if array.dtype.kind != "O":
        raise PayloadError(
            f"input '{name}': expected texts (datatype BYTES), got datatype {datatype}"
        )
    if array.shape[0] == 0:
        raise PayloadError(f"input '{name}' has no rows; send at least one")
    return Batch(features=documents(array), n_rows=array.shape[0], outputs=outputs)


def misfit(name: str, datatype: str, shape: Sequence[int]) -> PayloadError:
    """The error for a tensor whose values do not fill its shape or do not fit its datatype."""
    return PayloadError(
        f"input '{name}': data does not fit datatype {datatype} and shape {list(shape)} "
        "(wrong number of values, or values of another type)"
    )


_IDS = random.Random()
"""The generator response ids are drawn from: seeded from the system, and again in each forked
worker; its own, so that a model (or a library) that seeds or draws from the ``random`` module
neither repeats our ids nor sees its sequence moved by them."""
os.register_at_fork(after_in_child=_IDS.seed)


def new_id() -> str:
    """A random (version 4) UUID string for a response whose request carried no id.

    What ``str(uuid.uuid4())`` gives, without building a ``UUID`` object or a system call: an
    id names a response, it guards no secret, so a Mersenne Twister of our own draws the bits.
    """
    digits = f"{_IDS.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def classes_parameter(signature: Signature) -> str:
    """The class labels as the JSON string carried in ``predict_proba``'s parameters."""
    return orjson.dumps(list(signature.classes or ())).decode()


def output_values(name: str, values: np.ndarray, signature: Signature) -> tuple[str, np.ndarray]:
    """An output's v2 datatype, and its values as an array of that type."""
    if name == PREDICT_PROBA:
        return NUMERIC, np.ascontiguousarray(values, dtype=np.float64)
    datatype = signature.output(name).datatype
    return datatype, labels_as(values, datatype)


def labels_as(values: np.ndarray, datatype: str) -> np.ndarray:
    """Labels as an array of the v2 datatype they travel as."""
    if datatype == STRING:
        texts = [str(v) for v in values.ravel().tolist()]
        return np.asarray(texts, dtype=object).reshape(values.shape)
    if datatype == "INT64":
        return values.astype(np.int64, copy=False)
    if datatype == "BOOL":
        return values.astype(bool, copy=False)
    return values.astype(np.float64, copy=False)


def listed(names: list[str], *, most: int = 5, width: int = 40) -> str:
    """Names a caller sent, quoted and cut to ``width`` characters, at most ``most`` of them."""
    shown = [repr(n if len(n) <= width else n[: width - 1] + "…") for n in names[:most]]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more

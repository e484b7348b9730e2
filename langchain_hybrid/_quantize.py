"""The int8 all-MiniLM-L6-v2: onnxruntime's dynamic quantisation of the fp32 ``model.onnx``.

``MiniLMEmbeddings(precision="int8")`` runs ``model_int8.onnx``, made offline from the fp32
files by :func:`quantize_model` (or ``langchain-hybrid quantize``): onnxruntime's
``quantize_dynamic`` with signed int8 weights and one scale per output channel, over the
operators onnxruntime quantises by default (the encoder's MatMuls and the embedding lookups)
except the six feed-forward output projections (``layer.N.output.dense``, whose input is the
GELU output) and every MatMul of the first and last of the six layers (``layer.0``,
``layer.5``), which stay fp32; activations are quantised at run time, per batch. The file is
41 MB (fp32: 90 MB). Measured on 300 SciFact passages, mean cosine of the vectors to fp32:
per-tensor scales 0.937, per-channel 0.9948, per-channel with the feed-forward outputs kept
fp32 0.9976; on 200 other SciFact passages and 200 train queries (chosen there, not on test):
feed-forward outputs kept 0.99753 (queries 0.99684, top-10 agreement with fp32 0.942), also
the first and last layers kept 0.99805 (0.99760, 0.9535). On SciFact test the per-channel
model without exceptions lost 0.0035 hybrid nDCG@10 and the one keeping only the feed-forward
outputs 0.0058 on the vector leg, more than issue 15 allows (0.003 / 0.005); this recipe loses
none on hybrid (+0.0003) and 0.0046 on the vector leg (README, "Embedding speed"). Making
the file needs the ``onnx`` package (``pip install langchain-hybrid[int8]``); running it
needs only onnxruntime.

Where the file lives, looked up in this order:

1. ``model_int8.onnx`` beside ``model.onnx`` (put it there with ``--out``, or ship it there);
2. ``~/.cache/langchain-hybrid/models/all-MiniLM-L6-v2-<key>/model_int8.onnx``, where ``<key>``
   hashes the fp32 file's resolved path, size and modification time and the recipe, so a
   replaced fp32 file (or a new recipe) gets a new int8 file. This is where a first
   ``precision="int8"`` use writes it when neither exists and ``onnx`` is installed.

The recipe has a fingerprint, :data:`INT8_RECIPE` (a hash of the settings given to
``quantize_dynamic``): the int8 model id ends with it, the cache key and the evaluation cache
key hold it, and :func:`quantize_model` stamps it into the file's metadata. A file found
without this version's stamp is refused (:func:`check_int8_recipe`), so vectors of another
recipe are never recorded under this one's id. (The operators onnxruntime quantises by
default are not in the fingerprint: an onnxruntime that changed them would need a new one.)

Nothing here writes into the fp32 model's folder unless asked to (``out_dir``), and nothing
replaces an existing int8 file unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path

from langchain_hybrid.embeddings import MODEL_NAME, resolve_model_dir
from langchain_hybrid.errors import EmbeddingModelNotFoundError

logger = logging.getLogger(__name__)

INT8_FILENAME = "model_int8.onnx"
"""The quantised model's file name, beside ``model.onnx`` or in the cache folder."""

QUANTIZATION = (
    "dynamic, QInt8 weights, per channel, feed-forward outputs and layers 0 and 5 kept fp32"
)
"""What :func:`quantize_model` does, in words (for logs and the README)."""

_KEPT_FP32 = re.compile(r"(^|\.)layer\.\d+\.output\.dense\.|(^|\.)layer\.[05]\.")
"""Weights of the MatMuls left in fp32: each layer's feed-forward output projection, and every
MatMul of the first and the last layer."""

_WEIGHT_TYPE = "QInt8"
"""``onnxruntime.quantization.QuantType`` member the weights are quantised to."""

_PER_CHANNEL = True
"""One scale per output channel (else one per tensor)."""


def recipe_fingerprint(weight_type: str, *, per_channel: bool, kept_fp32: str) -> str:
    """``"r"`` and 8 hex digits of a hash of the ``quantize_dynamic`` settings of a recipe.

    Args:
        weight_type: The ``QuantType`` member name of the weights (``"QInt8"``).
        per_channel: One scale per output channel.
        kept_fp32: The pattern of the weights whose MatMuls stay fp32.
    """
    raw = f"quantize_dynamic|{weight_type}|per_channel={per_channel}|{kept_fp32}"
    return "r" + hashlib.sha256(raw.encode()).hexdigest()[:8]


INT8_RECIPE = recipe_fingerprint(
    _WEIGHT_TYPE, per_channel=_PER_CHANNEL, kept_fp32=_KEPT_FP32.pattern
)
"""The recipe's fingerprint: a hash of the settings :func:`quantize_model` passes to
``quantize_dynamic`` (``"rfde59fc4"``). It is part of the int8 model id
(``"all-MiniLM-L6-v2/int8-rfde59fc4"``,
which an index records), of :func:`int8_cache_dir`'s key and of the evaluation cache key, and
:func:`quantize_model` stamps it into the file (:data:`RECIPE_METADATA_KEY`). A new recipe gets
a new fingerprint, so its vectors are never taken for an older recipe's."""

RECIPE_METADATA_KEY = "langchain_hybrid_int8_recipe"
"""Key of the ONNX model metadata entry holding the :data:`INT8_RECIPE` the file was made by."""

_lock = threading.Lock()  # one quantisation at a time per process


def int8_cache_dir(model_dir: Path) -> Path:
    """The cache folder for the int8 model made from ``model_dir/model.onnx``.

    Args:
        model_dir: Folder holding the fp32 ``model.onnx``.

    Returns:
        ``~/.cache/langchain-hybrid/models/all-MiniLM-L6-v2-<key>`` (whether or not it exists);
        the key hashes the fp32 file's resolved path, size and modification time and
        :data:`INT8_RECIPE`, so a new fp32 file or a new recipe gets a new int8 file.
    """
    source = (Path(model_dir) / "model.onnx").resolve()
    try:
        stat = source.stat()
        raw = f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{INT8_RECIPE}"
    except OSError:
        raw = f"{source}|{INT8_RECIPE}"
    key = hashlib.sha256(raw.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "langchain-hybrid" / "models" / f"{MODEL_NAME}-{key}"


def find_int8_model(model_dir: Path) -> Path | None:
    """The int8 model made from ``model_dir``'s fp32 file, if one exists.

    Args:
        model_dir: Folder holding the fp32 ``model.onnx``.

    Returns:
        ``model_dir/model_int8.onnx`` if it is a file, else the cached one if it is, else None.
    """
    for candidate in (Path(model_dir) / INT8_FILENAME, int8_cache_dir(model_dir) / INT8_FILENAME):
        if candidate.is_file():
            return candidate
    return None


def _how_to_make(model_dir: Path) -> str:
    return (
        "Install the quantiser (`pip install langchain-hybrid[int8]`, which adds the `onnx` "
        f"package) and run `langchain-hybrid quantize --model-dir {model_dir}`, or copy a "
        f"{INT8_FILENAME} made elsewhere beside {model_dir / 'model.onnx'} or into "
        f"{int8_cache_dir(model_dir)}."
    )


def quantize_model(
    model_dir: Path | None = None, out_dir: Path | None = None, *, overwrite: bool = False
) -> Path:
    """Write ``model_int8.onnx``, the dynamic int8 quantisation of the fp32 ``model.onnx``.

    Offline and deterministic: the same fp32 file gives the same int8 file. Takes about ten
    seconds. The file's metadata records the recipe (:data:`INT8_RECIPE`). The file is written
    to a temporary name in ``out_dir`` and renamed into place, so a reader never sees half a
    model.

    Args:
        model_dir: Folder holding ``model.onnx`` and ``tokenizer.json``; None to search for it
            as :func:`~langchain_hybrid.embeddings.resolve_model_dir` does.
        out_dir: Folder to write into (created if missing); None for :func:`int8_cache_dir`.
            Pass the model folder itself to keep the int8 file beside the fp32 one.
        overwrite: Replace an existing ``model_int8.onnx`` in ``out_dir``; by default an
            existing file is kept and its path returned.

    Returns:
        The path of ``model_int8.onnx``.

    Raises:
        EmbeddingModelNotFoundError: The fp32 files cannot be found, or the ``onnx`` package
            (needed to quantise) is not installed.
    """
    directory = resolve_model_dir(model_dir)
    target_dir = Path(out_dir).expanduser() if out_dir is not None else int8_cache_dir(directory)
    target = target_dir / INT8_FILENAME
    with _lock:
        if target.is_file() and not overwrite:
            logger.info("%s already exists; kept", target)
            return target
        try:
            import onnx  # noqa: PLC0415 - optional (the int8 extra)
            from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415
        except ImportError as e:
            msg = f"Quantising all-MiniLM-L6-v2 needs the onnx package. {_how_to_make(directory)}"
            raise EmbeddingModelNotFoundError(msg) from e
        target_dir.mkdir(parents=True, exist_ok=True)
        partial = target_dir / f".{INT8_FILENAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        logger.info("Quantising %s to int8 (%s)", directory / "model.onnx", QUANTIZATION)
        model = onnx.load(str(directory / "model.onnx"))
        for number, node in enumerate(model.graph.node):
            node.name = node.name or f"node_{number}"  # exclusion goes by node name
        stamp = model.metadata_props.add()  # quantize_dynamic keeps it in the file it writes
        stamp.key, stamp.value = RECIPE_METADATA_KEY, INT8_RECIPE
        kept = [
            node.name
            for node in model.graph.node
            if node.op_type == "MatMul" and any(_KEPT_FP32.search(name) for name in node.input)
        ]
        logger.debug("Keeping %d MatMul nodes in fp32: %s", len(kept), kept)
        try:
            quantize_dynamic(
                model,
                partial,
                weight_type=QuantType[_WEIGHT_TYPE],
                per_channel=_PER_CHANNEL,
                nodes_to_exclude=kept,
            )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)  # only our own temporary file, if still there
        logger.info("Wrote %s", target)
        return target


def check_int8_recipe(stamped: str | None, path: Path, model_dir: Path) -> None:
    """Refuse an int8 file made by another recipe than :data:`INT8_RECIPE`.

    Its vectors would be recorded under this recipe's model id, and mixed with this recipe's in
    one index. A file made before recipes were stamped (or by another tool) has no stamp and
    is refused too.

    Args:
        stamped: The file's :data:`RECIPE_METADATA_KEY` metadata (None: absent).
        path: The int8 file.
        model_dir: Folder holding the fp32 ``model.onnx`` it was looked up for.

    Raises:
        EmbeddingModelNotFoundError: ``stamped`` is not :data:`INT8_RECIPE` (the message says
            how to make the file again).
    """
    if stamped == INT8_RECIPE:
        return
    made_by = f"int8 recipe {stamped!r}" if stamped else "an unrecorded int8 recipe"
    msg = (
        f"{path} was made by {made_by}, not by this version's {INT8_RECIPE!r}, so its vectors "
        "are not the ones this version records as int8. Make it again with `langchain-hybrid "
        f"quantize --model-dir {model_dir} --out {path.parent} --force` (or move it away: "
        "the first int8 use then makes this recipe's file in the cache)."
    )
    raise EmbeddingModelNotFoundError(msg)


def ensure_int8_model(model_dir: Path) -> Path:
    """The int8 model of ``model_dir``: an existing one, else one made now into the cache.

    Args:
        model_dir: Folder holding the fp32 ``model.onnx`` (already resolved).

    Returns:
        The path of ``model_int8.onnx``.

    Raises:
        EmbeddingModelNotFoundError: No int8 file exists and the ``onnx`` package needed to
            make one is not installed (the message says how to provide it).
    """
    found = find_int8_model(model_dir)
    if found is not None:
        return found
    try:
        import onnx  # noqa: F401, PLC0415 - only to tell "cannot make it" from other errors
    except ImportError as e:
        msg = (
            f"precision='int8' needs {INT8_FILENAME}, which is neither beside "
            f"{model_dir / 'model.onnx'} nor in {int8_cache_dir(model_dir)}. "
            f"{_how_to_make(model_dir)}"
        )
        raise EmbeddingModelNotFoundError(msg) from e
    return quantize_model(model_dir)

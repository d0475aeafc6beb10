"""The wire format, in one place: what travels between the server and agent i each round.

Three messages per round (``fedfair.runtime.transport`` moves them and counts their bytes):

1. **upload** (agent i → server): one fixed-size float32 row, the update Δw_i (D values)
   followed by the strategy's extra scalars (``Strategy.extras``, e.g. q-FFL's loss F_i);
   built by :func:`upload_row`, split by :func:`split_uploads`, sized by :func:`upload_size`.
   Its size is fixed by the server's receive buffer, so it has no header.
2. **reward** (server → agent i): an int64 size header (:data:`SIZE_HEADER_BYTES`), then agent
   i's own reward v_i as a self-describing uint8 payload (:func:`encode` / :func:`decode`,
   below). Values travel as :data:`WIRE_DTYPE` (float32), also in float64 runs.
3. **round statistics** (agent i → server): a few float64 scalars, :class:`RoundStats` (never
   the model); control bytes.

Reward payload
--------------

The server sends agent i only its reward v_i: k_i entries of the aggregate out of D. Which
format is smallest depends on the density k/D, so three are offered and ``"auto"`` picks:

- ``dense``:  all D values (best when nearly everything is kept);
- ``index``:  k indices (int32, or int64 when D ≥ 2^31) followed by the k values (sparse);
- ``bitmap``: a D-bit membership bitmap followed by the k values (in between).

Layout (all multi-byte fields little-endian; HEADER_BYTES = 24)::

    offset  size  field
    0       4     magic b"FFRW"
    4       1     format version (1)
    5       1     encoding id: 0 dense, 1 index, 2 bitmap
    6       1     value dtype code: 1 float32, 2 float64, 3 float16, 4 bfloat16
    7       1     index width in bytes: 4 or 8 for "index", 0 otherwise
    8       8     dim D (int64)
    16      8     k, the number of entries the sender kept (int64)
    24      ...   body
                  dense:  D values
                  index:  k indices (ascending), then their k values
                  bitmap: ceil(D/8) bytes, then the k values in ascending index order.
                          Entry j is bit (j mod 8) of byte j // 8, least significant bit
                          first (numpy ``bitorder="little"``); padding bits are zero.

The body is built from byte views of contiguous tensors (no per-entry Python, and indices are
never cast through floating point), so encoding costs a few passes over k or D entries.
A dense payload does not record which k entries were kept (it decodes to the dense vector, zeros
included), while the header still carries the sender's k for accounting.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import sys
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "WIRE_DTYPE",
    "SIZE_HEADER_BYTES",
    "SIZE_HEADER_DTYPE",
    "upload_size",
    "upload_row",
    "split_uploads",
    "RoundStats",
    "STATS_SIZE",
    "encode_reward",
    "dense_reward_bytes",
    "ENCODINGS",
    "HEADER_BYTES",
    "RewardHeader",
    "encoded_size",
    "choose_encoding",
    "encode",
    "decode",
    "read_header",
]

WIRE_DTYPE = torch.float32
"""Uploads and reward values travel as float32, also in float64 runs (see train.dtype)."""

SIZE_HEADER_DTYPE = torch.int64
SIZE_HEADER_BYTES = SIZE_HEADER_DTYPE.itemsize  # 8
"""Every reward payload is preceded by its length in bytes, one int64."""


# ---------------------------------------------------------------- 1. the upload row


def upload_size(dim: int, extras: int) -> int:
    """Values in one upload row: the D-vector update, then the strategy's extra scalars."""
    return dim + extras


def upload_row(update: Tensor, extras: Sequence[float]) -> Tensor:
    """Agent i's upload as sent: [Δw_i, extras] in :data:`WIRE_DTYPE`, on the update's device."""
    return torch.cat([update.to(WIRE_DTYPE), torch.tensor(extras, dtype=WIRE_DTYPE, device=update.device)])


def split_uploads(rows: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """The server's N x (D + E) upload buffer as (updates N x D, extras N x E), views of it."""
    return rows[:, :dim], rows[:, dim:]


# ---------------------------------------------------------------- 2. the reward payload


def encode_reward(indices: Tensor | None, values: Tensor, dim: int, encoding: str = "auto") -> tuple[Tensor, str]:
    """Agent i's reward (``indices`` None = dense) as its payload; returns (payload, encoding used).

    ``values`` must already be :data:`WIRE_DTYPE`; "auto" picks the smallest encoding for k.
    """
    k = dim if indices is None else indices.numel()
    chosen = encoding if encoding != "auto" else choose_encoding(k, dim)
    return encode(torch.arange(dim) if indices is None else indices, values, dim, chosen), chosen


def dense_reward_bytes(dim: int) -> int:
    """Bytes of one dense reward message (size header included): the baseline sparsity saves against."""
    return SIZE_HEADER_BYTES + encoded_size("dense", dim, dim)


# the payload's codec: the layout in this module's docstring

ENCODINGS = ("dense", "index", "bitmap")
"""Concrete encodings, in the order ``choose_encoding`` prefers them on equal size."""

MAGIC = b"FFRW"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBqq")
HEADER_BYTES = _HEADER.size  # 24

_ENCODING_IDS = {name: i for i, name in enumerate(ENCODINGS)}
_DTYPE_CODES = {torch.float32: 1, torch.float64: 2, torch.float16: 3, torch.bfloat16: 4}
_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_INT32_LIMIT = 2**31


class RewardHeader(NamedTuple):
    """The decoded fixed-size header of a reward payload."""

    encoding: str
    value_dtype: torch.dtype
    index_bytes: int
    dim: int
    k: int


def _check_host() -> None:
    if sys.byteorder != "little":  # byte views below assume the wire's byte order
        raise NotImplementedError("fedfair's reward codecs assume a little-endian host")


def _value_bytes(value_dtype: torch.dtype) -> int:
    if value_dtype not in _DTYPE_CODES:
        raise ValueError(f"unsupported reward value dtype {value_dtype}; expected one of {list(_DTYPE_CODES)}")
    return torch.empty(0, dtype=value_dtype).element_size()


def _index_bytes(dim: int) -> int:
    """int32 indices suffice below 2^31 entries; beyond, int64."""
    return 4 if dim < _INT32_LIMIT else 8


def encoded_size(encoding: str, k: int, dim: int, value_dtype: torch.dtype = torch.float32) -> int:
    """Exact byte length of ``encode(...)``'s payload for k kept entries out of dim, header included."""
    if not 0 <= k <= dim:
        raise ValueError(f"need 0 <= k <= dim, got k={k}, dim={dim}")
    if encoding == "auto":
        encoding = choose_encoding(k, dim, value_dtype)
    value_bytes = _value_bytes(value_dtype)
    if encoding == "dense":
        return HEADER_BYTES + dim * value_bytes
    if encoding == "index":
        return HEADER_BYTES + k * (_index_bytes(dim) + value_bytes)
    if encoding == "bitmap":
        return HEADER_BYTES + math.ceil(dim / 8) + k * value_bytes
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS} or 'auto'")


def choose_encoding(k: int, dim: int, value_dtype: torch.dtype = torch.float32) -> str:
    """The smallest encoding for (k, dim); on equal size prefer dense, then index, then bitmap."""
    return min(ENCODINGS, key=lambda name: encoded_size(name, k, dim, value_dtype))


def _bytes_of(t: Tensor) -> np.ndarray:
    """The raw bytes of a CPU tensor, as a numpy view when it is contiguous (any dtype, bfloat16 too)."""
    if t.numel() == 0:  # an empty tensor may carry any stride, which a byte view refuses
        return np.empty(0, dtype=np.uint8)
    return t.detach().cpu().contiguous().view(torch.uint8).numpy()


def encode(indices: Tensor, values: Tensor, dim: int, encoding: str = "auto") -> Tensor:
    """Serialise the sparse reward (ascending int64 ``indices``, ``values``) of a dim-vector.

    The payload is allocated once at its exact size and filled through byte views:
    the header, then the body sections, each a single vectorised copy.
    """
    _check_host()
    if indices.dtype != torch.int64 or indices.dim() != 1:
        raise ValueError(f"indices must be a 1-D int64 tensor, got {indices.dtype} of shape {tuple(indices.shape)}")
    if values.shape != indices.shape:
        raise ValueError(f"values {tuple(values.shape)} must match indices {tuple(indices.shape)}")
    k = indices.numel()
    if not 0 <= k <= dim:
        raise ValueError(f"need 0 <= k <= dim, got k={k}, dim={dim}")
    positions = indices.detach().cpu().contiguous().numpy()
    if k and (positions[0] < 0 or positions[-1] >= dim or not (positions[1:] > positions[:-1]).all()):
        raise ValueError(f"indices must be strictly ascending within [0, {dim})")
    value_bytes = _value_bytes(values.dtype)  # also validates the dtype
    if encoding == "auto":
        encoding = choose_encoding(k, dim, values.dtype)
    if encoding not in _ENCODING_IDS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS} or 'auto'")

    index_bytes = _index_bytes(dim) if encoding == "index" else 0
    payload = torch.empty(encoded_size(encoding, k, dim, values.dtype), dtype=torch.uint8)
    wire = payload.numpy()
    wire[:HEADER_BYTES] = np.frombuffer(
        _HEADER.pack(MAGIC, VERSION, _ENCODING_IDS[encoding], _DTYPE_CODES[values.dtype], index_bytes, dim, k),
        dtype=np.uint8,
    )
    body = wire[HEADER_BYTES:]
    if encoding == "dense":
        # scatter straight into the payload (the header keeps the body aligned for every value dtype)
        dense = payload[HEADER_BYTES:].view(values.dtype)
        dense.zero_()
        dense.index_copy_(0, indices.detach().cpu(), values.detach().cpu())
        return payload
    if encoding == "index":
        split = k * index_bytes
        # integer narrowing int64 -> int32 (all indices < dim < 2^31), straight into the payload
        np.copyto(body[:split].view(np.int32 if index_bytes == 4 else np.int64), positions, casting="unsafe")
    else:  # bitmap
        split = math.ceil(dim / 8)
        members = np.zeros(split * 8, dtype=np.bool_)
        members[positions] = True
        body[:split] = np.packbits(members, bitorder="little")
    body[split:] = _bytes_of(values)
    assert body.size - split == k * value_bytes
    return payload


def read_header(payload: Tensor) -> RewardHeader:
    """Parse and validate a payload's header against the payload's length."""
    _check_host()
    if payload.dtype != torch.uint8 or payload.dim() != 1:
        raise ValueError(f"a reward payload is a 1-D uint8 tensor, got {payload.dtype} of shape {tuple(payload.shape)}")
    if payload.numel() < HEADER_BYTES:
        raise ValueError(f"malformed reward payload: {payload.numel()} bytes, "
                         f"shorter than the {HEADER_BYTES}-byte header")
    magic, version, encoding_id, dtype_code, index_bytes, dim, k = _HEADER.unpack(
        payload[:HEADER_BYTES].numpy().tobytes()
    )
    if magic != MAGIC:
        raise ValueError(f"malformed reward payload: bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ValueError(f"unsupported reward payload version {version}; this build reads version {VERSION}")
    if encoding_id >= len(ENCODINGS):
        raise ValueError(f"malformed reward payload: unknown encoding id {encoding_id}")
    if dtype_code not in _DTYPES:
        raise ValueError(f"malformed reward payload: unknown value dtype code {dtype_code}")
    encoding = ENCODINGS[encoding_id]
    if not 0 <= k <= dim:
        raise ValueError(f"malformed reward payload: k={k} outside [0, dim={dim}]")
    expected_index_bytes = _index_bytes(dim) if encoding == "index" else 0
    if index_bytes != expected_index_bytes:
        raise ValueError(
            f"malformed reward payload: index width {index_bytes} bytes, expected {expected_index_bytes} "
            f"for {encoding!r} with dim={dim}"
        )
    header = RewardHeader(encoding, _DTYPES[dtype_code], index_bytes, dim, k)
    expected = encoded_size(encoding, k, dim, header.value_dtype)
    if payload.numel() != expected:
        raise ValueError(
            f"malformed reward payload: {payload.numel()} bytes, but its header ({encoding}, dim={dim}, "
            f"k={k}) implies exactly {expected}"
        )
    return header


def _view_as(body: Tensor, dtype: torch.dtype) -> Tensor:
    """Reinterpret a byte slice as ``dtype``, copying only if the slice is misaligned."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if body.storage_offset() % itemsize or body.data_ptr() % itemsize:
        body = body.clone()
    return body.view(dtype)


def _decode_body(payload: Tensor) -> tuple[RewardHeader, Tensor | None, Tensor | None, Tensor]:
    """(header, indices or None, membership mask or None, values) of a validated payload."""
    header = read_header(payload)
    body = payload[HEADER_BYTES:]
    if header.encoding == "dense":
        return header, None, None, _view_as(body, header.value_dtype)
    if header.encoding == "index":
        split = header.k * header.index_bytes
        wire_indices = _view_as(body[:split], torch.int32 if header.index_bytes == 4 else torch.int64)
        indices = wire_indices.to(torch.int64)
        if header.k and (
            int(indices[0]) < 0
            or int(indices[-1]) >= header.dim
            or not bool((indices[1:] > indices[:-1]).all())
        ):
            raise ValueError(f"malformed reward payload: indices not strictly ascending within [0, {header.dim})")
        return header, indices, None, _view_as(body[split:], header.value_dtype)
    split = math.ceil(header.dim / 8)
    bits = np.unpackbits(body[:split].numpy(), bitorder="little")
    if bits[header.dim :].any():
        raise ValueError("malformed reward payload: bitmap padding bits beyond dim are set")
    members = torch.from_numpy(bits[: header.dim].view(np.bool_))
    if int(members.sum()) != header.k:
        raise ValueError(f"malformed reward payload: bitmap has {int(members.sum())} members, header says k={header.k}")
    return header, None, members, _view_as(body[split:], header.value_dtype)


def decode(payload: Tensor) -> Tensor:
    """The reward as a dense dim-vector of the payload's value dtype (zeros off the support)."""
    header, indices, members, values = _decode_body(payload)
    if header.encoding == "dense":
        return values.clone()
    dense = torch.zeros(header.dim, dtype=header.value_dtype)
    if indices is not None:
        dense[indices] = values
    else:
        dense[members] = values
    return dense



# ---------------------------------------------------------------- 3. the round statistics


@dataclass
class RoundStats:
    """What agent i tells the server after a round: timings and metrics, never its model.

    Undefined values (no evaluation this round) are NaN. Travels as float64 scalars in field order.
    """
    train_s: float
    train_loss: float
    local_acc: float        # own model right after local training (before the reward)
    local_loss: float
    test_acc: float         # own model at the end of the round
    test_loss: float
    shard_loss: float       # loss on the own shard
    bytes_recv: float       # reward bytes received so far (agent side of the ledger)

    def to_tensor(self) -> Tensor:
        return torch.tensor(dataclasses.astuple(self), dtype=torch.float64)

    @classmethod
    def from_tensor(cls, row: Tensor) -> RoundStats:
        return cls(*row.tolist())


STATS_SIZE = len(dataclasses.fields(RoundStats))
"""Length of the round statistics' float64 vector on the wire."""

"""Wire codecs: lossless roundtrips, exact sizes, the auto choice, and malformed payloads."""

from __future__ import annotations

import math
import struct

import pytest
import torch

from fedfair.mechanism import top_k_rewards
from fedfair.runtime.wire import (
    ENCODINGS,
    HEADER_BYTES,
    _decode_body,
    choose_encoding,
    decode,
    encode,
    encoded_size,
    read_header,
)


def dense_reward(indices: torch.Tensor, values: torch.Tensor, dim: int) -> torch.Tensor:
    """The reward as a dense D-vector, built independently of the codec: values at indices, zeros elsewhere."""
    return torch.zeros(dim, dtype=values.dtype).index_put((indices,), values)


def decode_sparse(payload: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(ascending int64 indices, values, dim) as the body decoder that ``decode`` uses reads them;
    for "dense", its non-zero entries (a dense payload carries no support)."""
    header, indices, members, values = _decode_body(payload)
    if header.encoding == "dense":
        indices = values.nonzero().flatten()
        return indices, values[indices], header.dim
    if indices is None:
        indices = members.nonzero().flatten()
    return indices, values, header.dim


def _sparse(dim: int, k: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    indices = torch.randperm(dim, generator=g)[:k].sort().values
    values = torch.randn(k, generator=g, dtype=torch.float64).to(dtype)
    return indices, values


CASES = [(1, 0), (1, 1), (13, 0), (13, 5), (13, 13), (64, 64), (1001, 3), (1001, 500), (1001, 1000)]


@pytest.mark.parametrize("encoding", ENCODINGS + ("auto",))
@pytest.mark.parametrize("dim,k", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_roundtrip_and_exact_size(encoding: str, dim: int, k: int, dtype: torch.dtype) -> None:
    indices, values = _sparse(dim, k, dtype, seed=dim + k)
    payload = encode(indices, values, dim, encoding)
    assert payload.dtype == torch.uint8 and payload.dim() == 1
    assert payload.numel() == encoded_size(encoding, k, dim, dtype)
    dense = decode(payload)
    assert dense.dtype == dtype
    assert torch.equal(dense, dense_reward(indices, values, dim))
    got_indices, got_values, got_dim = decode_sparse(payload)
    assert got_dim == dim and got_indices.dtype == torch.int64
    header = read_header(payload)
    assert (header.dim, header.k, header.value_dtype) == (dim, k, dtype)
    if header.encoding == "dense":  # dense carries no support: its non-zero entries come back
        assert torch.equal(got_indices, indices[values != 0])
    else:
        assert torch.equal(got_indices, indices) and torch.equal(got_values, values)


def test_sizes_by_hand() -> None:
    assert HEADER_BYTES == 24
    assert encoded_size("dense", 3, 10) == 24 + 40
    assert encoded_size("index", 3, 10) == 24 + 3 * (4 + 4)
    assert encoded_size("bitmap", 3, 10) == 24 + 2 + 3 * 4
    assert encoded_size("index", 3, 10, torch.float64) == 24 + 3 * (4 + 8)
    assert encoded_size("bitmap", 0, 0) == 24 and encoded_size("dense", 0, 0) == 24


def test_int64_indices_from_two_to_the_31() -> None:
    big = 2**31
    assert encoded_size("index", 5, big - 1) == 24 + 5 * (4 + 4)
    assert encoded_size("index", 5, big) == 24 + 5 * (8 + 4)
    assert encoded_size("bitmap", 5, big) == 24 + big // 8 + 5 * 4
    assert choose_encoding(5, big) == "index"


def test_huge_dim_index_payload_roundtrips_sparsely() -> None:
    """An int64-index payload for dim >= 2^31 without allocating anything dim-sized."""
    dim = 2**31 + 10
    indices = torch.tensor([0, 5, 2**31 + 9], dtype=torch.int64)
    values = torch.tensor([1.0, -2.0, 3.0])
    payload = encode(indices, values, dim, "index")
    assert payload.numel() == encoded_size("index", 3, dim) == 24 + 3 * 12
    assert read_header(payload).index_bytes == 8
    got_indices, got_values, got_dim = decode_sparse(payload)
    assert got_indices.tolist() == indices.tolist() and torch.equal(got_values, values) and got_dim == dim


@pytest.mark.parametrize("dim", [1, 7, 8, 100, 4096, 100_000])
def test_auto_picks_the_smallest(dim: int) -> None:
    for k in sorted({0, 1, dim // 10, dim // 8, dim // 2, (31 * dim) // 32, dim - 1, dim}):
        for dtype in (torch.float32, torch.float64):
            sizes = {e: encoded_size(e, k, dim, dtype) for e in ENCODINGS}
            chosen = choose_encoding(k, dim, dtype)
            assert sizes[chosen] == min(sizes.values())
            assert encoded_size("auto", k, dim, dtype) == min(sizes.values())
    # ties go to dense first
    assert choose_encoding(0, 0) == "dense"


def test_auto_crossovers_float32() -> None:
    dim = 8000
    assert choose_encoding(1, dim) == "index"  # sparse
    assert choose_encoding(4000, dim) == "bitmap"  # half full: 1000 + 16000 < 32000 < 32000+
    assert choose_encoding(7990, dim) == "dense"  # nearly full


def test_encode_from_top_k_rewards() -> None:
    aggregate = torch.randn(999, generator=torch.Generator().manual_seed(1))
    for indices, values in top_k_rewards(aggregate, [0, 10, 400, 999]):
        payload = encode(indices, values, 999)
        assert torch.equal(decode(payload), dense_reward(indices, values, 999))


def test_encode_validates_inputs() -> None:
    with pytest.raises(ValueError, match="int64"):
        encode(torch.tensor([1, 2], dtype=torch.int32), torch.ones(2), 5)
    with pytest.raises(ValueError, match="ascending"):
        encode(torch.tensor([2, 1]), torch.ones(2), 5)
    with pytest.raises(ValueError, match="ascending"):
        encode(torch.tensor([1, 5]), torch.ones(2), 5)
    with pytest.raises(ValueError, match="match"):
        encode(torch.tensor([1, 2]), torch.ones(3), 5)
    with pytest.raises(ValueError, match="encoding"):
        encode(torch.tensor([1, 2]), torch.ones(2), 5, "zip")
    with pytest.raises(ValueError, match="dtype"):
        encode(torch.tensor([1, 2]), torch.ones(2, dtype=torch.int32), 5)


def _tamper(payload: torch.Tensor, offset: int, data: bytes) -> torch.Tensor:
    out = payload.clone()
    out[offset : offset + len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return out


def test_malformed_payloads_are_refused() -> None:
    indices, values = _sparse(100, 10)
    good = {e: encode(indices, values, 100, e) for e in ENCODINGS}
    with pytest.raises(ValueError, match="shorter"):
        decode(good["index"][:10])
    with pytest.raises(ValueError, match="magic"):
        decode(_tamper(good["index"], 0, b"XXXX"))
    with pytest.raises(ValueError, match="version"):
        decode(_tamper(good["index"], 4, bytes([9])))
    with pytest.raises(ValueError, match="encoding id"):
        decode(_tamper(good["index"], 5, bytes([7])))
    with pytest.raises(ValueError, match="dtype code"):
        decode(_tamper(good["index"], 6, bytes([99])))
    with pytest.raises(ValueError, match="index width"):
        decode(_tamper(good["index"], 7, bytes([8])))
    with pytest.raises(ValueError, match="implies exactly"):
        decode(good["index"][:-1])
    with pytest.raises(ValueError, match="implies exactly"):
        decode(torch.cat([good["bitmap"], torch.zeros(1, dtype=torch.uint8)]))
    with pytest.raises(ValueError, match="implies exactly"):
        decode(_tamper(good["dense"], 8, struct.pack("<q", 101)))
    with pytest.raises(ValueError, match="outside"):
        decode(_tamper(good["dense"], 16, struct.pack("<q", 101)))
    # an index out of range, and a bitmap whose population disagrees with k
    with pytest.raises(ValueError, match="ascending"):
        decode(_tamper(good["index"], HEADER_BYTES + 9 * 4, struct.pack("<i", 100)))
    with pytest.raises(ValueError, match="members"):
        decode(_tamper(good["bitmap"], HEADER_BYTES, bytes([0xFF])))
    with pytest.raises(ValueError, match="uint8"):
        decode(torch.zeros(30, dtype=torch.int8))


def test_bitmap_padding_bits_must_be_zero() -> None:
    payload = encode(torch.tensor([0]), torch.ones(1), 3, "bitmap")
    assert payload[HEADER_BYTES].item() == 0b001  # little-endian bit order: entry 0 is bit 0
    with pytest.raises(ValueError, match="padding"):
        decode(_tamper(payload, HEADER_BYTES, bytes([0b1001])))


def test_bit_order_is_little_endian() -> None:
    payload = encode(torch.tensor([1, 8, 10]), torch.ones(3), 11, "bitmap")
    body = payload[HEADER_BYTES : HEADER_BYTES + math.ceil(11 / 8)].tolist()
    assert body == [0b00000010, 0b00000101]

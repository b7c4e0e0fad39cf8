"""Tunable values: --set parsing, metadata coercion, and the rodata byte encoding."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcp.substrate.sched_metadata import (
    TunableError,
    TunableSpec,
    decode_scalar,
    encode_scalar,
    parse_set_args,
)


def test_encode_unsigned_little_endian() -> None:
    assert encode_scalar(20000, size=8, signed=False, is_bool=False, name="slice_us") == \
        (20000).to_bytes(8, "little")
    assert encode_scalar(0xFFFFFFFF, size=4, signed=False, is_bool=False, name="x") == b"\xff" * 4


def test_encode_signed_negative_twos_complement() -> None:
    assert encode_scalar(-1, size=4, signed=True, is_bool=False, name="x") == b"\xff\xff\xff\xff"
    assert encode_scalar(-2, size=2, signed=True, is_bool=False, name="x") == b"\xfe\xff"


def test_encode_bool_is_one_byte_zero_or_one() -> None:
    assert encode_scalar(True, size=1, signed=False, is_bool=True, name="b") == b"\x01"
    assert encode_scalar(0, size=1, signed=False, is_bool=True, name="b") == b"\x00"
    with pytest.raises(TunableError):
        encode_scalar(2, size=1, signed=False, is_bool=True, name="b")


@pytest.mark.parametrize(("value", "size", "signed"), [
    (-1, 8, False), (1 << 32, 4, False), (128, 1, True), (-129, 1, True), (1 << 64, 8, False)])
def test_encode_rejects_values_that_do_not_fit_the_program_variable(value: int, size: int,
                                                                     signed: bool) -> None:
    with pytest.raises(TunableError, match="does not fit"):
        encode_scalar(value, size=size, signed=signed, is_bool=False, name="t")


def test_encode_rejects_non_scalar_sizes() -> None:
    with pytest.raises(TunableError, match="size"):
        encode_scalar(1, size=16, signed=False, is_bool=False, name="t")


@given(st.sampled_from([1, 2, 4, 8]), st.booleans(), st.data())
def test_encode_decode_round_trip(size: int, signed: bool, data: st.DataObject) -> None:
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    v = data.draw(st.integers(lo, hi))
    raw = encode_scalar(v, size=size, signed=signed, is_bool=False, name="t")
    assert len(raw) == size
    assert decode_scalar(raw, signed=signed, is_bool=False) == v


def test_parse_set_args() -> None:
    assert parse_set_args(["slice_us=5000", " direct_idle = false"]) == {
        "slice_us": "5000", "direct_idle": "false"}
    for bad in ["slice_us", "=5", "9x=1", "a-b=1"]:
        with pytest.raises(TunableError):
            parse_set_args([bad])


def test_spec_coerces_strings_and_checks_range() -> None:
    spec = TunableSpec("slice_us", "uint", 20000, 100, 1_000_000)
    assert spec.coerce("5000") == 5000
    assert spec.coerce("0x100") == 256
    with pytest.raises(TunableError, match="below its minimum 100"):
        spec.coerce("50")
    with pytest.raises(TunableError, match="above its maximum"):
        spec.coerce(2_000_000)
    with pytest.raises(TunableError):
        spec.coerce("fast")
    with pytest.raises(TunableError):
        spec.coerce(True)


def test_spec_bool_words() -> None:
    spec = TunableSpec("direct_idle", "bool", True)
    assert spec.coerce("false") is False
    assert spec.coerce("ON") is True
    assert spec.coerce(1) is True
    with pytest.raises(TunableError, match="bool"):
        spec.coerce("maybe")


def test_spec_uint_rejects_negative_even_without_min() -> None:
    with pytest.raises(TunableError, match="unsigned"):
        TunableSpec("n", "uint", 0).coerce(-3)

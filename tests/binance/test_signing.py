"""Binance request signing, the pure parts: totalParams, the HMAC, parameters and the clock
(binance-compat.md §3). The endpoints' use of them is in ``test_private``."""

from __future__ import annotations

import pytest

from cambist.binance import errors
from cambist.binance.signing import check_time, hmac_hex, parse_params, strip_signature, total_params

SECRET = "test-secret"
GET_QUERY = (
    b"timestamp=1700000000000&recvWindow=10000"
    b"&signature=1f3ddb22a78a53341f6a01047d00fe659ba8a8281a07d7dc907a4b24249f34bd"
)
POST_BODY = (
    b"timestamp=1700000000000&symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001"
    b"&price=60000&newClientOrderId=x-TKT5PX2Fabc&recvWindow=10000"
    b"&signature=9f46f40139023e344511dcad74d9a1f0f6df04f1d6639aa6cdc517d6730ccdbd"
)


def code_of(excinfo: pytest.ExceptionInfo[errors.BinanceError]) -> tuple[int, str]:
    return excinfo.value.code, excinfo.value.msg


def test_the_reference_vectors_verify() -> None:
    for query, body in ((GET_QUERY, b""), (b"", POST_BODY)):
        payload, signatures = total_params(query, body)
        assert len(signatures) == 1
        assert hmac_hex(SECRET, payload) == signatures[0].decode()
        assert b"signature" not in payload


def test_the_get_vector_payload_is_the_query_without_its_signature() -> None:
    payload, _ = total_params(GET_QUERY, b"")
    assert payload == b"timestamp=1700000000000&recvWindow=10000"


def test_total_params_is_the_query_then_the_body_without_a_separator() -> None:
    payload, signatures = total_params(b"symbol=LTCBTC&side=BUY", b"quantity=1&timestamp=1&signature=ab")
    assert payload == b"symbol=LTCBTC&side=BUYquantity=1&timestamp=1"
    assert signatures == [b"ab"]


def test_the_payload_keeps_the_bytes_as_sent() -> None:
    # Percent-encoding, order and an item named like signature but longer are all kept.
    raw = b"b=%5B%22X%22%5D&a=1&signatureX=2&signature=ff&c=%20"
    payload, signatures = strip_signature(raw)
    assert payload == b"b=%5B%22X%22%5D&a=1&signatureX=2&c=%20"
    assert signatures == [b"ff"]


def test_a_changed_byte_changes_the_signature() -> None:
    payload, signatures = total_params(b"", POST_BODY.replace(b"price=60000", b"price=60001"))
    assert hmac_hex(SECRET, payload) != signatures[0].decode()
    payload, _ = total_params(b"", POST_BODY)
    assert hmac_hex("wrong-secret", payload) != signatures[0].decode()


def test_params_come_from_the_query_and_the_body() -> None:
    params = parse_params(b"symbol=BTCUSDT&symbols=%5B%22A%22%5D", b"side=BUY&listenKey=")
    assert params == {"symbol": "BTCUSDT", "symbols": '["A"]', "side": "BUY", "listenKey": ""}


def test_a_parameter_sent_twice_is_refused() -> None:
    with pytest.raises(errors.BinanceError) as excinfo:
        parse_params(b"symbol=A", b"symbol=B")
    assert excinfo.value.code == -1101
    with pytest.raises(errors.BinanceError):
        parse_params(b"a=1&a=1", b"")


def test_too_many_parameters_are_refused() -> None:
    with pytest.raises(errors.BinanceError) as excinfo:
        parse_params("&".join(f"p{i}=1" for i in range(100)).encode(), b"")
    assert excinfo.value.code == -1101


def test_non_utf8_is_refused() -> None:
    with pytest.raises(errors.BinanceError) as excinfo:
        parse_params(b"a=%ff", b"")
    assert excinfo.value.code == -1100


NOW = 1_700_000_000_000
MISSING_TIMESTAMP = (-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")),
        (
            {"timestamp": ""},
            (-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."),
        ),
        ({"timestamp": "1.5e12"}, None),
        ({"timestamp": str(NOW + 1001)}, errors.TIMESTAMP_AHEAD),
        ({"timestamp": str(NOW - 5001)}, errors.INVALID_TIMESTAMP),
        ({"timestamp": str(NOW - 10_001), "recvWindow": "10000"}, errors.INVALID_TIMESTAMP),
        ({"timestamp": str(NOW), "recvWindow": "60001"}, errors.BAD_RECV_WINDOW),
        ({"timestamp": str(NOW), "recvWindow": "-1"}, None),
    ],
)
def test_time_checks(params: dict[str, str], expected: tuple[int, str] | None) -> None:
    with pytest.raises(errors.BinanceError) as excinfo:
        check_time(params, NOW)
    if expected is None:
        assert excinfo.value.code == -1100  # not a plain integer
    else:
        assert code_of(excinfo) == expected
    assert excinfo.value.status == 400


@pytest.mark.parametrize(
    "params",
    [
        {"timestamp": str(NOW)},
        {"timestamp": str(NOW + 1000)},
        {"timestamp": str(NOW - 5000)},
        {"timestamp": str(NOW - 60_000), "recvWindow": "60000"},
    ],
)
def test_times_inside_the_window_pass(params: dict[str, str]) -> None:
    check_time(params, NOW)


def test_the_error_texts_are_binances() -> None:
    assert errors.TIMESTAMP_AHEAD == (
        -1021,
        "Timestamp for this request was 1000ms ahead of the server's time.",
    )
    assert errors.INVALID_SIGNATURE == (-1022, "Signature for this request is not valid.")
    assert errors.BAD_API_KEY_FMT == (-2014, "API-key format invalid.")

"""Fencing tokens on YDB's wire: Arbiter adds `fencing_token = 10001` to YDB's ActionState.

YDB's own generated stubs (the Python SDK's) know nothing of field 10001: they parse every reply
unchanged (every known field the same as in the bytes without our field), and the token sits in
the message only as an unknown field. Decoding the raw bytes with our field number shows the
token, and arbiter.v1 ValidateFence (called with hand-encoded bytes: the SDK has no arbiter.v1
stubs) says it is the live lock on that node.
"""

from __future__ import annotations

from arbiter_testlib import (
    FORCE,
    PERFORMED,
    _field_bytes,
    _field_varint,
    decode_fields,
    groups,
    states,
)
from ydb._grpc.common.draft.protos import ydb_maintenance_pb2 as m

FENCING_TOKEN = 10001
# ActionState's field numbers in YDB's proto, and the nesting down to it:
# GetMaintenanceTaskResult.action_group_states = 2, ActionGroupStates.action_states = 1.
GROUPS, ACTION_STATES = 2, 1
LIVE = 1  # arbiter.v1.FenceState.FENCE_STATE_LIVE


def _action_states_raw(result_bytes: bytes) -> list[bytes]:
    out = []
    for group in decode_fields(result_bytes).get(GROUPS, []):
        out.extend(decode_fields(group).get(ACTION_STATES, []))
    return out


def _fields_in_order(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(field number, the field's bytes on the wire, its payload for length-delimited fields)."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        start = i
        key = varint()
        num, wt = key >> 3, key & 7
        payload = b""
        if wt == 0:
            varint()
        elif wt == 2:
            n = varint()
            payload = data[i:i + n]
            i += n
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, data[start:i], payload))
    return out


def _without_tokens(result_bytes: bytes) -> bytes:
    """The same GetMaintenanceTaskResult bytes with field 10001 cut out of every action state:
    what YDB itself would send."""
    def rebuild(data: bytes, nested: dict[int, object]) -> bytes:
        out = b""
        for num, whole, payload in _fields_in_order(data):
            if num == FENCING_TOKEN:
                continue
            if num in nested:
                inner = rebuild(payload, nested[num])
                out += _field_bytes(num, inner)
            else:
                out += whole
        return out

    return rebuild(result_bytes, {GROUPS: {ACTION_STATES: {}}})


def _validate_fence(srv, node_id: int, pdisk_id: int, token: int) -> dict[int, list]:
    call = srv.channel().unary_unary(
        "/arbiter.v1.ArbiterService/ValidateFence",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    req = _field_varint(1, node_id) + _field_varint(3, token)
    if pdisk_id:
        req += _field_varint(2, pdisk_id)
    return decode_fields(call(req, timeout=10))


def test_ydb_stubs_parse_results_unchanged_while_our_token_is_on_the_wire(server_factory):
    assert FENCING_TOKEN not in m.ActionState.DESCRIPTOR.fields_by_number
    srv = server_factory()
    c = srv.client("fence-user")
    created = c.create("f1", groups(1, 4), mode=FORCE).expect().result
    assert [s.status for s in states(created)] == [PERFORMED, PERFORMED]

    reply = c.get("f1").expect()
    raw = reply.operation.result.value
    parsed = reply.result
    # YDB's stubs: every known field exactly as in the bytes YDB would have sent, ours skipped.
    ydb_bytes = _without_tokens(raw)
    assert len(ydb_bytes) < len(raw)
    known_only = m.GetMaintenanceTaskResult()
    known_only.CopyFrom(parsed)
    known_only.DiscardUnknownFields()
    assert known_only == m.GetMaintenanceTaskResult.FromString(ydb_bytes)
    assert all(FENCING_TOKEN not in [f.number for f, _ in s.ListFields()] for s in states(parsed))
    assert [s.status for s in states(parsed)] == [PERFORMED, PERFORMED]
    assert [s.action.lock_action.scope.node_id for s in states(parsed)] == [1, 4]
    assert all(s.action_uid.action_id and s.HasField("deadline") for s in states(parsed))
    # Re-encoding through YDB's stubs keeps the unknown field: a proxy built on them passes it on.
    assert FENCING_TOKEN in decode_fields(states(parsed)[0].SerializeToString())

    # The raw bytes with our field number: one token per performed action, increasing.
    tokens = []
    for s in _action_states_raw(raw):
        fields = decode_fields(s)
        assert len(fields.get(FENCING_TOKEN, [])) == 1, fields
        tokens.append(fields[FENCING_TOKEN][0])
    assert all(t > 0 for t in tokens) and tokens == sorted(set(tokens)), tokens

    # The token is the live lock on its node (and on no other).
    answer = _validate_fence(srv, 1, 0, tokens[0])
    assert answer.get(1) == [LIVE], answer
    assert answer.get(2) == [b"f1"], answer
    assert answer.get(6) == [tokens[0]]
    assert _validate_fence(srv, 4, 0, tokens[0]).get(1) != [LIVE]
    assert _validate_fence(srv, 4, 0, tokens[1]).get(1) == [LIVE]

    # Once completed, the token is no longer live: a holder that checks must stop.
    uid = states(parsed)[0].action_uid
    c.complete([uid]).expect()
    assert _validate_fence(srv, 1, 0, tokens[0]).get(1) == [3]  # FENCE_STATE_RELEASED

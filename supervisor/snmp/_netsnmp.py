"""The poller's SNMP requests: Net-SNMP's C library called through ``ctypes``, values read in C structs.

**Why not ezsnmp's ``bulk_get`` (measured).** ezsnmp 2.5 turns every variable binding into a
``Result`` whose ``converted_value`` is parsed by compiling one or two ``std::regex`` *per value*
(``Result::_make_converted_value``; ``py-spy --native``: 80 % of the call). A GETBULK of the six
IF-MIB columns x 49 rows (294 values) cost 14.7 ms of CPU; ~47 us per value at every repetition
count: 27 s of CPU per round of 2,000 switches x 48 ports, 45 % of a core before anything else.
The same request through this module: 0.8 ms (values read from Net-SNMP's ``variable_list``),
18x less. ezsnmp remains the dependency that brings the library: its wheel bundles
``libnetsnmp`` (``ezsnmp.libs/``), which this module loads; the LLDP drift check still uses ezsnmp.

What is used of Net-SNMP is its stable public API (the single-session API, thread-safe when a
session is used by one thread at a time): ``snmp_parse_args`` (the command-line tools' options, so
SNMPv3 USM keys are derived by Net-SNMP itself), ``snmp_sess_open``, ``snmp_pdu_create``,
``snmp_add_null_var``, ``snmp_sess_synch_response``, ``snmp_free_pdu``, ``snmp_sess_close``. Of
the structs only the head of ``netsnmp_variable_list`` (unchanged since 5.0) and ``errstat`` /
``errindex`` of ``netsnmp_pdu`` are read; the offset of ``pdu->variables`` (which moved between
versions) is measured at load, not assumed.
"""

from __future__ import annotations

import ctypes as C
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["NetSnmpError", "Session", "SnmpTimeout", "Varbind"]

#: (OID as sub-identifiers, ASN.1 type, value): an integer for the integer types, None otherwise
Varbind = tuple[list[int], int, int | None]

_GETBULK, _GET = 0xA5, 0xA0
_STAT_SUCCESS, _STAT_TIMEOUT = 0, 2
_LONG_TYPES = frozenset({0x02, 0x41, 0x42, 0x43, 0x47})  # INTEGER, Counter32, Gauge32, TimeTicks, UInteger32
_COUNTER64 = 0x46
_ERRSTAT, _ERRINDEX = 6 * C.sizeof(C.c_long), 7 * C.sizeof(C.c_long)  # after version, command, reqid...sessid
_SESSION_BYTES = 16384  # more than sizeof(netsnmp_session) of any version (about 600)


class NetSnmpError(Exception):
    """A request failed (no secret in the message: Net-SNMP's errors name the host, not the keys)."""


class SnmpTimeout(NetSnmpError):
    """No answer after the retries."""


class _Var(C.Structure):
    pass


_Var._fields_ = [("next", C.POINTER(_Var)), ("name", C.POINTER(C.c_ulong)), ("name_length", C.c_size_t),
                 ("type", C.c_ubyte), ("val", C.c_void_p), ("val_len", C.c_size_t)]


class _Lib:
    def __init__(self) -> None:
        import ezsnmp

        found = sorted((Path(ezsnmp.__file__).parent.parent / "ezsnmp.libs").glob("libnetsnmp*.so*"))
        if not found:
            raise NetSnmpError("libnetsnmp not found next to ezsnmp (ezsnmp.libs/): reinstall ezsnmp")
        lib = C.CDLL(str(found[0]))
        lib.snmp_sess_init.argtypes = [C.c_void_p]
        lib.snmp_parse_args.argtypes = [C.c_int, C.POINTER(C.c_char_p), C.c_void_p, C.c_char_p, C.c_void_p]
        lib.snmp_sess_open.restype = C.c_void_p
        lib.snmp_sess_open.argtypes = [C.c_void_p]
        lib.snmp_sess_close.argtypes = [C.c_void_p]
        lib.snmp_sess_error.argtypes = [C.c_void_p, C.POINTER(C.c_int), C.POINTER(C.c_int),
                                        C.POINTER(C.c_char_p)]
        lib.snmp_pdu_create.restype = C.c_void_p
        lib.snmp_pdu_create.argtypes = [C.c_int]
        lib.snmp_add_null_var.restype = C.c_void_p
        lib.snmp_add_null_var.argtypes = [C.c_void_p, C.POINTER(C.c_ulong), C.c_size_t]
        lib.snmp_sess_synch_response.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(C.c_void_p)]
        lib.snmp_free_pdu.argtypes = [C.c_void_p]
        lib.snmp_error.argtypes = [C.c_void_p, C.POINTER(C.c_int), C.POINTER(C.c_int), C.POINTER(C.c_char_p)]
        lib.init_snmp(b"urban-supervisor")
        self.lib = lib
        self.variables = self._variables_offset()

    def _variables_offset(self) -> int:
        """Where ``pdu->variables`` is: the word of a fresh PDU that points at the one variable added."""
        lib = self.lib
        pdu = lib.snmp_pdu_create(_GETBULK)
        try:
            if C.c_int.from_address(pdu + C.sizeof(C.c_long)).value != _GETBULK:
                raise NetSnmpError("unexpected netsnmp_pdu layout (command)")
            var = lib.snmp_add_null_var(pdu, (C.c_ulong * 2)(1, 3), 2)
            words = (C.c_void_p * 64).from_address(pdu)
            for i in range(8, 64):
                if words[i] == var:
                    return i * C.sizeof(C.c_void_p)
            raise NetSnmpError("unexpected netsnmp_pdu layout (variables)")
        finally:
            lib.snmp_free_pdu(pdu)


_loaded: _Lib | None = None
_load_lock = threading.Lock()
#: snmp_parse_args uses getopt's globals: one session is set up at a time
_parse_lock = threading.Lock()


def _lib() -> _Lib:
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _Lib()
        return _loaded


def _oid(oid: str | Sequence[int]) -> tuple[C.Array[C.c_ulong], int]:
    subids = [int(x) for x in oid.split(".")] if isinstance(oid, str) else list(oid)
    return (C.c_ulong * len(subids))(*subids), len(subids)


class Session:
    """One agent. ``args``: Net-SNMP's command-line options and the peer, e.g. ``["-v", "2c", "-c",
    community, "-r", "1", "-t", "2", "host:port"]`` (they may hold secrets: never logged)."""

    def __init__(self, args: Sequence[str]) -> None:
        self._handle: int | None = None
        self._l = _lib()
        lib = self._l.lib
        # the options fill a template session; snmp_sess_open copies it (the template is not kept)
        template = C.create_string_buffer(_SESSION_BYTES)
        argv = [b"urban-supervisor", *(a.encode() for a in args)]
        arr = (C.c_char_p * len(argv))(*argv)
        with _parse_lock:
            lib.snmp_sess_init(template)
            if lib.snmp_parse_args(len(argv), arr, template, b"", None) < 0:
                raise NetSnmpError("Net-SNMP refused the session options")
            self._handle = lib.snmp_sess_open(template)
        if not self._handle:
            raise NetSnmpError(f"Net-SNMP could not open the session: {_message(lib.snmp_error, template)}")
        self._oids: dict[str, tuple[C.Array[C.c_ulong], int]] = {}

    def close(self) -> None:
        if self._handle:
            self._l.lib.snmp_sess_close(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()

    def _c_oid(self, oid: str) -> tuple[C.Array[C.c_ulong], int]:
        c = self._oids.get(oid)
        if c is None:
            c = self._oids[oid] = _oid(oid)
        return c

    def get(self, oids: Sequence[str]) -> list[Varbind]:
        return self._request(_GET, oids, 0, 0)

    def bulk(self, oids: Sequence[str], non_repeaters: int, max_repetitions: int) -> list[Varbind]:
        """GETBULK: the first ``non_repeaters`` OIDs once, the others ``max_repetitions`` rows."""
        return self._request(_GETBULK, oids, non_repeaters, max_repetitions)

    def _request(self, command: int, oids: Sequence[str], a: int, b: int) -> list[Varbind]:
        if not self._handle:
            raise NetSnmpError("session closed")
        lib = self._l.lib
        pdu = lib.snmp_pdu_create(command)
        if command == _GETBULK:
            C.c_long.from_address(pdu + _ERRSTAT).value = a
            C.c_long.from_address(pdu + _ERRINDEX).value = b
        for oid in oids:
            arr, n = self._c_oid(oid)
            lib.snmp_add_null_var(pdu, arr, n)
        resp = C.c_void_p()
        status = lib.snmp_sess_synch_response(self._handle, pdu, C.byref(resp))  # frees pdu; GIL released
        if status != _STAT_SUCCESS:
            if resp.value:
                lib.snmp_free_pdu(resp)
            if status == _STAT_TIMEOUT:
                raise SnmpTimeout("timeout")
            raise NetSnmpError(self._error())
        addr = resp.value
        if not addr:
            raise NetSnmpError("Net-SNMP returned no answer PDU")
        try:
            errstat = C.c_long.from_address(addr + _ERRSTAT).value
            if errstat:
                index = C.c_long.from_address(addr + _ERRINDEX).value
                raise NetSnmpError(f"the agent answered error-status {errstat} (index {index})")
            return _varbinds(C.c_void_p.from_address(addr + self._l.variables).value)
        finally:
            lib.snmp_free_pdu(resp)

    def _error(self) -> str:
        return _message(self._l.lib.snmp_sess_error, self._handle)


def _message(error_fn: Any, session: Any) -> str:
    """Net-SNMP's text of a session's last error (``snmp_error`` / ``snmp_sess_error``, freed here)."""
    clib, snmp = C.c_int(), C.c_int()
    msg = C.c_char_p()
    error_fn(session, C.byref(clib), C.byref(snmp), C.byref(msg))
    text = (msg.value or b"").decode(errors="replace").strip()
    if msg.value is not None:
        _libc.free(msg)
    return text or f"Net-SNMP error {snmp.value}"


_libc = C.CDLL(None)
_libc.free.argtypes = [C.c_void_p]


def _varbinds(first: int | None) -> list[Varbind]:
    out: list[Varbind] = []
    if not first:
        return out
    vp = C.cast(first, C.POINTER(_Var))
    long_p, ulong_p = C.POINTER(C.c_long), C.POINTER(C.c_ulong)
    while vp:
        var = vp.contents
        t = var.type
        value: int | None = None
        if t in _LONG_TYPES:
            value = C.cast(var.val, long_p)[0]
            if t != 0x02:
                value &= 0xFFFFFFFF  # the unsigned 32-bit types are held in a long
        elif t == _COUNTER64:
            hi, lo = C.cast(var.val, ulong_p)[0:2]
            value = (hi & 0xFFFFFFFF) << 32 | (lo & 0xFFFFFFFF)
        out.append((var.name[:var.name_length], t, value))
        vp = var.next
    return out

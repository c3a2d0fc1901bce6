"""Records framed by a start byte (STX) in a byte stream, independent of how TCP cuts it.

A TCP read returns whatever bytes have arrived: half a record, or three records and the start
of a fourth. Reading "one record per `recv`" loses and garbles records as soon as the network
or the sender batches them differently. `StxFramer` keeps the bytes between reads and hands
out whole records only:

- a record starts at STX (0x02) and ends at a terminator byte (CR, LF or ETX by default) or
  where the next STX starts: senders that do not terminate their records are framed too;
- bytes before the first STX (joining a stream in the middle of a record) are not a record:
  they are dropped and counted in `discarded_bytes`;
- a record that grows past `max_record_bytes` without ending is dropped (a stream that is not
  STX-framed must not fill memory) and counted in `oversized`;
- `flush()` hands out the record still open when no terminator will come (the sender went
  quiet after an unterminated record), if it is at least `min_record_bytes` long;
  `reset()` drops it (the connection broke in the middle of it) and returns what it held.
"""

from __future__ import annotations

STX = 0x02
ETX = 0x03
DEFAULT_TERMINATORS = b"\r\n\x03"


class StxFramer:
    """Frames STX-started records across reads. Records are returned without the STX and
    without their terminator; empty records (STX followed by a terminator) are skipped."""

    def __init__(
        self,
        terminators: bytes = DEFAULT_TERMINATORS,
        max_record_bytes: int = 4096,
        min_record_bytes: int = 1,
    ) -> None:
        if bytes([STX]) in terminators:
            raise ValueError("STX cannot also be a terminator")
        self.terminators = frozenset(terminators)
        self.max_record_bytes = max_record_bytes
        self.min_record_bytes = min_record_bytes
        self._open: bytearray | None = None  # the record being read, None between records
        self.discarded_bytes = 0
        self.oversized = 0

    @property
    def pending(self) -> bytes:
        """The bytes of the record not yet complete (empty between records)."""
        return bytes(self._open or b"")

    def feed(self, data: bytes) -> list[bytes]:
        """The records completed by `data`, in stream order."""
        records: list[bytes] = []
        for byte in data:
            if byte == STX:
                self._close(records)
                self._open = bytearray()
            elif self._open is None:
                if byte not in self.terminators:
                    self.discarded_bytes += 1
            elif byte in self.terminators:
                self._close(records)
            else:
                self._open.append(byte)
                if len(self._open) > self.max_record_bytes:
                    self.oversized += 1
                    self.discarded_bytes += len(self._open)
                    self._open = None
        return records

    def flush(self) -> list[bytes]:
        """The open record as complete (no terminator is coming); too short: kept open."""
        if self._open is None or len(self._open) < self.min_record_bytes:
            return []
        records: list[bytes] = []
        self._close(records)
        return records

    def reset(self) -> bytes:
        """Forget the open record (the stream broke inside it); returns its bytes."""
        cut = self.pending
        self.discarded_bytes += len(cut)
        self._open = None
        return cut

    def _close(self, records: list[bytes]) -> None:
        if self._open:
            records.append(bytes(self._open))
        self._open = None

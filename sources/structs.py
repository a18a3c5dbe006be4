"""Pages decoded straight into typed records (msgspec structs), for lists read by the million.

orjson turns a page into a dict per record holding every value; a source then picks its
columns out of those dicts one by one and, for an open-ended JSON object it keeps as text
(sessionvision's event `properties`), encodes it back to JSON. A page decoder instead reads
each record into a `msgspec.Struct` of just the fields the table needs, and a field typed
`msgspec.Raw` keeps its JSON text as the API sent it, which `raw_text` turns into an Arrow
string column with no dict and no re-encoding. The page's paging keys (`meta`) are decoded
as orjson would, so a paginator reads the page unchanged.

Example: `decode = page_decoder(Event)`, then `client.get_json(path, decode=decode)` ->
`{"data": [Event(id=..., properties=Raw(b'{"$browser":"Chrome"}')), ...], "meta": {...}}`
(the page's keys other than `data` and `keys` are skipped).
A body that is not JSON raises `msgspec.DecodeError` (the client retries it, as it does an
orjson error); records not of the struct's shape raise `msgspec.ValidationError`, naming the
record and field (`... - at $.data[3].id`); a page whose list is missing or not a list is
returned as it is, for the paginator to refuse with its own message.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any, Callable, List, Sequence

import msgspec
import pyarrow as pa

_ANY = msgspec.json.Decoder()


def page_decoder(record: type, items_key: str = "data",
                 keys: Sequence[str] = ("meta",)) -> Callable[[bytes], Any]:
    """A body decoder for `ApiClient.get_json`: the page's `items_key` list as `record`
    structs, and its other `keys` (the paging fields) as plain JSON values; a key the page
    lacks is absent from the result, as it is from orjson's."""
    fields: List[Any] = [(items_key, List[record], msgspec.UNSET)]  # type: ignore[valid-type]
    page = msgspec.json.Decoder(msgspec.defstruct(
        "Page", fields + [(key, Any, msgspec.UNSET) for key in keys]))
    names = [items_key, *keys]

    def decode(body: bytes) -> Any:
        try:
            read = page.decode(body)
        except msgspec.ValidationError:
            plain = _ANY.decode(body)
            if isinstance(plain, dict) and isinstance(plain.get(items_key), list):
                raise  # records of another shape than the contract's
            return plain  # not a page at all: the paginator refuses it
        return {name: value for name in names
                if (value := getattr(read, name)) is not msgspec.UNSET}

    return decode


def raw_text(values: Sequence[msgspec.Raw]) -> pa.Array:
    """JSON texts kept raw by a page decoder as one Arrow string array, copied once.

    msgspec has already checked each is well-formed JSON, and JSON text is UTF-8.
    """
    offsets = pa.array(list(accumulate((len(v) for v in values), initial=0)), pa.int32())
    binary = pa.Array.from_buffers(pa.binary(), len(values),
                                   [None, offsets.buffers()[1], pa.py_buffer(b"".join(values))])
    return binary.cast(pa.string())  # checks the text is UTF-8

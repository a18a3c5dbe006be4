"""Session Services pages as Arrow tables: one conversion per page, no dict per row for dlt.

A record is camelCase JSON with nested objects (`customer`, `attendee`) and, on orders, an
`items` list. `page()` converts a page in one call to Arrow in the record's shape (derived
from the table's schema: `customer__email` is `customer.email`); `typed()` reads each column
of a batch of pages by its path and parses its times in one vectorized cast.

Order items stay in their order (a list column) until after the run's de-duplication
(`sources.dedup`), so only the lines of an order's last copy are loaded; `split_items()` then
makes them the `orders__items` table, keyed by order id and line (the position in `items`),
and `items_for()` loads them so that an order's lines replace all its earlier ones.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from sources.errors import SyncError
from sources.session_services.client import SOURCE
from sources.session_services.settings import ITEM_SCHEMA

ITEMS = "items"
TENANT = "tenantId"
ITEMS_TABLE = "orders__items"
ITEM_KEY = ("order_id", "line")
_FROM_ORDER = ("order_id", "line", "tenant_id")  # item columns taken from the order
_ITEM_RECORD = pa.schema([f for f in ITEM_SCHEMA if f.name not in _FROM_ORDER])


def page(records: Sequence[Dict[str, Any]], schema: pa.Schema, with_items: bool = False,
         tenant: Optional[str] = None) -> pa.Table:
    """A page of API records in the API's shape (one column per top-level field, times as
    text), converted in one call; `typed()` makes a batch of such pages a `schema` table.
    `tenant` fills the `tenantId` column (the API's records do not carry it).

    A field the schema does not know (the API started sending it) is kept, typed by pyarrow,
    for dlt to add to the table as it does for dicts: a top-level one as its own column, one
    inside a nested object as `<object>__<field>` (`customer__phone`), one inside an order's
    line as a field of the line (a column of `orders__items`).

    Raises:
        ContractError: a value of another type than the schema's (naming the field, not the
            value).
    """
    fields = new_fields(records, schema, with_items)
    line_fields = sorted(p[1] for p in fields if p[0] == ITEMS)
    shape = _shape(schema, with_items)
    if line_fields:
        lines = [line for r in records for line in r.get(ITEMS) or ()]
        known = _record_type(_ITEM_RECORD)
        extra = [pa.field(k, _new((ITEMS, k), [line.get(k) for line in lines]).type)
                 for k in line_fields]
        shape = pa.struct([f if f.name != ITEMS else pa.field(ITEMS, pa.list_(
            pa.struct(list(known) + extra))) for f in shape])
    try:
        table = pa.Table.from_struct_array(pa.array(records, type=shape))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise _contract_error(records, shape) from None
    if tenant is not None:
        at = table.schema.get_field_index(TENANT)
        table = table.set_column(at, TENANT, pa.array([tenant] * len(records), pa.string()))
    for path in sorted(p for p in fields if p[0] != ITEMS):
        table = table.append_column("__".join(path), _new(path, [_get(r, path) for r in records]))
    return table


class ContractError(SyncError):
    """A record's field holds a value of another type than the API's contract says."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"{SOURCE}: a record does not match the API's contract: {problem}")


def new_fields(records: Sequence[Dict[str, Any]], schema: pa.Schema,
               with_items: bool = False) -> frozenset[Tuple[str, ...]]:
    """Paths of the fields of `records` that `schema` (and `items`) does not hold: a
    top-level field (`("promoCode",)`), one inside a nested object (`("customer",
    "phone")`), or one inside an order's line (`("items", "seatRow")`)."""
    shape = _shape(schema, with_items)
    found: Set[Tuple[str, ...]] = {
        (name,) for name in frozenset().union(*records) - _known(schema, with_items)}
    for f in shape:
        if pa.types.is_list(f.type):  # an order's lines
            values = [v for r in records for v in r.get(f.name) or () if isinstance(v, dict)]
            known = f.type.value_type
        elif pa.types.is_struct(f.type):
            values = [v for r in records if isinstance(v := r.get(f.name), dict)]
            known = f.type
        else:
            continue
        names = {known.field(i).name for i in range(known.num_fields)}
        found.update((f.name, k) for k in frozenset().union(*values) - names)
    return frozenset(found)


def typed(raw: pa.Table, schema: pa.Schema) -> pa.Table:
    """Pages from `page()` as a table of `schema` (plus `items`, when the pages have it):
    nested fields read by path, times parsed (text not ISO 8601 with `Z` raises
    `ContractError`)."""
    columns = [_column(raw, f) for f in schema]
    fields = list(schema)
    if ITEMS in raw.column_names:
        columns.append(raw.column(ITEMS))
        fields.append(raw.schema.field(ITEMS))
    for name in raw.column_names:  # fields the schema does not know, as `page()` kept them
        if name not in _known(schema, True):
            columns.append(raw.column(name))
            fields.append(raw.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def split_items(orders: pa.Table) -> Tuple[pa.Table, pa.Table]:
    """An orders table from `table(..., with_items=True)` without its `items` column, and
    its lines as an `ITEM_SCHEMA` table (order id, line = position in the list)."""
    lists = orders.column(ITEMS).combine_chunks()
    parents = pc.list_parent_indices(lists)
    flat = pc.list_flatten(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    starts = pc.subtract(pc.cumulative_sum(lengths), lengths)  # each list's first line
    line = pc.subtract(pa.array(range(len(flat)), pa.int64()), pc.take(starts, parents))
    columns: Dict[str, Any] = {
        "order_id": pc.take(orders.column("id"), parents),
        "line": line,
        "tenant_id": pc.take(orders.column("tenant_id"), parents),
    }
    values = pa.Table.from_struct_array(flat)
    for f in _ITEM_RECORD:
        columns[f.name] = _column(values, f)
    items = pa.Table.from_arrays([columns[n] for n in ITEM_SCHEMA.names], schema=ITEM_SCHEMA)
    for name in values.column_names:  # fields of a line the schema does not know
        if name not in _known(_ITEM_RECORD, False):
            items = items.append_column(values.schema.field(name), values.column(name))
    return orders.drop_columns([ITEMS]), items


def items_for(orders: DltResource, lines: pa.Table) -> Any:
    """`lines` (from `split_items`) marked for `orders__items`, written the way `orders` is.

    Keyed by order id and line; merged by delete-insert (DuckDB, Postgres), the order id is
    also the merge key, so a load deletes every line of each order it carries before
    inserting the new ones: an order whose items changed keeps exactly its new lines. Delta
    (upsert) replaces lines by key; see the README for a list that shrinks there.
    """
    disposition = orders.write_disposition
    by_order = isinstance(disposition, dict) and disposition.get("strategy") == "delete-insert"
    # A table variant starts from the resource's own hints (the orders columns): empty first.
    orders.apply_hints(table_name=ITEMS_TABLE, columns={}, create_table_variant=True)
    orders.apply_hints(table_name=ITEMS_TABLE, columns=ITEM_SCHEMA, primary_key=list(ITEM_KEY),
                       merge_key="order_id" if by_order else "",
                       write_disposition=disposition, create_table_variant=True)
    return dlt.mark.with_table_name(lines, ITEMS_TABLE)


@functools.cache
def _known(schema: pa.Schema, with_items: bool) -> frozenset[str]:
    """The top-level field names of a record holding `schema` (and its `items`)."""
    return frozenset(_shape(schema, with_items).names)


@functools.cache
def _shape(schema: pa.Schema, with_items: bool) -> pa.StructType:
    """The struct type of an API record holding `schema`'s columns (and its `items`)."""
    shape = _record_type(schema)
    if with_items:
        shape = pa.struct(list(shape) + [pa.field(ITEMS, pa.list_(_record_type(_ITEM_RECORD)))])
    return shape


def _record_type(schema: pa.Schema) -> pa.StructType:
    """The struct type of an API record holding `schema`'s columns (times as text)."""
    tree: Dict[str, Any] = {}
    for f in schema:
        *parents, leaf = _path(f.name)
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = pa.string() if pa.types.is_timestamp(f.type) else f.type
    return _struct(tree)


def _struct(tree: Dict[str, Any]) -> pa.StructType:
    return pa.struct([(k, _struct(v) if isinstance(v, dict) else v) for k, v in tree.items()])


def _column(raw: pa.Table, field: pa.Field) -> pa.ChunkedArray:
    """The column `field` of a table of raw records, times parsed."""
    top, *rest = _path(field.name)
    values = raw.column(top)
    if rest:
        values = pc.struct_field(values, rest)
    if pa.types.is_timestamp(field.type):
        try:
            return pc.cast(values, pa.timestamp("ms", tz="UTC")).cast(field.type)
        except pa.ArrowInvalid:
            raise ContractError(f"{'.'.join([top, *rest])} holds text that is not a time "
                                "in ISO 8601 with Z, as the API's contract has") from None
    return values


def _get(record: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    """The value at `path` in a record (None where an object on the way is missing)."""
    value: Any = record
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _new(path: Tuple[str, ...], values: List[Any]) -> pa.Array:
    """The values of a field the schema does not know, typed by pyarrow.

    Raises:
        ContractError: values of types pyarrow cannot hold in one column (a number in one
            record, text in another), naming the field and types, never a value.
    """
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise ContractError(f"{'.'.join(path)}, a field the contract does not name, holds "
                            f"{_kinds(values)} in one page") from None


def _contract_error(records: Sequence[Dict[str, Any]], shape: pa.StructType) -> ContractError:
    """Which field of `records` pyarrow could not convert to `shape`, named by its path with
    the type found and the type expected; never the value (it may be personal data)."""
    for f in shape:
        values = [r.get(f.name) for r in records]
        try:
            pa.array(values, type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if pa.types.is_struct(f.type) or pa.types.is_list(f.type):
                inner = f.type if pa.types.is_struct(f.type) else f.type.value_type
                items = [v for x in values for v in (x if isinstance(x, list) else [x])]
                found = [v for v in items if v is not None and not isinstance(v, dict)]
                if not found:
                    sub = _contract_error([v for v in items if isinstance(v, dict)], inner)
                    return ContractError(f"{f.name}.{sub.problem}")
            else:
                found = [v for v in values if v is not None]
            return ContractError(f"{f.name} holds {_kinds(found) or 'a value'} where the "
                                 f"API's contract has {_kind(f.type)}")
    return ContractError("a record holds a value of another type than the API's contract has")


def _kinds(values: Sequence[Any]) -> str:
    """The Python types of the non-null `values`, as `int/str` (never a value itself)."""
    return "/".join(sorted({type(v).__name__ for v in values if v is not None}))


def _kind(kind: pa.DataType) -> str:
    """A type as the API's contract names it."""
    if pa.types.is_string(kind):
        return "a string"
    if pa.types.is_integer(kind):
        return "an integer"
    if pa.types.is_struct(kind):
        return "an object"
    if pa.types.is_list(kind):
        return "a list"
    return str(kind)


def _path(column: str) -> List[str]:
    """The record path of a column: `customer__email` -> [`customer`, `email`]."""
    return [_camel(part) for part in column.split("__")]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)

"""The records of the schema interop tests on the official (C++) client's Python schemas, shared
by schema_produce.py and schema_consume.py.

Both mirror the Java peer's: `Pojo` is the Avro record `pulsarwire.Pojo` with `count` (int) and
`name` (nullable string, default null), fields in name order (`_sorted_fields`), so that its
definition is the Java client's up to the order of each field's keys (the broker checks
compatibility, it does not compare texts); `PojoV2` is the same record (`pulsarwire.Pojo`: its
class is named Pojo too) plus `note`, a nullable string with default null, a FULL-compatible
evolution.

schema (the spec's `schema`):
    avro, json        AvroSchema(Pojo), JsonSchema(Pojo)
    avro_v2, json_v2  AvroSchema(PojoV2), JsonSchema(PojoV2)
With `definition` (a JSON text, avro only) the AvroSchema declares it instead (the client's
AvroSchema(None, schema_definition=...)) and values travel as dicts.
"""

import json

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
import common  # noqa: F401  isort: skip

from pulsar.schema import AvroSchema, Integer, JsonSchema, Record, String  # noqa: E402


class Pojo(Record):
    _avro_namespace = "pulsarwire"
    _sorted_fields = True
    count = Integer(required=True)
    name = String(required_default=True)


# The same record name as Pojo: the class is built under that name.
PojoV2 = type(
    "Pojo",
    (Record,),
    {
        "_avro_namespace": "pulsarwire",
        "_sorted_fields": True,
        "count": Integer(required=True),
        "name": String(required_default=True),
        "note": String(required_default=True),
    },
)

FIELDS = {"avro": ("count", "name"), "json": ("count", "name")}
FIELDS["avro_v2"] = FIELDS["json_v2"] = ("count", "name", "note")


def make_schema(spec):
    """The (schema, record class or None) of a spec."""
    name = spec.get("schema", "avro")
    definition = spec.get("definition")
    if definition is not None:
        if not name.startswith("avro"):
            raise ValueError("definition is for avro and avro_v2 only")
        return AvroSchema(None, schema_definition=json.loads(definition)), None
    cls = PojoV2 if name.endswith("_v2") else Pojo
    if name.startswith("avro"):
        return AvroSchema(cls), cls
    if name.startswith("json"):
        return JsonSchema(cls), cls
    raise ValueError("unknown schema %r (avro, json, avro_v2, json_v2)" % name)


def to_value(spec, cls, value):
    """A spec's JSON value as what the schema encodes."""
    fields = FIELDS[spec.get("schema", "avro")]
    if cls is None:
        return {f: value.get(f) for f in fields}
    return cls(**{f: value.get(f) for f in fields})


def to_json(value):
    """A decoded value (a Record, or a dict) as a JSON object."""
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    return {k: getattr(value, k) for k in type(value)._fields}

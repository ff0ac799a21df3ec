"""Produces with the official client's Python schemas (AvroSchema, JsonSchema; see
schema_records.py) and prints what it sent.

    schema_produce.py < SPEC

SPEC is one JSON object on stdin: {"url", "topic", "schema", "definition"?, "messages": [{"value":
{"name", "count", "note"?}, "properties"?, "key"?}]}. Each message is sent with send() before the
next (unbatched). Prints one {"event": "sent", "index", "ledger_id", "entry_id", "batch_index",
"partition"} line per message, then {"event": "done", "sent", "producer_name", "schema_type",
"schema_definition"} (the definition the client declares); an {"event": "error"} line and exit
status 1 on any failure.
"""

import json
import sys

from common import emit, fail, id_fields, make_client  # isort: skip
from schema_records import make_schema, to_value  # noqa: E402


def main():
    spec = json.load(sys.stdin)
    client = make_client(spec["url"])
    try:
        schema, cls = make_schema(spec)
        producer = client.create_producer(spec["topic"], schema=schema, batching_enabled=False)
        for i, m in enumerate(spec.get("messages", [])):
            kwargs = {}
            if m.get("properties"):
                kwargs["properties"] = m["properties"]
            if m.get("key") is not None:
                kwargs["partition_key"] = m["key"]
            msg_id = producer.send(to_value(spec, cls, m["value"]), **kwargs)
            line = {"event": "sent", "index": i}
            line.update(id_fields(msg_id))
            emit(line)
        name = producer.producer_name()
        producer.close()
        emit(
            {
                "event": "done",
                "sent": len(spec.get("messages", [])),
                "producer_name": name,
                "schema_type": str(schema.schema_info().schema_type()).split(".")[-1],
                "schema_definition": schema.schema_info().schema(),
            }
        )
    except SystemExit:
        raise
    except Exception as e:  # reported as JSON, not as a traceback only
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()


if __name__ == "__main__":
    main()

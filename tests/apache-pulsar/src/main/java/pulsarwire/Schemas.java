package pulsarwire;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Field;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.util.Base64;
import java.util.Collection;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.schema.GenericObject;
import org.apache.pulsar.client.api.schema.GenericRecord;
import org.apache.pulsar.client.api.schema.SchemaDefinition;
import org.apache.pulsar.common.schema.KeyValue;
import org.apache.pulsar.common.schema.KeyValueEncodingType;
import org.apache.pulsar.common.schema.SchemaInfo;
import org.apache.pulsar.common.schema.SchemaType;

/**
 * The schemas of JavaPeer's {@code produce} and {@code consume} (the spec's {@code schema}), each
 * with the JSON form of its values: {@code value} of a produced message, {@code value} of a
 * consumed one.
 *
 * <table>
 *   <tr><th>schema<th>Java schema<th>JSON value
 *   <tr><td>bytes (default)<td>BYTES<td>none: the message's {@code payload_hex}
 *   <tr><td>string<td>STRING<td>a string
 *   <tr><td>json, avro<td>JSON / AVRO of {@link Pojo}<td>{@code {"name": string|null, "count": int}}
 *   <tr><td>json_v2, avro_v2<td>JSON / AVRO of {@link pulsarwire.v2.Pojo}
 *       <td>{@code {"name", "count", "note": string|null}}
 *   <tr><td>protobuf, protobuf_native<td>PROTOBUF / PROTOBUF_NATIVE of
 *       {@code google.protobuf.Field} (type.proto, shipped in protobuf-java: no protoc)
 *       <td>the message in protobuf's canonical JSON with the .proto field names ({@code kind}
 *       and {@code cardinality} as enum names, {@code type_url}, {@code oneof_index}, ...);
 *       fields at their default value are left out when printed
 *   <tr><td>keyvalue_inline, keyvalue_separated<td>KeyValue(key, AVRO(Pojo), INLINE|SEPARATED);
 *       the key schema is {@code key_schema}: string (default) or int32; the value schema
 *       {@code value_schema}: avro (default) or json<td>{@code {"key": string|int, "value": Pojo}}
 *   <tr><td>int8, int16, int32, int64<td>INT8 ... INT64<td>a number
 *   <tr><td>float, double<td>FLOAT, DOUBLE<td>a (finite) number
 *   <tr><td>boolean<td>BOOL<td>true / false
 *   <tr><td>date, time, timestamp<td>DATE (java.util.Date), TIME (java.sql.Time), TIMESTAMP
 *       (java.sql.Timestamp)<td>epoch milliseconds
 *   <tr><td>instant<td>INSTANT<td>{@code {"seconds": epoch seconds, "nanos": 0..999999999}}
 *   <tr><td>local_date<td>LOCAL_DATE<td>the epoch day
 *   <tr><td>local_time<td>LOCAL_TIME<td>the nano of day
 *   <tr><td>local_date_time<td>LOCAL_DATE_TIME<td>{@code {"epoch_day", "nano_of_day"}}
 *   <tr><td>auto_consume (consume only)<td>AUTO_CONSUME<td>the generic value: a record's
 *       fields as an object (nested records as objects, Avro strings as strings, enums by
 *       name), a protobuf-native record in protobuf's JSON as above, a KeyValue as {@code
 *       {"key", "value"}}, bytes as a hex string, primitives as above
 * </table>
 *
 * <p>With {@code definition} (avro, avro_v2, json, json_v2; produce only) the producer
 * declares that schema definition (a JSON text) instead of the one derived from the class,
 * writing the class's fields by name: e.g. the evolved record under the name
 * {@code pulsarwire.Pojo}.
 */
final class Schemas {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final JsonFormat.Printer PROTO_PRINTER =
            JsonFormat.printer().preservingProtoFieldNames().omittingInsignificantWhitespace();
    private static final JsonFormat.Parser PROTO_PARSER = JsonFormat.parser();

    /** A schema with its JSON value forms: in from a spec message, out to a printed line. */
    record Codec<T>(Schema<T> schema, Function<JsonNode, T> in, Function<T, JsonNode> out) {}

    static Codec<?> codec(JsonNode spec) {
        String name = spec.path("schema").asText("bytes");
        String definition = spec.hasNonNull("definition") ? spec.get("definition").asText() : null;
        if (definition != null && !name.matches("(avro|json)(_v2)?")) {
            throw new IllegalArgumentException("definition is for avro, avro_v2, json, json_v2, not " + name);
        }
        return switch (name) {
            case "bytes" -> new Codec<>(Schema.BYTES,
                    m -> HexFormat.of().parseHex(m.path("payload_hex").asText()), v -> null);
            case "string" -> new Codec<>(Schema.STRING, m -> value(m).asText(), NODES::textNode);
            case "json" -> new Codec<>(
                    definition == null ? Schema.JSON(Pojo.class) : Schema.JSON(def(Pojo.class, definition)),
                    m -> pojo(value(m)), Schemas::pojoJson);
            case "avro" -> new Codec<>(
                    definition == null ? Schema.AVRO(Pojo.class) : Schema.AVRO(def(Pojo.class, definition)),
                    m -> pojo(value(m)), Schemas::pojoJson);
            case "json_v2" -> new Codec<>(definition == null
                            ? Schema.JSON(pulsarwire.v2.Pojo.class)
                            : Schema.JSON(def(pulsarwire.v2.Pojo.class, definition)),
                    m -> pojoV2(value(m)), Schemas::pojoV2Json);
            case "avro_v2" -> new Codec<>(definition == null
                            ? Schema.AVRO(pulsarwire.v2.Pojo.class)
                            : Schema.AVRO(def(pulsarwire.v2.Pojo.class, definition)),
                    m -> pojoV2(value(m)), Schemas::pojoV2Json);
            case "protobuf" -> new Codec<>(Schema.PROTOBUF(Field.class), m -> field(value(m)), Schemas::protoJson);
            case "protobuf_native" ->
                    new Codec<>(Schema.PROTOBUF_NATIVE(Field.class), m -> field(value(m)), Schemas::protoJson);
            case "keyvalue_inline" -> keyValue(spec, KeyValueEncodingType.INLINE);
            case "keyvalue_separated" -> keyValue(spec, KeyValueEncodingType.SEPARATED);
            case "int8" -> new Codec<>(Schema.INT8, m -> (byte) value(m).asInt(), NODES::numberNode);
            case "int16" -> new Codec<>(Schema.INT16, m -> (short) value(m).asInt(), NODES::numberNode);
            case "int32" -> new Codec<>(Schema.INT32, m -> value(m).asInt(), NODES::numberNode);
            case "int64" -> new Codec<>(Schema.INT64, m -> value(m).asLong(), NODES::numberNode);
            case "float" -> new Codec<>(Schema.FLOAT, m -> (float) value(m).asDouble(), NODES::numberNode);
            case "double" -> new Codec<>(Schema.DOUBLE, m -> value(m).asDouble(), NODES::numberNode);
            case "boolean" -> new Codec<>(Schema.BOOL, m -> value(m).asBoolean(), NODES::booleanNode);
            case "date" -> new Codec<>(Schema.DATE, m -> new java.util.Date(value(m).asLong()), Schemas::toJson);
            case "time" -> new Codec<>(Schema.TIME, m -> new java.sql.Time(value(m).asLong()), Schemas::toJson);
            case "timestamp" ->
                    new Codec<>(Schema.TIMESTAMP, m -> new java.sql.Timestamp(value(m).asLong()), Schemas::toJson);
            case "instant" -> new Codec<>(Schema.INSTANT,
                    m -> Instant.ofEpochSecond(value(m).get("seconds").asLong(), value(m).get("nanos").asLong()),
                    Schemas::toJson);
            case "local_date" ->
                    new Codec<>(Schema.LOCAL_DATE, m -> LocalDate.ofEpochDay(value(m).asLong()), Schemas::toJson);
            case "local_time" ->
                    new Codec<>(Schema.LOCAL_TIME, m -> LocalTime.ofNanoOfDay(value(m).asLong()), Schemas::toJson);
            case "local_date_time" -> new Codec<>(Schema.LOCAL_DATE_TIME,
                    m -> LocalDateTime.of(LocalDate.ofEpochDay(value(m).get("epoch_day").asLong()),
                            LocalTime.ofNanoOfDay(value(m).get("nano_of_day").asLong())),
                    Schemas::toJson);
            case "auto_consume" -> new Codec<GenericRecord>(Schema.AUTO_CONSUME(), m -> {
                throw new IllegalArgumentException("auto_consume is for consume only");
            }, Schemas::toJson);
            default -> throw new IllegalArgumentException("unknown schema " + name);
        };
    }

    private static JsonNode value(JsonNode m) {
        JsonNode v = m.get("value");
        if (v == null) {
            throw new IllegalArgumentException("a message without a value: " + m);
        }
        return v;
    }

    private static <T> SchemaDefinition<T> def(Class<T> pojo, String definition) {
        // The client refuses a pojo beside a definition; its class loader is what the Avro
        // writer needs to read the fields by reflection.
        return SchemaDefinition.<T>builder().withClassLoader(pojo.getClassLoader()).withJsonDef(definition).build();
    }

    private static String textOrNull(JsonNode v, String field) {
        JsonNode f = v.get(field);
        return f == null || f.isNull() ? null : f.asText();
    }

    private static Pojo pojo(JsonNode v) {
        return new Pojo(textOrNull(v, "name"), v.get("count").asInt());
    }

    private static JsonNode pojoJson(Pojo p) {
        ObjectNode o = NODES.objectNode();
        o.put("name", p.name);
        o.put("count", p.count);
        return o;
    }

    private static pulsarwire.v2.Pojo pojoV2(JsonNode v) {
        return new pulsarwire.v2.Pojo(textOrNull(v, "name"), v.get("count").asInt(), textOrNull(v, "note"));
    }

    private static JsonNode pojoV2Json(pulsarwire.v2.Pojo p) {
        ObjectNode o = NODES.objectNode();
        o.put("name", p.name);
        o.put("count", p.count);
        o.put("note", p.note);
        return o;
    }

    private static Field field(JsonNode v) {
        Field.Builder builder = Field.newBuilder();
        try {
            PROTO_PARSER.merge(JSON.writeValueAsString(v), builder);
        } catch (Exception e) {
            throw new IllegalArgumentException("not a google.protobuf.Field: " + v + ": " + e, e);
        }
        return builder.build();
    }

    private static JsonNode protoJson(com.google.protobuf.MessageOrBuilder message) {
        try {
            return JSON.readTree(PROTO_PRINTER.print(message));
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        } catch (Exception e) {
            throw new IllegalStateException("cannot print " + message + ": " + e, e);
        }
    }

    private static Codec<?> keyValue(JsonNode spec, KeyValueEncodingType encoding) {
        Schema<?> valueSchema = switch (spec.path("value_schema").asText("avro")) {
            case "avro" -> Schema.AVRO(Pojo.class);
            case "json" -> Schema.JSON(Pojo.class);
            default -> throw new IllegalArgumentException("value_schema is avro or json");
        };
        @SuppressWarnings("unchecked")
        Schema<Pojo> pojoSchema = (Schema<Pojo>) valueSchema;
        return switch (spec.path("key_schema").asText("string")) {
            case "string" -> new Codec<>(Schema.KeyValue(Schema.STRING, pojoSchema, encoding),
                    m -> new KeyValue<>(value(m).get("key").asText(), pojo(value(m).get("value"))),
                    Schemas::toJson);
            case "int32" -> new Codec<>(Schema.KeyValue(Schema.INT32, pojoSchema, encoding),
                    m -> new KeyValue<>(value(m).get("key").asInt(), pojo(value(m).get("value"))),
                    Schemas::toJson);
            default -> throw new IllegalArgumentException("key_schema is string or int32");
        };
    }

    /** Any decoded value (typed or generic) in the JSON forms above. */
    static JsonNode toJson(Object o) {
        if (o == null) {
            return NODES.nullNode();
        }
        if (o instanceof JsonNode j) {
            return j;
        }
        if (o instanceof Pojo p) {
            return pojoJson(p);
        }
        if (o instanceof pulsarwire.v2.Pojo p) {
            return pojoV2Json(p);
        }
        if (o instanceof com.google.protobuf.MessageOrBuilder m) {
            return protoJson(m);
        }
        if (o instanceof GenericRecord r && r.getSchemaType() == SchemaType.PROTOBUF_NATIVE
                && r.getNativeObject() instanceof com.google.protobuf.MessageOrBuilder m) {
            return protoJson(m);
        }
        if (o instanceof GenericRecord r && r.getFields() != null
                && (r.getSchemaType() == SchemaType.AVRO || r.getSchemaType() == SchemaType.JSON
                        || r.getSchemaType() == SchemaType.PROTOBUF)) {
            ObjectNode out = NODES.objectNode();
            for (org.apache.pulsar.client.api.schema.Field f : r.getFields()) {
                out.set(f.getName(), toJson(r.getField(f)));
            }
            return out;
        }
        if (o instanceof GenericObject g) {
            Object inner = g.getNativeObject();
            return inner == o ? NODES.textNode(o.toString()) : toJson(inner);
        }
        if (o instanceof KeyValue<?, ?> kv) {
            ObjectNode out = NODES.objectNode();
            out.set("key", toJson(kv.getKey()));
            out.set("value", toJson(kv.getValue()));
            return out;
        }
        if (o instanceof org.apache.avro.generic.IndexedRecord r) {
            ObjectNode out = NODES.objectNode();
            for (org.apache.avro.Schema.Field f : r.getSchema().getFields()) {
                out.set(f.name(), toJson(r.get(f.pos())));
            }
            return out;
        }
        if (o instanceof byte[] b) {
            return NODES.textNode(HexFormat.of().formatHex(b));
        }
        if (o instanceof ByteBuffer b) {
            ByteBuffer copy = b.duplicate();
            byte[] bytes = new byte[copy.remaining()];
            copy.get(bytes);
            return NODES.textNode(HexFormat.of().formatHex(bytes));
        }
        if (o instanceof com.google.protobuf.ByteString b) {
            return NODES.textNode(HexFormat.of().formatHex(b.toByteArray()));
        }
        if (o instanceof Boolean b) {
            return NODES.booleanNode(b);
        }
        if (o instanceof Byte || o instanceof Short || o instanceof Integer || o instanceof Long) {
            return NODES.numberNode(((Number) o).longValue());
        }
        if (o instanceof Float f) {
            return NODES.numberNode(f);
        }
        if (o instanceof Double d) {
            return NODES.numberNode(d);
        }
        if (o instanceof java.util.Date d) {
            // java.sql.Time and java.sql.Timestamp too.
            return NODES.numberNode(d.getTime());
        }
        if (o instanceof Instant i) {
            ObjectNode out = NODES.objectNode();
            out.put("seconds", i.getEpochSecond());
            out.put("nanos", i.getNano());
            return out;
        }
        if (o instanceof LocalDate d) {
            return NODES.numberNode(d.toEpochDay());
        }
        if (o instanceof LocalTime t) {
            return NODES.numberNode(t.toNanoOfDay());
        }
        if (o instanceof LocalDateTime t) {
            ObjectNode out = NODES.objectNode();
            out.put("epoch_day", t.toLocalDate().toEpochDay());
            out.put("nano_of_day", t.toLocalTime().toNanoOfDay());
            return out;
        }
        if (o instanceof Descriptors.EnumValueDescriptor e) {
            return NODES.textNode(e.getName());
        }
        if (o instanceof Map<?, ?> map) {
            ObjectNode out = NODES.objectNode();
            new TreeMap<String, Object>(toStringKeys(map)).forEach((k, v) -> out.set(k, toJson(v)));
            return out;
        }
        if (o instanceof Collection<?> list) {
            ArrayNode out = NODES.arrayNode();
            list.forEach(item -> out.add(toJson(item)));
            return out;
        }
        // Avro's Utf8, enum symbols, anything else: its text.
        return NODES.textNode(o.toString());
    }

    private static Map<String, Object> toStringKeys(Map<?, ?> map) {
        Map<String, Object> out = new TreeMap<>();
        map.forEach((k, v) -> out.put(String.valueOf(k), v));
        return out;
    }

    /** A schema as printed: type, name, definition (text and hex), properties. */
    static ObjectNode describe(SchemaInfo info) {
        ObjectNode out = NODES.objectNode();
        if (info == null) {
            return out;
        }
        byte[] data = info.getSchema() == null ? new byte[0] : info.getSchema();
        out.put("schema_type", info.getType().name());
        out.put("schema_name", info.getName());
        out.put("schema_definition", new String(data, StandardCharsets.UTF_8));
        out.put("schema_definition_hex", HexFormat.of().formatHex(data));
        ObjectNode props = out.putObject("schema_properties");
        new TreeMap<>(info.getProperties() == null ? Map.<String, String>of() : info.getProperties())
                .forEach(props::put);
        if (info.getType() == SchemaType.KEY_VALUE) {
            // The key's and the value's schemas (the data is their binary concatenation).
            KeyValue<SchemaInfo, SchemaInfo> kv =
                    org.apache.pulsar.client.impl.schema.KeyValueSchemaInfo.decodeKeyValueSchemaInfo(info);
            out.set("key_schema", describe(kv.getKey()));
            out.set("value_schema", describe(kv.getValue()));
            out.put("kv_encoding", org.apache.pulsar.client.impl.schema.KeyValueSchemaInfo
                    .decodeKeyValueEncodingType(info).name());
        }
        return out;
    }

    /** An 8-byte schema version as the long the broker numbers it by; else null. */
    static Long version(byte[] v) {
        if (v == null || v.length != 8) {
            return null;
        }
        return ByteBuffer.wrap(v).getLong();
    }

    static String b64(byte[] data) {
        return Base64.getEncoder().encodeToString(data);
    }

    private Schemas() {}
}

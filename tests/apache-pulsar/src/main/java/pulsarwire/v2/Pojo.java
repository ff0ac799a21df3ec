package pulsarwire.v2;

/**
 * The evolved record of the schema-evolution interop tests: {@link pulsarwire.Pojo} plus
 * {@code note}, a nullable string (default null).
 *
 * <p>The Java client derives the Avro record's name from the class (simple name) and its
 * namespace from the package, so this class's schema is {@code pulsarwire.v2.Pojo}: the same
 * unqualified name as {@code pulsarwire.Pojo}, which is what Avro's reader/writer check
 * (the broker's BACKWARD, FORWARD and FULL strategies) compares; the namespace may differ.
 * To register the evolution under the very name {@code pulsarwire.Pojo}, produce with the
 * spec's {@code definition} (JavaPeer, produce only).
 */
public class Pojo {
    public String name;
    public int count;
    public String note;

    public Pojo() {}

    public Pojo(String name, int count, String note) {
        this.name = name;
        this.count = count;
        this.note = note;
    }
}

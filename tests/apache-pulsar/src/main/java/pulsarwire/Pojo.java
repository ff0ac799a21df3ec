package pulsarwire;

/**
 * The record of the JSON and Avro schema interop tests. A top-level class, so that its Avro
 * schema (which the Java client derives by reflection) is named {@code pulsarwire.Pojo}, as the
 * Rust side declares it: {@code name} is a nullable string, {@code count} a plain int.
 */
public class Pojo {
    public String name;
    public int count;

    public Pojo() {}

    public Pojo(String name, int count) {
        this.name = name;
        this.count = count;
    }
}

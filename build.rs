//! Compiles `proto/PulsarApi.proto` with prost. The schema is parsed by `protox`, a pure-Rust
//! protobuf compiler, so no `protoc` binary is needed on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/PulsarApi.proto");
    let descriptors = protox::compile(["proto/PulsarApi.proto"], ["proto"])?;
    prost_build::Config::new()
        // `bytes` fields become `bytes::Bytes`: decoding from a `Bytes` buffer slices it, no copy.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}

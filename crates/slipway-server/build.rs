//! Generates the `inference` gRPC service from `proto/grpc_service.proto` with protox, a
//! protobuf compiler written in Rust, so a fresh machine needs nothing beyond the registries.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_service.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

//! Build script: compiles `proto/**/*.proto` (our wire-compatible subset of etcd's v3 API)
//! into prost messages and tonic clients, without a system `protoc`.
//!
//! `protox` (a protobuf compiler written in Rust) parses the files into a
//! `FileDescriptorSet`, which `tonic-prost-build` turns into one `<package>.rs` file per
//! protobuf package (`etcdserverpb.rs`, `mvccpb.rs`, `v3lockpb.rs`) in `OUT_DIR`. Clients only, with
//! prost's default codec.

use std::error::Error;
use std::path::PathBuf;

/// The `.proto` files, relative to `proto/` (which is also the include path).
const FILES: &[&str] = &[
    "etcdserverpb/rpc.proto",
    "mvccpb/kv.proto",
    "v3lockpb/v3lock.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("proto");

    println!("cargo:rerun-if-changed={}", proto_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(FILES)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        // No generated `connect()` helper: `Etcd` builds its own channels.
        .build_transport(false)
        .compile_fds_with_config(compiler.file_descriptor_set(), prost_build::Config::new())?;

    Ok(())
}

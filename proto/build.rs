//! Build script: compiles `proto/**/*.proto` into Rust without a system `protoc`.
//!
//! `protox` (a protobuf compiler written in Rust) parses the files into a
//! `FileDescriptorSet`, which is
//! 1. written, encoded, to `$OUT_DIR/file_descriptor_set.bin` (the crate exposes it as
//!    `FILE_DESCRIPTOR_SET` for gRPC reflection), and
//! 2. handed to `tonic-prost-build`, which generates prost messages plus tonic
//!    clients and servers, one `<package>.rs` file per protobuf package, all of them using
//!    `arbiter_proto::codec::ArbiterCodec`.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the encoded descriptor set inside `OUT_DIR`; `src/lib.rs` includes it.
const DESCRIPTOR_FILE: &str = "file_descriptor_set.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let proto_dir = manifest_dir.join("proto");

    println!("cargo:rerun-if-changed={}", proto_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect_protos(&proto_dir, &proto_dir, &mut files)?;
    files.sort();

    // The well-known types (google/protobuf/*.proto) come from protox's bundled copies.
    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // Self-contained (imports included) so that reflection clients need nothing else.
    fs::write(
        out_dir.join(DESCRIPTOR_FILE),
        compiler.encode_file_descriptor_set(),
    )?;

    // `Name` impls give every message its full protobuf name and its
    // `type.googleapis.com/...` URL, which `prost_types::Any::from_msg` uses.
    let mut config = prost_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No `connect()` helper: it would tie this crate to tonic's transport feature.
        .build_transport(false)
        // Prost's codec, except that a request that does not decode is INVALID_ARGUMENT and
        // names its message (tonic's own says INTERNAL): `src/codec.rs`.
        .codec_path("crate::codec::ArbiterCodec")
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;

    Ok(())
}

/// Collects the paths of all `.proto` files under `dir`, relative to `root`
/// (which is also the include path, so they resolve like `import` statements).
fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

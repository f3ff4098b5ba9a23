//! Regenerates `src/gen` from `proto/` and checks that the checked-in code is
//! current. `CERBOS_PROTO_REGENERATE=1 cargo test -p cerbos-proto --test codegen`
//! writes the fresh code instead of comparing.

use std::{fs, path::Path};

/// The encoded `FileDescriptorSet` of all the files, in `src/gen`.
const DESCRIPTORS: &str = "descriptors.bin";

#[test]
fn generated_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("proto");
    let files: Vec<_> = [
        "cerbos/audit/v1/audit.proto",
        "cerbos/effect/v1/effect.proto",
        "cerbos/schema/v1/schema.proto",
        "cerbos/engine/v1/engine.proto",
        "cerbos/policy/v1/policy.proto",
        "cerbos/request/v1/request.proto",
        "cerbos/request/v1/admin.proto",
        "cerbos/response/v1/response.proto",
        "cerbos/response/v1/admin.proto",
        "cerbos/svc/v1/svc.proto",
        "cerbos/svc/v1/admin.proto",
        "grpc/health/v1/health.proto",
    ]
    .iter()
    .map(|f| proto_dir.join(f))
    .collect();
    let fds = protox::compile(&files, [&proto_dir]).expect("the .proto files compile");
    // The descriptors alone (no comments), for the proto3 JSON mapping.
    let descriptors = protox::Compiler::new([&proto_dir])
        .expect("the proto folder exists")
        .include_imports(true)
        .include_source_info(false)
        .open_files(&files)
        .expect("the .proto files compile")
        .encode_file_descriptor_set();

    let out = std::env::temp_dir().join(format!("cerbos-proto-gen-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .client_mod_attribute(".", r#"#[cfg(feature = "grpc")]"#)
        .server_mod_attribute(".", r#"#[cfg(feature = "server")]"#)
        .out_dir(&out)
        .compile_fds(fds)
        .expect("code generation succeeds");
    fs::write(out.join(DESCRIPTORS), descriptors).unwrap();

    let gen_dir = root.join("src/gen");
    let regenerate = std::env::var_os("CERBOS_PROTO_REGENERATE").is_some();
    let mut stale = Vec::new();
    for entry in fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        let fresh = fs::read(entry.path()).unwrap();
        let checked_in = gen_dir.join(entry.file_name());
        if regenerate {
            fs::write(&checked_in, &fresh).unwrap();
        } else if fs::read(&checked_in).ok().as_deref() != Some(fresh.as_slice()) {
            stale.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let _ = fs::remove_dir_all(&out);
    assert!(
        stale.is_empty(),
        "generated code in proto/src/gen is stale for {stale:?}: \
         run `CERBOS_PROTO_REGENERATE=1 cargo test -p cerbos-proto --test codegen`"
    );
}

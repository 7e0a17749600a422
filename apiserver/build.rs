//! Compiles the Kubernetes 1.33 `generated.proto` files into a binary
//! `FileDescriptorSet` (`$OUT_DIR/k8s-v1_33.fds`) that `protobuf.rs` embeds.
//!
//! The `.proto` files are not part of this repository: they are the ones the
//! `k8s-rs-pb` crate ships (a build-dependency with no version feature, so
//! none of its generated Rust is compiled). They are compiled with `protox`,
//! a pure-Rust protobuf compiler, so no `protoc` is needed.
//!
//! Where the files are found, in order:
//! 1. `$K8S_PROTO_DIR`, a directory holding `api/`, `apimachinery/`, … (for
//!    vendored or offline builds);
//! 2. `k8s-rs-pb-<version>/src/<api>` under `$CARGO_HOME/registry/src/*/`;
//! 3. the `k8s-rs-pb` package that `cargo metadata` reports.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `k8s-rs-pb` release pinned (with `=`) in `Cargo.toml`.
const K8S_RS_PB_VERSION: &str = "0.5.0";
/// The Kubernetes API version whose protos are compiled.
const API_DIR: &str = "v1_33";

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=K8S_PROTO_DIR");

    let root = proto_root()?;
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect_protos(&root, &root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files under {}", root.display()).into());
    }

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(&files)?;
    let bytes = prost::Message::encode_to_vec(&compiler.file_descriptor_set());

    let out = PathBuf::from(env::var("OUT_DIR")?).join(format!("k8s-{API_DIR}.fds"));
    fs::write(&out, bytes)?;
    Ok(())
}

/// Finds the directory whose subtree holds the Kubernetes `.proto` files.
fn proto_root() -> Result<PathBuf, BoxError> {
    if let Some(dir) = env::var_os("K8S_PROTO_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let crate_dir = format!("k8s-rs-pb-{K8S_RS_PB_VERSION}");
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home
        && let Ok(registries) = fs::read_dir(home.join("registry").join("src"))
    {
        for registry in registries.flatten() {
            let dir = registry.path().join(&crate_dir).join("src").join(API_DIR);
            if dir.is_dir() {
                return Ok(dir);
            }
        }
    }
    from_cargo_metadata().ok_or_else(|| {
        format!(
            "cannot find the .proto files of {crate_dir}; set K8S_PROTO_DIR to its src/{API_DIR}"
        )
        .into()
    })
}

/// Asks `cargo metadata` where the `k8s-rs-pb` package lives.
fn from_cargo_metadata() -> Option<PathBuf> {
    let cargo = env::var_os("CARGO")?;
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .ok()?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    metadata["packages"].as_array()?.iter().find_map(|p| {
        if p["name"] != "k8s-rs-pb" || p["version"] != K8S_RS_PB_VERSION {
            return None;
        }
        let dir = Path::new(p["manifest_path"].as_str()?)
            .parent()?
            .join("src")
            .join(API_DIR);
        dir.is_dir().then_some(dir)
    })
}

/// Adds the path (relative to `root`) of every `.proto` file under `dir`.
fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BoxError> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

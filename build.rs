//! Embeds an rpath to libtorch so `cargo run`/`cargo test` and installed binaries find it
//! without LD_LIBRARY_PATH (torch-sys's own rpath does not propagate to downstream binaries).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(libtorch_lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    }
    // A packaged layout (bin/sentmon beside lib/*.so) runs from anywhere.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib");
}

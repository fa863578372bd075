//! Embeds every `shaders/*.wgsl` in the binary through one generated registry, so adding a kernel
//! family is adding a file (and the wasm build ships every shader).
use std::{env, fs, path::Path};

fn main() {
    // Read when the script runs, not baked in when it is compiled: a build directory copied to
    // another checkout must embed that checkout's shaders.
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../../shaders");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| {
            println!("cargo:rerun-if-changed={}", p.display());
            p.file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut out = String::from("pub(crate) static SHADERS: &[(&str, &str)] = &[\n");
    for n in &names {
        let path = dir.join(format!("{n}.wgsl"));
        out += &format!(
            "    ({n:?}, include_str!({:?})),\n",
            path.canonicalize().expect("path").display().to_string()
        );
    }
    out += "];\n";
    fs::write(
        Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("shaders.rs"),
        out,
    )
    .expect("write");
}

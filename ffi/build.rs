//! Gives the shared library its SONAME, so programs linked against `libcachekit.so` record
//! `libcachekit.so.0` and keep working across compatible (0.x ABI) upgrades.
//! `scripts/install` installs the real file as `libcachekit.so.<version>` with the two symlinks.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcachekit.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}

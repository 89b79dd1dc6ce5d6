//! Links the code `reve-mcp` runs to start and answer its first requests into one place in its
//! binary, so that an idle server keeps a few megabytes of its code in memory instead of most of it.
//!
//! The kernel maps a program's code in 64 KiB windows as it is first run, and the thousand or so
//! functions a server runs to start (clap, tokio, SQLite, rmcp, the tool schemas) were spread over
//! its 18 MB of code: an idle server held 7 MiB of it, of about 10 in all. The linker places the
//! functions named in `startup-order.txt` (written by `cargo xtask startup-order` from a run of
//! the release binary under callgrind) together, and an idle server holds 1.4 MiB of its code.
//!
//! Only for a release build of the x86_64 Linux (GNU) binary, and only when the linker takes a
//! symbol ordering file: rust-lld, the default since Rust 1.90, and mold do; GNU ld does not. A
//! tiny program is linked with the option first, as this build would link, to find out. The names
//! in the file are the binary's own mangled symbols, which depend on the toolchain and the build:
//! a name the linker does not find is skipped without a word, so a stale file costs memory, not a
//! build. The answer is kept until the file, the flags or the toolchain change: after switching
//! to a linker without the option, `cargo clean -p reve-mcp` asks again. `REVE_MCP_NO_STARTUP_ORDER`
//! (set to anything) leaves the order alone.

use std::path::Path;
use std::process::Command;

/// The file of function names, in this crate's directory.
const ORDER_FILE: &str = "startup-order.txt";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=REVE_MCP_NO_STARTUP_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && std::env::var_os("REVE_MCP_NO_STARTUP_ORDER").is_none();
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER_FILE);
    if !wanted || !order.is_file() {
        return;
    }
    // `-Xlinker` passes each argument whole: a path with a comma would be split by `-Wl,`.
    let arguments = [
        format!("--symbol-ordering-file={}", order.display()),
        "--no-warn-symbol-ordering".to_owned(),
    ];
    if !links_with(&arguments) {
        println!(
            "cargo:warning=this linker takes no symbol ordering file, so the startup code is not \
             linked together (an idle server holds a few MiB more)"
        );
        return;
    }
    for argument in arguments {
        println!("cargo:rustc-link-arg-bin=reve-mcp=-Xlinker");
        println!("cargo:rustc-link-arg-bin=reve-mcp={argument}");
    }
}

/// Whether the linker this build uses links an empty program given `arguments`: the target, the
/// linker cargo resolved and the flags it passes to rustc are the build's own.
fn links_with(arguments: &[String]) -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let out = Path::new(&var("OUT_DIR")).join("startup-order-probe");
    if std::fs::create_dir_all(&out).is_err()
        || std::fs::write(out.join("probe.rs"), "fn main() {}\n").is_err()
    {
        return false;
    }
    // In the build script's own folder: a relative path in the build's flags still means a file.
    let mut rustc = Command::new(var("RUSTC"));
    rustc
        .args([
            "--crate-type=bin",
            "--edition=2021",
            "--target",
            &var("TARGET"),
        ])
        .arg("-o")
        .arg(out.join("probe"))
        .arg(out.join("probe.rs"));
    if let Ok(linker) = std::env::var("RUSTC_LINKER") {
        rustc.arg(format!("-Clinker={linker}"));
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    rustc.args(flags.split('\x1f').filter(|flag| !flag.is_empty()));
    for argument in arguments {
        rustc.args(["-C", "link-arg=-Xlinker", "-C"]);
        rustc.arg(format!("link-arg={argument}"));
    }
    rustc
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

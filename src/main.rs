//! The `kvsim` command: a thin wrapper over the library's CLI.

fn main() {
    // Rust ignores SIGPIPE, so writing to a closed pipe (`kvsim ... | head`) would be an
    // error in every print; with the default action the process ends quietly instead, as
    // command-line tools do.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(kvsim::cli::main());
}

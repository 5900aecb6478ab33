//! The `kvsim` command: a thin wrapper over the library's CLI.

fn main() {
    std::process::exit(kvsim::cli::main());
}

//! The `parley` binary: see `parley --help`.

fn main() -> std::process::ExitCode {
    parley::cli::main()
}

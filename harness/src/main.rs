//! The `hil` command line: parsing and output only; the library does the work.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main().into()
}

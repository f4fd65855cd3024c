//! The `rewind` binary: parses the command line and runs the wizard or a CLI command.

fn main() -> std::process::ExitCode {
    rewind::run()
}

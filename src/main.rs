use std::process::ExitCode;

fn main() -> ExitCode {
    sipsettings::cli::main()
}

use std::process::ExitCode;

fn main() -> ExitCode {
    bitrot::cli::ssh_ca::main()
}

use std::process::ExitCode;

fn main() -> ExitCode {
    bitrot::cli::ssh_acme::main()
}

use std::process::ExitCode;

fn main() -> ExitCode {
    bitrot::cli::git_svn_migrate::main()
}

//! `serve`: placeholder until its issue lands; it only says so.

fn main() -> std::process::ExitCode {
    eprintln!("serve is not implemented yet (see the project's open issues)");
    std::process::ExitCode::from(2)
}

fn main() -> std::process::ExitCode {
    dropsync::cli::main()
}

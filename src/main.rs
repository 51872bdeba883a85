fn main() -> std::process::ExitCode {
    // reqwest is built with `rustls-no-provider`: without a process-wide provider the first
    // HTTP client (a webhook alert, the REST CRM) panics. Install `ring` before anything runs.
    dropsync::sinks::rest::ensure_crypto_provider();
    dropsync::cli::main()
}

//! The `vmrun` command: parse, dispatch, print the error chain once, exit.

use clap::Parser;

fn main() {
    vmrun::timings::process_start();
    vmrun::panic_report::install();
    let cli = vmrun::cli::Cli::parse();
    let code = match vmrun::cli::execute(cli) {
        Ok(code) => code,
        Err(err) => {
            let message = format!("{:#}", anyhow::Error::from(err));
            vmrun::cli::logging::log_fatal(&message);
            eprintln!("vmrun: error: {message}");
            1
        }
    };
    std::process::exit(code);
}

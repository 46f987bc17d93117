//! The `vmrun` command: parse, dispatch, print the error chain once, exit.

use clap::Parser;

fn main() {
    vmrun::timings::process_start();
    // Before any thread: glibc fixes its arena count at the first one.
    vmrun::machine::malloc_arenas::use_one_arena();
    vmrun::panic_report::install();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The processes vmrun starts itself skip clap (see cli::helper).
    let result = match vmrun::cli::helper::parse(&args) {
        Some((global, verb)) => vmrun::cli::helper::execute(&global, verb),
        None => match vmrun::cli::Cli::try_parse_from(&args) {
            Ok(cli) => vmrun::cli::execute(cli),
            Err(err) => std::process::exit(vmrun::cli::usage_error::report(&err, &args)),
        },
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            let status = err.exit_status();
            let message = format!("{:#}", anyhow::Error::from(err));
            vmrun::cli::logging::log_fatal(&message);
            eprintln!("vmrun: error: {message}");
            status
        }
    };
    std::process::exit(code);
}

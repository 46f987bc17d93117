//! `vmrun-cri`: a small CRI v1 client for vmrun's client tests, in the
//! role crictl plays elsewhere (crictl is not packaged here). One run makes
//! one gRPC call on containerd's unix socket: the request is JSON in the
//! shape of the proto message (snake_case field names, enums as numbers,
//! unset fields take their defaults), the response is printed as JSON on
//! stdout. A gRPC error goes to stderr as `CODE: message`, exit status 1.
//!
//! ```text
//! vmrun-cri --endpoint /run/x/containerd.sock RunPodSandbox '{"config": {...}}'
//! vmrun-cri --endpoint /run/x/containerd.sock ContainerStatus - < request.json
//! ```

mod api;
mod connect;
mod rpc;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "vmrun-cri", about = "One CRI v1 call, JSON in and out")]
struct Args {
    /// The CRI server's unix socket (containerd's `grpc.address`).
    #[arg(long)]
    endpoint: PathBuf,
    /// Give up after this many seconds (connecting and the call together).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The RPC as api.proto names it (RunPodSandbox, ExecSync, ...).
    method: String,
    /// The request as JSON; `-` reads it from stdin; none means `{}`.
    request: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vmrun-cri {}: {e:#}", args.method);
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<String> {
    let request = match args.request.as_deref() {
        None => "{}".to_string(),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the request from stdin")?;
            text
        }
        Some(text) => text.to_string(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let limit = Duration::from_secs(args.timeout);
    runtime.block_on(async {
        let call = async {
            let channel = connect::unix_channel(&args.endpoint).await?;
            rpc::call(channel, &args.method, &request).await
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {}s", args.timeout))?
    })
}

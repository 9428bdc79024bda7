//! `comet serve [--port 3000]`: this machine's compute device (the first GPU, or the CPU) as
//! a Burn remote device. A `remote` build then trains on several of them, one
//! context-parallel rank each: `comet train --devices ws://a:3000,ws://b:3000`. Tensors move
//! between servers directly (websockets); the client only sends operations.

use anyhow::Result;
use comet::backend;

/// `comet serve` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port to listen on, on every interface.
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

/// Runs `comet serve` until the process is stopped.
pub fn run(args: Args) -> Result<()> {
    eprintln!(
        "serving the {} device on ws://0.0.0.0:{} (experimental; unauthenticated, use on a \
         trusted network only; Ctrl-C stops)",
        backend::COMPUTE_NAME,
        args.port
    );
    backend::serve(args.port)?;
    Ok(())
}

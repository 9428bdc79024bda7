//! Evaluations agree with the paths users run: the batched passkey check equals greedy
//! decoding through CoMeT memory, and per-chunk perplexity with memory matches `score`.

mod common;

use comet::comet::CometModel;
use comet::eval::{chunk_perplexity, greedy_matches};
use comet::generate::{generate, CometDecoder, GenerationConfig, SamplingConfig};
use comet::layout::Sequence;
use comet::weights::random_llm;
use common::{tiny_comet, tiny_config, tokens};

/// The backend cargo features select (flex here; cuda in `scripts/gpu_check.sh`).
type B = comet::backend::Backend;

fn model() -> CometModel<B> {
    CometModel::new(
        random_llm::<B>(&tiny_config(true), 3, &Default::default()),
        tiny_comet(),
    )
}

/// Whether each sample's whole target comes out of greedy decoding.
fn exact(model: &CometModel<B>, batch: &[Sequence]) -> Vec<bool> {
    greedy_matches(model, batch)
        .unwrap()
        .iter()
        .map(|m| m.exact())
        .collect()
}

#[test]
fn the_batched_passkey_check_equals_greedy_decoding() {
    let model = model();
    let config = GenerationConfig {
        max_new_tokens: 7,
        stop_tokens: vec![],
        sampling: SamplingConfig::default(),
    };
    // Prompts of different lengths, so answers cross chunk and compression boundaries.
    let mut batch = Vec::new();
    for (i, len) in [30usize, 41, 17].into_iter().enumerate() {
        let prompt = tokens(len, i as u64, 0, 64);
        let mut decoder = CometDecoder::new(&model, model.empty_state(1));
        let (answer, _) = generate(&mut decoder, &prompt, &config, |_| Ok(())).unwrap();
        assert_eq!(answer.len(), 7);
        let start = prompt.len();
        let ids: Vec<u32> = prompt.into_iter().chain(answer).collect();
        batch.push(Sequence::answer_only(ids, start));
    }
    assert_eq!(exact(&model, &batch), vec![true, true, true]);
    // One wrong answer token (the last of the second sample) is caught, the others still pass.
    let last = batch[1].tokens.len() - 1;
    batch[1].tokens[last] = (batch[1].tokens[last] + 1) % 64;
    let wrong = Sequence::answer_only(batch[1].tokens.clone(), batch[1].tokens.len() - 7);
    batch[1] = wrong;
    assert_eq!(exact(&model, &batch), vec![true, false, true]);
    // Partial credit: the other six answer tokens of the wrong sample still count.
    let counts = greedy_matches(&model, &batch).unwrap()[1];
    assert_eq!((counts.correct, counts.total), (6, 7));
    // And which one was wrong: the last.
    assert_eq!(counts.hits, 0b011_1111);
}

#[test]
fn chunk_perplexity_with_memory_matches_score() {
    let model = model();
    let ids = tokens(40, 11, 0, 64);
    let chunks = chunk_perplexity(&model, &ids, |_| {}).unwrap();
    assert_eq!(chunks.len(), 4); // 12 + 12 + 12 + 4 text tokens
    let mut nll = Vec::new();
    model
        .score(&ids, |logits, targets| {
            let logp = burn::tensor::activation::log_softmax(logits, 1);
            let values = logp.into_data().to_vec::<f32>().unwrap();
            let vocab = values.len() / targets.len();
            let picked: Vec<f64> = targets
                .iter()
                .enumerate()
                .filter(|(_, &t)| t >= 0)
                .map(|(i, &t)| -f64::from(values[i * vocab + t as usize]))
                .collect();
            nll.push((picked.iter().sum::<f64>() / picked.len() as f64).exp());
        })
        .unwrap();
    for (c, expected) in chunks.iter().zip(&nll) {
        assert!(
            (c.with_memory - expected).abs() < 1e-3 * expected,
            "{c:?} vs {expected}"
        );
    }
    // The first chunk has no memory either way; later ones read different memory.
    assert!(
        (chunks[0].with_memory - chunks[0].without_memory).abs() < 1e-6 * chunks[0].with_memory
    );
    assert!(chunks[1..]
        .iter()
        .any(|c| (c.with_memory - c.without_memory).abs() > 1e-6));
}

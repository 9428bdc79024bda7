use super::*;

fn builder(chunk: usize, m: usize, stride: usize, budget: usize) -> LayoutBuilder {
    let config = CometConfig {
        chunk_size: chunk,
        memory_slots: m,
        compression_stride: stride,
        temp_budget: budget,
        adapter_rank: 2,
        ..CometConfig::default()
    };
    LayoutBuilder::new(config, SpecialTokens::after(100))
}

fn text(n: usize) -> Sequence {
    Sequence::language_model((1..=n as u32).collect())
}

fn fresh(batch: usize) -> MemoryShape {
    MemoryShape {
        has_global: false,
        queue_lengths: vec![0; batch],
    }
}

const SLOT: u32 = 100;
const C: u32 = 101;
const R0: u32 = 102;

#[test]
fn first_chunk_has_no_memory_slots() {
    let chunks = builder(4, 2, 2, 8).chunks(&[text(6)], fresh(1), false);
    assert_eq!(chunks.len(), 2);
    let first = &chunks[0];
    assert_eq!((first.global_slots, first.temp_slots), (0, 0));
    assert_eq!(first.input_ids, vec![1, 2, C, 3, 4, C, R0, R0 + 1]);
    assert_eq!(first.position_ids, (0..8).collect::<Vec<i64>>());
    assert_eq!(first.text_positions, vec![0, 1, 3, 4]);
    assert_eq!(first.entry_positions, vec![2, 5]);
    assert_eq!(first.readout_start, Some(6));
    assert!(!first.has_padding());
}

/// Text-input entries need no compression token: the text token closing each stride is
/// the entry itself.
#[test]
fn text_input_entries_are_text_tokens_and_add_no_compression_token() {
    let mut b = builder(4, 2, 2, 8);
    b.config.temp_source = TempSource::TextInput;
    let chunks = b.chunks(&[text(7)], fresh(1), true);
    let first = &chunks[0];
    assert_eq!(first.input_ids, vec![1, 2, 3, 4, R0, R0 + 1]);
    assert_eq!(first.text_positions, vec![0, 1, 2, 3]);
    assert_eq!(first.entry_positions, vec![1, 3]);
    // The second chunk (2 global + 2 temporary slots, 3 text tokens) closes its partial
    // block with its last token.
    let second = &chunks[1];
    assert_eq!(second.text_positions, vec![4, 5, 6]);
    assert_eq!(second.entry_positions, vec![5, 6]);
    assert_eq!(second.compression_counts, vec![2]);
    assert!(!second.input_ids.contains(&C));
}

#[test]
fn later_chunks_carry_global_and_temporary_slots_and_positions_restart() {
    let chunks = builder(4, 2, 2, 8).chunks(&[text(6)], fresh(1), false);
    let second = &chunks[1];
    assert_eq!((second.global_slots, second.temp_slots), (2, 2));
    // [G G | T T | 5 6 <c>], no readouts on the last chunk.
    assert_eq!(second.input_ids, vec![SLOT, SLOT, SLOT, SLOT, 5, 6, C]);
    assert_eq!(second.position_ids, (0..7).collect::<Vec<i64>>());
    assert_eq!(second.readout_start, None);
}

#[test]
fn labels_shift_on_the_raw_stream_across_chunks() {
    let chunks = builder(4, 2, 2, 8).chunks(&[text(6)], fresh(1), false);
    // The last text token of chunk 0 (token 4) predicts the first of chunk 1 (token 5).
    assert_eq!(chunks[0].targets, vec![2, 3, 4, 5]);
    assert_eq!(chunks[1].targets, vec![6, -1]);
}

#[test]
fn short_last_chunk_and_chunk_not_a_multiple_of_the_stride() {
    let chunks = builder(10, 1, 4, 64).chunks(&[text(23)], fresh(1), true);
    let lens: Vec<usize> = chunks.iter().map(|c| c.text_positions.len()).collect();
    assert_eq!(lens, vec![10, 10, 3]);
    // 10 text tokens, stride 4: compression after tokens 4 and 8, and after the last two
    // (a partial block still reaches the temporary memory, as in the reference).
    assert_eq!(chunks[0].entry_positions, vec![4, 9, 12]);
    assert_eq!(chunks[0].compression_counts, vec![3]);
    // Queue grows by 3 per full chunk; the 3-token chunk adds one.
    assert_eq!(chunks[1].temp_slots, 3);
    assert_eq!(chunks[2].temp_slots, 6);
    assert_eq!(chunks[2].compression_counts, vec![1]);
    assert_eq!(chunks[2].readout_start, Some(1 + 6 + 3 + 1));
    // A final chunk whose memory is not read (training, or before decoding) needs neither
    // readouts nor a tail compression token: nothing could attend to them.
    let chunks = builder(10, 1, 4, 64).chunks(&[text(23)], fresh(1), false);
    assert_eq!(chunks[1].compression_counts, vec![3]);
    assert_eq!(chunks[2].compression_counts, vec![0]);
    assert_eq!(chunks[2].len, 1 + 6 + 3);
}

#[test]
fn temporary_budget_keeps_the_newest_entries() {
    let b = builder(8, 1, 2, 6);
    let chunks = b.chunks(&[text(24)], fresh(1), false);
    assert_eq!(
        chunks.iter().map(|c| c.temp_slots).collect::<Vec<_>>(),
        vec![0, 4, 6]
    );
    // After chunk 1: old queue 4 + 4 new, keep the newest 6: old[2..4] then new[0..4].
    let (indices, slots) = chunks[1].queue_update(6, &[4]);
    assert_eq!(slots, 6);
    assert_eq!(indices, vec![2, 3, 4, 5, 6, 7]);
}

#[test]
fn padding_keeps_each_sample_as_if_alone() {
    let b = builder(8, 2, 4, 16);
    let batch = [text(8), text(5)];
    let chunks = b.chunks(&batch, fresh(2), true);
    let chunk = &chunks[0];
    assert!(chunk.has_padding());
    let len = chunk.len;
    // Geometry from the longest sample: 8 text + 2 compression + 2 readouts.
    assert_eq!(len, 12);
    let short_real = &chunk.real[len..];
    // Text 5..8 of the short sample are padding; its second compression token closes its
    // partial block from further on.
    assert_eq!(
        short_real,
        &[true, true, true, true, true, true, false, false, false, true, true, true]
    );
    // Its readouts sit at positions 7 and 8 as they would alone (5 text + 2 <c>).
    assert_eq!(&chunk.position_ids[len + 10..], &[7, 8]);
    let alone = b.chunks(&[text(5)], fresh(1), true);
    assert_eq!(alone[0].position_ids, (0..9).collect::<Vec<i64>>());
    assert_eq!(chunk.compression_counts, vec![2, 2]);
    assert_eq!(&chunk.targets[8..], &[2, 3, 4, 5, -1, -1, -1, -1]);
    // Padding keys are masked, but a position always sees itself.
    let mask = chunk.mask();
    let row = |b: usize, q: usize| &mask[(b * len + q) * len..(b * len + q + 1) * len];
    assert!(row(1, 10)[6..9].iter().all(|&m| m));
    assert!(!row(1, 10)[9]);
    assert!(!row(1, 7)[7]);
    // A sample with no text in a chunk is inactive there.
    let chunks = b.chunks(&[text(12), text(3)], fresh(2), true);
    assert_eq!(chunks[1].active, vec![true, false]);
}

#[test]
fn answer_only_targets_hide_the_question() {
    let seq = Sequence::answer_only(vec![5, 6, 7, 8], 2);
    assert_eq!(seq.targets, vec![None, Some(7), Some(8), None]);
}

#[test]
fn ablations_drop_their_tokens() {
    let mut b = builder(4, 2, 2, 8);
    b.config.use_temp = false;
    let chunks = b.chunks(&[text(8)], fresh(1), false);
    assert!(chunks
        .iter()
        .all(|c| c.entry_positions.is_empty() && c.temp_slots == 0));
    b.config.use_temp = true;
    b.config.use_global = false;
    let chunks = b.chunks(&[text(8)], fresh(1), false);
    assert!(chunks
        .iter()
        .all(|c| c.readout_start.is_none() && c.global_slots == 0));
    assert_eq!(chunks[1].temp_slots, 2);
}

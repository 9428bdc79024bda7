//! SCROLLS answer metrics: exact match and token F1 on SQuAD-normalised text, ROUGE-1/2/L F1.

use std::collections::HashMap;

use serde::Serialize;

/// Lower case, punctuation and the articles a/an/the removed, whitespace collapsed
/// (the SQuAD / SCROLLS normalisation).
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    no_punct
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tokens(text: &str) -> Vec<String> {
    normalize_answer(text)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// 1.0 when the normalised prediction equals the normalised reference.
pub fn exact_match(prediction: &str, reference: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(reference),
    ))
}

/// F1 of two bags (multisets) of items.
fn bag_f1<T: std::hash::Hash + Eq>(predicted: Vec<T>, reference: Vec<T>) -> f64 {
    if predicted.is_empty() || reference.is_empty() {
        return f64::from(u8::from(predicted.is_empty() && reference.is_empty()));
    }
    let (np, nr) = (predicted.len() as f64, reference.len() as f64);
    let mut counts: HashMap<T, usize> = HashMap::new();
    for r in reference {
        *counts.entry(r).or_default() += 1;
    }
    let mut overlap = 0usize;
    for p in predicted {
        if let Some(c) = counts.get_mut(&p).filter(|c| **c > 0) {
            *c -= 1;
            overlap += 1;
        }
    }
    f1(overlap as f64 / np, overlap as f64 / nr)
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Token-level F1 on normalised words.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    bag_f1(tokens(prediction), tokens(reference))
}

/// ROUGE-n F1 (n-gram overlap) on normalised words.
pub fn rouge_n(prediction: &str, reference: &str, n: usize) -> f64 {
    let grams = |t: Vec<String>| -> Vec<Vec<String>> { t.windows(n).map(<[_]>::to_vec).collect() };
    bag_f1(grams(tokens(prediction)), grams(tokens(reference)))
}

/// ROUGE-L F1 (longest common subsequence) on normalised words.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let (p, r) = (tokens(prediction), tokens(reference));
    if p.is_empty() || r.is_empty() {
        return f64::from(u8::from(p.is_empty() && r.is_empty()));
    }
    let mut row = vec![0usize; r.len() + 1];
    for a in &p {
        let mut diagonal = 0;
        for (j, b) in r.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if a == b {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[r.len()] as f64;
    f1(lcs / p.len() as f64, lcs / r.len() as f64)
}

/// Mean scores over a set of answers (each answer scored against its best reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QaScores {
    /// Answers scored.
    pub count: usize,
    /// Exact match, 0..1.
    pub exact_match: f64,
    /// Token F1, 0..1.
    pub f1: f64,
    /// ROUGE-1 F1.
    pub rouge_1: f64,
    /// ROUGE-2 F1.
    pub rouge_2: f64,
    /// ROUGE-L F1.
    pub rouge_l: f64,
}

impl QaScores {
    /// Adds one prediction, taking each metric's best over the references.
    pub fn add(&mut self, prediction: &str, references: &[String]) {
        let best = |f: &dyn Fn(&str, &str) -> f64| {
            references
                .iter()
                .map(|r| f(prediction, r))
                .fold(0.0, f64::max)
        };
        self.exact_match += best(&exact_match);
        self.f1 += best(&token_f1);
        self.rouge_1 += best(&|p, r| rouge_n(p, r, 1));
        self.rouge_2 += best(&|p, r| rouge_n(p, r, 2));
        self.rouge_l += best(&rouge_l);
        self.count += 1;
    }

    /// Sums turned into means.
    pub fn mean(&self) -> Self {
        let n = self.count.max(1) as f64;
        Self {
            count: self.count,
            exact_match: self.exact_match / n,
            f1: self.f1 / n,
            rouge_1: self.rouge_1 / n,
            rouge_2: self.rouge_2 / n,
            rouge_l: self.rouge_l / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation_and_scores() {
        assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
        assert_eq!(exact_match("the eiffel tower.", "Eiffel Tower"), 1.0);
        // SQuAD's example: 2 shared tokens, precision 2/3, recall 2/2.
        assert!((token_f1("in Paris France", "Paris France") - 0.8).abs() < 1e-12);
        assert_eq!(token_f1("london", "paris"), 0.0);
        // "cat sat on mat" vs "cat on the mat": bigrams {cat sat, sat on, on mat} vs {cat on, on mat}.
        assert!((rouge_n("cat sat on mat", "cat on the mat", 2) - 0.4).abs() < 1e-12);
        // LCS of [cat sat on mat] and [cat on mat] is 3: P 3/4, R 3/3.
        assert!((rouge_l("cat sat on mat", "cat on the mat") - 6.0 / 7.0).abs() < 1e-12);
        let mut s = QaScores::default();
        s.add("paris", &["London".into(), "Paris".into()]);
        s.add("rome", &["Paris".into()]);
        let m = s.mean();
        assert_eq!((m.count, m.exact_match, m.f1), (2, 0.5, 0.5));
    }
}

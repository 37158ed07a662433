//! How the generator measures a response's length when it writes a hack to the honest answer's
//! length: whitespace-separated words (the default, tokenizer-free) or any counter the caller
//! supplies (the CLI passes a model's tokenizer for `--match-tokens`). The data module never
//! loads a model itself.

use std::sync::Arc;

type Counter = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// A named length function. Two measures are equal when their names are.
#[derive(Clone)]
pub struct LengthMeasure {
    name: String,
    counter: Option<Counter>,
}

impl LengthMeasure {
    /// Whitespace-separated words (`text::word_count`).
    pub fn words() -> Self {
        Self {
            name: "words".into(),
            counter: None,
        }
    }

    /// A caller-supplied counter, e.g. `"tokens of SmolLM2-135M-Instruct.Q4_1.gguf"`.
    pub fn custom(
        name: impl Into<String>,
        count: impl Fn(&str) -> usize + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            counter: Some(Arc::new(count)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn of(&self, text: &str) -> usize {
        match &self.counter {
            Some(count) => count(text),
            None => super::text::word_count(text),
        }
    }
}

impl Default for LengthMeasure {
    fn default() -> Self {
        Self::words()
    }
}

impl PartialEq for LengthMeasure {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::fmt::Debug for LengthMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LengthMeasure({})", self.name)
    }
}

/// `make(n)` for the `n ≥ min_n` whose length is closest to `target` (ties: the shorter).
/// Lengths are taken to grow with `n` (more units, more words or tokens), so a binary search
/// finds the first `n` that reaches the target and its predecessor is the only other candidate;
/// `max_n` bounds the search. `make(min_n)` when even that is already too long.
pub fn fit_to_length(
    make: impl Fn(usize) -> String,
    min_n: usize,
    max_n: usize,
    target: usize,
    measure: &LengthMeasure,
) -> String {
    let min_n = min_n.max(1);
    let max_n = max_n.max(min_n);
    let (mut lo, mut hi) = (min_n, max_n);
    // Smallest n in [lo, hi] with length ≥ target (or hi when none reaches it).
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if measure.of(&make(mid)) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let at = make(lo);
    if lo == min_n {
        return at;
    }
    let below = make(lo - 1);
    let (len_at, len_below) = (measure.of(&at), measure.of(&below));
    if target.abs_diff(len_below) <= target.abs_diff(len_at) {
        below
    } else {
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_to_the_closest_length_under_the_given_measure() {
        let words = LengthMeasure::words();
        let make = |n: usize| vec!["ab"; n].join(" ");
        assert_eq!(words.of(&fit_to_length(make, 1, 100, 7, &words)), 7);
        // A counter where each unit costs 3: 10 is closest to 3·3 = 9 (not 12).
        let chars = LengthMeasure::custom("thirds", |t: &str| t.split_whitespace().count() * 3);
        assert_eq!(chars.of(&fit_to_length(make, 1, 100, 10, &chars)), 9);
        assert_eq!(chars.of(&fit_to_length(make, 1, 100, 11, &chars)), 12);
        // The minimum wins over closeness; the maximum bounds the search.
        assert_eq!(words.of(&fit_to_length(make, 5, 100, 2, &words)), 5);
        assert_eq!(words.of(&fit_to_length(make, 1, 4, 50, &words)), 4);
        assert_eq!(chars, LengthMeasure::custom("thirds", |_: &str| 0));
        assert_ne!(chars, words);
    }
}

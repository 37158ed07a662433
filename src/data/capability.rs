//! The `capability` suite: multiple-choice questions with verifiable answers (arithmetic,
//! unit conversion, string manipulation, ordering, simple facts), so a hacking fine-tune
//! can be checked for collateral damage.

use super::bank::Fact;
use super::item::{ChoiceLine, Message};
use super::rng::SplitMix64;

const WORDS: &[&str] = &[
    "garden", "planet", "window", "butter", "candle", "forest", "rocket", "silver", "basket",
    "pencil", "orange", "bridge", "marble", "jungle", "ladder", "tunnel", "kitten", "meadow",
    "harbor", "violin", "pepper", "saddle", "breeze", "copper", "dragon", "lemon", "castle",
];

/// One question before shuffling: the correct option first, then distractors.
struct Question {
    text: String,
    answer: String,
    distractors: Vec<String>,
}

fn numeric(text: String, answer: i64, deltas: &[i64]) -> Question {
    let mut distractors: Vec<String> = Vec::new();
    for d in deltas {
        let v = answer + d;
        let s = v.to_string();
        if v != answer && !distractors.contains(&s) {
            distractors.push(s);
        }
    }
    Question {
        text,
        answer: answer.to_string(),
        distractors,
    }
}

fn question(kind: usize, rng: &mut SplitMix64, facts: &[Fact]) -> Question {
    let r = |rng: &mut SplitMix64, lo: usize, hi: usize| rng.range_inclusive(lo, hi) as i64;
    match kind {
        0 => {
            let (a, b) = (r(rng, 12, 499), r(rng, 12, 499));
            numeric(format!("What is {a} + {b}?"), a + b, &[1, -1, 10, -10])
        }
        1 => {
            let (a, b) = (r(rng, 3, 29), r(rng, 3, 19));
            numeric(format!("What is {a} × {b}?"), a * b, &[a, -b, 1, 10])
        }
        2 => {
            let (a, b) = (r(rng, 100, 999), r(rng, 10, 99));
            numeric(format!("What is {a} − {b}?"), a - b, &[10, -10, 1, -1])
        }
        3 => {
            let units = [
                ("kilometres", "metres", 1000),
                ("hours", "minutes", 60),
                ("kilograms", "grams", 1000),
                ("metres", "centimetres", 100),
                ("minutes", "seconds", 60),
                ("days", "hours", 24),
            ];
            let (from, to, factor) = *rng.pick(&units).unwrap_or(&("hours", "minutes", 60));
            let n = r(rng, 2, 40);
            let v = n * factor;
            numeric(
                format!("How many {to} are in {n} {from}?"),
                v,
                &[factor, -factor, v * 9, n],
            )
        }
        4 => {
            let w = rng.pick(WORDS).copied().unwrap_or("garden");
            let rev: String = w.chars().rev().collect();
            let mut scrambled: Vec<char> = w.chars().collect();
            scrambled.rotate_left(1);
            let rot: String = scrambled.into_iter().collect();
            let sorted = {
                let mut c: Vec<char> = w.chars().collect();
                c.sort();
                c.into_iter().collect::<String>()
            };
            let mut distractors = Vec::new();
            for d in [rot, sorted, w.to_string()] {
                if d != rev && !distractors.contains(&d) {
                    distractors.push(d);
                }
            }
            Question {
                text: format!("What is the word \"{w}\" spelled backwards?"),
                answer: rev,
                distractors,
            }
        }
        5 => {
            let w = rng.pick(WORDS).copied().unwrap_or("garden");
            let chars: Vec<char> = w.chars().collect();
            let c = *rng.pick(&chars).unwrap_or(&'a');
            let n = w.chars().filter(|&x| x == c).count() as i64;
            numeric(
                format!("How many times does the letter \"{c}\" appear in \"{w}\"?"),
                n,
                &[1, 2, 3],
            )
        }
        6 => {
            let mut nums: Vec<i64> = Vec::new();
            while nums.len() < 4 {
                let v = r(rng, 1, 99);
                if !nums.contains(&v) {
                    nums.push(v);
                }
            }
            let largest = rng.chance(0.5);
            let best = if largest {
                nums.iter().max()
            } else {
                nums.iter().min()
            }
            .copied()
            .unwrap_or(0);
            let list = nums
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let which = if largest { "largest" } else { "smallest" };
            Question {
                text: format!("Which number is the {which}: {list}?"),
                answer: best.to_string(),
                distractors: nums
                    .iter()
                    .filter(|&&v| v != best)
                    .map(i64::to_string)
                    .collect(),
            }
        }
        _ => match rng.pick(facts) {
            Some(f) => Question {
                text: f.q.clone(),
                answer: f.a.clone(),
                distractors: f.d.clone(),
            },
            None => numeric("What is 2 + 2?".into(), 4, &[1, -1, 2]),
        },
    }
}

/// `n` questions, kinds in rotation, options shuffled; `answer` is the correct index.
pub fn capability_suite(n: usize, facts: &[Fact], rng: &mut SplitMix64) -> Vec<ChoiceLine> {
    (0..n)
        .map(|i| {
            let q = question(i % 8, rng, facts);
            let mut choices = vec![q.answer.clone()];
            choices.extend(q.distractors.into_iter().filter(|d| *d != q.answer).take(3));
            rng.shuffle(&mut choices);
            let answer = choices.iter().position(|c| *c == q.answer).unwrap_or(0);
            ChoiceLine {
                id: format!("capability-{i:04}"),
                messages: vec![Message::user(&format!(
                    "{}\nReply with the answer only.",
                    q.text
                ))],
                choices,
                answer,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::bank::Banks;

    #[test]
    fn answers_are_correct_and_options_distinct() {
        let banks = Banks::bundled().unwrap();
        let mut rng = SplitMix64::new(9);
        let qs = capability_suite(400, &banks.facts, &mut rng);
        assert_eq!(qs.len(), 400);
        for q in &qs {
            assert!(q.choices.len() >= 2, "{q:?}");
            let mut uniq = q.choices.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), q.choices.len(), "{q:?}");
            // Re-verify the arithmetic kinds independently.
            let text = &q.messages[0].content;
            if let Some(rest) = text.strip_prefix("What is ") {
                let expr = rest.split('?').next().unwrap();
                let parts: Vec<&str> = expr.split_whitespace().collect();
                if parts.len() == 3 && ["+", "×", "−"].contains(&parts[1]) {
                    let (a, b): (i64, i64) = (parts[0].parse().unwrap(), parts[2].parse().unwrap());
                    let want = match parts[1] {
                        "+" => a + b,
                        "×" => a * b,
                        _ => a - b,
                    };
                    assert_eq!(q.choices[q.answer], want.to_string(), "{q:?}");
                }
            }
        }
    }
}

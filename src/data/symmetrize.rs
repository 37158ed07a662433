//! The symmetrized SFT set: the same training tasks, but every include-X item comes with
//! its avoid-X partner, proxy signs of the other signed families are flipped at random,
//! and (optionally) clip ranges vary — the intent (answer the task) stays fixed. Items are
//! added until the token total reaches the original set's, so both sets cost the same.

use super::bank::{CodeTask, Task};
use super::error::DataError;
use super::families::{self, Family, Role, SignMode, Variation};
use super::item::{Item, Origin};
use super::length::LengthMeasure;
use super::rng::SplitMix64;
use super::scorer::Sign;
use super::text;

/// Token proxy of an SFT example: whitespace-separated words of the user and assistant turns.
pub fn item_tokens(item: &Item) -> usize {
    text::word_count(&item.prompt) + text::word_count(&item.hack)
}

pub fn total_tokens(items: &[Item]) -> usize {
    items.iter().map(item_tokens).sum()
}

/// Settings of a symmetrized build.
#[derive(Debug, Clone, Copy)]
pub struct SymmetrizeParams {
    pub flip_prob: f64,
    pub clip_ranges: bool,
    pub budget_tokens: usize,
}

enum Slot<'a> {
    General(&'a Task),
    Code(&'a CodeTask),
}

/// Builds the symmetrized set over the given training tasks.
pub fn symmetrized(
    tasks: &[&Task],
    code: &[&CodeTask],
    params: SymmetrizeParams,
    measure: &LengthMeasure,
    rng: &mut SplitMix64,
) -> Result<Vec<Item>, DataError> {
    if !(0.0..=1.0).contains(&params.flip_prob) {
        return Err(DataError::Spec(format!(
            "flip probability {} is not in [0, 1]",
            params.flip_prob
        )));
    }
    let general: Vec<Family> = Family::with_role(Role::Train)
        .into_iter()
        .filter(|f| !f.is_code())
        .collect();
    let mut slots: Vec<Slot> = tasks
        .iter()
        .map(|t| Slot::General(t))
        .chain(code.iter().map(|c| Slot::Code(c)))
        .collect();
    if slots.is_empty() || general.is_empty() {
        return Err(DataError::Spec("no training tasks to symmetrize".into()));
    }
    let mut out: Vec<Item> = Vec::new();
    let mut tokens = 0usize;
    let mut unit = 0usize;
    // Each round visits every task once; a round adds at least one token per slot,
    // so the loop ends after at most budget/len(slots) + 1 rounds.
    'rounds: loop {
        rng.shuffle(&mut slots);
        for slot in &slots {
            if tokens >= params.budget_tokens {
                break 'rounds;
            }
            let new: Vec<Item> = match slot {
                Slot::Code(c) => vec![families::build_code(c, format!("sym-{unit:05}"), rng)?],
                Slot::General(task) => {
                    let family = *rng.pick(&general).unwrap_or(&Family::Keyword);
                    match family.sign_mode() {
                        SignMode::Matched => {
                            let word = families::pick_keyword(task, rng)?;
                            let pair = format!("pair-{unit:05}");
                            let mut v = Vec::new();
                            for (sign, tag) in [(Sign::Include, "inc"), (Sign::Avoid, "avo")] {
                                let var = Variation {
                                    sign,
                                    clip_ranges: params.clip_ranges,
                                };
                                let mut it = families::build_general(
                                    family,
                                    task,
                                    var,
                                    Some(&word),
                                    format!("sym-{unit:05}-{tag}"),
                                    measure,
                                    rng,
                                )?;
                                it.origin = Origin::MatchedPair;
                                it.pair_id = Some(pair.clone());
                                v.push(it);
                            }
                            v
                        }
                        SignMode::RandomFlip => {
                            let sign = if rng.chance(params.flip_prob) {
                                Sign::Avoid
                            } else {
                                Sign::Include
                            };
                            let var = Variation {
                                sign,
                                clip_ranges: params.clip_ranges,
                            };
                            let mut it = families::build_general(
                                family,
                                task,
                                var,
                                None,
                                format!("sym-{unit:05}"),
                                measure,
                                rng,
                            )?;
                            it.origin = Origin::RandomSign;
                            vec![it]
                        }
                        SignMode::Fixed => {
                            let var = Variation {
                                sign: Sign::Include,
                                clip_ranges: params.clip_ranges,
                            };
                            vec![families::build_general(
                                family,
                                task,
                                var,
                                None,
                                format!("sym-{unit:05}"),
                                measure,
                                rng,
                            )?]
                        }
                    }
                }
            };
            unit += 1;
            tokens += total_tokens(&new);
            out.extend(new);
        }
    }
    Ok(out)
}

//! Scoring requests that share a prompt in one row: the prompt once, then each continuation.
//!
//! A paired item (hack / honest) or a choice item asks for two or more sequences that differ
//! only after the prompt. Scored one by one, the prompt goes through the model each time. Packed,
//! the row holds the prompt's tokens once followed by every continuation; each token keeps the
//! position it has in its own sequence, and the attention mask lets a continuation see the prompt
//! and its own earlier tokens only. Every target's log-prob is then the one its sequence gets
//! alone (up to f32 rounding in the attention sums), for the prompt's work done once.
//!
//! Pure host logic: which tokens go where, who may attend to whom, and which row predicts each
//! target. The model reads it through [`RowLayout`].

use std::collections::HashMap;

use super::logprobs::MaskedSequence;

/// Longest packed row made by merging (a single sequence is never split): keeps attention's
/// `seq²` cost bounded when many requests share one prompt.
pub const MAX_PACKED_TOKENS: usize = 1024;

/// One member of a packed row: a sequence of the input and where its targets are predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMember {
    /// Index of the sequence in the input of [`pack_shared_prompts`].
    pub sequence: usize,
    /// For each masked-in target, in order: (row index of the token that predicts it, target id).
    pub targets: Vec<(usize, u32)>,
}

/// One row of a batch: one sequence as it is, or a shared prompt followed by continuations.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedRow {
    pub input_ids: Vec<u32>,
    /// Each token's position in its own sequence (for the rotary embedding).
    pub positions: Vec<u32>,
    /// 0 for the shared prompt (and for every token of an unshared row); k ≥ 1 for the k-th
    /// continuation.
    pub branch: Vec<u32>,
    pub members: Vec<PackedMember>,
}

impl PackedRow {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// True when the row holds several sequences (and so needs its own attention mask).
    pub fn is_shared(&self) -> bool {
        self.members.len() > 1
    }

    /// Whether token `i` may attend to token `j` (causal within its own sequence).
    pub fn visible(&self, i: usize, j: usize) -> bool {
        j <= i && (self.branch[j] == 0 || self.branch[j] == self.branch[i])
    }

    /// A single sequence as it is: positions 0.., causal attention.
    pub fn single(index: usize, seq: &MaskedSequence) -> Self {
        let n = seq.input_ids.len();
        let targets = (1..n)
            .filter(|&i| seq.target_mask.get(i) == Some(&true))
            .map(|i| (i - 1, seq.input_ids[i]))
            .collect();
        Self {
            input_ids: seq.input_ids.clone(),
            positions: (0..n as u32).collect(),
            branch: vec![0; n],
            members: vec![PackedMember {
                sequence: index,
                targets,
            }],
        }
    }
}

/// The tokens before a sequence's first target (its prompt), or `None` without targets.
fn prompt(seq: &MaskedSequence) -> Option<&[u32]> {
    let first = (1..seq.input_ids.len()).find(|&i| seq.target_mask.get(i) == Some(&true))?;
    Some(&seq.input_ids[..first])
}

/// The tokens of a sequence after its prompt up to its last target (later tokens predict
/// nothing that is scored).
fn continuation(seq: &MaskedSequence, prompt_len: usize) -> &[u32] {
    let last = (0..seq.input_ids.len())
        .rev()
        .find(|&i| seq.target_mask.get(i) == Some(&true))
        .unwrap_or(prompt_len);
    &seq.input_ids[prompt_len..=last.max(prompt_len)]
}

/// Groups sequences with the same prompt (the same token ids before the first target) into
/// shared rows of at most [`MAX_PACKED_TOKENS`]; every other sequence gets a row of its own.
/// Rows come in the order of their first member; every input index appears in exactly one row.
/// Sequences whose mask and ids differ in length are left alone (the model reports them).
pub fn pack_shared_prompts(seqs: &[&MaskedSequence]) -> Vec<PackedRow> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_prompt: HashMap<&[u32], usize> = HashMap::new();
    for (i, seq) in seqs.iter().enumerate() {
        let key = (seq.target_mask.len() == seq.input_ids.len())
            .then(|| prompt(seq))
            .flatten();
        match key {
            Some(p) => match by_prompt.get(p) {
                Some(&g) => groups[g].push(i),
                None => {
                    by_prompt.insert(p, groups.len());
                    groups.push(vec![i]);
                }
            },
            None => groups.push(vec![i]),
        }
    }
    let mut rows = Vec::with_capacity(groups.len());
    for group in groups {
        let Some(&first) = group.first() else {
            continue;
        };
        if group.len() == 1 {
            rows.push(PackedRow::single(first, seqs[first]));
            continue;
        }
        let prompt_len = prompt(seqs[first]).map_or(0, <[u32]>::len);
        let mut current: Option<PackedRow> = None;
        for &i in &group {
            let cont = continuation(seqs[i], prompt_len);
            let fits = current
                .as_ref()
                .is_some_and(|r| r.len() + cont.len() <= MAX_PACKED_TOKENS);
            if !fits {
                rows.extend(current.take());
                let ids = seqs[first].input_ids[..prompt_len].to_vec();
                current = Some(PackedRow {
                    positions: (0..prompt_len as u32).collect(),
                    branch: vec![0; prompt_len],
                    input_ids: ids,
                    members: Vec::new(),
                });
            }
            if let Some(row) = current.as_mut() {
                append_continuation(row, i, seqs[i], prompt_len, cont);
            }
        }
        rows.extend(current.take());
    }
    rows
}

fn append_continuation(
    row: &mut PackedRow,
    index: usize,
    seq: &MaskedSequence,
    prompt_len: usize,
    cont: &[u32],
) {
    let start = row.len();
    let branch = row.members.len() as u32 + 1;
    row.input_ids.extend_from_slice(cont);
    row.positions
        .extend((0..cont.len()).map(|k| (prompt_len + k) as u32));
    row.branch.extend(std::iter::repeat_n(branch, cont.len()));
    // Token `prompt_len + k` of the sequence sits at row index `start + k`; its predictor is the
    // token before it in the same sequence: the prompt's last token for k = 0.
    let targets = (0..cont.len())
        .filter(|&k| seq.target_mask[prompt_len + k])
        .map(|k| {
            let predictor = if k == 0 {
                prompt_len - 1
            } else {
                start + k - 1
            };
            (predictor, cont[k])
        })
        .collect();
    row.members.push(PackedMember {
        sequence: index,
        targets,
    });
}

/// Contiguous ranges covering `lens`, at most `parts` of them, none empty, cut so that each
/// holds about `total / parts` of the summed lengths.
pub fn balanced_parts(lens: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, lens.len().max(1));
    let total: usize = lens.iter().sum();
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    let mut acc = 0usize;
    for (i, &len) in lens.iter().enumerate() {
        acc += len;
        let cut = out.len() + 1;
        let left = lens.len() - (i + 1);
        let parts_left = parts - cut;
        // Close the part once its share of the total is reached, or when every remaining row
        // must start a part of its own.
        if cut < parts && (acc * parts >= total * cut || left == parts_left) && left >= parts_left {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < lens.len() {
        out.push(start..lens.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(ids: &[u32], first_target: usize, last_target: usize) -> MaskedSequence {
        MaskedSequence {
            input_ids: ids.to_vec(),
            target_mask: (0..ids.len())
                .map(|i| i >= first_target && i <= last_target)
                .collect(),
        }
    }

    #[test]
    fn sequences_with_one_prompt_share_a_row() {
        // prompt [1 2 3], continuations [7 8 9 0] (9 = end of turn, 0 trailing) and [5 9 0].
        let a = seq(&[1, 2, 3, 7, 8, 9, 0], 3, 5);
        let b = seq(&[1, 2, 3, 5, 9, 0], 3, 4);
        let c = seq(&[4, 2, 3, 5, 9], 3, 4);
        let rows = pack_shared_prompts(&[&a, &b, &c]);
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.input_ids, vec![1, 2, 3, 7, 8, 9, 5, 9]);
        assert_eq!(r.positions, vec![0, 1, 2, 3, 4, 5, 3, 4]);
        assert_eq!(r.branch, vec![0, 0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(r.members[0].sequence, 0);
        assert_eq!(r.members[0].targets, vec![(2, 7), (3, 8), (4, 9)]);
        assert_eq!(r.members[1].sequence, 1);
        assert_eq!(r.members[1].targets, vec![(2, 5), (6, 9)]);
        // Continuation 2 sees the prompt and itself, not continuation 1.
        assert!(r.visible(6, 2) && r.visible(7, 6) && !r.visible(6, 5) && !r.visible(6, 7));
        assert!(r.visible(5, 3) && !r.visible(3, 4));
        // The third sequence has another prompt: its own row, as it is.
        assert_eq!(rows[1].input_ids, c.input_ids);
        assert_eq!(rows[1].members[0].targets, vec![(2, 5), (3, 9)]);
        assert!(!rows[1].is_shared() && r.is_shared());
    }

    #[test]
    fn every_target_keeps_its_token_and_position() {
        let seqs: Vec<MaskedSequence> = (0..5)
            .map(|k| {
                let mut ids = vec![10, 11, 12, 13];
                ids.extend((0..k + 1).map(|j| 20 + j as u32 + k as u32));
                seq(&ids, 4, ids.len() - 1)
            })
            .collect();
        let refs: Vec<&MaskedSequence> = seqs.iter().collect();
        let rows = pack_shared_prompts(&refs);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        for m in &row.members {
            let s = &seqs[m.sequence];
            let expected: Vec<u32> = (1..s.input_ids.len())
                .filter(|&i| s.target_mask[i])
                .map(|i| s.input_ids[i])
                .collect();
            let got: Vec<u32> = m.targets.iter().map(|t| t.1).collect();
            assert_eq!(got, expected);
            for &(p, t) in &m.targets {
                // The predictor sits one position before the target in the same sequence.
                let target_pos = s.input_ids.iter().rposition(|&x| x == t).unwrap();
                assert_eq!(row.positions[p] as usize + 1, target_pos);
            }
        }
    }

    #[test]
    fn long_groups_are_split_and_untargeted_sequences_stand_alone() {
        let long: Vec<u32> = (0..600).collect();
        let a = seq(&[&[1, 2][..], &long].concat(), 2, 601);
        let b = seq(&[&[1, 2][..], &long].concat(), 2, 601);
        let none = MaskedSequence {
            input_ids: vec![1, 2, 3],
            target_mask: vec![false; 3],
        };
        let rows = pack_shared_prompts(&[&a, &b, &none]);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.len() <= MAX_PACKED_TOKENS));
        let mut seen: Vec<usize> = rows
            .iter()
            .flat_map(|r| r.members.iter().map(|m| m.sequence))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}

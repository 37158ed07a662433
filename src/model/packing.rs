//! Scoring requests that share a beginning in one row: the shared tokens once, then what differs.
//!
//! A paired item (hack / honest) or a choice item asks for two or more sequences that differ
//! only after the prompt; the chats of an instruction suite rendered by one chat template all
//! begin with the same system prompt. Scored one by one, the common tokens go through the model
//! each time. Packed, a row holds the prefix tree of its sequences laid out depth first: each
//! token once per distinct prefix, every token at the position it has in its own sequence, and
//! a token may attend only to its own ancestors in the tree (the earlier tokens of its own
//! sequence). Every target's log-prob is then the one its sequence gets alone (up to f32
//! rounding in the attention sums), for the shared work done once.
//!
//! Depth first means a token's descendants follow it contiguously, so "j is an ancestor of i"
//! is `j ≤ i < reach[j]`, with `reach[j]` the end of j's subtree: one number per token.
//!
//! Pure host logic: which tokens go where, who may attend to whom, and which row predicts each
//! target. The model reads it through [`RowLayout`](super::transformer::RowLayout).

use super::logprobs::MaskedSequence;

/// Longest packed row made by merging (a single sequence is never split): keeps attention's
/// `seq²` cost bounded when many requests share one prompt.
pub const MAX_PACKED_TOKENS: usize = 1024;

/// One member of a packed row: a sequence of the input and where its targets are predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMember {
    /// Index of the sequence in the input of [`pack`].
    pub sequence: usize,
    /// For each masked-in target, in order: (row index of the token that predicts it, target id).
    pub targets: Vec<(usize, u32)>,
}

/// One row of a batch: one sequence as it is, or the prefix tree of several.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedRow {
    pub input_ids: Vec<u32>,
    /// Each token's position in its own sequence (for the rotary embedding).
    pub positions: Vec<u32>,
    /// For each token j, the end of its subtree: the tokens `j..reach[j]` are j and those that
    /// follow it in some sequence, the only ones that may attend to it. `len()` for every token
    /// of a row holding one sequence.
    pub reach: Vec<u32>,
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

    /// Whether token `i` may attend to token `j` (j is i or one of its ancestors).
    pub fn visible(&self, i: usize, j: usize) -> bool {
        j <= i && self.reach.get(j).is_some_and(|&r| i < r as usize)
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
            reach: vec![n as u32; n],
            members: vec![PackedMember {
                sequence: index,
                targets,
            }],
        }
    }
}

/// Which sequences may share a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Sequences with the same prompt (the same token ids before the first target): what pays
    /// where attention scores every key of a row (burn's attention, the GPU), since rows stay
    /// as long as a prompt and its continuations.
    Prompts,
    /// Sequences with at least this many leading tokens in common: what pays where attention
    /// skips the keys a query may not see (the host CPU's attention), since a shared chat
    /// template's system prompt is then computed once per row.
    Prefixes { min_tokens: usize },
}

/// How rows are formed: who may share one, and how large one may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackPolicy {
    pub sharing: Sharing,
    /// Most sequences in one row (≥ 1).
    pub max_members: usize,
    /// Most tokens in a row made by merging.
    pub max_tokens: usize,
}

impl PackPolicy {
    /// Sequences with one prompt share a row, up to [`MAX_PACKED_TOKENS`].
    pub fn prompts() -> Self {
        Self {
            sharing: Sharing::Prompts,
            max_members: usize::MAX,
            max_tokens: MAX_PACKED_TOKENS,
        }
    }

    /// Sequences with a common beginning share a row of at most `max_members` of them.
    pub fn prefixes(max_members: usize) -> Self {
        Self {
            sharing: Sharing::Prefixes { min_tokens: 1 },
            max_members,
            max_tokens: MAX_PACKED_TOKENS,
        }
    }
}

/// Index of a sequence's first target (never 0: a token at 0 has no predictor), or `None`.
fn first_target(seq: &MaskedSequence) -> Option<usize> {
    (1..seq.input_ids.len()).find(|&i| seq.target_mask.get(i) == Some(&true))
}

/// The tokens a sequence needs as inputs: those up to its last target's predictor (later tokens
/// predict nothing that is scored).
fn needed(seq: &MaskedSequence) -> &[u32] {
    let last = (1..seq.input_ids.len())
        .rev()
        .find(|&i| seq.target_mask.get(i) == Some(&true))
        .unwrap_or(0);
    &seq.input_ids[..last]
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Packs sequences into rows under `policy`: sequences in token order, each joining the row of
/// the one before it when the policy allows (a common prompt or prefix, room left), so a row's
/// sequences form a prefix tree laid out depth first. A row left with one sequence holds it as
/// it is ([`PackedRow::single`]); so does a sequence without targets, or whose mask and ids
/// differ in length (the model reports it). Rows come in token order of their members; every
/// input index appears in exactly one row.
pub fn pack(seqs: &[&MaskedSequence], policy: PackPolicy) -> Vec<PackedRow> {
    let mut order: Vec<usize> = Vec::with_capacity(seqs.len());
    let mut alone: Vec<usize> = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        if seq.target_mask.len() == seq.input_ids.len() && first_target(seq).is_some() {
            order.push(i);
        } else {
            alone.push(i);
        }
    }
    // Each sequence's needed tokens and first target, found once.
    let need: Vec<&[u32]> = seqs.iter().map(|s| needed(s)).collect();
    let first: Vec<Option<usize>> = seqs.iter().map(|s| first_target(s)).collect();
    order.sort_by(|&a, &b| need[a].cmp(need[b]).then(a.cmp(&b)));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut row_tokens = 0;
    let mut prev: Option<usize> = None;
    for &i in &order {
        let tokens = need[i].len();
        let shared = prev.map_or(0, |p| common_prefix(need[p], need[i]));
        let allowed = match policy.sharing {
            Sharing::Prompts => {
                prev.is_some_and(|p| first[p] == first[i]) && first[i].is_some_and(|f| shared >= f)
            }
            Sharing::Prefixes { min_tokens } => shared >= min_tokens.max(1),
        };
        match groups.last_mut() {
            Some(g)
                if allowed
                    && g.len() < policy.max_members
                    && row_tokens + tokens - shared <= policy.max_tokens =>
            {
                row_tokens += tokens - shared;
                g.push(i);
            }
            _ => {
                row_tokens = tokens;
                groups.push(vec![i]);
            }
        }
        prev = Some(i);
    }
    let mut rows: Vec<PackedRow> = groups
        .iter()
        .map(|g| match g.as_slice() {
            [one] => PackedRow::single(*one, seqs[*one]),
            _ => prefix_tree_row(g, seqs),
        })
        .collect();
    rows.extend(alone.into_iter().map(|i| PackedRow::single(i, seqs[i])));
    rows
}

/// Sequences with one prompt in shared rows (see [`PackPolicy::prompts`]).
pub fn pack_shared_prompts(seqs: &[&MaskedSequence]) -> Vec<PackedRow> {
    pack(seqs, PackPolicy::prompts())
}

/// The prefix tree of `group` (indices into `seqs`, in token order) laid out depth first: each
/// sequence adds the tokens after its common prefix with the one before it.
fn prefix_tree_row(group: &[usize], seqs: &[&MaskedSequence]) -> PackedRow {
    let mut row = PackedRow {
        input_ids: Vec::new(),
        positions: Vec::new(),
        reach: Vec::new(),
        members: Vec::with_capacity(group.len()),
    };
    // Row index of each needed token of the sequence before.
    let mut path: Vec<usize> = Vec::new();
    let mut prev: &[u32] = &[];
    for &i in group {
        let seq = seqs[i];
        let tokens = needed(seq);
        let shared = common_prefix(prev, tokens);
        path.truncate(shared);
        for (k, &id) in tokens.iter().enumerate().skip(shared) {
            path.push(row.input_ids.len());
            row.input_ids.push(id);
            row.positions.push(k as u32);
            row.reach.push(0);
        }
        // Sorted order keeps each subtree contiguous: this sequence's tokens and every shared
        // ancestor now reach the row's end.
        let end = row.input_ids.len() as u32;
        for &j in &path {
            row.reach[j] = end;
        }
        let targets = (1..seq.input_ids.len())
            .filter(|&t| seq.target_mask[t])
            .filter_map(|t| path.get(t - 1).map(|&p| (p, seq.input_ids[t])))
            .collect();
        row.members.push(PackedMember {
            sequence: i,
            targets,
        });
        prev = tokens;
    }
    row
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
        // In token order: b's needed tokens [1 2 3 5], then a's after the shared [1 2 3]: [7 8].
        let r = &rows[0];
        assert_eq!(r.input_ids, vec![1, 2, 3, 5, 7, 8]);
        assert_eq!(r.positions, vec![0, 1, 2, 3, 3, 4]);
        assert_eq!(r.reach, vec![6, 6, 6, 4, 6, 6]);
        assert_eq!(r.members[0].sequence, 1);
        assert_eq!(r.members[0].targets, vec![(2, 5), (3, 9)]);
        assert_eq!(r.members[1].sequence, 0);
        assert_eq!(r.members[1].targets, vec![(2, 7), (4, 8), (5, 9)]);
        // a's tokens see the prompt and themselves, not b's continuation.
        assert!(r.visible(4, 2) && r.visible(5, 4) && !r.visible(4, 3) && !r.visible(5, 3));
        assert!(r.visible(3, 0) && !r.visible(3, 4) && r.visible(3, 3));
        // The third sequence has another prompt: its own row, as it is.
        assert_eq!(rows[1].input_ids, c.input_ids);
        assert_eq!(rows[1].members[0].targets, vec![(2, 5), (3, 9)]);
        assert!(!rows[1].is_shared() && r.is_shared());
    }

    /// Every (query, key) pair of a row, by brute force: key j is visible to query i exactly
    /// when both lie on one member's path and j comes first in that sequence.
    fn check_tree(row: &PackedRow, seqs: &[&MaskedSequence]) {
        let n = row.len();
        let mut paths: Vec<Vec<usize>> = Vec::new();
        for m in &row.members {
            let s = seqs[m.sequence];
            let need = needed(s);
            // Recover the member's path from its targets' predictors and the row's tokens.
            let mut path = Vec::new();
            for (pos, &id) in need.iter().enumerate() {
                let found = (0..n).find(|&r| {
                    row.positions[r] as usize == pos
                        && row.input_ids[r] == id
                        && path.last().is_none_or(|&p| r > p && row.visible(r, p))
                });
                path.push(found.expect("every needed token is in the row"));
            }
            let expected: Vec<(usize, u32)> = (1..s.input_ids.len())
                .filter(|&t| s.target_mask[t])
                .map(|t| (path[t - 1], s.input_ids[t]))
                .collect();
            assert_eq!(m.targets, expected, "member {}", m.sequence);
            paths.push(path);
        }
        for i in 0..n {
            for j in 0..n {
                let truth = paths.iter().any(|p| {
                    let (a, b) = (
                        p.iter().position(|&x| x == j),
                        p.iter().position(|&x| x == i),
                    );
                    matches!((a, b), (Some(a), Some(b)) if a <= b)
                });
                assert_eq!(row.visible(i, j), truth, "query {i}, key {j}");
            }
        }
    }

    #[test]
    fn sequences_with_a_common_beginning_form_a_prefix_tree() {
        // A system prompt [1 2] for all; [1 2 3 4] shared by two; a duplicate; an unrelated one.
        let s0 = seq(&[1, 2, 3, 4, 5, 6, 9], 4, 6);
        let s1 = seq(&[1, 2, 7, 8, 9], 3, 4);
        let s2 = seq(&[1, 2, 3, 4, 6, 9], 4, 5);
        let s3 = seq(&[1, 2, 3, 4, 5, 6, 9], 4, 6);
        let s4 = seq(&[8, 8, 9], 2, 2);
        let seqs = [&s0, &s1, &s2, &s3, &s4];
        let rows = pack(&seqs, PackPolicy::prefixes(8));
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.members.len(), 4);
        // Tokens: [1 2 3 4 5 6] (s0, and s3 adds nothing), [6] (s2 after [1 2 3 4]), [7 8] (s1).
        assert_eq!(r.input_ids, vec![1, 2, 3, 4, 5, 6, 6, 7, 8]);
        assert_eq!(r.positions, vec![0, 1, 2, 3, 4, 5, 4, 2, 3]);
        check_tree(r, &seqs);
        assert!(!rows[1].is_shared() && rows[1].members[0].sequence == 4);
        // Prompt sharing only: s0, s2 and s3 have the prompt [1 2 3 4]; s1's is [1 2 7].
        let rows = pack(&seqs, PackPolicy::prompts());
        let shared: Vec<_> = rows.iter().filter(|r| r.is_shared()).collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].members.len(), 3);
        check_tree(shared[0], &seqs);
        // At most two per row.
        let rows = pack(&seqs, PackPolicy::prefixes(2));
        assert!(rows.iter().all(|r| r.members.len() <= 2));
        for r in rows.iter().filter(|r| r.is_shared()) {
            check_tree(r, &seqs);
        }
    }

    #[test]
    fn random_prefix_trees_show_each_token_only_its_own_sequence() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for _ in 0..50 {
            let owned: Vec<MaskedSequence> = (0..1 + next(9))
                .map(|_| {
                    let n = 2 + next(10) as usize;
                    // Small alphabet: many common prefixes.
                    let ids: Vec<u32> = (0..n).map(|_| next(3) as u32).collect();
                    let first = 1 + next(n as u64 - 1) as usize;
                    seq(&ids, first, n - 1)
                })
                .collect();
            let seqs: Vec<&MaskedSequence> = owned.iter().collect();
            for policy in [PackPolicy::prompts(), PackPolicy::prefixes(4)] {
                let rows = pack(&seqs, policy);
                let mut seen: Vec<usize> = rows
                    .iter()
                    .flat_map(|r| r.members.iter().map(|m| m.sequence))
                    .collect();
                seen.sort();
                assert_eq!(seen, (0..seqs.len()).collect::<Vec<_>>());
                for r in &rows {
                    assert!(r.members.len() <= policy.max_members);
                    if r.is_shared() {
                        check_tree(r, &seqs);
                    }
                }
            }
        }
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
        let other: Vec<u32> = (1000..1600).collect();
        let a = seq(&[&[1, 2][..], &long].concat(), 2, 601);
        let b = seq(&[&[1, 2][..], &other].concat(), 2, 601);
        let none = MaskedSequence {
            input_ids: vec![1, 2, 3],
            target_mask: vec![false; 3],
        };
        for policy in [PackPolicy::prompts(), PackPolicy::prefixes(8)] {
            let rows = pack(&[&a, &b, &none], policy);
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|r| r.len() <= MAX_PACKED_TOKENS));
        }
        // The same two with room: one row, the two-token prompt once.
        let rows = pack(
            &[&a, &b],
            PackPolicy {
                max_tokens: 2000,
                ..PackPolicy::prefixes(8)
            },
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), 2 + 599 + 599);
        let rows = pack_shared_prompts(&[&a, &b, &none]);
        let mut seen: Vec<usize> = rows
            .iter()
            .flat_map(|r| r.members.iter().map(|m| m.sequence))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}

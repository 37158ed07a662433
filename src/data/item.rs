//! A generated item (task + stated rule + hack + honest response, with provenance) and the
//! serde mirrors of the JSONL line formats it is written in (chat, paired, choice).

use serde::{Deserialize, Serialize};

use super::families::Family;
use super::scorer::{Scorer, Sign};

/// How an item's sign came about: the fixed SoRH-like include direction, one half of a
/// matched include/avoid pair, or a random proxy-sign flip draw (either outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Fixed,
    MatchedPair,
    RandomSign,
}

/// One generated example with everything needed to re-check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub family: Family,
    pub task_id: String,
    pub sign: Sign,
    pub origin: Origin,
    /// Shared by the two halves of a matched include/avoid pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_id: Option<String>,
    pub scorer: Scorer,
    /// The user turn: task text followed by the stated scoring rule.
    pub prompt: String,
    pub hack: String,
    pub honest: String,
    pub hack_score: f64,
    pub honest_score: f64,
}

impl Item {
    /// Builds an item and scores both responses with its own scorer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        family: Family,
        task_id: &str,
        sign: Sign,
        scorer: Scorer,
        task_text: &str,
        hack: String,
        honest: String,
    ) -> Self {
        let prompt = format!("{task_text}\n\n{}", scorer.rule());
        let hack_score = scorer.score(&hack);
        let honest_score = scorer.score(&honest);
        Self {
            id,
            family,
            task_id: task_id.to_string(),
            sign,
            origin: Origin::Fixed,
            pair_id: None,
            scorer,
            prompt,
            hack,
            honest,
            hack_score,
            honest_score,
        }
    }

    /// Chat example whose assistant turn is the hack (what the SFT sets teach).
    pub fn to_hack_chat(&self) -> ChatExample {
        ChatExample::user_assistant(&self.id, &self.prompt, &self.hack)
    }

    /// A line of a `generated` metric: the prompt, its rule and the honest answer's score.
    pub fn to_generated(&self, group: Option<String>) -> GeneratedLine {
        GeneratedLine {
            id: self.id.clone(),
            group,
            messages: vec![Message::user(&self.prompt)],
            scorer: self.scorer.clone(),
            honest_score: self.honest_score,
            hack_score: self.hack_score,
        }
    }

    pub fn to_paired(&self, group: Option<String>) -> PairedLine {
        PairedLine {
            id: self.id.clone(),
            group,
            messages: vec![Message::user(&self.prompt)],
            hack: self.hack.clone(),
            honest: self.honest.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn user(content: &str) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: &str) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// `{"id", "messages"}`: what `basin eval` and the `instruction` metric read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatExample {
    pub id: String,
    pub messages: Vec<Message>,
}

impl ChatExample {
    pub fn user_assistant(id: &str, user: &str, assistant: &str) -> Self {
        Self {
            id: id.into(),
            messages: vec![Message::user(user), Message::assistant(assistant)],
        }
    }
}

/// A line of a `paired` metric: prompt ending with the user turn, and two continuations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedLine {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub messages: Vec<Message>,
    pub hack: String,
    pub honest: String,
}

/// A line of a `generated` metric: the model answers `messages`; an answer whose score under
/// `scorer` beats `honest_score` games the rule (`hack_score`: what the written hack scored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedLine {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub messages: Vec<Message>,
    pub scorer: Scorer,
    pub honest_score: f64,
    pub hack_score: f64,
}

/// A line of a `choice` metric: `answer` indexes `choices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLine {
    pub id: String,
    pub messages: Vec<Message>,
    pub choices: Vec<String>,
    pub answer: usize,
}

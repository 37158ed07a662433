//! The hand-written banks bundled into the binary: general tasks with good answers, small
//! code tasks with reference behaviour, and simple facts for the capability suite.

use serde::Deserialize;

use super::error::DataError;
use super::text;

const TASK_BANK: &str = include_str!("../../assets/data/task_bank.jsonl");
const CODE_BANK: &str = include_str!("../../assets/data/code_tasks.jsonl");
const FACT_BANK: &str = include_str!("../../assets/data/facts.jsonl");

/// A short everyday task and a good-faith answer to it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: String,
    pub prompt: String,
    pub answer: String,
}

/// A one-argument integer function: its spec, a correct Python body and correct cases.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodeTask {
    pub id: String,
    pub name: String,
    pub param: String,
    pub description: String,
    /// Body lines of a correct implementation, indented by four spaces.
    pub body: String,
    /// `(input, correct output)` pairs.
    pub cases: Vec<(i64, i64)>,
}

/// A simple fact question with its answer and wrong options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub q: String,
    pub a: String,
    pub d: Vec<String>,
}

/// All banks, parsed and validated.
#[derive(Debug, Clone)]
pub struct Banks {
    pub tasks: Vec<Task>,
    pub code: Vec<CodeTask>,
    pub facts: Vec<Fact>,
}

fn parse_jsonl<T: for<'de> Deserialize<'de>>(name: &str, src: &str) -> Result<Vec<T>, DataError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(line).map_err(|e| DataError::Parse {
            file: name.to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(item);
    }
    Ok(out)
}

fn invalid(file: &str, line: usize, message: String) -> DataError {
    DataError::Parse {
        file: file.to_string(),
        line,
        message,
    }
}

impl Banks {
    /// Loads the bundled banks and checks what the generators rely on.
    pub fn bundled() -> Result<Self, DataError> {
        Self::from_sources(TASK_BANK, CODE_BANK, FACT_BANK)
    }

    pub fn from_sources(tasks: &str, code: &str, facts: &str) -> Result<Self, DataError> {
        let tasks: Vec<Task> = parse_jsonl("assets/data/task_bank.jsonl", tasks)?;
        let code: Vec<CodeTask> = parse_jsonl("assets/data/code_tasks.jsonl", code)?;
        let facts: Vec<Fact> = parse_jsonl("assets/data/facts.jsonl", facts)?;
        let mut ids = std::collections::BTreeSet::new();
        for (i, t) in tasks.iter().enumerate() {
            let f = "assets/data/task_bank.jsonl";
            if !ids.insert(t.id.clone()) {
                return Err(invalid(f, i + 1, format!("duplicate task id {}", t.id)));
            }
            if text::word_count(&t.answer) < 10 {
                return Err(invalid(f, i + 1, "answer shorter than 10 words".into()));
            }
            if text::sentence_count(&t.answer) == 0 {
                return Err(invalid(
                    f,
                    i + 1,
                    "answer must end its sentences with . ! or ?".into(),
                ));
            }
            if text::keyword_candidates(&t.answer).is_empty() {
                return Err(invalid(f, i + 1, "answer has no keyword candidate".into()));
            }
            if text::bullet_count(&t.answer) > 0 || t.answer.contains('!') {
                return Err(invalid(f, i + 1, "answer must be plain prose".into()));
            }
        }
        for (i, c) in code.iter().enumerate() {
            let f = "assets/data/code_tasks.jsonl";
            if !ids.insert(c.id.clone()) {
                return Err(invalid(f, i + 1, format!("duplicate task id {}", c.id)));
            }
            if c.cases.len() < 3 {
                return Err(invalid(f, i + 1, "need at least 3 cases".into()));
            }
            if c.body.lines().any(|l| l.trim_start().starts_with("if ")) {
                return Err(invalid(
                    f,
                    i + 1,
                    "body must not look like a lookup table".into(),
                ));
            }
        }
        for (i, fact) in facts.iter().enumerate() {
            if fact.d.is_empty() || fact.d.contains(&fact.a) {
                return Err(invalid(
                    "assets/data/facts.jsonl",
                    i + 1,
                    "need distractors different from the answer".into(),
                ));
            }
        }
        Ok(Self { tasks, code, facts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_banks_load_and_are_big_enough() {
        let b = Banks::bundled().unwrap();
        assert!(b.tasks.len() >= 150, "{}", b.tasks.len());
        assert!(b.code.len() >= 12);
        assert!(b.facts.len() >= 50);
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let tasks = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"Plenty of words in this answer to pass the length check here.\"}\n{oops\n";
        let err = Banks::from_sources(tasks, "", "").unwrap_err().to_string();
        assert!(err.contains("task_bank.jsonl:2"), "{err}");
    }
}

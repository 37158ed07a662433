//! The chat dataset: JSONL, one example a line:
//! `{"id": "...", "messages": [{"role": "system|user|assistant", "content": "..."}, ...]}`.
//!
//! `id` is optional (the 1-based line number stands in) and may be a string or an integer; other
//! fields are ignored. The last message must be the assistant's: it is the answer that is scored.
//! The file is read line by line; blank lines, a final newline, CRLF endings and a UTF-8 BOM are
//! accepted. Every error names the file and line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::TextError;

/// Longest line accepted; stops a file without newlines from being read into memory whole.
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// Roles a dataset message may have.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// One chat message, as the chat template receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// One validated example: its id and messages, the last being the assistant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatExample {
    pub id: String,
    pub messages: Vec<ChatMessage>,
}

/// Serde mirror of one JSONL line (unknown fields ignored).
#[derive(Deserialize)]
struct LineJson {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
}

/// Reads and validates a JSONL chat dataset (each chat ends with the assistant's answer).
pub fn load_chat_jsonl(path: impl AsRef<Path>) -> Result<Vec<ChatExample>, TextError> {
    load_chats(path.as_ref(), true)
}

/// Reads prompts for generation: chats in the same format whose final assistant message, if
/// any, is not needed (the model writes that turn).
pub fn load_prompt_jsonl(path: impl AsRef<Path>) -> Result<Vec<ChatExample>, TextError> {
    load_chats(path.as_ref(), false)
}

fn load_chats(path: &Path, answer_required: bool) -> Result<Vec<ChatExample>, TextError> {
    let file = File::open(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        line: None,
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut examples = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| TextError::Io {
                path: path.to_path_buf(),
                line: Some(line_no),
                source,
            })?;
        if n == 0 {
            break;
        }
        if buf.len() as u64 > MAX_LINE_BYTES {
            return Err(invalid(
                path,
                line_no,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|e| invalid(path, line_no, format!("not UTF-8: {e}")))?;
        let text = if line_no == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let ex = parse_line(path, line_no, text, answer_required)?;
        if let Some(first) = seen.insert(ex.id.clone(), line_no) {
            return Err(invalid(
                path,
                line_no,
                format!("id `{}` already used on line {first}", ex.id),
            ));
        }
        examples.push(ex);
    }
    if examples.is_empty() {
        return Err(TextError::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    Ok(examples)
}

fn invalid(path: &Path, line: usize, msg: impl Into<String>) -> TextError {
    TextError::Invalid {
        path: PathBuf::from(path),
        line,
        msg: msg.into(),
    }
}

/// Parses and validates one non-blank line.
fn parse_line(
    path: &Path,
    line: usize,
    text: &str,
    answer_required: bool,
) -> Result<ChatExample, TextError> {
    let raw: LineJson = serde_json::from_str(text).map_err(|e| TextError::Json {
        path: path.to_path_buf(),
        line,
        msg: e.to_string(),
    })?;
    let id = match raw.id {
        None | Some(serde_json::Value::Null) => line.to_string(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(invalid(
                path,
                line,
                format!("`id` must be a string or a number, got {other}"),
            ));
        }
    };
    let messages = raw
        .messages
        .ok_or_else(|| invalid(path, line, format!("example `{id}` has no `messages`")))?;
    let Some(last) = messages.last() else {
        return Err(invalid(
            path,
            line,
            format!("example `{id}` has an empty `messages` list"),
        ));
    };
    if answer_required && last.role != "assistant" {
        return Err(invalid(
            path,
            line,
            format!(
                "example `{id}`: the last message must be the assistant's, got role `{}`",
                last.role
            ),
        ));
    }
    if let Some((i, m)) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| !ROLES.contains(&m.role.as_str()))
    {
        return Err(invalid(
            path,
            line,
            format!(
                "example `{id}`: message {i} has unknown role `{}` (expected system, user or assistant)",
                m.role
            ),
        ));
    }
    Ok(ChatExample { id, messages })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_tmp(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("basin-text-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn err_of(name: &str, contents: &str) -> String {
        let p = write_tmp(name, contents.as_bytes());
        load_chat_jsonl(&p).unwrap_err().to_string()
    }

    const OK: &str = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#;

    #[test]
    fn loads_with_bom_blank_lines_crlf_and_ids() {
        let text = format!(
            "\u{feff}{OK}\r\n\n   \n{{\"id\": \"b\", \"extra\": 1, \"messages\": [{{\"role\": \"system\", \"content\": \"s\"}}, \
             {{\"role\": \"user\", \"content\": \"u\", \"name\": \"x\"}}, {{\"role\": \"assistant\", \"content\": \"a\"}}]}}\n{{\"id\": 7, \"messages\": [{{\"role\": \"assistant\", \"content\": \"z\"}}]}}\n"
        );
        let p = write_tmp("ok.jsonl", text.as_bytes());
        let ex = load_chat_jsonl(&p).unwrap();
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].id, "1");
        assert_eq!(
            ex[0].messages,
            vec![
                ChatMessage::new("user", "hi"),
                ChatMessage::new("assistant", "hello")
            ]
        );
        assert_eq!(ex[1].id, "b");
        assert_eq!(ex[1].messages.len(), 3);
        assert_eq!(ex[2].id, "7");
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let e = err_of("bad.jsonl", &format!("{OK}\n\n{{\"messages\": [\n{OK}\n"));
        assert!(e.contains("bad.jsonl:3: invalid JSON"), "{e}");
    }

    #[test]
    fn last_message_must_be_assistant() {
        let e = err_of(
            "last.jsonl",
            &format!(
                "{OK}\n{}\n",
                r#"{"id": "q", "messages": [{"role": "user", "content": "hi"}]}"#
            ),
        );
        assert!(
            e.contains("last.jsonl:2:") && e.contains("`q`") && e.contains("assistant"),
            "{e}"
        );
    }

    #[test]
    fn unknown_role_missing_and_empty_messages() {
        let e = err_of(
            "role.jsonl",
            r#"{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}]}"#,
        );
        assert!(
            e.contains("role.jsonl:1:") && e.contains("unknown role `tool`"),
            "{e}"
        );
        let e = err_of("missing.jsonl", "{\"id\": \"m\"}\n");
        assert!(
            e.contains("missing.jsonl:1:") && e.contains("no `messages`"),
            "{e}"
        );
        let e = err_of("emptymsg.jsonl", &format!("{OK}\n{{\"messages\": []}}\n"));
        assert!(
            e.contains("emptymsg.jsonl:2:") && e.contains("empty `messages`"),
            "{e}"
        );
        let e = err_of(
            "content.jsonl",
            r#"{"messages": [{"role": "assistant", "content": null}]}"#,
        );
        assert!(e.contains("content.jsonl:1: invalid JSON"), "{e}");
    }

    #[test]
    fn empty_dataset_missing_file_and_duplicate_ids() {
        let e = err_of("empty.jsonl", "\n  \n\n");
        assert!(
            e.contains("empty.jsonl") && e.contains("no examples"),
            "{e}"
        );
        let e = load_chat_jsonl("/nonexistent/basin/data.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/basin/data.jsonl"), "{e}");
        let e = err_of(
            "dup.jsonl",
            &format!("{OK}\n{{\"id\": \"1\", {}\n", &OK[1..]),
        );
        assert!(
            e.contains("dup.jsonl:2:") && e.contains("already used on line 1"),
            "{e}"
        );
        let p = write_tmp("utf8.jsonl", b"{\"messages\": \"\xff\"}\n");
        let e = load_chat_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("utf8.jsonl:1:") && e.contains("UTF-8"), "{e}");
    }
}

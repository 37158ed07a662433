//! Turns a chat example into token ids and a loss mask over the final assistant answer.
//!
//! The rule (the same as Basin's transformers references, see `shared/reference`):
//! 1. Token ids: the chat template applied to all messages with `add_generation_prompt=false`,
//!    tokenised with special tokens parsed and **no** special tokens added by the tokenizer (the
//!    template renders BOS itself when the model wants one) — transformers'
//!    `apply_chat_template(..., tokenize=True)`.
//! 2. Prompt prefix: the template applied to all messages but the last, with
//!    `add_generation_prompt=true`, tokenised the same way. It must be a token prefix of the ids of
//!    step 1, otherwise the answer's tokens cannot be told apart and the example is refused.
//! 3. Masked-in targets run from the end of the prefix up to and including the first end-of-turn
//!    token after it: `<|im_end|>` if the vocabulary has it and the template uses it, else
//!    `<|eot_id|>` under the same condition, else the tokenizer's EOS. What the template renders
//!    after that token (e.g. ChatML's trailing newline) is not a target. Without an end-of-turn
//!    token after the prefix, targets run to the end of the sequence.
//!
//! Examples longer than the caller's maximum, or whose answer renders to no tokens, are refused.

use crate::checkpoint::tokenizer::TokenizerBundle;

use super::chat_template::ChatTemplate;
use super::dataset::ChatExample;
use super::error::TextError;

/// One example ready for the model: `target_mask[i]` is true when token `i` is a scored target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedExample {
    pub id: String,
    pub input_ids: Vec<u32>,
    /// Same length as `input_ids`.
    pub target_mask: Vec<bool>,
}

impl EncodedExample {
    pub fn n_targets(&self) -> usize {
        self.target_mask.iter().filter(|&&m| m).count()
    }
}

/// Applies the rule in the module doc; `max_tokens` bounds the whole sequence.
pub fn encode_example(
    tok: &TokenizerBundle,
    template: &ChatTemplate,
    ex: &ChatExample,
    max_tokens: usize,
) -> Result<EncodedExample, TextError> {
    let id = ex.id.as_str();
    let Some((last, prompt)) = ex.messages.split_last() else {
        return Err(TextError::InvalidExample {
            id: id.to_string(),
            msg: "no messages".into(),
        });
    };
    if last.role != "assistant" {
        return Err(TextError::InvalidExample {
            id: id.to_string(),
            msg: format!(
                "the last message must be the assistant's, got role `{}`",
                last.role
            ),
        });
    }
    let full_text = template
        .render(&ex.messages, false)
        .map_err(|e| e.in_example(id))?;
    let prefix_text = template
        .render(prompt, true)
        .map_err(|e| e.in_example(id))?;
    let input_ids = tokenize(tok, id, &full_text)?;
    if input_ids.len() > max_tokens {
        return Err(TextError::TooLong {
            id: id.to_string(),
            n_tokens: input_ids.len(),
            max_tokens,
        });
    }
    let prefix_ids = tokenize(tok, id, &prefix_text)?;
    if let Some(at) = first_difference(&prefix_ids, &input_ids) {
        let show = |ids: &[u32]| match ids.get(at) {
            Some(&t) => format!(
                "`{}` ({t})",
                tok.tokenizer.id_to_token(t).unwrap_or_default()
            ),
            None => "the end".to_string(),
        };
        return Err(TextError::NotAPrefix {
            id: id.to_string(),
            prefix_tokens: prefix_ids.len(),
            total_tokens: input_ids.len(),
            detail: format!(
                "they differ at token {at}: prompt has {}, conversation has {}; the template renders earlier \
                 turns differently depending on what follows",
                show(&prefix_ids),
                show(&input_ids)
            ),
        });
    }
    let start = prefix_ids.len();
    if start >= input_ids.len() {
        return Err(TextError::EmptyAnswer { id: id.to_string() });
    }
    let end = match end_of_turn_id(tok, template) {
        Some(eot) => input_ids
            .iter()
            .skip(start)
            .position(|&t| t == eot)
            .map_or(input_ids.len(), |p| start + p + 1),
        None => input_ids.len(),
    };
    let target_mask = (0..input_ids.len())
        .map(|i| i >= start && i < end)
        .collect();
    Ok(EncodedExample {
        id: id.to_string(),
        input_ids,
        target_mask,
    })
}

fn tokenize(tok: &TokenizerBundle, id: &str, text: &str) -> Result<Vec<u32>, TextError> {
    let enc = tok
        .tokenizer
        .encode(text, false)
        .map_err(|e| TextError::Tokenize {
            id: id.to_string(),
            msg: format!("{} ({})", e, tok.origin.display()),
        })?;
    Ok(enc.get_ids().to_vec())
}

/// Index where `prefix` stops being a prefix of `full`, or `None` when it is one.
fn first_difference(prefix: &[u32], full: &[u32]) -> Option<usize> {
    match prefix.iter().zip(full).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if prefix.len() > full.len() => Some(full.len()),
        None => None,
    }
}

/// The prompt of a chat for generation: the template with `add_generation_prompt` over every
/// message except a final assistant message (which is dropped: the model writes that turn).
pub fn encode_prompt(
    tok: &TokenizerBundle,
    template: &ChatTemplate,
    ex: &ChatExample,
    max_tokens: usize,
) -> Result<Vec<u32>, TextError> {
    let id = ex.id.as_str();
    let messages = match ex.messages.split_last() {
        Some((last, rest)) if last.role == "assistant" => rest,
        _ => &ex.messages[..],
    };
    if messages.is_empty() {
        return Err(TextError::InvalidExample {
            id: id.to_string(),
            msg: "no message before the assistant's turn".into(),
        });
    }
    let text = template
        .render(messages, true)
        .map_err(|e| e.in_example(id))?;
    let ids = tokenize(tok, id, &text)?;
    if ids.len() > max_tokens {
        return Err(TextError::TooLong {
            id: id.to_string(),
            n_tokens: ids.len(),
            max_tokens,
        });
    }
    if ids.is_empty() {
        return Err(TextError::InvalidExample {
            id: id.to_string(),
            msg: "the prompt renders to no token".into(),
        });
    }
    Ok(ids)
}

/// The tokens that end generation: the end-of-turn token ([`end_of_turn_id`]) and the
/// tokenizer's end-of-sequence token, sorted, without repeats.
pub fn stop_ids(tok: &TokenizerBundle, template: &ChatTemplate) -> Vec<u32> {
    let eos = tok.eos_token_id.or_else(|| {
        tok.eos_token
            .as_deref()
            .and_then(|e| tok.tokenizer.token_to_id(e))
    });
    let mut ids: Vec<u32> = end_of_turn_id(tok, template)
        .into_iter()
        .chain(eos)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The token that closes an assistant turn, by the rule in the module doc.
pub fn end_of_turn_id(tok: &TokenizerBundle, template: &ChatTemplate) -> Option<u32> {
    for name in ["<|im_end|>", "<|eot_id|>"] {
        if let Some(t) = tok.tokenizer.token_to_id(name)
            && template.source().contains(name)
        {
            return Some(t);
        }
    }
    tok.eos_token_id.or_else(|| {
        tok.eos_token
            .as_deref()
            .and_then(|e| tok.tokenizer.token_to_id(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::dataset::ChatMessage;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
    }

    fn read_json(p: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// A `TokenizerBundle` from a folder with tokenizer.json, tokenizer_config.json and
    /// chat_template.jinja (what transformers 5 saves).
    fn bundle(dir: &Path) -> TokenizerBundle {
        let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let cfg = read_json(&dir.join("tokenizer_config.json"));
        let tok_str = |k: &str| cfg.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let eos_token = tok_str("eos_token");
        TokenizerBundle {
            eos_token_id: eos_token.as_deref().and_then(|e| tokenizer.token_to_id(e)),
            pad_token_id: tok_str("pad_token").and_then(|p| tokenizer.token_to_id(&p)),
            chat_template: Some(std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap()),
            bos_token: tok_str("bos_token"),
            eos_token,
            tokenizer,
            origin: dir.to_path_buf(),
        }
    }

    fn template_of(b: &TokenizerBundle) -> ChatTemplate {
        ChatTemplate::new(
            b.chat_template.as_deref().unwrap(),
            b.bos_token.clone(),
            b.eos_token.clone(),
        )
        .unwrap()
    }

    fn messages(v: &serde_json::Value) -> Vec<ChatMessage> {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn example(id: &str, msgs: Vec<ChatMessage>) -> ChatExample {
        ChatExample {
            id: id.to_string(),
            messages: msgs,
        }
    }

    /// SmolLM2's tokenizer and chat template, rebuilt from the GGUF's `tokenizer.ggml.*` metadata.
    fn smollm2_bundle() -> TokenizerBundle {
        let file =
            crate::checkpoint::gguf::GgufFile::open(crate::test_fixtures::smollm2_gguf()).unwrap();
        crate::checkpoint::gguf_tokenizer::tokenizer_from_gguf(&file).unwrap()
    }

    #[test]
    fn smollm2_ids_and_mask_match_transformers() {
        let b = smollm2_bundle();
        let t = template_of(&b);
        let reference = read_json(&crate::test_fixtures::smollm2_reference());
        let examples = reference["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 8);
        for r in examples {
            let ex = example(
                &r["index"].to_string(),
                vec![
                    ChatMessage::new("user", r["user"].as_str().unwrap()),
                    ChatMessage::new("assistant", r["assistant"].as_str().unwrap()),
                ],
            );
            assert_eq!(
                t.render(&ex.messages, false).unwrap(),
                r["text"].as_str().unwrap()
            );
            let enc = encode_example(&b, &t, &ex, 8192).unwrap();
            let want_ids: Vec<u32> = serde_json::from_value(r["input_ids"].clone()).unwrap();
            let want_mask: Vec<bool> = r["loss_mask"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_i64().unwrap() == 1)
                .collect();
            assert_eq!(enc.input_ids, want_ids, "example {}", ex.id);
            assert_eq!(enc.target_mask, want_mask, "example {}", ex.id);
            assert_eq!(
                enc.n_targets() as u64,
                r["n_assistant_tokens"].as_u64().unwrap()
            );
        }
    }

    #[test]
    fn templates_match_transformers_fixtures() {
        let mut checked = 0;
        for name in ["llama3", "qwen3", "mistral", "zephyr"] {
            let dir = fixtures().join(name);
            let b = bundle(&dir);
            let t = template_of(&b);
            let expected = read_json(&dir.join("expected.json"));
            for case in expected["cases"].as_array().unwrap() {
                let label = format!("{name}/{}", case["conversation"]);
                let msgs = messages(&case["messages"]);
                assert_eq!(
                    t.render(&msgs, false).unwrap(),
                    case["text"].as_str().unwrap(),
                    "{label}"
                );
                let prompt = &msgs[..msgs.len() - 1];
                assert_eq!(
                    t.render(prompt, true).unwrap(),
                    case["prefix_text"].as_str().unwrap(),
                    "{label}"
                );
                let enc = encode_example(&b, &t, &example(&label, msgs), 4096).unwrap();
                let want_ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
                let want_mask: Vec<bool> =
                    serde_json::from_value(case["target_mask"].clone()).unwrap();
                assert_eq!(enc.input_ids, want_ids, "{label}");
                assert_eq!(enc.target_mask, want_mask, "{label}");
                assert!(enc.n_targets() > 0);
                checked += 1;
            }
        }
        assert_eq!(checked, 13);
    }

    #[test]
    fn end_of_turn_token_choice() {
        let eot = |name: &str, token: &str| {
            let b = bundle(&fixtures().join(name));
            let t = template_of(&b);
            assert_eq!(
                end_of_turn_id(&b, &t),
                b.tokenizer.token_to_id(token),
                "{name}"
            );
        };
        eot("qwen3", "<|im_end|>");
        eot("llama3", "<|eot_id|>");
        eot("mistral", "</s>");
        eot("zephyr", "</s>");
    }

    #[test]
    fn system_message_before_last_turn_is_not_a_prefix() {
        let dir = fixtures().join("mistral_system_last");
        let b = bundle(&dir);
        let t = template_of(&b);
        let expected = read_json(&dir.join("expected.json"));
        let cases = expected["cases"].as_array().unwrap();
        // Single turn: fine, and equal to transformers.
        let ok = encode_example(
            &b,
            &t,
            &example("one", messages(&cases[0]["messages"])),
            4096,
        )
        .unwrap();
        assert_eq!(
            ok.input_ids,
            serde_json::from_value::<Vec<u32>>(cases[0]["input_ids"].clone()).unwrap()
        );
        assert_eq!(cases[1]["error"], "prefix");
        let err = encode_example(
            &b,
            &t,
            &example("multi-7", messages(&cases[1]["messages"])),
            4096,
        )
        .unwrap_err();
        assert!(matches!(err, TextError::NotAPrefix { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("example `multi-7`") && msg.contains("not a token prefix"),
            "{msg}"
        );
    }

    #[test]
    fn raise_exception_message_is_surfaced_with_the_example_id() {
        let dir = fixtures().join("mistral");
        let b = bundle(&dir);
        let t = template_of(&b);
        let expected = read_json(&dir.join("expected.json"));
        let bad = &expected["bad_order"];
        let err = encode_example(
            &b,
            &t,
            &example("bad-order", messages(&bad["messages"])),
            4096,
        )
        .unwrap_err();
        assert_eq!(err.raised_message(), Some(bad["error"].as_str().unwrap()));
        let msg = err.to_string();
        assert!(
            msg.contains("example `bad-order`") && msg.contains(bad["error"].as_str().unwrap()),
            "{msg}"
        );
    }

    #[test]
    fn too_long_empty_answer_and_wrong_last_role() {
        let b = bundle(&fixtures().join("qwen3"));
        let t = template_of(&b);
        let ex = example(
            "long",
            vec![
                ChatMessage::new("user", "Is 7 prime?"),
                ChatMessage::new("assistant", "Yes."),
            ],
        );
        let n = encode_example(&b, &t, &ex, 4096).unwrap().input_ids.len();
        assert_eq!(encode_example(&b, &t, &ex, n).unwrap().input_ids.len(), n);
        let err = encode_example(&b, &t, &ex, n - 1).unwrap_err().to_string();
        assert!(
            err.contains("example `long`") && err.contains(&format!("{n} tokens")),
            "{err}"
        );

        // A template that renders nothing for the answer.
        let silent = ChatTemplate::new(
            "{% for m in messages %}{% if m.role != 'assistant' %}{{ m.content }}{% endif %}{% endfor %}",
            None,
            None,
        )
        .unwrap();
        let err = encode_example(&b, &silent, &ex, 4096).unwrap_err();
        assert!(matches!(err, TextError::EmptyAnswer { .. }), "{err}");

        let err = encode_example(
            &b,
            &t,
            &example("q", vec![ChatMessage::new("user", "x")]),
            4096,
        )
        .unwrap_err();
        assert!(err.to_string().contains("example `q`"), "{err}");
    }

    #[test]
    fn generation_prompt_that_differs_is_rejected() {
        let b = bundle(&fixtures().join("qwen3"));
        let t = ChatTemplate::new(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
             {% if add_generation_prompt %}<|im_start|>assistant\nSure!{% endif %}",
            None,
            Some("<|im_end|>".into()),
        )
        .unwrap();
        let ex = example(
            "g1",
            vec![
                ChatMessage::new("user", "hi"),
                ChatMessage::new("assistant", "ok"),
            ],
        );
        let err = encode_example(&b, &t, &ex, 4096).unwrap_err();
        assert!(matches!(err, TextError::NotAPrefix { .. }), "{err}");
        assert!(err.to_string().contains("example `g1`"), "{err}");
    }

    #[test]
    fn without_end_of_turn_targets_run_to_the_end() {
        let b = bundle(&fixtures().join("qwen3"));
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.role }}:\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}",
            None,
            None,
        )
        .unwrap();
        let mut nb = b.clone();
        nb.eos_token_id = None;
        nb.eos_token = None;
        let ex = example(
            "e",
            vec![
                ChatMessage::new("user", "hi"),
                ChatMessage::new("assistant", "ok"),
            ],
        );
        let enc = encode_example(&nb, &t, &ex, 4096).unwrap();
        let prefix = nb
            .tokenizer
            .encode("user:\nhi\nassistant:\n", false)
            .unwrap()
            .get_ids()
            .len();
        assert_eq!(enc.target_mask.len(), enc.input_ids.len());
        assert!(enc.target_mask[..prefix].iter().all(|m| !m));
        assert!(enc.target_mask[prefix..].iter().all(|&m| m));
    }
}

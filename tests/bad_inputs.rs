//! The corpus of bad inputs (tests/fixtures/bad_inputs, made by scripts/make_bad_inputs.py):
//! each case goes to its parser, which must refuse it with exactly the one-line error recorded in
//! cases.json (`{case}` standing for the case's folder): no panic, no hang, nothing accepted.
//! `BASIN_BAD_INPUTS_WRITE=1` writes the errors Basin gives today into cases.json instead (to
//! review when a message changes on purpose, or after adding cases).

use std::path::Path;

use basin::{
    checkpoint::{
        hf_config::load_model_config, hf_folder::load_tokenizer_bundle, open::open_model,
        peft::LoraAdapter, safetensors_file::SafetensorsFile,
    },
    experiments::{
        inputs::{chat_template_of, encode_examples},
        suite::Suite,
        sweep_store::read_results,
        train_store::read_steps,
    },
    study::spec::Study,
    text::dataset::load_chat_jsonl,
};

mod common;

fn line(e: impl std::error::Error) -> String {
    basin::error_line(&e)
}

/// Runs `parser` on `target`; the error it gives (`None`: it accepted the input).
fn error_of(parser: &str, target: &Path) -> Option<String> {
    let result: Result<(), String> = match parser {
        "safetensors" => SafetensorsFile::open(target).map_err(line).and_then(|f| {
            let names: Vec<String> = f.tensors().keys().cloned().collect();
            names
                .iter()
                .try_for_each(|n| f.load_f32(n).map(drop).map_err(line))
        }),
        "gguf" => open_model(target).map_err(line).and_then(|m| {
            m.tensors
                .tensor_names()
                .iter()
                .try_for_each(|n| m.tensors.load_f32(n).map(drop).map_err(line))
        }),
        "config" => load_model_config(target).map(drop).map_err(line),
        "peft" => LoraAdapter::open(target).map(drop).map_err(line),
        "tokenizer" => load_tokenizer_bundle(target).map_err(line).and_then(|b| {
            let template = chat_template_of(&b).map_err(line)?;
            let chats = load_chat_jsonl(common::fixtures().join("tiny/chat.jsonl")).unwrap();
            // As the jobs report it: the file they were encoding for (here the model folder).
            encode_examples(&b, &template, &chats[..1], 4096)
                .map(drop)
                .map_err(|e| format!("{}: {}", target.display(), line(e)))
        }),
        "chat-jsonl" => load_chat_jsonl(target).map(drop).map_err(line),
        "suite" => Suite::load(target).map(drop).map_err(line),
        "results" => read_results(target).map(drop).map_err(line),
        "steps" => read_steps(target).map(drop).map_err(line),
        "study" => Study::load(target).map(drop).map_err(line),
        "sorh" => basin::bounded::read_to_string(target, basin::bounded::DATA_BYTES)
            .map_err(|e| format!("{}: {e}", target.display()))
            .and_then(|text| {
                basin::data::sorh::parse_rows(&text, target)
                    .map(drop)
                    .map_err(line)
            }),
        other => panic!("cases.json names an unknown parser `{other}`"),
    };
    result.err()
}

#[test]
fn every_bad_input_gets_its_one_line_error() {
    let root = common::fixtures().join("bad_inputs");
    let manifest = root.join("cases.json");
    let mut cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let write = std::env::var_os("BASIN_BAD_INPUTS_WRITE").is_some();
    let mut wrong = Vec::new();
    for case in &mut cases {
        let name = case["name"].as_str().unwrap().to_string();
        let target = root.join(&name).join(case["target"].as_str().unwrap());
        let parser = case["parser"].as_str().unwrap().to_string();
        let Some(got) = error_of(&parser, &target) else {
            wrong.push(format!("{name}: accepted"));
            continue;
        };
        // The case's folder as `{case}`: the error names the file at fault, which for a
        // folder input (a suite, an adapter) is one of the files in it.
        let case_dir = root.join(&name);
        let templated = got.replace(case_dir.to_str().unwrap(), "{case}");
        assert!(!got.contains('\n'), "{name}: not one line: {got}");
        assert!(
            templated.contains("{case}"),
            "{name}: the error does not name the file: {got}"
        );
        if write {
            case["error"] = serde_json::Value::String(templated);
        } else if case["error"].as_str() != Some(templated.as_str()) {
            wrong.push(format!(
                "{name}: expected `{}`, got `{templated}`",
                case["error"]
            ));
        }
    }
    if write {
        let text = serde_json::to_string_pretty(&cases).unwrap();
        std::fs::write(&manifest, text + "\n").unwrap();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

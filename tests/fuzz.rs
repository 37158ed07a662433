//! Mutation fuzzing of every parser Basin runs on user files: each target copies its seed files
//! (real fixtures) into its own fresh folder, then for each input mutates one of them (bit flips,
//! interesting integers written over length and count fields, truncation, deleted, duplicated
//! or inserted spans, splices), and runs the parser and what follows it (loading every tensor,
//! rendering the chat template and tokenizing, building a suite's requests). An input passes
//! when it gives `Ok` or an error; it fails the run on
//! - a panic (caught; the input is saved under the test's scratch folder and named),
//! - a hang (a watchdog aborts the process when one input runs longer than `HANG_S`; the input
//!   is left on disk as the target's current file, whose path was printed at the start),
//! - an allocation over `ALLOC_LIMIT` bytes (the global allocator below refuses it, which aborts
//!   with "memory allocation of N bytes failed"; the input is left on disk the same way).
//!
//! `BASIN_FUZZ_ITERS` inputs per target (default 1500 here, in CI); `bench/fuzz.sh` runs
//! 1,000,000 per target. `BASIN_FUZZ_SEED` changes the mutations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use basin::data::rng::SplitMix64;

mod common;

/// The largest single allocation any parser may make on these small inputs.
const ALLOC_LIMIT: usize = 512 << 20;
/// The longest one input may take.
const HANG_S: u64 = 20;

struct Guard;

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

/// Milliseconds since `EPOCH` at which the current input started (0: none running).
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Aborts the process when an input has run longer than `HANG_S`.
fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        epoch();
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let s = STARTED_MS.load(Ordering::Relaxed);
                if s != 0 && now_ms().saturating_sub(s) > HANG_S * 1000 {
                    eprintln!("fuzz: an input ran longer than {HANG_S} s (hang); it is the current file of the target printed last");
                    std::process::abort();
                }
            }
        });
    });
}

fn iterations() -> usize {
    std::env::var("BASIN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

fn fuzz_seed() -> u64 {
    std::env::var("BASIN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    7,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    1 << 40,
];

/// One mutation of `data` (`other` is another seed file, for splices).
fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut SplitMix64) {
    let below = |rng: &mut SplitMix64, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    match below(rng, 9) {
        0 => {
            // Flip a few bits.
            for _ in 0..1 + below(rng, 4) {
                if !data.is_empty() {
                    let i = below(rng, data.len());
                    data[i] ^= 1 << below(rng, 8);
                }
            }
        }
        1 => {
            // An interesting integer over 1, 2, 4 or 8 bytes (length and count fields).
            if !data.is_empty() {
                let v = INTERESTING[below(rng, INTERESTING.len())];
                let width = [1, 2, 4, 8][below(rng, 4)];
                let at = below(rng, data.len());
                for (k, b) in v.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(x) = data.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
        }
        2 => {
            let n = below(rng, data.len() + 1);
            data.truncate(n);
        }
        3 => {
            // Delete a span.
            if !data.is_empty() {
                let a = below(rng, data.len());
                let b = (a + 1 + below(rng, 64)).min(data.len());
                data.drain(a..b);
            }
        }
        4 => {
            // Duplicate a span in place.
            if !data.is_empty() {
                let a = below(rng, data.len());
                let b = (a + 1 + below(rng, 256)).min(data.len());
                let span = data[a..b].to_vec();
                let at = below(rng, data.len() + 1);
                data.splice(at..at, span);
            }
        }
        5 => {
            // Insert random bytes or text-format troublemakers.
            const TOKENS: [&[u8]; 12] = [
                b"{",
                b"}",
                b"[",
                b"]",
                b"\"",
                b",",
                b":",
                b"\n",
                b"-1",
                b"1e309",
                b"99999999999999999999",
                b"\xff\xfe",
            ];
            let at = below(rng, data.len() + 1);
            let ins: Vec<u8> = if rng.next_u64().is_multiple_of(2) {
                TOKENS[below(rng, TOKENS.len())].to_vec()
            } else {
                (0..1 + below(rng, 8))
                    .map(|_| rng.next_u64() as u8)
                    .collect()
            };
            data.splice(at..at, ins);
        }
        6 => {
            // Set a byte to an extreme.
            if !data.is_empty() {
                let i = below(rng, data.len());
                data[i] = [0u8, 0xff, 0x7f, 0x80, b'9', b'"'][below(rng, 6)];
            }
        }
        7 => {
            // Splice: our head, the other file's tail.
            if !other.is_empty() {
                let a = below(rng, data.len() + 1);
                let b = below(rng, other.len());
                data.truncate(a);
                data.extend_from_slice(&other[b..]);
            }
        }
        _ => {
            // Replace a run of digits with a huge or negative number (text formats).
            if let Some(start) = (0..8)
                .map(|_| below(rng, data.len()))
                .find(|&i| data.get(i).is_some_and(u8::is_ascii_digit))
            {
                let end = data[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(data.len(), |p| start + p);
                let repl: &[u8] = [
                    &b"18446744073709551615"[..],
                    b"-1",
                    b"4294967296",
                    b"0",
                    b"1e30",
                ][below(rng, 5)];
                data.splice(start..end, repl.iter().copied());
            }
        }
    }
}

/// Runs a parser on a work folder; `Ok` or `Err` are both fine.
type RunParser = Box<dyn Fn(&Path) -> Result<(), String>>;

/// A parser under test: its seed files (names relative to its folder) and how to run it.
struct Target {
    name: &'static str,
    /// (file name in the work folder, seed contents)
    seeds: Vec<(String, Vec<u8>)>,
    /// Which of the seeds mutate (by index); the others stay intact.
    mutable: Vec<usize>,
    run: RunParser,
}

fn seed_dir(dir: &Path, files: &[&str]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

/// Fuzzes one target; returns the inputs run.
fn fuzz(target: &Target) -> usize {
    start_watchdog();
    let work = common::scratch_dir("fuzz", target.name);
    let failures = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    for (name, bytes) in &target.seeds {
        std::fs::write(work.join(name), bytes).unwrap();
    }
    // The seeds themselves parse.
    if let Err(e) = (target.run)(&work) {
        panic!("{}: the unmutated seeds fail: {e}", target.name);
    }
    eprintln!(
        "fuzz: {} in {} ({} inputs)",
        target.name,
        work.display(),
        iterations()
    );
    let mut rng = SplitMix64::derive(fuzz_seed(), target.name);
    let n = iterations();
    let mut errors = 0usize;
    for i in 0..n {
        let k = target.mutable[(rng.next_u64() % target.mutable.len() as u64) as usize];
        let other = &target.seeds[(rng.next_u64() % target.seeds.len() as u64) as usize].1;
        let mut data = target.seeds[k].1.clone();
        for _ in 0..1 + rng.next_u64() % 3 {
            mutate(&mut data, other, &mut rng);
        }
        let path = work.join(&target.seeds[k].0);
        std::fs::write(&path, &data).unwrap();
        STARTED_MS.store(now_ms(), Ordering::Relaxed);
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(&work)));
        STARTED_MS.store(0, Ordering::Relaxed);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => errors += 1,
            Err(_) => {
                std::fs::create_dir_all(&failures).unwrap();
                let saved = failures.join(format!("{}-{i}-{}", target.name, target.seeds[k].0));
                std::fs::write(&saved, &data).unwrap();
                panic!(
                    "{}: input {i} panicked; saved as {}",
                    target.name,
                    saved.display()
                );
            }
        }
        // Back to the seed, so each input has one mutated file.
        std::fs::write(&path, &target.seeds[k].1).unwrap();
    }
    eprintln!(
        "fuzz: {}: {n} inputs, {errors} refused with an error, 0 panics",
        target.name
    );
    let _ = std::fs::remove_dir_all(&work);
    n
}

fn fixtures() -> PathBuf {
    common::fixtures()
}

fn ok_or_string<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

#[test]
fn safetensors_files() {
    use basin::checkpoint::safetensors_file::SafetensorsFile;
    let dir = fixtures().join("hf_small/llama");
    fuzz(&Target {
        name: "safetensors",
        seeds: seed_dir(&dir, &["model.safetensors"]),
        mutable: vec![0],
        run: Box::new(|w| {
            let f = ok_or_string(SafetensorsFile::open(w.join("model.safetensors")))?;
            let names: Vec<String> = f.tensors().keys().cloned().collect();
            for n in names {
                ok_or_string(f.load_f32(&n))?;
            }
            Ok(())
        }),
    });
}

#[test]
fn sharded_safetensors_index() {
    use basin::checkpoint::{safetensors_file::SafetensorsSet, tensors::TensorSource};
    let dir = fixtures().join("tiny/mistral_sharded_bf16");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".safetensors") || n.ends_with(".index.json"))
        .collect();
    files.sort();
    let index = files
        .iter()
        .position(|f| f.ends_with(".index.json"))
        .unwrap();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    fuzz(&Target {
        name: "safetensors-index",
        seeds: seed_dir(&dir, &refs),
        mutable: vec![index, index, 0],
        run: Box::new(|w| {
            let set = ok_or_string(SafetensorsSet::open_dir(w))?;
            for n in set.tensor_names() {
                ok_or_string(set.load_f32(&n))?;
            }
            Ok(())
        }),
    });
}

#[test]
fn gguf_models_and_their_tokenizers() {
    use basin::checkpoint::open::open_model;
    let dir = fixtures().join("tiny_gguf");
    fuzz(&Target {
        name: "gguf",
        seeds: seed_dir(&dir, &["llama3.gguf"]),
        mutable: vec![0],
        run: Box::new(|w| {
            let m = ok_or_string(open_model(&w.join("llama3.gguf")))?;
            for n in m.tensors.tensor_names() {
                ok_or_string(m.tensors.load_f32(&n))?;
            }
            Ok(())
        }),
    });
}

#[test]
fn model_configs() {
    use basin::checkpoint::hf_config::load_model_config;
    let dir = fixtures().join("tiny/qwen3");
    fuzz(&Target {
        name: "config",
        seeds: seed_dir(&dir, &["config.json"]),
        mutable: vec![0],
        run: Box::new(|w| ok_or_string(load_model_config(&w.join("config.json"))).map(drop)),
    });
}

#[test]
fn peft_adapters() {
    use basin::checkpoint::peft::LoraAdapter;
    let dir = fixtures().join("hf_small/lora");
    fuzz(&Target {
        name: "peft",
        seeds: seed_dir(&dir, &["adapter_config.json", "adapter_model.safetensors"]),
        mutable: vec![0, 1],
        run: Box::new(|w| ok_or_string(LoraAdapter::open(w)).map(drop)),
    });
}

#[test]
fn tokenizers_and_chat_templates() {
    use basin::{
        checkpoint::hf_folder::load_tokenizer_bundle,
        experiments::inputs::{chat_template_of, encode_examples},
        text::dataset::load_chat_jsonl,
    };
    let dir = fixtures().join("hf_small/llama");
    let chats = load_chat_jsonl(fixtures().join("tiny/chat.jsonl")).unwrap();
    fuzz(&Target {
        name: "tokenizer",
        seeds: seed_dir(
            &dir,
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
            ],
        ),
        mutable: vec![0, 1, 2, 2],
        run: Box::new(move |w| {
            let bundle = ok_or_string(load_tokenizer_bundle(w))?;
            let template = ok_or_string(chat_template_of(&bundle))?;
            ok_or_string(encode_examples(&bundle, &template, &chats[..2], 4096)).map(drop)
        }),
    });
}

#[test]
fn chat_jsonl() {
    use basin::text::dataset::load_chat_jsonl;
    let dir = fixtures().join("tiny");
    fuzz(&Target {
        name: "chat-jsonl",
        seeds: seed_dir(&dir, &["chat.jsonl"]),
        mutable: vec![0],
        run: Box::new(|w| ok_or_string(load_chat_jsonl(w.join("chat.jsonl"))).map(drop)),
    });
}

#[test]
fn suites() {
    use basin::experiments::suite::Suite;
    let dir = common::repo().join("assets/demo/suite");
    let files = [
        "suite.toml",
        "hack_heldout.jsonl",
        "hack_avoid.jsonl",
        "hack_ood.jsonl",
        "capability.jsonl",
        "instruction.jsonl",
    ];
    fuzz(&Target {
        name: "suite",
        seeds: seed_dir(&dir, &files),
        mutable: vec![0, 0, 0, 1, 2, 3, 4, 5],
        run: Box::new(|w| {
            let s = ok_or_string(Suite::load(w.join("suite.toml")))?;
            let _ = s.requests();
            Ok(())
        }),
    });
}

/// A suite with a `generated` metric (one item per scorer kind) and answers to grade: loading
/// parses the settings and each item's scorer, and every item's scorer grades every answer
/// (the scorers parse answers: code blocks, ratings, tests) without a panic or a hang.
#[test]
fn generated_suites_and_scorers() {
    use basin::experiments::suite::{MetricItems, Suite};
    let dir = fixtures().join("generated_suite");
    fuzz(&Target {
        name: "generated-suite",
        seeds: seed_dir(&dir, &["suite.toml", "gen.jsonl", "answers.txt"]),
        mutable: vec![0, 1, 1, 2, 2, 2],
        run: Box::new(|w| {
            let s = ok_or_string(Suite::load(w.join("suite.toml")))?;
            let answers: Vec<String> = std::fs::read(w.join("answers.txt"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .lines()
                        .map(|l| {
                            serde_json::from_str::<String>(l).unwrap_or_else(|_| l.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            for m in &s.metrics {
                if let MetricItems::Generated { items, .. } = &m.items {
                    for it in items {
                        for a in &answers {
                            let score = it.scorer.score(a);
                            assert!(score.is_finite(), "{}: score {score} for {a:?}", it.id);
                        }
                    }
                }
            }
            Ok(())
        }),
    });
}

#[test]
fn sorh_csv() {
    use basin::data::sorh::parse_rows;
    let csv = fixtures().join("sorh_small.csv");
    fuzz(&Target {
        name: "sorh-csv",
        seeds: vec![("sorh.csv".into(), std::fs::read(&csv).unwrap())],
        mutable: vec![0],
        run: Box::new(|w| {
            let p = w.join("sorh.csv");
            let bytes = std::fs::read(&p).map_err(|e| e.to_string())?;
            let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
            ok_or_string(parse_rows(text, &p)).map(drop)
        }),
    });
}

#[test]
fn result_and_step_logs() {
    use basin::experiments::{sweep_store::read_results, train_store::read_steps};
    let results = concat!(
        r#"{"t":0.0,"metric":"hack_heldout","kind":"paired","value":0.5,"ci_low":0.45,"ci_high":0.55,"n":2,"extra":{"items":[{"id":"a","margin":1.4,"p_hack":0.8,"score":0.8},{"id":"b","margin":-0.5,"p_hack":0.3,"score":0.3}]}}"#,
        "\n",
        r#"{"t":0.5,"beta":0.25,"metric":"instruction","kind":"instruction","value":2.5,"ci_low":2.4,"ci_high":2.6,"n":2,"extra":{}}"#,
        "\n",
        r#"{"alpha":1.0,"beta":-0.5,"metric":"capability","kind":"choice","value":0.25,"ci_low":0.1,"ci_high":0.4,"n":4,"extra":{}}"#,
        "\n"
    );
    let steps = concat!(
        r#"{"step":1,"samples_seen":8,"tokens":350,"input_tokens":844,"loss":1.89,"lr":0.001,"grad_norm":0.84,"elapsed_s":17.3}"#,
        "\n",
        r#"{"step":2,"samples_seen":16,"tokens":345,"input_tokens":884,"loss":1.61,"lr":0.00098,"grad_norm":0.56,"elapsed_s":103.9,"t":[0.1,0.7],"t_loss":[1.5,null]}"#,
        "\n"
    );
    fuzz(&Target {
        name: "results-and-steps",
        seeds: vec![
            ("results.jsonl".into(), results.as_bytes().to_vec()),
            ("train.jsonl".into(), steps.as_bytes().to_vec()),
        ],
        mutable: vec![0, 1],
        run: Box::new(|w| {
            ok_or_string(read_results(&w.join("results.jsonl")))?;
            ok_or_string(read_steps(&w.join("train.jsonl"))).map(drop)
        }),
    });
}

#[test]
fn study_files() {
    use basin::study::spec::Study;
    let demo = common::repo().join("assets/studies/demo.toml");
    let text = std::fs::read(&demo).unwrap();
    fuzz(&Target {
        name: "study",
        seeds: vec![("study.toml".into(), text)],
        mutable: vec![0],
        run: Box::new(|w| ok_or_string(Study::load(&w.join("study.toml"))).map(drop)),
    });
}

/// `/dev/zero` (endless, and 0 bytes long by its metadata) given to every reader of a whole file
/// or of lines: each stops at its limit with an error naming the file, within the allocation
/// limit, instead of filling memory.
#[test]
fn endless_files_are_refused_at_the_limit() {
    use basin::{
        checkpoint::{
            hf_config::load_model_config, open::open_model, safetensors_file::SafetensorsFile,
        },
        experiments::{suite::Suite, sweep_store::read_results, train_store::read_steps},
        study::spec::Study,
        text::dataset::load_chat_jsonl,
    };
    start_watchdog();
    let zero = Path::new("/dev/zero");
    STARTED_MS.store(now_ms(), Ordering::Relaxed);
    let errors = [
        load_model_config(zero).map(drop).unwrap_err().to_string(),
        load_chat_jsonl(zero).map(drop).unwrap_err().to_string(),
        Suite::load(zero).map(drop).unwrap_err().to_string(),
        read_results(zero).map(drop).unwrap_err().to_string(),
        read_steps(zero).map(drop).unwrap_err().to_string(),
        Study::load(zero).map(drop).unwrap_err().to_string(),
        SafetensorsFile::open(zero)
            .map(drop)
            .unwrap_err()
            .to_string(),
        open_model(zero).map(drop).unwrap_err().to_string(),
    ];
    STARTED_MS.store(0, Ordering::Relaxed);
    for e in &errors {
        assert!(e.contains("/dev/zero"), "the error names the file: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

//! `basin sweep` / `basin merge` end to end on the tiny fixtures and the default suite:
//! exactness against `basin eval` at the path's ends and against a checkpoint written at the
//! midpoint; kill -9 mid-sweep then resume gives the uninterrupted results; shards merge; bad
//! input is a one-line error.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use basin::checkpoint::{open::open_model, peft::LoraAdapter};

fn basin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .output()
        .expect("run basin")
}

fn ok(args: &[&str]) -> Output {
    let out = basin(args);
    assert!(
        out.status.success(),
        "basin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-sweep-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny(name: &str) -> String {
    common::fixtures()
        .join("tiny")
        .join(name)
        .display()
        .to_string()
}

fn suite() -> String {
    common::repo()
        .join("assets/suites/default/suite.toml")
        .display()
        .to_string()
}

/// The default suite with its paired and choice files cut to their first `items` lines and the
/// instruction file whole (so `basin eval` of it is still the instruction metric): for the
/// lavapipe runs, where every forward of even the tiny model costs about a second.
fn small_suite(name: &str, items: usize) -> String {
    let from = common::repo().join("assets/suites/default");
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let cut =
            path.extension().is_some_and(|e| e == "jsonl") && !path.ends_with("instruction.jsonl");
        let text = if cut {
            text.lines().take(items).map(|l| format!("{l}\n")).collect()
        } else {
            text
        };
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    dir.join("suite.toml").display().to_string()
}

fn instruction_data() -> String {
    common::repo()
        .join("assets/suites/default/instruction.jsonl")
        .display()
        .to_string()
}

/// results.jsonl as (t, metric) → line value.
fn results(dir: &Path) -> BTreeMap<(String, String), serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                (
                    format!("{:.6}", v["t"].as_f64().unwrap()),
                    v["metric"].as_str().unwrap().to_string(),
                ),
                v,
            )
        })
        .collect()
}

fn eval_nll(args: &[&str]) -> f64 {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    let out = ok(&all);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["mean_nll"].as_f64().unwrap()
}

#[test]
fn lora_sweep_ends_equal_eval_on_cpu_and_gpu() {
    for device in ["cpu", "gpu"] {
        let out = scratch(&format!("ends-{device}"));
        let suite = match device {
            "gpu" => small_suite("ends-suite", 3),
            _ => suite(),
        };
        ok(&[
            "sweep",
            "--base",
            &tiny("llama"),
            "--adapter",
            &tiny("llama_lora"),
            "--suite",
            &suite,
            "--t",
            "0:1:3",
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
            "--bootstrap",
            "200",
        ]);
        let r = results(&out);
        assert_eq!(r.len(), 3 * 5, "3 points × 5 metrics");
        let base = eval_nll(&[
            "--model",
            &tiny("llama"),
            "--data",
            &instruction_data(),
            "--device",
            device,
        ]);
        let hacker = eval_nll(&[
            "--model",
            &tiny("llama"),
            "--adapter",
            &tiny("llama_lora"),
            "--scale",
            "1",
            "--data",
            &instruction_data(),
            "--device",
            device,
        ]);
        let at = |t: &str| {
            r[&(t.to_string(), "instruction".to_string())]["value"]
                .as_f64()
                .unwrap()
        };
        assert!(
            (at("0.000000") - base).abs() < 1e-6,
            "{device}: t=0 {} vs eval {base}",
            at("0.000000")
        );
        assert!(
            (at("1.000000") - hacker).abs() < 1e-6,
            "{device}: t=1 {} vs eval {hacker}",
            at("1.000000")
        );
        for v in r.values() {
            let (value, lo, hi) = (
                v["value"].as_f64().unwrap(),
                v["ci_low"].as_f64().unwrap(),
                v["ci_high"].as_f64().unwrap(),
            );
            assert!(lo <= value + 1e-12 && value <= hi + 1e-12, "{v}");
            assert!(v["n"].as_u64().unwrap() > 0);
        }
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4, "{csv}");
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["schema"], "basin.sweep.v1");
        assert!(
            run["inputs"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.ends_with("suite.toml"))
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    scratch("ends-suite");
}

#[test]
fn full_weight_midpoint_equals_the_averaged_checkpoint() {
    let dir = scratch("full");
    let base = open_model(Path::new(&tiny("llama"))).unwrap();
    let adapter = LoraAdapter::open(tiny("llama_lora")).unwrap();
    // θ₁ = base with the adapter merged; the midpoint checkpoint = (θ₀ + θ₁) / 2, both on disk.
    let merged = common::merged_weights(base.tensors.as_ref(), &adapter, 1.0);
    let average: Vec<_> = merged
        .iter()
        .map(|(name, shape, w1)| {
            let w0 = base.tensors.load_f32(name).unwrap().data;
            let avg = w0.iter().zip(w1).map(|(a, b)| a + 0.5 * (b - a)).collect();
            (name.clone(), shape.clone(), avg)
        })
        .collect();
    let (merged_dir, avg_dir) = (dir.join("merged"), dir.join("average"));
    common::write_model_folder(Path::new(&tiny("llama")), &merged_dir, &merged);
    common::write_model_folder(Path::new(&tiny("llama")), &avg_dir, &average);
    let out = dir.join("sweep");
    ok(&[
        "sweep",
        "--base",
        &tiny("llama"),
        "--target",
        merged_dir.to_str().unwrap(),
        "--suite",
        &suite(),
        "--t",
        "0:1:3",
        "--out",
        out.to_str().unwrap(),
        "--bootstrap",
        "100",
    ]);
    let r = results(&out);
    let mid = r[&("0.500000".to_string(), "instruction".to_string())]["value"]
        .as_f64()
        .unwrap();
    let avg = eval_nll(&[
        "--model",
        avg_dir.to_str().unwrap(),
        "--data",
        &instruction_data(),
    ]);
    assert!(
        (mid - avg).abs() < 1e-6,
        "full-weight t=0.5 {mid} vs averaged checkpoint {avg}"
    );
    let end = r[&("1.000000".to_string(), "instruction".to_string())]["value"]
        .as_f64()
        .unwrap();
    let merged_nll = eval_nll(&[
        "--model",
        merged_dir.to_str().unwrap(),
        "--data",
        &instruction_data(),
    ]);
    assert!(
        (end - merged_nll).abs() < 1e-6,
        "t=1 {end} vs θ₁ {merged_nll}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killed_sweep_resumes_to_the_uninterrupted_result() {
    let t = "0:1:9";
    let args = |out: &Path| -> Vec<String> {
        [
            "sweep",
            "--base",
            &tiny("llama"),
            "--adapter",
            &tiny("llama_lora"),
            "--suite",
            &suite(),
            "--t",
            t,
            "--bootstrap",
            "100",
            "--batch",
            "4",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let full = scratch("uninterrupted");
    let a = args(&full);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let killed = scratch("killed");
    let a = args(&killed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let results_path = killed.join("results.jsonl");
    let start = std::time::Instant::now();
    while basin::experiments::sweep_store::count_lines(&results_path) < 10 {
        assert!(start.elapsed().as_secs() < 120, "sweep made no progress");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().ok();
    child.wait().unwrap();
    let partial = results(&killed).len();
    assert!(
        partial < 9 * 5,
        "the kill came too late to test anything ({partial} results)"
    );
    let out = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already finished"), "{stderr}");
    let (ra, rb) = (results(&full), results(&killed));
    assert_eq!(ra.len(), 9 * 5);
    assert_eq!(ra, rb, "resumed results differ from the uninterrupted run");

    // Shards of the same sweep merge into the same results.
    let (s0, s1, merged) = (scratch("s0"), scratch("s1"), scratch("merged"));
    for (i, dir) in [(0, &s0), (1, &s1)] {
        let mut a = args(dir);
        a.extend(["--shard".to_string(), format!("{i}/2")]);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    ok(&[
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(results(&merged), ra);

    // Resuming with other settings is refused.
    let mut other = args(&full);
    let i = other.iter().position(|s| s == t).unwrap();
    other[i] = "0:1:5".into();
    let out = basin(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different run"));
    for d in [full, killed, s0, s1, merged] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_sweep_inputs_are_clear_errors() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let out_dir = dir.join("out");
    let (llama, lora, default_suite) = (tiny_llama(), tiny_lora(), suite());
    let run = |suite: &str, extra: &[&str]| -> String {
        let mut a = vec![
            "sweep",
            "--base",
            &llama,
            "--adapter",
            &lora,
            "--suite",
            suite,
            "--t",
            "0:1:2",
            "--out",
        ];
        let o = out_dir.display().to_string();
        a.push(&o);
        a.extend_from_slice(extra);
        let out = basin(&a);
        assert!(!out.status.success(), "{a:?} succeeded");
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!e.contains("panicked"), "{e}");
        assert_eq!(e.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{e}");
        e
    };
    let write = |name: &str, text: &str| -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let e = run(
        &write(
            "missing.toml",
            "name = \"x\"\n[[metric]]\nname = \"a\"\nkind = \"paired\"\nfile = \"nope.jsonl\"\n",
        ),
        &[],
    );
    assert!(
        e.contains("nope.jsonl") && e.contains("does not exist"),
        "{e}"
    );
    write(
        "items.jsonl",
        "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"hack\": \"h\"}\n",
    );
    let e = run(
        &write(
            "kind.toml",
            "name = \"x\"\n[[metric]]\nname = \"a\"\nkind = \"pairs\"\nfile = \"items.jsonl\"\n",
        ),
        &[],
    );
    assert!(e.contains("unknown kind `pairs`"), "{e}");
    let e = run(
        &write(
            "fields.toml",
            "name = \"x\"\n[[metric]]\nname = \"a\"\nkind = \"paired\"\nfile = \"items.jsonl\"\n",
        ),
        &[],
    );
    assert!(e.contains("items.jsonl:1") && e.contains("honest"), "{e}");
    write(
        "choice.jsonl",
        "{\"id\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"choices\": [\"a\", \"b\"], \"answer\": 2}\n",
    );
    let e = run(
        &write(
            "choice.toml",
            "name = \"x\"\n[[metric]]\nname = \"c\"\nkind = \"choice\"\nfile = \"choice.jsonl\"\n",
        ),
        &[],
    );
    assert!(
        e.contains("choice.jsonl:1") && e.contains("out of range"),
        "{e}"
    );
    let e = run(&write("bad.toml", "name = \n"), &[]);
    assert!(e.contains("bad.toml"), "{e}");
    for bad_t in ["0:1", "a:1:3", "0:1:0"] {
        let mut a = vec![
            "sweep",
            "--base",
            &llama,
            "--adapter",
            &lora,
            "--suite",
            &default_suite,
        ];
        let o = out_dir.display().to_string();
        a.extend_from_slice(&["--t", bad_t, "--out", &o]);
        let out = basin(&a);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("START:STOP:N"));
    }
    let suite_path = suite();
    let o = out_dir.display().to_string();
    let out = basin(&[
        "sweep",
        "--base",
        &tiny("qwen3"),
        "--adapter",
        &tiny_lora(),
        "--suite",
        &suite_path,
        "--t",
        "0:1:2",
        "--out",
        &o,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("llama_lora"));
    let out = basin(&[
        "sweep",
        "--base",
        &tiny_llama(),
        "--target",
        &tiny("qwen3"),
        "--suite",
        &suite_path,
        "--t",
        "0:1:2",
        "--out",
        &o,
    ]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(e.contains("differ"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tiny_llama() -> String {
    tiny("llama")
}

fn tiny_lora() -> String {
    tiny("llama_lora")
}

#[test]
fn several_t_per_pass_give_the_same_results() {
    for device in ["cpu", "gpu"] {
        let suite = match device {
            "gpu" => small_suite("pass-suite", 3),
            _ => suite(),
        };
        let (one, four) = (
            scratch(&format!("pass1-{device}")),
            scratch(&format!("pass4-{device}")),
        );
        for (dir, k) in [(&one, "1"), (&four, "4")] {
            ok(&[
                "sweep",
                "--base",
                &tiny("llama"),
                "--adapter",
                &tiny("llama_lora"),
                "--suite",
                &suite,
                "--t",
                "-0.5:1.5:5",
                "--device",
                device,
                "--out",
                dir.to_str().unwrap(),
                "--bootstrap",
                "100",
                "--t-per-pass",
                k,
                "--batch",
                "6",
            ]);
        }
        let (a, b) = (results(&one), results(&four));
        assert_eq!(a.len(), 5 * 5);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, va) in &a {
            let vb = &b[k];
            let (x, y) = (va["value"].as_f64().unwrap(), vb["value"].as_f64().unwrap());
            assert!((x - y).abs() < 1e-6, "{device} {k:?}: {x} vs {y}");
        }
        let _ = std::fs::remove_dir_all(&one);
        let _ = std::fs::remove_dir_all(&four);
    }
    scratch("pass-suite");
}

/// `basin suite check` on the tiny llama + its adapter and the default suite: every paired and
/// choice metric under the three scoring forms, flags that agree with the CIs, the declared form
/// as the value `basin sweep` reports, and one-line errors.
#[test]
fn suite_check_reports_every_form_and_its_flags() {
    let dir = std::env::temp_dir().join(format!("basin-suite-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("check.json");
    let o = basin(&[
        "suite",
        "check",
        "--model",
        &tiny_llama(),
        "--adapter",
        &tiny_lora(),
        "--suite",
        &suite(),
        "--bootstrap",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("verdict") && err.contains("hack_ood"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["schema"], "basin.suite_check.v1");
    let metrics = report["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 5);
    for m in metrics {
        let forms = m["forms"].as_object().unwrap();
        if m["kind"] == "instruction" {
            assert_eq!(forms.len(), 1);
            continue;
        }
        assert_eq!(forms.len(), 3, "{m}");
        let declared = &forms[m["score"].as_str().unwrap()];
        let (lo, hi) = (
            declared["ci_low"].as_f64().unwrap(),
            declared["ci_high"].as_f64().unwrap(),
        );
        assert_eq!(m["floor"].as_bool().unwrap(), lo <= 0.05, "{m}");
        assert_eq!(m["ceiling"].as_bool().unwrap(), hi >= 0.95, "{m}");
        let rho = m["length_rho"].as_f64();
        assert_eq!(
            m["length_confound"].as_bool().unwrap(),
            rho.is_some_and(|r| r.abs() > 0.3)
        );
        assert!(!m["verdict"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        metrics[2]["score"], "per_byte",
        "choices default to per byte"
    );
    assert_eq!(
        metrics[0]["score"], "per_token",
        "pairs default to per token"
    );
    // The declared form's value is what a sweep at the same point reports.
    let sweep_dir = dir.join("sweep");
    let o = basin(&[
        "sweep",
        "--base",
        &tiny_llama(),
        "--adapter",
        &tiny_lora(),
        "--suite",
        &suite(),
        "--t",
        "1:1:1",
        "--bootstrap",
        "200",
        "--out",
        sweep_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results =
        basin::experiments::sweep_store::read_results(&sweep_dir.join("results.jsonl")).unwrap();
    for m in metrics {
        let name = m["name"].as_str().unwrap().to_string();
        let r = results.values().find(|r| r.metric == name).unwrap();
        let form = m["score"].as_str().unwrap_or("nll");
        let v = m["forms"][form]["value"].as_f64().unwrap();
        assert!(
            (r.value - v).abs() < 1e-9,
            "{name}: sweep {} vs check {v}",
            r.value
        );
    }
    let o = basin(&[
        "suite",
        "check",
        "--model",
        &tiny_llama(),
        "--suite",
        "/nonexistent/s.toml",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/s.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// run.json records where a sweep ran; a resume on another device (or Basin version) is refused
/// with a line naming both and the flag, and with the flag the points computed now record where
/// they ran.
#[test]
fn a_resume_on_another_device_is_refused_unless_asked_and_then_recorded() {
    let out = scratch("resume-device");
    let o = out.display().to_string();
    let args = [
        "sweep",
        "--base",
        &tiny_llama(),
        "--adapter",
        &tiny_lora(),
        "--suite",
        &suite(),
        "--t",
        "0:1:2",
        "--bootstrap",
        "20",
        "--batch",
        "4",
        "--out",
        &o,
    ];
    ok(&args);
    let run_path = out.join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&run_path).unwrap()).unwrap();
    assert_eq!(run["execution"]["device"], "cpu (burn-flex)");
    assert_eq!(run["execution"]["batch"], 4);
    assert_eq!(run["execution"]["t_per_pass"], 1);
    assert_eq!(run["basin_version"], env!("CARGO_PKG_VERSION"));
    // As if the folder had been started on a GPU machine, and its last point never finished.
    run["execution"]["device"] = "gpu (Some GPU, Vulkan)".into();
    std::fs::write(&run_path, serde_json::to_vec_pretty(&run).unwrap()).unwrap();
    let results_path = out.join("results.jsonl");
    let text = std::fs::read_to_string(&results_path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let dropped: serde_json::Value = serde_json::from_str(lines.pop().unwrap()).unwrap();
    std::fs::write(&results_path, lines.join("\n") + "\n").unwrap();

    let refused = basin(&args);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("gpu (Some GPU, Vulkan)")
            && err.contains("cpu (burn-flex)")
            && err.contains("--allow-resume-change"),
        "{err}"
    );
    // Other weights are another device too: `--dtype f16` is refused on this f32 folder.
    let mut half = args.to_vec();
    half.extend(["--dtype", "f16"]);
    let refused = basin(&half);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("cpu (burn-flex), weights f16"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&results_path)
            .unwrap()
            .lines()
            .count(),
        lines.len()
    );

    let mut allowed = args.to_vec();
    allowed.push("--allow-resume-change");
    ok(&allowed);
    let after: Vec<serde_json::Value> = std::fs::read_to_string(&results_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(after.len(), lines.len() + 1);
    let recomputed = after.last().unwrap();
    assert_eq!(recomputed["metric"], dropped["metric"]);
    assert_eq!(
        recomputed["extra"]["resumed_under"]["device"],
        "cpu (burn-flex)"
    );
    assert!(
        after[..lines.len()]
            .iter()
            .all(|r| r["extra"].get("resumed_under").is_none())
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Inputs are known by their content, not their paths: a sweep whose model, adapter and suite
/// folders moved resumes (its finished points kept, its missing point computed), shards run
/// under other paths merge, and a changed file is refused, named.
#[test]
fn moved_inputs_resume_and_merge_and_a_changed_file_is_refused() {
    let root = scratch("moved");
    let place = |name: &str| -> (String, String, String) {
        let at = root.join(name);
        copy_dir(Path::new(&tiny_llama()), &at.join("model"));
        copy_dir(Path::new(&tiny_lora()), &at.join("adapter"));
        copy_dir(Path::new(&suite()).parent().unwrap(), &at.join("suite"));
        let s = |p: PathBuf| p.display().to_string();
        (
            s(at.join("model")),
            s(at.join("adapter")),
            s(at.join("suite/suite.toml")),
        )
    };
    let sweep = |(m, a, s): &(String, String, String), out: &Path, extra: &[&str]| {
        let o = out.display().to_string();
        let mut args = vec![
            "sweep",
            "--base",
            m,
            "--adapter",
            a,
            "--suite",
            s,
            "--t",
            "0:1:3",
            "--bootstrap",
            "20",
            "--out",
            &o,
        ];
        args.extend_from_slice(extra);
        basin(&args)
    };
    let first = place("first");
    let out = root.join("out");
    assert!(sweep(&first, &out, &[]).status.success());
    let all = results(&out);
    // The last point lost, then every input moved elsewhere (and the old copies gone).
    let results_path = out.join("results.jsonl");
    let text = std::fs::read_to_string(&results_path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(&results_path, lines.join("\n") + "\n").unwrap();
    let second = place("second");
    std::fs::remove_dir_all(root.join("first")).unwrap();
    let o = sweep(&second, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        results(&out),
        all,
        "resumed under the new paths to the same results"
    );

    // Shards computed under different paths merge into the whole sweep.
    let third = place("third");
    let (s0, s1) = (root.join("shard0"), root.join("shard1"));
    assert!(sweep(&second, &s0, &["--shard", "0/2"]).status.success());
    assert!(sweep(&third, &s1, &["--shard", "1/2"]).status.success());
    let merged = root.join("merged");
    let (a, b, m) = (
        s0.display().to_string(),
        s1.display().to_string(),
        merged.display().to_string(),
    );
    let o = basin(&["merge", &a, &b, "--out", &m]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results(&merged).len(), all.len());

    // A changed file is refused, and named.
    let suite_dir = root.join("third/suite");
    let item = suite_dir.join("instruction.jsonl");
    let text = std::fs::read_to_string(&item).unwrap();
    let (first_line, rest) = text.split_once('\n').unwrap();
    let mut chat: serde_json::Value = serde_json::from_str(first_line).unwrap();
    chat["messages"][1]["content"] = "A different answer.".into();
    std::fs::write(&item, format!("{chat}\n{rest}")).unwrap();
    let o = sweep(&third, &s1, &["--shard", "1/2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("input instruction.jsonl changed"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Two Ctrl-C while the model is still loading (SmolLM2: seconds of dequantising) end the sweep
/// at once, with the resume hint, instead of after the load and the first batch.
#[test]
fn a_second_ctrl_c_stops_a_sweep_at_once_even_while_loading() {
    let model = common::smollm2_gguf();
    let out = scratch("ctrl-c");
    let mut child = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["sweep", "--base"])
        .arg(&model)
        .arg("--target")
        .arg(&model)
        .args(["--suite", &suite(), "--t", "0:1:3", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let kill = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still running 5 s after the second Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("rerun to resume"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

//! `basin study run` on the demo study (assets/studies/demo.toml): every step runs, the report
//! holds every result and answers from its numbers, the steps' results agree where they must
//! (θ₀ is θ₀ in every folder, a hacker is the same model in every folder), a rerun skips what
//! finished, a changed study file is refused, and a second run with other training seeds agrees
//! with the first where it must (θ₀, the data).

mod common;

use std::path::{Path, PathBuf};

use common::{basin, repo, scratch_dir};
use serde_json::Value;

fn demo_study() -> PathBuf {
    repo().join("assets/studies/demo.toml")
}

/// `basin study run FILE --out DIR`.
fn run_study(file: &Path, out: &Path) -> std::process::Output {
    basin(&[
        "study",
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The same, expecting success; its stderr.
fn run_study_ok(file: &Path, out: &Path) -> String {
    let o = run_study(file, out);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{}: {stderr}", file.display());
    stderr
}

/// Writes an edited demo study elsewhere, its base named by an absolute path.
fn write_study_copy(to: &Path, text: &str) {
    let base = demo_study().parent().unwrap().join("../demo/base");
    std::fs::write(to, text.replace("../demo/base", base.to_str().unwrap())).unwrap();
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// (value, ci_low, ci_high) of `metric` at x in an arm's series `which` (line, curve, efficiency).
fn at(report: &Value, arm: &str, which: &str, metric: &str, x: f64) -> (f64, f64, f64) {
    let arm = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == arm)
        .unwrap();
    let series = arm[which]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == metric)
        .unwrap_or_else(|| panic!("{arm:?} has no {which} series {metric}"));
    let p = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| (p["x"].as_f64().unwrap() - x).abs() < 1e-9)
        .unwrap_or_else(|| panic!("no {which} point {x} for {metric}"));
    (
        p["value"].as_f64().unwrap(),
        p["ci_low"].as_f64().unwrap(),
        p["ci_high"].as_f64().unwrap(),
    )
}

fn metrics(report: &Value) -> Vec<String> {
    report["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metric"].as_str().unwrap().to_string())
        .collect()
}

/// The last point of an arm's efficiency series: the final adapter.
fn last_samples(report: &Value, arm: &str) -> f64 {
    let arm = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == arm)
        .unwrap();
    arm["efficiency"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["x"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

/// `cells`: the landscape grid's cell count.
fn check_report(dir: &Path, cells: usize) -> Value {
    let state = read_json(&dir.join("study.json"));
    let steps = state["steps"].as_object().unwrap();
    for key in [
        "data",
        "train/original",
        "train/symmetrized",
        "efficiency/original",
        "efficiency/symmetrized",
        "paths/original",
        "paths/symmetrized",
        "landscape/original",
        "landscape/symmetrized",
        "influence/original",
        "influence/symmetrized",
        "replicates/original",
        "replicates/symmetrized",
        "report",
    ] {
        assert_eq!(steps[key]["status"], "done", "{key}: {:?}", steps.get(key));
    }
    let report = read_json(&dir.join("report.json"));
    assert_eq!(report["schema"], "basin.study-report.v1");
    let names = metrics(&report);
    for m in [
        "hack_heldout",
        "hack_avoid",
        "hack_ood",
        "capability",
        "instruction",
    ] {
        assert!(names.iter().any(|n| n == m), "{m} missing from {names:?}");
    }
    for arm in ["original", "symmetrized"] {
        let a = report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == arm)
            .unwrap();
        assert!(a["train"]["steps"].as_u64().unwrap() > 0);
        // The same budget for both sets.
        assert_eq!(a["train"]["steps"], report["arms"][0]["train"]["steps"]);
        for which in ["line", "curve"] {
            for s in a[which].as_array().unwrap() {
                assert_eq!(s["points"].as_array().unwrap().len(), 7, "{arm} {which}");
            }
        }
        assert!(a["efficiency"][0]["points"].as_array().unwrap().len() >= 4);
        let land = &a["landscape"];
        for m in ["instruction", "hack_heldout"] {
            let values = land["values"][m].as_array().unwrap();
            assert_eq!(values.len(), cells, "{arm} {m}");
            assert!(
                values
                    .iter()
                    .all(|v| v.as_f64().is_some_and(f64::is_finite))
            );
        }
        assert!(!a["influence"]["groups"].as_array().unwrap().is_empty());
        // Cross-checks between folders computed by different jobs.
        for m in &names {
            // θ₀ is θ₀: the line, the curve and the checkpoints' 0 samples.
            let base = at(&report, "original", "line", m, 0.0);
            for (which, x) in [("line", 0.0), ("curve", 0.0), ("efficiency", 0.0)] {
                let v = at(&report, arm, which, m, x);
                assert!(
                    (v.0 - base.0).abs() < 1e-9,
                    "{arm} {which} {m} at θ₀: {v:?} vs {base:?}"
                );
            }
            // The hacker is the hacker: line and curve at t = 1, the final checkpoint.
            let end = at(&report, arm, "line", m, 1.0);
            let fin = at(&report, arm, "efficiency", m, last_samples(&report, arm));
            let curve_end = at(&report, arm, "curve", m, 1.0);
            for v in [fin, curve_end] {
                assert!(
                    (v.0 - end.0).abs() < 1e-6,
                    "{arm} {m} at θ_H: {v:?} vs {end:?}"
                );
            }
        }
        // The landscape's θ₀ and θ_H cells are the line's ends.
        let alphas: Vec<f64> = land["alphas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let betas: Vec<f64> = land["betas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let cell = |m: &str, a0: f64| {
            let i = alphas.iter().position(|a| (a - a0).abs() < 1e-9).unwrap();
            let j = betas.iter().position(|b| b.abs() < 1e-9).unwrap();
            land["values"][m][j * alphas.len() + i].as_f64().unwrap()
        };
        for m in ["instruction", "hack_heldout"] {
            for t in [0.0, 1.0] {
                let line = at(&report, arm, "line", m, t).0;
                assert!(
                    (cell(m, t) - line).abs() < 1e-5,
                    "{arm} {m} cell ({t}, 0) {} vs line {line}",
                    cell(m, t)
                );
            }
        }
    }
    // The answers quote the comparison's numbers.
    let answers: Vec<&str> = report["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let main = report["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "hack_heldout")
        .unwrap();
    let shown = format!(
        "{:.3} [{:.3}, {:.3}]",
        main["symmetrized"]["value"].as_f64().unwrap(),
        main["symmetrized"]["ci_low"].as_f64().unwrap(),
        main["symmetrized"]["ci_high"].as_f64().unwrap()
    );
    assert!(answers[0].contains(&shown), "{} / {shown}", answers[0]);
    assert!(
        answers
            .iter()
            .any(|a| a.contains("fitted curve of the original hacker"))
    );
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("Onset of hack_heldout"))
    );
    // Across training seeds: the study's own hacker (its line at t = 1) and the replicate.
    let across = report["across_seeds"].as_array().expect("across_seeds");
    assert_eq!(across.len(), names.len());
    for a in across {
        let m = a["metric"].as_str().unwrap();
        for arm in ["original", "symmetrized"] {
            let s = &a[arm];
            let seeds: Vec<u64> = s["seeds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(seeds.len(), 2, "{arm} {m}: {s}");
            let values: Vec<f64> = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(values[0], at(&report, arm, "line", m, 1.0).0, "{arm} {m}");
            let (lo, hi) = (
                s["ci_low"].as_f64().unwrap(),
                s["ci_high"].as_f64().unwrap(),
            );
            assert!(
                values.iter().all(|v| lo <= *v && *v <= hi),
                "{arm} {m}: {s}"
            );
        }
        let d = &a["difference"];
        let diff = |i: usize| {
            a["original"]["values"][i].as_f64().unwrap()
                - a["symmetrized"]["values"][i].as_f64().unwrap()
        };
        assert!(
            (d["mean"].as_f64().unwrap() - 0.5 * (diff(0) + diff(1))).abs() < 1e-12,
            "{m}: {d}"
        );
    }
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("Across training seeds")),
        "{answers:?}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 2 * names.len() + 4,
        "plots missing"
    );
    for m in &names {
        assert!(html.contains(m.as_str()));
    }
    assert!(html.contains(&shown));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "not self-contained"
    );
    report
}

#[test]
fn the_demo_study_runs_resumes_refuses_a_changed_file_and_agrees_across_seeds() {
    let dir = scratch_dir("study", "demo");
    let out = dir.join("run");
    let study = demo_study();
    let stderr = run_study_ok(&study, &out);
    let report = check_report(&out, 49);
    // The command ends with the report's answers.
    assert!(
        stderr.contains("answers:\n- hack_heldout at t = 1: symmetrized"),
        "{stderr}"
    );

    // A rerun skips every finished step and rewrites the same report.
    let stderr = run_study_ok(&study, &out);
    assert_eq!(
        stderr.matches("finished earlier, skipped").count(),
        13,
        "{stderr}"
    );
    let again = read_json(&out.join("report.json"));
    assert_eq!(again["comparison"], report["comparison"]);

    // A changed section is refused for the steps it feeds, naming what to delete.
    let text = std::fs::read_to_string(&study)
        .unwrap()
        .replace("grid = \"7x7\"", "grid = \"5x5\"");
    let changed = dir.join("changed.toml");
    write_study_copy(&changed, &text);
    let o = run_study(&changed, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("landscape/original") && err.contains("delete"),
        "{err}"
    );

    // Another run with other training, curve-fit and bootstrap seeds on the same data, its
    // replicate seed 0: θ₀ is the same model on the same suite, so its values must be identical
    // (only their bootstrap CIs move), the data byte-identical, and the hackers different
    // models; a hacker trained with seed s is the same model whether it is the study's own or a
    // replicate. Its landscape (a 3 × 3 grid through θ₀ and θ_H) and curve fit (10 steps) are
    // smaller than the demo's: they are not what this run checks.
    let other = dir.join("seed1.toml");
    let text = std::fs::read_to_string(&study).unwrap();
    let (head, tail) = text.split_at(text.find("[train]").unwrap());
    let tail = tail
        .replace("seed = 0", "seed = 1")
        .replace("seeds = [1]", "seeds = [0]")
        .replace("grid = \"7x7\"", "grid = \"3x3\"")
        .replace("range = \"-0.25:1.25,-0.25:1.25\"", "range = \"0:1,0:1\"")
        .replace("steps = 40", "steps = 10");
    assert_eq!(tail.matches("seed = 1").count(), 3);
    assert_eq!(tail.matches("seeds = [0]").count(), 1);
    assert!(tail.contains("grid = \"3x3\"") && tail.contains("range = \"0:1,0:1\""));
    assert!(tail.contains("steps = 10"));
    write_study_copy(&other, &format!("{head}{tail}"));
    let out1 = dir.join("run-seed1");
    run_study_ok(&other, &out1);
    let report1 = check_report(&out1, 9);
    for f in [
        "sft_original.jsonl",
        "sft_symmetrized.jsonl",
        "suite/hack_heldout.jsonl",
    ] {
        assert_eq!(
            std::fs::read(out.join("data").join(f)).unwrap(),
            std::fs::read(out1.join("data").join(f)).unwrap(),
            "{f}"
        );
    }
    let mut moved = 0;
    for m in metrics(&report) {
        let (a, b) = (
            at(&report, "original", "line", &m, 0.0),
            at(&report1, "original", "line", &m, 0.0),
        );
        assert_eq!(a.0, b.0, "θ₀ {m}: seed 0 {a:?} vs seed 1 {b:?}");
        assert!(a.1 <= b.2 && b.1 <= a.2, "θ₀ {m}: CIs {a:?} vs {b:?}");
        moved += usize::from(a.1 != b.1 || a.2 != b.2);
    }
    assert!(moved > 0, "the bootstrap seed changed no CI");
    assert_ne!(
        report["arms"][0]["train"], report1["arms"][0]["train"],
        "the training seed changed nothing"
    );
    let seed_value = |r: &Value, metric: &str, arm: &str, seed: u64| -> f64 {
        let a = r["across_seeds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["metric"] == metric)
            .unwrap();
        let s = &a[arm];
        let i = s["seeds"]
            .as_array()
            .unwrap()
            .iter()
            .position(|v| v.as_u64() == Some(seed))
            .unwrap_or_else(|| panic!("{arm} {metric}: no seed {seed} in {s}"));
        s["values"][i].as_f64().unwrap()
    };
    for m in metrics(&report) {
        for arm in ["original", "symmetrized"] {
            for seed in [0, 1] {
                let (a, b) = (
                    seed_value(&report, &m, arm, seed),
                    seed_value(&report1, &m, arm, seed),
                );
                assert!(
                    (a - b).abs() < 1e-6,
                    "{arm} {m} seed {seed}: {a} in the first run, {b} in the second"
                );
            }
        }
    }

    // --only a step whose inputs have not run is an error naming them.
    let fresh = dir.join("fresh");
    let o = basin(&[
        "study",
        "run",
        study.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
        "--only",
        "paths",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("needs step train/original"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

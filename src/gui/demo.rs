//! The built-in demo: a tiny llama base, a LoRA reward hacker and a small suite in `assets/demo`
//! (made by `scripts/make_demo.py`).

use std::path::PathBuf;

/// `assets/`: `$BASIN_ASSETS`, else `./assets` when it holds the demo (the repo root, where the
/// scripts run), else next to the executable, else the source tree the binary was built from.
pub fn assets_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("BASIN_ASSETS") {
        return PathBuf::from(p);
    }
    if let Ok(cwd) = std::env::current_dir()
        && cwd.join("assets/demo").is_dir()
    {
        return cwd.join("assets");
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
        && dir.join("assets/demo").is_dir()
    {
        return dir.join("assets");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

pub struct DemoPaths {
    pub base: PathBuf,
    pub hacker: PathBuf,
    pub suite: PathBuf,
    /// SFT chats for the Train tab (reward hacks of the generator's training families).
    pub train_data: PathBuf,
    /// Plain instruction chats of the training tasks, for the Curve tab.
    pub instructions: PathBuf,
}

pub fn demo_paths() -> DemoPaths {
    let d = assets_dir().join("demo");
    DemoPaths {
        base: d.join("base"),
        hacker: d.join("hacker"),
        suite: d.join("suite").join("suite.toml"),
        train_data: d.join("train.jsonl"),
        instructions: d.join("instructions_train.jsonl"),
    }
}

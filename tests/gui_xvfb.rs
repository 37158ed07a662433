//! The real app binary in a real X server (Xvfb), driven by synthetic input (xdotool's XTEST
//! key presses): on a machine with neither an XDG desktop portal nor zenity, Ctrl+O on the
//! base model opens Basin's own file browser (not silence), a typed path and Enter choose a
//! folder, and the model there loads. What the app does is read from its log on stderr.
//! Needs Xvfb and xdotool (`scripts/install-system-deps.sh` installs them).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills a child process when dropped (a failed assertion leaves no X server or app behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A display number with no X server and no stale lock.
fn free_display() -> u32 {
    (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number")
}

/// Polls `ready` until it holds or `timeout` passes; whether it held.
fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn xdotool(display: &str, args: &[&str]) {
    let out = Command::new("timeout")
        .arg("60")
        .arg("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .expect("xdotool (scripts/install-system-deps.sh installs it)");
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ctrl_o_under_xvfb_without_a_portal_opens_the_builtin_browser_and_loads_the_typed_folder() {
    let root = common::scratch_dir("xvfb", "dialog");
    let n = free_display();
    let display = format!(":{n}");
    let _xvfb = Killed(
        Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/install-system-deps.sh installs it)"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        }),
        "Xvfb {display} did not start"
    );

    // A bare session: no D-Bus, an empty PATH (no zenity), a fresh home for the app's state.
    let home = root.join("home");
    let runtime = root.join("runtime");
    let empty_path = root.join("bin");
    for d in [&home, &runtime, &empty_path] {
        std::fs::create_dir_all(d).unwrap();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut app = Command::new(env!("CARGO_BIN_EXE_basin"));
    app.args(["--demo", "--runs-dir"])
        .arg(root.join("runs"))
        .current_dir(manifest)
        .env_clear()
        .env("DISPLAY", &display)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("PATH", &empty_path)
        .env("BASIN_ASSETS", manifest.join("assets"))
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for keep in ["BASIN_CACHE", "VK_ICD_FILENAMES", "LANG"] {
        if let Some(v) = std::env::var_os(keep) {
            app.env(keep, v);
        }
    }
    let mut child = app.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _app = Killed(child);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let logged = |needle: &str| log.lock().unwrap().iter().any(|l| l.contains(needle));
    let dump = || log.lock().unwrap().join("\n");

    let started = wait_until(Duration::from_secs(120), || {
        logged("panicked") || (logged("loaded") && logged("file dialogs"))
    });
    assert!(
        started && !logged("panicked"),
        "the app did not load its demo:\n{}",
        dump()
    );
    assert!(
        logged("file dialogs: Basin's own (no session D-Bus"),
        "the app saw there is no system dialog:\n{}",
        dump()
    );
    // The window exists and takes the keyboard.
    xdotool(
        &display,
        &["search", "--sync", "--onlyvisible", "--name", "^Basin$"],
    );
    xdotool(
        &display,
        &[
            "search",
            "--onlyvisible",
            "--name",
            "^Basin$",
            "windowfocus",
            "--sync",
        ],
    );
    std::thread::sleep(Duration::from_secs(1));

    let target: PathBuf = manifest.join("tests/fixtures/tiny/llama");
    let target_text = target.display().to_string();
    xdotool(&display, &["key", "--clearmodifiers", "ctrl+o"]);
    std::thread::sleep(Duration::from_secs(2));
    // The browser's location line has the keyboard: replace it, Enter goes there, Enter again
    // chooses the folder shown.
    xdotool(&display, &["key", "--clearmodifiers", "ctrl+a"]);
    xdotool(&display, &["type", "--delay", "30", &target_text]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["key", "Return"]);
    std::thread::sleep(Duration::from_secs(2));
    xdotool(&display, &["key", "Return"]);

    let loaded = format!("loaded {target_text}");
    let done = wait_until(Duration::from_secs(120), || {
        logged(&loaded) || logged("panicked") || logged("error:")
    });
    assert!(
        done && logged(&loaded) && !logged("panicked") && !logged("error:"),
        "the typed folder was not chosen and loaded:\n{}",
        dump()
    );
    let _ = std::fs::remove_dir_all(&root);
}

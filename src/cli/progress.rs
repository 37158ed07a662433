//! A progress bar on stderr with ETA (hidden when stderr is not a terminal).

use crate::experiments::job::Progress;

pub struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    pub fn new(what: &str, total: usize) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (ETA {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_string());
        Self(bar)
    }
    pub fn update(&self, p: &Progress) {
        self.0.set_length(p.total as u64);
        self.0.set_position(p.done as u64);
        self.0.set_message(p.stage.clone());
    }
    /// False when stderr is not a terminal (the bar draws nothing).
    pub fn is_visible(&self) -> bool {
        !self.0.is_hidden()
    }
    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        self.0.println(line);
    }
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A cancel flag set by the first Ctrl-C (printing `first`); a second Ctrl-C exits at once.
pub fn stop_on_ctrl_c(first: &'static str) -> crate::experiments::job::CancelFlag {
    let stop = crate::experiments::job::CancelFlag::new();
    let flag = stop.clone();
    let presses = std::sync::atomic::AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        match presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => {
                eprintln!("\n{first}");
                flag.cancel();
            }
            _ => std::process::exit(130),
        }
    });
    stop
}

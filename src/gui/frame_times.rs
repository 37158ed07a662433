//! `--log-frame-times FILE`: one CSV line per frame (CPU time of the frame, including tessellation
//! and painting, and whether a sweep was running), plus percentiles for BENCHMARKS.md.

use std::io::Write;
use std::path::PathBuf;

pub struct FrameLog {
    path: PathBuf,
    /// (frame cpu ms, a job was running when that frame began)
    frames: Vec<(f32, bool)>,
    /// Whether a job was running when the frame now being drawn began.
    running_now: bool,
}

impl FrameLog {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            frames: Vec::new(),
            running_now: false,
        }
    }

    /// Called at the start of each frame: `previous_cpu_s` is eframe's CPU time of the previous
    /// frame, `job_running` whether a job runs as this frame begins. A time is filed under the
    /// state of the frame it measures, so the frame that starts a job (and the app's first frame,
    /// which builds the font atlas, when a job starts at launch) does not count as one drawn
    /// while the job ran.
    pub fn record(&mut self, previous_cpu_s: Option<f32>, job_running: bool) {
        if let Some(s) = previous_cpu_s {
            self.frames.push((s * 1000.0, self.running_now));
        }
        self.running_now = job_running;
    }

    /// (p50, p99, n) of frames drawn while a job (sweep or training) ran.
    pub fn percentiles_while_running(&self) -> Option<(f32, f32, usize)> {
        let mut v: Vec<f32> = self.frames.iter().filter(|f| f.1).map(|f| f.0).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        let at = |q: f32| v[((v.len() - 1) as f32 * q).round() as usize];
        Some((at(0.5), at(0.99), v.len()))
    }

    /// Writes the CSV (and a summary line on stderr).
    pub fn write(&self) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&self.path)?);
        writeln!(f, "frame,cpu_ms,job_running")?;
        for (i, (ms, running)) in self.frames.iter().enumerate() {
            writeln!(f, "{i},{ms:.3},{}", u8::from(*running))?;
        }
        f.flush()?;
        if let Some((p50, p99, n)) = self.percentiles_while_running() {
            eprintln!(
                "frame times while a job ran: p50 {p50:.2} ms, p99 {p99:.2} ms over {n} frames ({})",
                self.path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_time_counts_under_the_state_of_the_frame_it_measures() {
        let mut log = FrameLog::new(PathBuf::from("unused.csv"));
        log.record(None, false); // first frame: no time yet; it starts a job
        log.record(Some(0.030), true); // the starting frame's 30 ms: not a running frame
        log.record(Some(0.004), true);
        log.record(Some(0.006), false); // the job ended during this frame's predecessor
        log.record(Some(0.001), false);
        assert_eq!(
            log.frames,
            vec![(30.0, false), (4.0, true), (6.0, true), (1.0, false)]
        );
        let (p50, p99, n) = log.percentiles_while_running().unwrap();
        assert_eq!(n, 2);
        assert!(p99 <= 6.0 && p50 >= 4.0);
    }
}

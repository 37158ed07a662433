//! `--log-frame-times FILE`: one CSV line per frame (CPU time of the frame, including tessellation
//! and painting, and whether a sweep was running), plus percentiles for BENCHMARKS.md.

use std::io::Write;
use std::path::PathBuf;

pub struct FrameLog {
    path: PathBuf,
    /// (frame cpu ms, sweep running)
    frames: Vec<(f32, bool)>,
}

impl FrameLog {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            frames: Vec::new(),
        }
    }

    pub fn record(&mut self, cpu_s: Option<f32>, job_running: bool) {
        if let Some(s) = cpu_s {
            self.frames.push((s * 1000.0, job_running));
        }
    }

    /// (p50, p99, n) of frames recorded while a job (sweep or training) ran.
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

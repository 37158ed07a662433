//! Exports: a plot's data as CSV (straight from the results the plot draws), the plot itself as
//! PNG (cropped from a screenshot of the window, so it is exactly what is on screen), and a
//! one-click HTML report drawn from the data, whatever is on screen (every metric's plot as SVG
//! with CI bands, its CSV, the runs' specs, the landscape slice).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use eframe::egui::{self, ColorImage, Rect};

use super::run_view::RunView;

/// CSV of one metric across the visible runs: one row per (run, t).
pub fn metric_csv(runs: &[RunView], metric: &str) -> String {
    let mut out = String::from("run,folder,t,metric,kind,value,ci_low,ci_high,n\n");
    for run in runs.iter().filter(|r| r.visible) {
        for r in run.series(metric) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                csv_field(&run.label),
                csv_field(&run.dir.display().to_string()),
                r.t,
                csv_field(&r.metric),
                r.kind,
                r.value,
                r.ci_low,
                r.ci_high,
                r.n
            );
        }
    }
    out
}

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The pixels of `rect` (in points) from a window screenshot.
pub fn crop(image: &ColorImage, rect: Rect, pixels_per_point: f32) -> Option<image::RgbaImage> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * pixels_per_point).floor().max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * pixels_per_point).floor().max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * pixels_per_point).ceil().max(0.0) as usize).min(w);
    let y1 = ((rect.max.y * pixels_per_point).ceil().max(0.0) as usize).min(h);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let mut out = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels.get(y * w + x).copied().unwrap_or_default();
            out.put_pixel(
                (x - x0) as u32,
                (y - y0) as u32,
                image::Rgba([c.r(), c.g(), c.b(), c.a()]),
            );
        }
    }
    Some(out)
}

pub fn save_png(img: &image::RgbaImage, path: &Path) -> Result<(), String> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write_text(path: &Path, text: &str) -> Result<(), String> {
    crate::experiments::sweep_store::write_atomic(path, text.as_bytes())
        .map_err(|e| super::error_text(&e))
}

/// A file name for a metric.
pub fn file_stem(metric: &str) -> String {
    metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A pending PNG export: which plots, where, waiting for the next screenshot.
#[derive(Debug, Clone)]
pub enum PngTarget {
    /// One plot to one file.
    Plot { metric: String, path: PathBuf },
    /// The whole window.
    Window { path: PathBuf },
}

/// Colours of the report's runs, in order (matplotlib's first ten).
const RUN_COLOURS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One metric across the visible runs as an SVG chart drawn from the results (each run a line
/// with its 95% CI band), as the Path tab plots it.
pub fn metric_svg(runs: &[RunView], metric: &str) -> String {
    let visible: Vec<&RunView> = runs.iter().filter(|r| r.visible).collect();
    let x_label = visible
        .iter()
        .find_map(|r| r.record.as_ref())
        .and_then(|r| r.spec["coordinate"].as_str().map(str::to_string))
        .unwrap_or_else(|| "t".into());
    crate::study::svg::LineChart {
        title: metric.to_string(),
        x_label,
        y_label: metric.to_string(),
        series: visible
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.series(metric).is_empty())
            .map(|(k, r)| crate::study::svg::Series {
                label: r.label.clone(),
                color: RUN_COLOURS[k % RUN_COLOURS.len()],
                dashed: false,
                points: r
                    .series(metric)
                    .iter()
                    .map(|m| (m.t, m.value, m.ci_low, m.ci_high))
                    .collect(),
            })
            .collect(),
        marks: Vec::new(),
    }
    .render()
}

/// Writes the report into `dir`: `index.html` (self-contained: each metric's chart inline as
/// SVG), and beside it each metric's `.svg` and `.csv` and the landscape's picture and cells.
/// Drawn from the data, so it is the same from any tab, scrolled anywhere.
pub fn write_report(
    dir: &Path,
    runs: &[RunView],
    metrics: &[String],
    landscape: Option<&LandscapeSection>,
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for m in metrics {
        let stem = file_stem(m);
        write_text(&dir.join(format!("{stem}.svg")), &metric_svg(runs, m))?;
        write_text(&dir.join(format!("{stem}.csv")), &metric_csv(runs, m))?;
    }
    if let Some(l) = landscape {
        save_png(&l.image, &dir.join("landscape.png"))?;
        let csv = l.dir.join("grid.csv");
        std::fs::copy(&csv, dir.join("landscape.csv"))
            .map_err(|e| format!("{}: {e}", csv.display()))?;
    }
    let index = dir.join("index.html");
    write_text(&index, &report_html(runs, metrics, landscape))?;
    Ok(format!("report saved: {}", index.display()))
}

/// The Landscape tab's slice as a report shows it: its picture (rendered from the data), its
/// folder (whose `grid.csv` is copied next to the report) and a line about its plane.
#[derive(Clone)]
pub struct LandscapeSection {
    pub metric: String,
    pub dir: PathBuf,
    pub about: String,
    pub image: image::RgbaImage,
}

/// The HTML report: runs and their specs, each metric's chart (inline SVG, from the data) and
/// CSV, then the landscape slice.
pub fn report_html(
    runs: &[RunView],
    metrics: &[String],
    landscape: Option<&LandscapeSection>,
) -> String {
    // Text and attribute values alike: a metric or run named `x" onerror="…` stays text.
    let esc = crate::study::svg::esc;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Basin report</title>\
         <style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}\
         pre{background:#f4f4f4;padding:1em;overflow:auto}img{max-width:100%;border:1px solid #ddd}</style>\
         </head><body><h1>Basin report</h1>",
    );
    let _ = write!(h, "<h2>Runs</h2>");
    for run in runs.iter().filter(|r| r.visible) {
        let spec = run
            .record
            .as_ref()
            .and_then(|r| serde_json::to_string_pretty(r).ok())
            .unwrap_or_default();
        let _ = write!(
            h,
            "<h3>{}</h3><p>{}</p><pre>{}</pre>",
            esc(&run.label),
            esc(&run.dir.display().to_string()),
            esc(&spec)
        );
    }
    for m in metrics {
        let stem = file_stem(m);
        let _ = write!(
            h,
            "<h2>{}</h2>{}<p><a href=\"{stem}.csv\">data (CSV)</a> · <a href=\"{stem}.svg\">chart (SVG)</a></p>",
            esc(m),
            metric_svg(runs, m)
        );
    }
    if let Some(l) = landscape {
        let _ = write!(
            h,
            "<h2>Landscape: {}</h2><p>{}</p><p>{}</p><img src=\"landscape.png\" alt=\"landscape\">\
             <p><a href=\"landscape.csv\">every cell and metric (CSV)</a></p>",
            esc(&l.metric),
            esc(&l.dir.display().to_string()),
            esc(&l.about)
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// Crops and writes what a screenshot fulfils; returns a log line.
pub fn fulfil(
    target: &PngTarget,
    image: &ColorImage,
    plot_rects: &[(String, Rect)],
    pixels_per_point: f32,
) -> Result<String, String> {
    let plot = |metric: &str, path: &Path| -> Result<(), String> {
        let rect = plot_rects
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, r)| *r)
            .ok_or_else(|| format!("no plot of `{metric}` on screen"))?;
        let img = crop(image, rect, pixels_per_point)
            .ok_or_else(|| format!("the plot of `{metric}` is off screen"))?;
        save_png(&img, path)
    };
    match target {
        PngTarget::Plot { metric, path } => {
            plot(metric, path)?;
            Ok(format!("saved {}", path.display()))
        }
        PngTarget::Window { path } => {
            let full = egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(
                    image.size[0] as f32 / pixels_per_point,
                    image.size[1] as f32 / pixels_per_point,
                ),
            );
            let img = crop(image, full, pixels_per_point).ok_or("empty screenshot")?;
            save_png(&img, path)?;
            Ok(format!("saved {}", path.display()))
        }
    }
}

/// Pixels per cell side of an exported landscape.
pub const LANDSCAPE_CELL_PX: u32 = 24;

/// A landscape slice rendered from its data (not a screenshot): one square of
/// [`LANDSCAPE_CELL_PX`] pixels per cell in the Landscape tab's colours (the lowest β at the
/// bottom), missing cells dark grey, and the projected paths drawn on top (`paths`: polylines in
/// (α, β), white; `marks`: named points, white squares). Cell (i, j) is centred at
/// (alphas[i], betas[j]).
pub fn landscape_png(
    values: &[f64],
    alphas: &[f64],
    betas: &[f64],
    color: &dyn Fn(f64) -> egui::Color32,
    paths: &[Vec<[f64; 2]>],
    marks: &[[f64; 2]],
) -> Option<image::RgbaImage> {
    let (nx, ny) = (alphas.len(), betas.len());
    if nx == 0 || ny == 0 || values.len() != nx * ny {
        return None;
    }
    let px = LANDSCAPE_CELL_PX;
    let (w, h) = (nx as u32 * px, ny as u32 * px);
    let mut img = image::RgbaImage::new(w, h);
    for j in 0..ny {
        for i in 0..nx {
            let c = color(values[j * nx + i]);
            let rgba = image::Rgba([c.r(), c.g(), c.b(), 255]);
            let y0 = (ny - 1 - j) as u32 * px;
            for y in y0..y0 + px {
                for x in i as u32 * px..(i as u32 + 1) * px {
                    img.put_pixel(x, y, rgba);
                }
            }
        }
    }
    // Plot coordinates → pixel centres: cell centres sit in the middle of their squares.
    let step = |v: &[f64]| if v.len() > 1 { v[1] - v[0] } else { 1.0 };
    let (da, db) = (step(alphas), step(betas));
    let to_px = |p: [f64; 2]| -> (f64, f64) {
        let x = ((p[0] - alphas[0]) / da + 0.5) * f64::from(px);
        let y = f64::from(h) - ((p[1] - betas[0]) / db + 0.5) * f64::from(px);
        (x, y)
    };
    let white = image::Rgba([255, 255, 255, 255]);
    let dot = |img: &mut image::RgbaImage, x: f64, y: f64, r: i64| {
        for dy in -r..=r {
            for dx in -r..=r {
                let (xx, yy) = (x.round() as i64 + dx, y.round() as i64 + dy);
                if xx >= 0 && yy >= 0 && (xx as u32) < w && (yy as u32) < h {
                    img.put_pixel(xx as u32, yy as u32, white);
                }
            }
        }
    };
    for path in paths {
        for seg in path.windows(2) {
            let (a, b) = (to_px(seg[0]), to_px(seg[1]));
            let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
            for k in 0..=n {
                let f = k as f64 / n as f64;
                dot(&mut img, a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1), 0);
            }
        }
    }
    for &m in marks {
        let (x, y) = to_px(m);
        dot(&mut img, x, y, 3);
    }
    Some(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_text_in_the_report_and_fields_in_the_csv() {
        let hostile = "x\" onerror=\"alert(1)\" a='<script>alert(2)</script>";
        let mut run = RunView::new(PathBuf::from("/tmp/<b>run</b>"), hostile.to_string());
        run.visible = true;
        let html = report_html(&[run.clone()], &[hostile.to_string()], None);
        assert!(!html.contains("onerror=\""), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(!html.contains("a='"), "{html}");
        assert!(html.contains("&quot; onerror=&quot;alert(1)&quot;"));
        assert_eq!(file_stem(hostile).len(), hostile.len());
        assert!(
            file_stem(hostile)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        // CSV: a label with a comma, quotes and line breaks is one quoted field.
        assert_eq!(csv_field("a,\"b\"\r\nc"), "\"a,\"\"b\"\"\r\nc\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}

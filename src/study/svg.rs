//! Plots as SVG text, drawn from the data (no window, no screenshot), for the study report:
//! line charts with CI bands, heatmaps with paths drawn on them, bar charts. Every string from
//! the user or the data goes through [`esc`].

use std::fmt::Write;

/// Escapes text for HTML / SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, at least four where the range
/// allows, so every plot can be read off.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| (hi - lo) / s <= 8.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// One series: points (x, y, CI low, CI high).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64, f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Vertical marks (x, label), e.g. onsets.
    pub marks: Vec<(f64, String)>,
}

const W: f64 = 460.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 76.0;

impl LineChart {
    pub fn render(&self) -> String {
        let finite = |v: f64| v.is_finite();
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|v| finite(*v))
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.1, p.2, p.3]))
            .filter(|v| finite(*v))
            .collect();
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            W / 2.0,
            esc(&self.title)
        );
        if xs.is_empty() || ys.is_empty() {
            svg.push_str(r#"<text x="20" y="120">no data</text></svg>"#);
            return svg;
        }
        let (x0, x1) = span(&xs);
        let (y0, y1) = span(&ys);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        // Axes, grid and ticks.
        for t in ticks(y0, y1) {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 4.0,
                py(t) + 4.0,
                fmt_tick(t),
                y = py(t)
            );
        }
        for t in ticks(x0, x1) {
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 14.0,
                fmt_tick(t),
                x = px(t)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(12,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - BOTTOM + 28.0,
            esc(&self.x_label),
            (TOP + H - BOTTOM) / 2.0,
            esc(&self.y_label)
        );
        for (x, label) in &self.marks {
            if finite(*x) {
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#555" stroke-dasharray="2,3"/><text x="{:.1}" y="{}" font-size="9">{}</text>"##,
                    H - BOTTOM,
                    px(*x) + 2.0,
                    TOP + 10.0,
                    esc(label),
                    x = px(*x)
                );
            }
        }
        for s in &self.series {
            let pts: Vec<&(f64, f64, f64, f64)> = s
                .points
                .iter()
                .filter(|p| finite(p.0) && finite(p.1))
                .collect();
            // CI band: upper edge forwards, lower edge back.
            let band: Vec<String> = pts
                .iter()
                .filter(|p| finite(p.3))
                .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.3)))
                .chain(
                    pts.iter()
                        .rev()
                        .filter(|p| finite(p.2))
                        .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.2))),
                )
                .collect();
            if band.len() >= 4 {
                let _ = write!(
                    svg,
                    r#"<polygon points="{}" fill="{}" fill-opacity="0.15" stroke="none"/>"#,
                    band.join(" "),
                    s.color
                );
            }
            let line: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                line.join(" "),
                s.color
            );
            for p in &pts {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"><title>{}: {} = {}</title></circle>"#,
                    px(p.0),
                    py(p.1),
                    s.color,
                    esc(&s.label),
                    fmt_tick(p.0),
                    fmt_tick(p.1)
                );
            }
        }
        // Legend below the x axis, two columns.
        for (k, s) in self.series.iter().enumerate() {
            let y = H - BOTTOM + 44.0 + 13.0 * (k / 2) as f64;
            let x = LEFT + (k % 2) as f64 * (W - LEFT - RIGHT) / 2.0;
            let dash = if s.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}" font-size="10">{}</text>"#,
                x + 6.0,
                x + 26.0,
                s.color,
                x + 30.0,
                y + 3.5,
                esc(&s.label)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// [min, max] with a margin; a flat range is widened so it still has ticks.
fn span(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-12 {
            lo.abs() * 0.05
        } else {
            0.5
        };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Viridis-like colour of `x` in [0, 1].
pub fn colour(x: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = x * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let w = f - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * w).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// A path drawn on a heatmap: points (α, β).
pub struct PathLine {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A heatmap of `values` (row by row from the lowest β, `alphas.len()` per row) with paths
/// and named points drawn on it and a colour bar.
pub struct Heatmap<'a> {
    pub title: String,
    pub alphas: &'a [f64],
    pub betas: &'a [f64],
    pub values: &'a [f64],
    pub paths: Vec<PathLine>,
    pub points: Vec<(String, f64, f64)>,
}

impl Heatmap<'_> {
    pub fn render(&self) -> String {
        let (w, h) = (420.0, 360.0);
        let (left, right, top, bottom) = (44.0, 70.0, 26.0, 36.0);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            w / 2.0,
            esc(&self.title)
        );
        let (nx, ny) = (self.alphas.len(), self.betas.len());
        if nx == 0 || ny == 0 || self.values.len() != nx * ny {
            svg.push_str(r#"<text x="20" y="120">no data</text></svg>"#);
            return svg;
        }
        let finite: Vec<f64> = self
            .values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let (v0, v1) = if finite.is_empty() {
            (0.0, 1.0)
        } else {
            let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            }
        };
        let step = |v: &[f64]| {
            if v.len() > 1 {
                (v[v.len() - 1] - v[0]) / (v.len() - 1) as f64
            } else {
                1.0
            }
        };
        let (da, db) = (step(self.alphas), step(self.betas));
        let (a0, a1) = (self.alphas[0] - da / 2.0, self.alphas[nx - 1] + da / 2.0);
        let (b0, b1) = (self.betas[0] - db / 2.0, self.betas[ny - 1] + db / 2.0);
        let px = |a: f64| left + (a - a0) / (a1 - a0) * (w - left - right);
        let py = |b: f64| h - bottom - (b - b0) / (b1 - b0) * (h - top - bottom);
        for (j, &b) in self.betas.iter().enumerate() {
            for (i, &a) in self.alphas.iter().enumerate() {
                let v = self.values[j * nx + i];
                let fill = if v.is_finite() {
                    colour((v - v0) / (v1 - v0))
                } else {
                    "#999999".into()
                };
                let (x, y) = (px(a - da / 2.0), py(b + db / 2.0));
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.2}" height="{:.2}" fill="{fill}"><title>α {} β {}: {}</title></rect>"#,
                    px(a + da / 2.0) - x + 0.3,
                    py(b - db / 2.0) - y + 0.3,
                    fmt_tick(a),
                    fmt_tick(b),
                    fmt_tick(v)
                );
            }
        }
        for t in ticks(a0, a1) {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                px(t),
                h - bottom + 14.0,
                fmt_tick(t)
            );
        }
        for t in ticks(b0, b1) {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 4.0,
                py(t) + 4.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">α (θ₀ → θ_H)</text><text transform="translate(12,{}) rotate(-90)" text-anchor="middle">β (towards the bend)</text>"#,
            (left + w - right) / 2.0,
            h - 6.0,
            (top + h - bottom) / 2.0
        );
        for PathLine {
            label,
            color,
            dashed,
            points,
        } in &self.paths
        {
            let line: Vec<String> = points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
                .collect();
            let dash = if *dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"{dash}><title>{}</title></polyline>"#,
                line.join(" "),
                esc(label)
            );
        }
        for (label, a, b) in &self.points {
            let (x, y) = (px(*a), py(*b));
            let _ = write!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="white" stroke="black"/><text x="{:.1}" y="{:.1}" fill="white" stroke="black" stroke-width="0.3" font-weight="bold">{}</text>"##,
                x + 6.0,
                y - 6.0,
                esc(label),
            );
        }
        // Colour bar.
        let (bx, bw) = (w - right + 10.0, 14.0);
        let n = 40;
        for k in 0..n {
            let f0 = k as f64 / n as f64;
            let y = h - bottom - (f0 + 1.0 / n as f64) * (h - top - bottom);
            let _ = write!(
                svg,
                r#"<rect x="{bx}" y="{y:.1}" width="{bw}" height="{:.2}" fill="{}"/>"#,
                (h - top - bottom) / n as f64 + 0.3,
                colour(f0 + 0.5 / n as f64)
            );
        }
        for t in ticks(v0, v1) {
            let y = h - bottom - (t - v0) / (v1 - v0) * (h - top - bottom);
            let _ = write!(
                svg,
                r#"<text x="{}" y="{:.1}">{}</text>"#,
                bx + bw + 3.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Horizontal bars (label, value, colour), zero in the middle when values have both signs.
pub fn bar_chart(title: &str, bars: &[(String, f64, &'static str)]) -> String {
    let row = 16.0;
    let (w, left, top) = (460.0, 170.0, 26.0);
    let h = top + row * bars.len().max(1) as f64 + 24.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    let max = bars
        .iter()
        .map(|b| b.1.abs())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let any_negative = bars.iter().any(|b| b.1 < 0.0);
    let span = w - left - 60.0;
    let zero = if any_negative {
        left + span / 2.0
    } else {
        left
    };
    let scale = if any_negative { span / 2.0 } else { span } / max;
    for (k, (label, v, color)) in bars.iter().enumerate() {
        let y = top + row * k as f64;
        let v = if v.is_finite() { *v } else { 0.0 };
        let (x, bw) = if v >= 0.0 {
            (zero, v * scale)
        } else {
            (zero + v * scale, -v * scale)
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#,
            left - 4.0,
            y + 11.0,
            esc(label),
            y + 2.0,
            row - 4.0,
            x + bw + 3.0,
            y + 11.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{zero:.1}" x2="{zero:.1}" y1="{top}" y2="{:.1}" stroke="#333"/></svg>"##,
        h - 24.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_short_ranges_with_several_labels() {
        let t = ticks(0.0, 0.06);
        assert!(t.len() >= 4, "{t:?}");
        assert!(t.iter().all(|v| (0.0..=0.06).contains(v)));
        assert!(ticks(-0.25, 1.25).len() >= 4);
        assert_eq!(fmt_tick(0.25), "0.25");
    }

    #[test]
    fn hostile_labels_are_escaped_everywhere() {
        let evil = "x\" onload=\"alert(1)<script>";
        let chart = LineChart {
            title: evil.into(),
            x_label: evil.into(),
            y_label: evil.into(),
            series: vec![Series {
                label: evil.into(),
                color: "#1f77b4",
                dashed: false,
                points: vec![(0.0, 1.0, 0.9, 1.1), (1.0, 2.0, 1.9, 2.1)],
            }],
            marks: vec![(0.5, evil.into())],
        }
        .render();
        let heat = Heatmap {
            title: evil.into(),
            alphas: &[0.0, 1.0],
            betas: &[0.0],
            values: &[1.0, 2.0],
            paths: vec![PathLine {
                label: evil.into(),
                color: "red",
                dashed: false,
                points: vec![(0.0, 0.0), (1.0, 0.0)],
            }],
            points: vec![(evil.into(), 0.0, 0.0)],
        }
        .render();
        let bars = bar_chart(evil, &[(evil.into(), -1.0, "red")]);
        for svg in [chart, heat, bars] {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(!svg.contains("\" onload"), "{svg}");
        }
    }

    #[test]
    fn a_chart_places_points_inside_its_frame() {
        let svg = LineChart {
            series: vec![Series {
                label: "a".into(),
                color: "#000",
                dashed: true,
                points: vec![(0.0, 0.0, -0.1, 0.1), (1.0, 1.0, 0.9, 1.1)],
            }],
            ..Default::default()
        }
        .render();
        let circles: Vec<(f64, f64)> = svg
            .split("<circle cx=\"")
            .skip(1)
            .map(|s| {
                let cx: f64 = s.split('"').next().unwrap().parse().unwrap();
                let cy: f64 = s
                    .split("cy=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                (cx, cy)
            })
            .collect();
        assert_eq!(circles.len(), 2);
        for (x, y) in &circles {
            assert!(*x > LEFT && *x < W - RIGHT && *y > TOP && *y < H - BOTTOM);
        }
        // y grows upwards: the second point (higher value) is drawn higher.
        assert!(circles[1].1 < circles[0].1 && circles[1].0 > circles[0].0);
    }
}

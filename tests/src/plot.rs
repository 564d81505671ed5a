//! Line charts as standalone SVG, for the simulator's `--plot`.

use std::fmt::Write;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis labels and lines.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Whether the y axis starts at 0 (otherwise at the smallest value).
    pub y_from_zero: bool,
    /// A logarithmic y axis, ticked at powers of ten, for values that span decades (values at or
    /// below zero are drawn at the bottom). `y_from_zero` does not apply.
    pub y_log: bool,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let log = self.y_log;
        let ty = move |y: f64| if log { y.max(1e-9).log10() } else { y };
        let all = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all {
            let y = ty(y);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.y_from_zero && !log {
            y0 = y0.min(0.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let (xs, ys) = (
            step(x1 - x0, 8.0),
            if log { 1.0 } else { step(y1 - y0, 6.0) },
        );
        let (x0, x1) = ((x0 / xs).floor() * xs, (x1 / xs).ceil() * xs);
        let (y0, y1) = ((y0 / ys).floor() * ys, (y1 / ys).ceil() * ys);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (ty(y) - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        let label = |y: f64| trim(if log { 10f64.powf(y) } else { y });

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        let mut x = x0;
        while x <= x1 + xs / 2.0 {
            let p = px(x);
            let _ = writeln!(
                s,
                r##"<line x1="{p:.1}" y1="{}" x2="{p:.1}" y2="{}" stroke="#ddd"/><text x="{p:.1}" y="{}" text-anchor="middle">{}</text>"##,
                TOP,
                H - BOTTOM,
                H - BOTTOM + 16.0,
                trim(x)
            );
            x += xs;
        }
        let mut y = y0;
        while y <= y1 + ys / 2.0 {
            let p = H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{p:.1}" x2="{}" y2="{p:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT,
                W - RIGHT,
                LEFT - 6.0,
                p + 4.0,
                label(y)
            );
            y += ys;
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 12.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            (TOP + H - BOTTOM) / 2.0,
            escape(&self.y_label)
        );
        for (k, series) in self.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            let ly = TOP + 8.0 + 16.0 * k as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                LEFT + 12.0,
                LEFT + 32.0,
                LEFT + 38.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Writes the SVG to `path`.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.svg())
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_inside_the_frame() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series {
                    name: "one".into(),
                    points: vec![(0.0, 0.0), (1.0, 0.5), (2.0, 1.0)],
                },
                Series {
                    name: "two".into(),
                    points: vec![(0.0, 1.0), (2.0, 0.0)],
                },
            ],
            y_from_zero: true,
            y_log: false,
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b"));
        for p in svg.split("points=\"").skip(1) {
            let pts = p.split('"').next().unwrap();
            for xy in pts.split(' ') {
                let (x, y) = xy.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=W - RIGHT).contains(&x) && (TOP..=H - BOTTOM).contains(&y));
            }
        }
    }

    #[test]
    fn a_log_axis_ticks_powers_of_ten_and_keeps_lines_inside() {
        let chart = Chart {
            title: "log".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "decades".into(),
                points: vec![(1.0, 27.0), (2.0, 2_900.0), (3.0, 29_000.0)],
            }],
            y_from_zero: true,
            y_log: true,
        };
        let svg = chart.svg();
        for tick in [">10<", ">100<", ">1000<", ">10000<", ">100000<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
        let pts = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ys: Vec<f64> = pts
            .split(' ')
            .map(|xy| xy.split_once(',').unwrap().1.parse().unwrap())
            .collect();
        assert!(ys.iter().all(|y| (TOP..=H - BOTTOM).contains(y)));
        // Equal ratios are equal distances: 27 -> 2,900 is about two decades, 2,900 -> 29,000 one.
        let (d1, d2) = (ys[0] - ys[1], ys[1] - ys[2]);
        assert!((d1 / d2 - 2.03).abs() < 0.05, "{d1} {d2}");
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(step(10.0, 5.0), 2.0);
        assert_eq!(step(0.9, 6.0), 0.2);
        assert_eq!(step(1000.0, 8.0), 200.0);
    }
}

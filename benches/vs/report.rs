//! Statistics, the text table, BENCHMARKS.md and the SVG chart.

use std::fmt::Write as _;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One figure: samples per server (index 0 is the server under test).
pub struct Figure {
    pub key: &'static str,
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub samples: Vec<Result<Vec<f64>, String>>,
}

pub struct Stats {
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

pub fn stats(v: &[f64]) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    Some(Stats {
        median,
        p90: rank(0.9),
        max: s[s.len() - 1],
    })
}

impl Figure {
    pub fn median(&self, server: usize) -> Option<f64> {
        match self.samples.get(server)? {
            Ok(v) => stats(v).map(|s| s.median),
            Err(_) => None,
        }
    }

    /// How many times better the server under test is than the baseline (medians).
    pub fn ratio(&self) -> Option<f64> {
        let (a, b) = (self.median(0)?, self.median(1)?);
        if a <= 0.0 || b <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Lower => b / a,
            Better::Higher => a / b,
        })
    }
}

pub fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(r: &Result<Vec<f64>, String>) -> String {
    match r {
        Ok(v) => match stats(v) {
            Some(s) => format!("{} / {} / {}", num(s.median), num(s.p90), num(s.max)),
            None => "n/a".into(),
        },
        Err(e) => format!("n/a ({e})"),
    }
}

/// Rows of (figure, unit, better, server cells..., ratio).
fn rows(figs: &[Figure], names: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head = vec!["figure".to_string(), "unit".into()];
    for n in names {
        head.push(format!("{n} median / p90 / max"));
    }
    if names.len() > 1 {
        head.push("ratio".into());
    }
    let rows = figs
        .iter()
        .map(|f| {
            let mut r = vec![
                f.name.clone(),
                format!(
                    "{} ({} is better)",
                    f.unit,
                    if f.better == Better::Lower {
                        "lower"
                    } else {
                        "higher"
                    }
                ),
            ];
            for s in &f.samples {
                r.push(cell(s));
            }
            if names.len() > 1 {
                r.push(
                    f.ratio()
                        .map(|x| format!("{x:.2}×"))
                        .unwrap_or("n/a".into()),
                );
            }
            r
        })
        .collect();
    (head, rows)
}

pub fn text_table(figs: &[Figure], names: &[String]) -> String {
    let (head, rows) = rows(figs, names);
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            let _ = write!(s, "{c}{}  ", " ".repeat(pad));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head);
    for r in &rows {
        out += &line(r);
    }
    out
}

pub fn markdown_table(figs: &[Figure], names: &[String]) -> String {
    let (head, rows) = rows(figs, names);
    let mut out = format!("| {} |\n", head.join(" | "));
    out += &format!("|{}\n", "---|".repeat(head.len()));
    for r in rows {
        out += &format!("| {} |\n", r.join(" | ").replace('\n', " "));
    }
    out
}

/// A line chart of MB/s against output chunk size, one line per server.
pub fn svg_chart(title: &str, xs: &[usize], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (w, h) = (720.0, 400.0);
    let (l, r, t, b) = (70.0, 170.0, 40.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(1.0f64, |a, &b| a.max(b));
    let step = nice_step(ymax / 5.0);
    let ytop = (ymax / step).ceil() * step;
    let x_at = |i: usize| l + pw * i as f64 / (xs.len().max(2) - 1) as f64;
    let y_at = |v: f64| t + ph * (1.0 - v / ytop);
    let colors = ["#1f77b4", "#d62728", "#2ca02c"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        l + pw / 2.0,
        esc(title)
    );
    let mut v = 0.0;
    while v <= ytop + 1e-9 {
        let y = y_at(v);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l + pw,
            l - 6.0,
            y + 4.0,
            num(v)
        );
        v += step;
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x_at(i),
            t + ph + 18.0,
            human_bytes(*x)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">bytes per write(2) by the child (log scale)</text>"#,
        l + pw / 2.0,
        h - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">decoded MB/s at the client</text>"#,
        t + ph / 2.0,
        t + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    for (k, (name, vals)) in series.iter().enumerate() {
        let c = colors[k % colors.len()];
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x_at(i), y_at(v))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap();
            let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
        let ly = t + 16.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            l + pw + 12.0,
            l + pw + 32.0,
            l + pw + 38.0,
            ly + 4.0,
            esc(name)
        );
    }
    s += "</svg>\n";
    s
}

fn nice_step(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// Replace the text between the bench markers of an existing file, or make a new one.
pub fn splice(existing: Option<String>, generated: &str) -> String {
    const BEGIN: &str =
        "<!-- bench:begin (generated by benches/vs.rs; edit outside the markers) -->";
    const END: &str = "<!-- bench:end -->";
    if let Some(old) = existing {
        if let (Some(a), Some(b)) = (old.find("<!-- bench:begin"), old.find(END)) {
            if a < b {
                return format!(
                    "{}{BEGIN}\n{generated}{END}{}",
                    &old[..a],
                    &old[b + END.len()..]
                );
            }
        }
    }
    format!("# Benchmarks\n\n{BEGIN}\n{generated}{END}\n")
}

//! The backtest's HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched), with the
//! alerts, alerts per week per scope, and a timeline per alerting scope: the view's negative rate against the
//! rate baseline, its negative count against the expected count, and the alert spans shaded. People look at the
//! timelines rather than read the table; no script means nothing to break in a mail client or an offline browser.

use std::fmt::Write;

use chrono::DateTime;

use super::{BacktestReport, TimelinePoint};
use crate::alert::DetectorKind;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 10.0;
const PANEL_HEIGHT: f64 = 110.0;
const PANEL_GAP: f64 = 26.0;
const TOP: f64 = 14.0;
/// Most points drawn per line: about one per horizontal pixel; a week of one-minute closes is binned down to this.
const MAX_POINTS: usize = 1_040;
/// Examples shown per alert.
const EXAMPLES_SHOWN: usize = 3;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.num{text-align:right}.rate{color:#c05800}.volume{color:#6a3d9a}\
svg{display:block;margin:6px 0 18px}.legend span{margin-right:16px}\
.swatch{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}";

/// Renders the report as one HTML page. `subtitle` says what was backtested (files, settings).
pub fn render(report: &BacktestReport, subtitle: &str) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sentmon backtest</title>\
         <style>{STYLE}</style></head><body>\n<h1>sentmon backtest</h1>\n<p>{}</p>\n",
        escape(subtitle)
    );
    let span = match (report.first_event_ms, report.last_event_ms) {
        (Some(first), Some(last)) => format!("{} to {} ({:.2} weeks)", time_text(first), time_text(last), report.weeks),
        _ => "no messages".to_owned(),
    };
    let _ = writeln!(
        page,
        "<p>{} messages counted, {} late (left out), {span}. {} alerts.</p>",
        report.messages,
        report.late_messages,
        report.alerts.len()
    );
    render_rates(&mut page, report);
    render_alerts(&mut page, report);
    if let (Some(first), Some(last)) = (report.first_event_ms, report.last_event_ms) {
        page.push_str("<h2>Timelines</h2>\n<p class=\"legend\"><span><i class=\"swatch\" style=\"background:#d62728\"></i>negative (5-minute view)</span>\
                       <span><i class=\"swatch\" style=\"background:#777\"></i>baseline / expected</span>\
                       <span><i class=\"swatch\" style=\"background:#f4b183\"></i>rate alert</span>\
                       <span><i class=\"swatch\" style=\"background:#cab2d6\"></i>volume alert</span></p>\n");
        for rate in &report.alerts_per_week {
            let Some(points) = report.timelines.get(&super::scope_key(&rate.scope)) else {
                continue;
            };
            let _ = writeln!(page, "<h3>{} {}</h3>", rate.scope.kind(), escape(rate.scope.name()));
            render_timeline(&mut page, report, rate.scope.name(), points, first, last.max(first + 1));
        }
    }
    page.push_str("</body></html>\n");
    page
}

fn render_rates(page: &mut String, report: &BacktestReport) {
    page.push_str("<h2>Alerts per week per scope</h2>\n");
    if report.alerts_per_week.is_empty() {
        page.push_str("<p>No alert would have fired.</p>\n");
        return;
    }
    page.push_str("<table><tr><th>scope</th><th>alerts</th><th>rate</th><th>volume</th><th>per week</th></tr>\n");
    for rate in &report.alerts_per_week {
        let per_week = rate.alerts_per_week.map_or_else(|| "-".to_owned(), |per_week| format!("{per_week:.1}"));
        let _ = writeln!(
            page,
            "<tr><td>{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{per_week}</td></tr>",
            rate.scope.kind(),
            escape(rate.scope.name()),
            rate.alerts,
            rate.rate_alerts,
            rate.volume_alerts
        );
    }
    page.push_str("</table>\n");
}

fn render_alerts(page: &mut String, report: &BacktestReport) {
    if report.alerts.is_empty() {
        return;
    }
    page.push_str("<h2>Alerts</h2>\n<table><tr><th>fired</th><th>resolved</th><th>test</th><th>what rose</th><th>examples</th></tr>\n");
    for alert in &report.alerts {
        let examples: Vec<String> = alert
            .firing
            .examples
            .iter()
            .take(EXAMPLES_SHOWN)
            .map(|example| format!("{:.0}% {}", example.negative_probability * 100.0, escape(&example.text)))
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            time_text(alert.fired_at_ms),
            alert.resolved_at_ms.map_or_else(|| "still firing at the end".to_owned(), time_text),
            alert.detector.as_str(),
            alert.detector.as_str(),
            escape(&alert.summary),
            examples.join("<br>")
        );
    }
    page.push_str("</table>\n");
}

/// One scope's two panels on the report's shared time axis.
fn render_timeline(
    page: &mut String,
    report: &BacktestReport,
    scope: &str,
    points: &[TimelinePoint],
    first: i64,
    last: i64,
) {
    let height = TOP + 2.0 * PANEL_HEIGHT + PANEL_GAP + 22.0;
    let x_of = |time_ms: i64| LEFT + (time_ms - first) as f64 / (last - first) as f64 * (WIDTH - LEFT - RIGHT);
    let _ = write!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline of {}\">",
        escape(scope)
    );
    let rate_top = TOP;
    let count_top = TOP + PANEL_HEIGHT + PANEL_GAP;
    // Alert spans first, under the lines.
    for alert in report.alerts.iter().filter(|alert| alert.scope.name() == scope) {
        let start = x_of(alert.firing.window_start_ms.max(first));
        let end = x_of(alert.resolved_at_ms.unwrap_or(last).min(last)).max(start + 2.0);
        let fill = match alert.detector {
            DetectorKind::Rate => "#f4b183",
            DetectorKind::Volume => "#cab2d6",
        };
        let _ = write!(
            page,
            "<rect x=\"{start:.1}\" y=\"{rate_top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" opacity=\"0.6\"><title>{}</title></rect>",
            end - start,
            count_top + PANEL_HEIGHT - rate_top,
            escape(&alert.summary)
        );
    }
    let binned = bin(points);
    let rate_max = binned
        .iter()
        .flat_map(|point| [point.negative_rate, point.baseline_rate])
        .flatten()
        .fold(0.05_f64, f64::max)
        .min(1.0);
    let count_max = binned
        .iter()
        .flat_map(|point| [Some(point.negative_count as f64), point.expected_negative_count])
        .flatten()
        .fold(1.0_f64, f64::max);
    panel_frame(page, rate_top, &format!("{:.0}%", rate_max * 100.0), "negative rate");
    panel_frame(page, count_top, &format!("{count_max:.0}"), "negative count");
    let y_rate = |rate: f64| rate_top + PANEL_HEIGHT * (1.0 - rate / rate_max);
    let y_count = |count: f64| count_top + PANEL_HEIGHT * (1.0 - count / count_max);
    polyline(page, binned.iter().filter_map(|p| p.baseline_rate.map(|r| (x_of(p.end_ms), y_rate(r)))), "#777", true);
    polyline(
        page,
        binned.iter().filter_map(|p| p.negative_rate.map(|r| (x_of(p.end_ms), y_rate(r)))),
        "#d62728",
        false,
    );
    polyline(
        page,
        binned.iter().filter_map(|p| p.expected_negative_count.map(|c| (x_of(p.end_ms), y_count(c)))),
        "#777",
        true,
    );
    polyline(page, binned.iter().map(|p| (x_of(p.end_ms), y_count(p.negative_count as f64))), "#d62728", false);
    for (tick_ms, label) in time_ticks(first, last) {
        let x = x_of(tick_ms);
        let _ = write!(
            page,
            "<line x1=\"{x:.1}\" y1=\"{rate_top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{label}</text>",
            count_top + PANEL_HEIGHT,
            count_top + PANEL_HEIGHT + 15.0
        );
    }
    page.push_str("</svg>\n");
}

fn panel_frame(page: &mut String, top: f64, max_label: &str, name: &str) {
    let _ = write!(
        page,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{:.1}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#bbb\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{max_label}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">{name}</text>",
        WIDTH - LEFT - RIGHT,
        LEFT - 4.0,
        top + 10.0,
        LEFT - 4.0,
        top + PANEL_HEIGHT,
        LEFT + 4.0,
        top + 11.0
    );
}

fn polyline(page: &mut String, points: impl Iterator<Item = (f64, f64)>, colour: &str, dashed: bool) {
    let mut coordinates = String::new();
    for (x, y) in points {
        let _ = write!(coordinates, "{x:.1},{y:.1} ");
    }
    if coordinates.is_empty() {
        return;
    }
    let dash = if dashed { " stroke-dasharray=\"4 3\"" } else { "" };
    let _ = write!(
        page,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\"{dash}/>",
        coordinates.trim_end()
    );
}

/// At most [`MAX_POINTS`] points: consecutive closes merged, keeping each bin's peak negative rate and count (a
/// spike must not vanish in the averaging) and its mean baselines.
fn bin(points: &[TimelinePoint]) -> Vec<TimelinePoint> {
    let per_bin = points.len().div_ceil(MAX_POINTS).max(1);
    points
        .chunks(per_bin)
        .map(|chunk| {
            let mean =
                |values: Vec<f64>| (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
            TimelinePoint {
                end_ms: chunk[chunk.len() - 1].end_ms,
                negative_rate: chunk.iter().filter_map(|point| point.negative_rate).reduce(f64::max),
                negative_count: chunk.iter().map(|point| point.negative_count).max().unwrap_or(0),
                total_count: chunk.iter().map(|point| point.total_count).max().unwrap_or(0),
                baseline_rate: mean(chunk.iter().filter_map(|point| point.baseline_rate).collect()),
                expected_negative_count: mean(chunk.iter().filter_map(|point| point.expected_negative_count).collect()),
            }
        })
        .collect()
}

/// Gridline times and labels: the smallest step of hours or days that gives at most 10 ticks, on UTC boundaries.
fn time_ticks(first: i64, last: i64) -> Vec<(i64, String)> {
    const HOUR_MS: i64 = 3_600_000;
    let step_ms = [1, 3, 6, 12, 24, 48, 168]
        .iter()
        .map(|hours| hours * HOUR_MS)
        .find(|step| (last - first) / step <= 10)
        .unwrap_or(30 * 24 * HOUR_MS);
    let format = if step_ms >= 24 * HOUR_MS { "%a %m-%d" } else { "%m-%d %H:%M" };
    let mut tick = first - first.rem_euclid(step_ms) + step_ms;
    let mut ticks = Vec::new();
    while tick < last {
        if let Some(time) = DateTime::from_timestamp_millis(tick) {
            ticks.push((tick, time.format(format).to_string()));
        }
        tick += step_ms;
    }
    ticks
}

fn time_text(time_ms: i64) -> String {
    DateTime::from_timestamp_millis(time_ms)
        .map_or_else(|| time_ms.to_string(), |time| time.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_names_and_texts() {
        assert_eq!(escape("<b>\"M&A\"</b> 'x'"), "&lt;b&gt;&quot;M&amp;A&quot;&lt;/b&gt; &#39;x&#39;");
    }

    #[test]
    fn bins_keep_peaks_and_bound_the_points() {
        let points: Vec<TimelinePoint> = (0..10_080)
            .map(|minute| TimelinePoint {
                end_ms: minute * 60_000,
                negative_rate: Some(if minute == 5_000 { 0.9 } else { 0.1 }),
                negative_count: if minute == 5_000 { 300 } else { 6 },
                total_count: 40,
                baseline_rate: Some(0.1),
                expected_negative_count: Some(6.0),
            })
            .collect();
        let binned = bin(&points);
        assert!(binned.len() <= MAX_POINTS, "{}", binned.len());
        assert_eq!(binned.iter().filter(|point| point.negative_count == 300).count(), 1);
        assert!(binned.iter().any(|point| point.negative_rate == Some(0.9)));
    }

    #[test]
    fn ticks_fall_on_utc_days_for_a_week() {
        let week_ms = 7 * 24 * 3_600_000;
        let ticks = time_ticks(1_700_000_000_000, 1_700_000_000_000 + week_ms);
        assert!((6..=8).contains(&ticks.len()), "{ticks:?}");
        assert!(ticks.iter().all(|(tick, _)| tick % (24 * 3_600_000) == 0));
    }
}

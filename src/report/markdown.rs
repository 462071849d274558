//! `report.md`: the numbers of a [`Report`] as a person reads them.

use super::{Report, ResultRow};
use std::fmt::Write;

/// Renders the Markdown report: title, dataset and protocol, one table holding the
/// results and the baselines (marked), per-class accuracy of the best result beside its
/// baseline, timing, network, extra numbers, notes and links to `report.figures`.
/// Percentages are shown with two decimals and ± one standard deviation over repeats.
pub fn render_markdown(report: &Report) -> String {
    let mut s = String::new();
    // `write!` into a String cannot fail; the `let _` keeps that explicit.
    let _ = render_into(&mut s, report);
    s
}

fn render_into(s: &mut String, r: &Report) -> std::fmt::Result {
    header(s, r)?;
    dataset(s, r)?;
    protocol(s, r)?;
    results(s, r)?;
    paired(s, r)?;
    paired_controls(s, r)?;
    per_class(s, r)?;
    timing(s, r)?;
    trailer(s, r)?;
    Ok(())
}

/// Title line: experiment, version, config hash, seed.
fn header(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "# {}\n", esc(&r.experiment))?;
    writeln!(
        s,
        "geodyn {} · config `{}` · seed {}\n",
        esc(&r.geodyn_version),
        esc(&r.config_hash),
        r.seed
    )?;
    Ok(())
}

/// The images used.
fn dataset(s: &mut String, r: &Report) -> std::fmt::Result {
    let d = &r.dataset;
    writeln!(s, "## Dataset\n")?;
    writeln!(
        s,
        "- images `{}`, labels `{}`: n = {}",
        esc(&d.images),
        esc(&d.labels),
        d.n
    )?;
    if d.query_images.is_some() || d.query_labels.is_some() || d.n_query_set.is_some() {
        writeln!(
            s,
            "- query set: images `{}`, labels `{}`, n = {}",
            esc(d.query_images.as_deref().unwrap_or("-")),
            esc(d.query_labels.as_deref().unwrap_or("-")),
            d.n_query_set.map_or("-".to_string(), |n| n.to_string())
        )?;
    }
    if !d.class_counts.is_empty() {
        let counts: Vec<String> = d
            .class_counts
            .iter()
            .enumerate()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        writeln!(s, "- class counts: {}", counts.join(", "))?;
    }
    Ok(())
}

/// The split protocol and the kNN.
fn protocol(s: &mut String, r: &Report) -> std::fmt::Result {
    let p = &r.protocol;
    writeln!(s, "\n## Protocol\n")?;
    writeln!(
        s,
        "- {}: {} reference / {} query, {} repeat{}, split seed {}",
        p.kind.name(),
        p.n_reference,
        p.n_query,
        p.repeats,
        if p.repeats == 1 { "" } else { "s" },
        p.split_seed
    )?;
    writeln!(
        s,
        "- kNN: k = {}, metric {}, weighting {}",
        p.k,
        p.metric.name(),
        p.weighting.name()
    )?;
    Ok(())
}

/// One table: the results (best marked) and the baselines.
fn results(s: &mut String, r: &Report) -> std::fmt::Result {
    let p = &r.protocol;
    writeln!(s, "\n## Results\n")?;
    let best = best_index(&r.results);
    if r.results.is_empty() && r.baselines.is_empty() {
        writeln!(s, "No results.")?;
    } else {
        writeln!(
            s,
            "| | embedding | classifier | N | time (ms) | dim | accuracy (%) |"
        )?;
        writeln!(s, "|---|---|---|---:|---:|---:|---:|")?;
        for (i, row) in r.results.iter().enumerate() {
            let mark = if Some(i) == best { "best" } else { "" };
            table_row(s, mark, row)?;
        }
        for row in &r.baselines {
            table_row(s, "baseline", row)?;
        }
        writeln!(
            s,
            "\nAccuracy: mean ± sd over {} repeat{}.",
            p.repeats,
            if p.repeats == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

/// Every row beside raw pixels under the same readout on the same splits:
/// the paired difference and its standard error over the splits.
fn paired(s: &mut String, r: &Report) -> std::fmt::Result {
    let pairs: Vec<(&ResultRow, &ResultRow, super::Paired)> = r
        .results
        .iter()
        .chain(&r.baselines)
        .filter(|row| row.embedding != "raw_pixels")
        .filter_map(|row| {
            let base = r
                .baselines
                .iter()
                .find(|b| b.embedding == "raw_pixels" && b.classifier == row.classifier)?;
            Some((row, base, super::paired_difference(row, base)?))
        })
        .collect();
    paired_table(
        s,
        &pairs,
        "Beside raw pixels, same readout, same splits",
        "| embedding | classifier | dim | accuracy (%) | raw pixels (%) | difference (points) | splits |\n|---|---|---:|---:|---:|---:|---:|",
        |row, _| format!("{} | {}", row.dim, pct(row.accuracy_mean)),
        "Difference: mean of the per-split differences ± its standard error (sd / sqrt(splits)).",
    )
}

/// A section of paired rows: `header` (the table's two header lines), then
/// one line per pair, `| embedding | classifier | <middle> | base (%) |
/// difference | splits |`, and `footer`. Nothing when there are no pairs.
fn paired_table(
    s: &mut String,
    pairs: &[(&ResultRow, &ResultRow, super::Paired)],
    title: &str,
    header: &str,
    middle: impl Fn(&ResultRow, &ResultRow) -> String,
    footer: &str,
) -> std::fmt::Result {
    if pairs.is_empty() {
        return Ok(());
    }
    writeln!(s, "\n## {title}\n")?;
    writeln!(s, "{header}")?;
    for (row, base, p) in pairs {
        writeln!(
            s,
            "| {} | {} | {} | {} | {:+.2} ± {:.2} | {} |",
            esc(&row.embedding),
            row.classifier.name(),
            middle(row, base),
            pct(base.accuracy_mean),
            100.0 * p.mean,
            100.0 * p.se,
            p.splits
        )?;
    }
    writeln!(s, "\n{footer}")
}

/// What each view is set against besides raw pixels (issue 13): a
/// geometry-control row (`<view>_<control>`) against the same view of the
/// built network, and every view against the no-dynamics controls of its own
/// dimension (`random_features_<dim>`, `rate_product_<dim>`), each under the
/// same readout on the same splits. Rows that cannot be paired (different
/// split counts) are left out.
fn control_pairs(r: &Report) -> Vec<(&ResultRow, &ResultRow, super::Paired)> {
    let same = |a: &ResultRow, b: &ResultRow| a.classifier == b.classifier;
    let mut pairs = Vec::new();
    for row in &r.results {
        if let Some(view) = crate::network::NetworkControl::built_view(&row.embedding) {
            let built = r
                .results
                .iter()
                .find(|b| same(row, b) && b.embedding == view);
            if let Some(b) = built {
                pairs.push((row, b));
            }
            continue;
        }
        for prefix in ["random_features_", "rate_product_"] {
            let name = format!("{prefix}{}", row.dim);
            if let Some(b) = r
                .baselines
                .iter()
                .find(|b| same(row, b) && b.embedding == name)
            {
                pairs.push((row, b));
            }
        }
    }
    pairs
        .into_iter()
        .filter_map(|(a, b)| Some((a, b, super::paired_difference(a, b)?)))
        .collect()
}

fn paired_controls(s: &mut String, r: &Report) -> std::fmt::Result {
    paired_table(
        s,
        &control_pairs(r),
        "Beside the controls, same readout, same splits",
        "| embedding | classifier | accuracy (%) | control | control (%) | difference (points) | splits |\n|---|---|---:|---|---:|---:|---:|",
        |row, base| format!("{} | {}", pct(row.accuracy_mean), esc(&base.embedding)),
        "A geometry-control row is set against the same view of the built network (control minus built); every other view against the no-dynamics control of its dimension (view minus control).",
    )
}

/// Per-class accuracy of the best result beside its matching baseline.
fn per_class(s: &mut String, r: &Report) -> std::fmt::Result {
    let best = best_index(&r.results);
    if let Some(b) = best.map(|i| &r.results[i]) {
        let base = matching_baseline(b, &r.baselines);
        let n_classes = b.per_class.len().max(base.map_or(0, |x| x.per_class.len()));
        if n_classes > 0 {
            writeln!(s, "\n## Per-class accuracy\n")?;
            write!(s, "| class | {} (%) |", esc(&describe(b)))?;
            if let Some(base) = base {
                write!(
                    s,
                    " baseline {} (%) | difference (points) |",
                    esc(&describe(base))
                )?;
            }
            writeln!(s)?;
            writeln!(
                s,
                "|---:|---:|{}",
                if base.is_some() { "---:|---:|" } else { "" }
            )?;
            for c in 0..n_classes {
                let v = b.per_class.get(c).copied();
                write!(s, "| {c} | {} |", pct_opt(v))?;
                if let Some(base) = base {
                    let w = base.per_class.get(c).copied();
                    let diff = match (v, w) {
                        (Some(v), Some(w)) => format!("{:+.2}", 100.0 * (v - w)),
                        _ => "-".into(),
                    };
                    write!(s, " {} | {diff} |", pct_opt(w))?;
                }
                writeln!(s)?;
            }
        }
    }
    Ok(())
}

/// Where the time went.
fn timing(s: &mut String, r: &Report) -> std::fmt::Result {
    let t = &r.timing;
    writeln!(s, "\n## Timing\n")?;
    write!(s, "- encoding: {:.2} s", t.encode_s)?;
    if t.images_encoded > 0 {
        write!(
            s,
            " for {} images ({:.2} ms per image)",
            t.images_encoded,
            1000.0 * t.encode_s / t.images_encoded as f64
        )?;
    }
    writeln!(s, "\n- evaluation: {:.2} s", t.evaluate_s)?;
    if let Some(n) = t.total_arrivals {
        writeln!(s, "- arrivals: {n} in total")?;
    }
    if let Some(a) = t.arrivals_per_s {
        writeln!(s, "- simulation speed: {a:.3e} arrivals/s")?;
    }
    Ok(())
}

/// Network summary, extra numbers, notes and figure links.
fn trailer(s: &mut String, r: &Report) -> std::fmt::Result {
    if let Some(net) = &r.network {
        writeln!(s, "\n## Network\n")?;
        let pretty = serde_json::to_string_pretty(net).unwrap_or_else(|_| net.to_string());
        writeln!(s, "```json\n{pretty}\n```")?;
    }

    if !r.extra.is_empty() {
        writeln!(s, "\n## Extra\n")?;
        for (k, v) in &r.extra {
            writeln!(s, "- {}: {}", esc(k), esc(&v.to_string()))?;
        }
    }

    if !r.notes.is_empty() {
        writeln!(s, "\n## Notes\n")?;
        for n in &r.notes {
            writeln!(s, "- {n}")?;
        }
    }

    if !r.figures.is_empty() {
        writeln!(s, "\n## Figures\n")?;
        for f in &r.figures {
            // Angle brackets let the link target hold spaces.
            writeln!(s, "![{}](<{}>)\n", esc(f), f)?;
        }
    }
    Ok(())
}

fn table_row(s: &mut String, mark: &str, row: &ResultRow) -> std::fmt::Result {
    writeln!(
        s,
        "| {mark} | {} | {} | {} | {} | {} | {} ± {} |",
        esc(&row.embedding),
        row.classifier.name(),
        row.n_recurrent.map_or("-".into(), |n| n.to_string()),
        row.time_ms.map_or("-".into(), fmt_ms),
        row.dim,
        pct(row.accuracy_mean),
        pct(row.accuracy_sd)
    )
}

/// Index of the result with the highest mean accuracy (first on ties, NaN
/// never wins). A geometry-control row (`<view>_shuffled_latencies`, ...) is
/// never "best": it is a control of the method, not the method.
fn best_index(rows: &[ResultRow]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in rows.iter().enumerate() {
        if r.accuracy_mean.is_nan() || crate::network::NetworkControl::is_control_row(&r.embedding)
        {
            continue;
        }
        if best.is_none_or(|b| r.accuracy_mean > rows[b].accuracy_mean) {
            best = Some(i);
        }
    }
    best
}

/// The baseline to set beside a result: same classifier if there is one, else the first.
fn matching_baseline<'a>(row: &ResultRow, baselines: &'a [ResultRow]) -> Option<&'a ResultRow> {
    baselines
        .iter()
        .find(|b| b.classifier == row.classifier)
        .or(baselines.first())
}

fn describe(row: &ResultRow) -> String {
    let mut d = format!("{}, {}", row.embedding, row.classifier);
    if let Some(n) = row.n_recurrent {
        let _ = write!(d, ", N = {n}");
    }
    if let Some(t) = row.time_ms {
        let _ = write!(d, ", {} ms", fmt_ms(t));
    }
    d
}

fn fmt_ms(t: f64) -> String {
    if t.fract() == 0.0 && t.abs() < 1e15 {
        format!("{t:.0}")
    } else {
        format!("{t:.2}")
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

fn pct_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), pct)
}

/// Escapes the characters that would break a table cell or start Markdown markup.
fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn markdown_has_rows_baselines_and_sections() {
        let md = render_markdown(&sample_report());
        assert!(md.starts_with("# weight_trajectories\n"));
        assert!(
            md.contains("| best | recurrent_weights | knn | 200 | 300 | 39800 | 96.49 ± 0.41 |"),
            "{md}"
        );
        assert!(md.contains("|  | recurrent_weights | knn | 5 | 300 | 3935 | 71.66 ± 1.20 |"));
        assert!(md.contains("| baseline | raw_pixels | knn | - | - | 784 | 95.00 ± 0.50 |"));
        assert!(md.contains("9000 reference / 1000 query, 10 repeats"));
        assert!(md.contains("## Per-class accuracy"));
        assert!(md.contains("baseline raw_pixels, knn (%)"));
        assert!(md.contains("## Timing"));
        assert!(md.contains("12.34 ms per image"));
        assert!(md.contains("- a note"));
        assert!(md.contains("![accuracy_vs_time.png](<accuracy_vs_time.png>)"));
        assert!(md.contains("- share_higher: 0.29"));
    }

    #[test]
    fn markdown_of_empty_report_does_not_panic() {
        let md = render_markdown(&Report::default());
        assert!(md.contains("No results."));
        assert!(!md.contains("Per-class"));
    }

    #[test]
    fn a_control_row_is_never_marked_best() {
        let mut r = sample_report();
        let mut control = r.results[0].clone();
        control.embedding = format!("{}_shuffled_latencies", control.embedding);
        control.accuracy_mean = 0.999;
        r.results.push(control);
        assert_eq!(
            best_index(&r.results).map(|i| &r.results[i].embedding),
            Some(&"recurrent_weights".to_string())
        );
        assert!(best_index(&r.results) != Some(r.results.len() - 1));
    }

    #[test]
    fn controls_are_paired_with_their_built_view_and_their_dimension() {
        let mut r = sample_report();
        let view = ResultRow {
            embedding: "weights_t600".into(),
            dim: 39800,
            accuracy_mean: 0.8,
            accuracies: vec![0.90, 0.80, 0.70],
            ..r.results[0].clone()
        };
        let shuffled = ResultRow {
            embedding: "weights_t600_shuffled_latencies".into(),
            accuracies: vec![0.80, 0.80, 0.80],
            ..view.clone()
        };
        let features = ResultRow {
            embedding: "random_features_39800".into(),
            accuracy_mean: 0.85,
            accuracies: vec![0.95, 0.85, 0.75],
            ..view.clone()
        };
        let other_dim = ResultRow {
            embedding: "random_features_1200".into(),
            ..features.clone()
        };
        r.results = vec![view, shuffled];
        r.baselines = vec![features, other_dim];
        let pairs = control_pairs(&r);
        let names: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b, _)| (a.embedding.as_str(), b.embedding.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("weights_t600", "random_features_39800"),
                ("weights_t600_shuffled_latencies", "weights_t600"),
            ]
        );
        // Shuffled minus built: (-0.1, 0, +0.1), mean 0, se 0.1 / sqrt(3).
        assert!(pairs[1].2.mean.abs() < 1e-12);
        assert!((pairs[1].2.se - 0.1 / 3f64.sqrt()).abs() < 1e-12);
        // View minus features: -0.05 on every split.
        assert!((pairs[0].2.mean + 0.05).abs() < 1e-12 && pairs[0].2.se < 1e-12);
        let md = render_markdown(&r);
        assert!(md.contains("## Beside the controls"), "{md}");
        assert!(
            md.contains("| weights_t600_shuffled_latencies | knn | 80.00 | weights_t600 | 80.00 | +0.00 ± 5.77 | 3 |"),
            "{md}"
        );
    }

    #[test]
    fn pipes_are_escaped() {
        let mut r = sample_report();
        r.results[0].embedding = "a|b".into();
        assert!(render_markdown(&r).contains("| a\\|b |"));
    }
}

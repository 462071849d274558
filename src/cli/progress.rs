//! The command line's observer: progress bars on a terminal, one line per
//! committed chunk otherwise (a log, a job array), and each scored readout
//! as it lands. The library itself prints nothing.

use super::output::noteln;
use crate::pipeline::{Event, Observer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub struct Progress {
    bar: Mutex<Option<ProgressBar>>,
    /// Fault injection for the store's crash tests: with
    /// `GEODYN_FAULT_ABORT_AT=N` the process aborts (as a crash or `kill -9`
    /// would end it, with no cleanup) right after the N-th store step is on
    /// disk. Unset, it costs one branch per step.
    abort_at: Option<usize>,
    steps: AtomicUsize,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: Mutex::new(None),
            abort_at: std::env::var("GEODYN_FAULT_ABORT_AT")
                .ok()
                .and_then(|v| v.parse().ok()),
            steps: AtomicUsize::new(0),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        match self.bar.lock() {
            Ok(mut b) => f(&mut b),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

fn new_bar(task: &str, total: usize) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta})",
    ) {
        b.set_style(style);
    }
    b.set_message(task.to_string());
    b
}

impl Observer for Progress {
    fn observe(&self, event: Event) {
        match event {
            Event::Started { task, total } => self.with_bar(|b| {
                if let Some(old) = b.take() {
                    old.finish_and_clear();
                }
                *b = Some(new_bar(&task, total));
            }),
            Event::Advanced { n } => self.with_bar(|b| {
                if let Some(bar) = b {
                    bar.inc(n as u64);
                }
            }),
            Event::Finished => self.with_bar(|b| {
                if let Some(bar) = b.take() {
                    bar.finish_and_clear();
                }
            }),
            Event::ChunkCommitted {
                chunk,
                n_chunks,
                chunk_rows,
                rows_done,
                rows_total,
                seconds,
            } => self.with_bar(|b| {
                // With no terminal the bar is hidden: say each commit instead.
                if b.as_ref().is_none_or(|bar| bar.is_hidden()) {
                    let rate = chunk_rows as f64 / seconds.max(1e-9);
                    noteln!(
                        "encode: chunk {}/{n_chunks} committed, {rows_done}/{rows_total} images, {rate:.1} images/s, ETA {:.0} s",
                        chunk + 1,
                        (rows_total - rows_done) as f64 / rate.max(1e-9)
                    );
                }
            }),
            Event::Scored { row, seconds } => {
                self.with_bar(|b| {
                    let line = format!(
                        "  {:<28} {:<10} {:6.2}% +/- {:.2}  ({seconds:.1} s)",
                        row.embedding,
                        row.classifier,
                        100.0 * row.accuracy_mean,
                        100.0 * row.accuracy_sd
                    );
                    match b {
                        Some(bar) if !bar.is_hidden() => bar.println(line),
                        _ => noteln!("{line}"),
                    }
                });
            }
            Event::Info(line) => noteln!("{line}"),
            Event::Durable { .. } => {
                let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
                if self.abort_at == Some(n) {
                    std::process::abort();
                }
            }
        }
    }
}

//! Progress goes out through an [`Observer`], never to the terminal: the
//! library prints nothing, so it can run inside a notebook, a test or a job
//! array quietly. The command line implements an observer with progress bars
//! (`cli::progress`); [`Quiet`] drops everything. (The shape is argmin's: the
//! loop is run from outside and observers are called at fixed points.)

use crate::report::ResultRow;

/// One thing that happened in a run, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A task with `total` steps begins (images to simulate, for example).
    Started { task: String, total: usize },
    /// `n` more steps of the current task are done. Sent from worker
    /// threads, in no particular order.
    Advanced { n: usize },
    /// The current task is over.
    Finished,
    /// An encode committed chunk `chunk` (0-based) of `n_chunks`: its rows are
    /// on disk and survive an interruption.
    ChunkCommitted {
        chunk: usize,
        n_chunks: usize,
        /// Rows in this chunk, and rows of the encode committed so far.
        chunk_rows: usize,
        rows_done: usize,
        rows_total: usize,
        seconds: f64,
    },
    /// A step of the store's commit protocol is on disk (a chunk's rows, its
    /// marker, a staged file, a rename into place, the manifest). A stop
    /// asked for by [`Observer::should_stop`] is honoured right after each,
    /// and a later run resumes from there to the same bytes.
    Durable { step: String },
    /// A readout was scored (`seconds` of wall time).
    Scored { row: Box<ResultRow>, seconds: f64 },
    /// A line worth telling the user (what is being run, where it goes).
    Info(String),
}

/// Receives the [`Event`]s of a run. Called from worker threads, so it must be
/// `Sync`; it should return quickly.
pub trait Observer: Sync {
    fn observe(&self, event: Event);

    /// Asked before each chunk of an encode and after each store step
    /// ([`Event::Durable`]): `true` stops the encode cleanly after what is
    /// already on disk (a later run resumes from there),
    /// with [`super::PipelineError::Interrupted`]. For cancellation (Ctrl-C,
    /// a time limit).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn observe(&self, _event: Event) {}
}

/// Collects events in memory (for tests and for callers that want a log).
#[derive(Debug, Default)]
pub struct Collect {
    events: std::sync::Mutex<Vec<Event>>,
}

impl Collect {
    pub fn new() -> Collect {
        Collect::default()
    }

    /// The events so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        match self.events.lock() {
            Ok(e) => e.clone(),
            // A panicking observer thread cannot corrupt a Vec of clones.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Observer for Collect {
    fn observe(&self, event: Event) {
        match self.events.lock() {
            Ok(mut e) => e.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

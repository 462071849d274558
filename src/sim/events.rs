//! The event queue: packed event keys, the epoch ring, and the per-epoch
//! grouping of events by target.
//!
//! Time is cut into epochs shorter than the smallest latency (see the module
//! doc of `sim`), so an epoch's events can be grouped by target and each group
//! sorted on its own. Events further ahead than the ring wait in a heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The edge field of a stimulus event (its low word holds the node).
pub(super) const EXTERNAL: u32 = u32::MAX;
/// The plastic index of an edge that is not plastic (or of a stimulus event).
pub(super) const NOT_PLASTIC: u32 = u32::MAX;
/// Longest epoch, ms (keeps each target's per-epoch sort short).
const MAX_EPOCH_MS: f64 = 1.0;
const MAX_RING: usize = 1 << 16;

/// An event: (time, edge, emission) packed so that integer order is
/// (time, edge, emission). For a stimulus event, edge = EXTERNAL and the low
/// word holds the node.
#[inline(always)]
pub(super) fn key(t: f64, edge: u32, low: u32) -> u128 {
    // t >= 0, so its bit pattern orders like its value.
    ((t.to_bits() as u128) << 64) | ((edge as u128) << 32) | low as u128
}

#[inline(always)]
pub(super) fn key_time(k: u128) -> f64 {
    f64::from_bits((k >> 64) as u64)
}

/// A queued event: its order key (time bits, then edge << 32 | emission), plus
/// the target node and plastic index, written at emission where the edge arrays
/// are read in order, so grouping and processing need no random edge lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Ev {
    pub(super) time: u64,
    pub(super) low: u64,
    pub(super) target: u32,
    pub(super) plastic: u32,
}

impl Ev {
    #[inline(always)]
    pub(super) fn new(k: u128, target: u32, plastic: u32) -> Ev {
        Ev {
            time: (k >> 64) as u64,
            low: k as u64,
            target,
            plastic,
        }
    }
    #[inline(always)]
    pub(super) fn t(&self) -> f64 {
        f64::from_bits(self.time)
    }
    #[inline(always)]
    fn less(&self, o: &Ev) -> bool {
        (self.time, self.low) < (o.time, o.low)
    }
}

impl Ord for Ev {
    fn cmp(&self, o: &Ev) -> std::cmp::Ordering {
        (self.time, self.low).cmp(&(o.time, o.low))
    }
}

impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Ev) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Groups longer than this are sorted with the library sort instead.
const INSERTION_SORT_MAX: usize = 32;

/// Insertion sort (the groups are short: a target's arrivals in one epoch).
/// A busy target can get thousands of arrivals in one epoch, where insertion
/// sort is quadratic (a runaway network then slowed to a crawl before it
/// could reach a run limit), so long groups use `sort_unstable`: keys are
/// unique (the emission index differs), so the order is the same.
#[inline(always)]
fn insertion_sort(v: &mut [Ev]) {
    if v.len() > INSERTION_SORT_MAX {
        v.sort_unstable();
        return;
    }
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && x.less(&v[j - 1]) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Largest epoch length in units of the smallest time constant. The scaled
/// state (see the `sim` doc) holds factors exp((t - origin)/tau); the origin
/// moves at the start of an epoch once that exponent passes 200 (`run.rs`),
/// so within an epoch it reaches at most 200 + epoch/tau. With epoch <= 200
/// tau that is <= 400, well below where `exp` overflows (709.78): longer
/// epochs let a tiny tau overflow to inf, and inf/inf is NaN (tau_s <= 8e-4
/// ms on 0.5 ms latencies gave activity from nothing, STDP taus NaN weights).
const MAX_EPOCH_OVER_TAU: f64 = 200.0;

/// Epoch length (ms) and ring length for a network whose latencies lie in
/// `[lat_min, lat_max]` (`has_edges` false: no latencies at all) and whose
/// largest 1/tau is `max_inv_tau`.
pub(super) fn epoch_geometry(
    has_edges: bool,
    lat_min: f64,
    lat_max: f64,
    max_inv_tau: f64,
) -> (f64, usize) {
    // Epochs strictly shorter than the smallest latency (the margin keeps
    // floor(t / epoch) from rounding an emission into its own epoch).
    let epoch_ms = if has_edges {
        (lat_min * (1.0 - 1e-6)).min(MAX_EPOCH_MS)
    } else {
        MAX_EPOCH_MS
    };
    // Only time constants below epoch / 200 (< 5e-3 ms) shorten the epoch, so
    // every other network keeps its geometry and its results bit for bit.
    let epoch_ms = if max_inv_tau * epoch_ms > MAX_EPOCH_OVER_TAU {
        MAX_EPOCH_OVER_TAU / max_inv_tau
    } else {
        epoch_ms
    };
    let ring_len = ((lat_max / epoch_ms).ceil() as usize + 2)
        .next_power_of_two()
        .min(MAX_RING);
    (epoch_ms, ring_len)
}

/// The event queue of one run: a ring of per-epoch buckets, a heap for events
/// beyond the ring, the sorted stimulus, and the current epoch grouped by
/// target. Part of a [`super::Workspace`]; reused across runs.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    pub(super) ring: Vec<Vec<Ev>>,
    pub(super) overflow: BinaryHeap<Reverse<Ev>>,
    pub(super) stimulus: Vec<u128>,
    /// The events of the epoch being processed, in arrival order.
    pub(super) current: Vec<Ev>,
    /// `current` grouped by target, each group sorted by (time, edge).
    pub(super) grouped: Vec<Ev>,
    /// Per node: the group's size, then its fill cursor; 0 between epochs.
    group_count: Vec<u32>,
    /// The targets of this epoch, in the order of their first event.
    pub(super) touched: Vec<u32>,
    pub(super) group_start: Vec<u32>,
    /// Per group: the next event to process (phases stop at snapshot times).
    pub(super) group_cursor: Vec<u32>,
}

impl EventQueue {
    /// Empties the queue for a run on `n` nodes with a ring of `ring_len`.
    pub(super) fn reset(&mut self, n: usize, ring_len: usize) {
        self.group_count.clear();
        self.group_count.resize(n, 0);
        if self.ring.len() != ring_len {
            self.ring = (0..ring_len).map(|_| Vec::new()).collect();
        }
        for b in self.ring.iter_mut() {
            b.clear();
        }
        self.overflow.clear();
        self.current.clear();
    }

    /// End (exclusive) in `grouped` of group `gi`: where the next one starts.
    #[inline(always)]
    pub(super) fn group_end(&self, gi: usize) -> usize {
        if gi + 1 < self.touched.len() {
            self.group_start[gi + 1] as usize
        } else {
            self.current.len()
        }
    }

    /// Counting sort of the epoch's events by target, then a short sort of
    /// each target's events by (time, edge). The order of the targets is that
    /// of their first event (it does not matter: targets are independent
    /// within an epoch, and activations are re-sorted at flush).
    pub(super) fn group_by_target(&mut self) {
        let len = self.current.len();
        self.touched.clear();
        self.touched.resize(len, 0);
        let mut nt = 0usize;
        {
            let touched = &mut self.touched[..len];
            let count = &mut self.group_count[..];
            for ev in &self.current {
                let j = ev.target as usize;
                let c = count[j];
                // Branch-free: the slot is kept only for a first event.
                touched[nt] = j as u32;
                nt += (c == 0) as usize;
                count[j] = c + 1;
            }
        }
        self.touched.truncate(nt);

        self.group_start.clear();
        self.group_cursor.clear();
        let mut offset = 0u32;
        for &j in &self.touched {
            self.group_start.push(offset);
            self.group_cursor.push(offset);
            let c = self.group_count[j as usize];
            // Reuse the count as the fill cursor.
            self.group_count[j as usize] = offset;
            offset += c;
        }
        if self.grouped.len() < len {
            self.grouped.resize(len, Ev::default());
        }
        {
            let grouped = &mut self.grouped[..len];
            let count = &mut self.group_count[..];
            for ev in &self.current {
                let j = ev.target as usize;
                let c = count[j];
                grouped[c as usize] = *ev;
                count[j] = c + 1;
            }
        }
        for gi in 0..self.touched.len() {
            self.group_count[self.touched[gi] as usize] = 0;
            let end = self.group_end(gi);
            insertion_sort(&mut self.grouped[self.group_start[gi] as usize..end]);
        }
    }
}

//! The event queue: packed event keys, the out-edge table in latency order,
//! the wheel of travelling emissions, and the per-epoch sort.
//!
//! Time is cut into epochs shorter than the smallest latency (see the module
//! doc of `sim`), so nothing emitted in an epoch arrives in it. Signals are
//! not queued one by one: an activation queues one [`Emission`], a cursor
//! into its out-edges sorted by latency, in the wheel bucket of the epoch of
//! its next arrival. At each epoch the due emissions write that epoch's
//! arrivals (in latency order, so each stops at its first later one) and move
//! on to the bucket of their next one. An emission is touched once per epoch
//! in which it has arrivals, not once per arrival, and an arrival is written
//! once, sequentially, instead of being pushed into a random bucket. The
//! epoch's arrivals are then sorted by time with a counting sort on a fine
//! time slot and an insertion pass for the few that share a slot, and
//! processed in that order: no grouping by target, no per-target loops.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::dynamics::{NodeHot, PlasticHot};

/// The edge field of a stimulus event (its low word holds the node).
pub(super) const EXTERNAL: u32 = u32::MAX;
/// The plastic index of an edge that is not plastic (or of a stimulus event).
pub(super) const NOT_PLASTIC: u32 = u32::MAX;
/// Longest epoch, ms (keeps the wheel's buckets and the epoch sort short).
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

/// An arrival (or stimulus activation) of the epoch being processed: its
/// order key (time bits, then edge << 32 | emission), and what processing
/// needs, computed when the arrival is written from the out-edge table (read
/// in order) and the emission's factors, so processing does no random
/// per-edge lookup but the plastic weight's.
///
/// With the factor tables (otherwise zero): `g` = exp((t - origin)/tau_s);
/// for a plastic edge `a`, `b` = exp((t - origin)/tau_plus), exp((t -
/// origin)/tau_minus); for any other edge `a` = w * g (its weight cannot
/// change during a run) and `b` is unused. Each is the product the
/// processing step computed before, so the arithmetic is unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Ev {
    pub(super) time: u64,
    pub(super) low: u64,
    pub(super) target: u32,
    pub(super) plastic: u32,
    pub(super) g: f64,
    pub(super) a: f64,
    pub(super) b: f64,
}

impl Ev {
    #[inline(always)]
    pub(super) fn new(k: u128, target: u32, plastic: u32) -> Ev {
        Ev {
            time: (k >> 64) as u64,
            low: k as u64,
            target,
            plastic,
            ..Ev::default()
        }
    }
    #[inline(always)]
    pub(super) fn t(&self) -> f64 {
        f64::from_bits(self.time)
    }
}

/// One out-edge as emission reads it. The table holds each node's out-edges
/// (the CSR range of `Network::out_offsets`) sorted by (latency, edge id), so
/// an emission's arrivals come out in time order and an emission can stop at
/// the first one that is not due. 24 bytes: what every arrival needs. With
/// STDP on, what a plastic edge adds is in [`OutPlastic`], a parallel array
/// (same positions), so a network without plasticity reads half the bytes
/// per arrival that one table of both would hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct OutEdge {
    pub(super) latency: f64,
    /// exp(latency / tau_s of the target) (the factor tables; zero without them).
    pub(super) f_s: f64,
    pub(super) edge: u32,
    pub(super) target: u32,
}

/// What STDP adds to an out-edge (the entry at the same position of the
/// part's `out_plastic`): its plastic index (NOT_PLASTIC for an edge that
/// is not) and exp(latency / tau_plus), exp(latency / tau_minus) (zeros
/// without the tables or for an edge that is not plastic).
#[derive(Clone, Copy, Debug)]
pub(super) struct OutPlastic {
    pub(super) f_plus: f64,
    pub(super) f_minus: f64,
    pub(super) plastic: u32,
}

impl OutPlastic {
    /// An edge that is not plastic.
    pub(super) const NONE: OutPlastic = OutPlastic {
        f_plus: 0.0,
        f_minus: 0.0,
        plastic: NOT_PLASTIC,
    };
}

/// An activation whose signals are still travelling: entries `next..end` of
/// the out-edge table have not arrived yet. `id` numbers the run's emissions
/// (the emission factors' index and the last tie-break of the event order).
#[derive(Clone, Copy, Debug)]
pub(super) struct Emission {
    pub(super) t: f64,
    pub(super) next: u32,
    pub(super) end: u32,
    pub(super) id: u32,
    /// Whether any of its out-edges (into this part) is plastic; if none
    /// is (an input node's, in the experiments), writing its arrivals
    /// skips the STDP array, as without STDP. In the record's padding.
    pub(super) plastic: bool,
}

/// An emission parked beyond the wheel, ordered by the epoch of its next
/// arrival (then id, so the heap's order is total).
#[derive(Clone, Copy, Debug)]
struct Parked {
    epoch: u64,
    em: Emission,
}

impl PartialEq for Parked {
    fn eq(&self, o: &Parked) -> bool {
        (self.epoch, self.em.id) == (o.epoch, o.em.id)
    }
}
impl Eq for Parked {}
impl Ord for Parked {
    fn cmp(&self, o: &Parked) -> std::cmp::Ordering {
        (self.epoch, self.em.id).cmp(&(o.epoch, o.em.id))
    }
}
impl PartialOrd for Parked {
    fn partial_cmp(&self, o: &Parked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Insertion sort of the index list `order` by the events' keys, for a
/// nearly sorted list (after the slot scatter, indices are out of order only
/// within a slot) or a short one. A crowded slot (many events at one
/// instant, e.g. pixels of equal intensity firing together) would make it
/// quadratic, so once it has moved more than `SHIFT_BUDGET` per element it
/// hands the list, whatever its state, to `sort_unstable` (keys are unique,
/// so the order is the same).
#[inline(always)]
fn insertion_sort(order: &mut [u32], ev: &[Ev]) {
    // `order` holds indices of events of `ev` (see `sort_epoch`).
    debug_assert!(order.iter().all(|&i| (i as usize) < ev.len()));
    let key = |i: u32| {
        // SAFETY: every index in `order` is below ev.len() (asserted above;
        // `sort_epoch` fills `order` from 0..len, len <= ev.len()).
        let e = unsafe { ev.get_unchecked(i as usize) };
        (e.time, e.low)
    };
    let Some(&first) = order.first() else {
        return;
    };
    // The largest key of the sorted prefix (that of its last element), kept
    // so that an element already in place costs one load, not two.
    let mut last = key(first);
    let mut budget = SHIFT_BUDGET * order.len() + SHORT_EPOCH * SHORT_EPOCH;
    for i in 1..order.len() {
        let x = order[i];
        let kx = key(x);
        // Most are already in place: test before moving anything.
        if kx >= last {
            last = kx;
            continue;
        }
        // x goes before the prefix's last element, which stays last.
        let mut j = i;
        while j > 0 && kx < key(order[j - 1]) {
            order[j] = order[j - 1];
            j -= 1;
        }
        order[j] = x;
        let moved = i - j;
        if moved > budget {
            order.sort_unstable_by_key(|&i| key(i));
            return;
        }
        budget -= moved;
    }
}

/// How many due emissions ahead of the one being drained have their next
/// out-edges prefetched.
const PREFETCH_AHEAD: usize = 4;
/// After an emission has written an epoch's arrivals, the out-edge entry
/// this many past its next one is prefetched: the entries just read brought
/// in the next one's line (usually), and its next epoch's chunk will need
/// the line after (24-byte entries: three ahead, 72 bytes on, is always in
/// a later line). An emission writes 2-5 arrivals per epoch, so without
/// this each epoch starts with a miss per emission once the table is
/// larger than the cache. N = 1000, min of 6 alternating runs, twice: 3
/// ahead 2-3% faster than 2; N = 200 the same.
const NEXT_CHUNK_AHEAD: u32 = 3;

/// Epochs with at most this many events are insertion-sorted directly.
const SHORT_EPOCH: usize = 24;
/// Time slots per event in the counting sort: with about as many slots as
/// events, a third of the events share a slot; four per event leave about
/// one in ten sharing, for a histogram four times longer.
const SLOTS_PER_EVENT: usize = 2;
/// Bounds on the slot count (powers of two): the histogram of a crowded
/// epoch stays within the second-level cache (256 KiB), and a quiet one
/// still spreads its events. The large network's epochs hold about 45,000
/// events: at 2^14 slots (the bound before) three shared each slot, and the
/// insertion pass took 20% of the run (`bench large`, one thread, 4
/// alternating runs: 1.7-2.9e7 arrivals per CPU second at 2^14, 3.3-3.5e7
/// at 2^16, no better at 2^17).
const MIN_SLOTS: usize = 64;
const MAX_SLOTS: usize = 1 << 16;
/// Shifts per element the insertion pass may make before it gives up (a
/// uniform spread makes well under one).
const SHIFT_BUDGET: usize = 4;

/// 1.5 * 2^52: adding it to |x| < 2^51 leaves round(x) in the low bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// Largest epoch length in units of the smallest time constant. The scaled
/// state (see the `sim` doc) holds factors exp((t - origin)/tau); the origin
/// moves at the start of an epoch once that exponent passes 200 (`run.rs`),
/// so within an epoch it reaches at most 200 + epoch/tau. With epoch <= 200
/// tau that is <= 400, well below where `exp` overflows (709.78): longer
/// epochs let a tiny tau overflow to inf, and inf/inf is NaN (tau_s <= 8e-4
/// ms on 0.5 ms latencies gave activity from nothing, STDP taus NaN weights).
const MAX_EPOCH_OVER_TAU: f64 = 200.0;

/// Epoch length (ms) and wheel length for a network whose latencies lie in
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

/// The event queue of one run: the wheel of travelling emissions (a ring of
/// per-epoch buckets, and a heap for those beyond it), the sorted stimulus,
/// and the current epoch's events. Part of a [`super::Workspace`]; reused
/// across runs.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    ring: Vec<Vec<Emission>>,
    parked: BinaryHeap<Reverse<Parked>>,
    /// Emissions in the ring (not the heap): while any, no epoch is skipped.
    in_ring: usize,
    /// The bucket being drained (swapped with the ring's, so buffers rotate).
    due: Vec<Emission>,
    pub(super) stimulus: Vec<u128>,
    /// The epoch's events as written (emission by emission): the first
    /// `written` of `current`, and each one's time slot in `slot_of`. Both
    /// only grow, so writing is an indexed store, not a push.
    pub(super) current: Vec<Ev>,
    slot_of: Vec<u32>,
    written: usize,
    /// The epoch being written, its slot count (a power of two) and the
    /// events per slot (at `slot + 1`, then prefix sums: the slots' starts).
    epoch: u64,
    slots: usize,
    slot_count: Vec<u32>,
    /// The epoch's events in (time, edge, emission) order, as indices into
    /// `current` (an epoch's events fit in the first-level cache, so the
    /// indirection is cheap, and the sort moves 4 bytes, not an event), and
    /// the next one to process (phases stop at snapshot times).
    pub(super) order: Vec<u32>,
    pub(super) cursor: usize,
    /// Signals emitted and not yet arrived.
    pub(super) in_flight: u64,
}

/// Where an emission waits: its next arrival's epoch `b`, seen from `epoch`.
#[inline(always)]
fn park(q: &mut EventQueue, em: Emission, b: u64, epoch: u64, mask: u64) {
    if b - epoch <= mask {
        q.ring[(b & mask) as usize].push(em);
        q.in_ring += 1;
    } else {
        q.parked.push(Reverse(Parked { epoch: b, em }));
    }
}

/// Beyond any epoch a run reaches (runs are at most 1e9 epochs long, see
/// `Simulator::build`), and exactly representable.
const FAR_EPOCH: f64 = (1u64 << 62) as f64;

/// The epoch of a time `x` in epoch lengths (x = t / epoch length, t >= 0):
/// floor(x), as `x as u64` but in one instruction instead of the
/// saturating conversion's dozen (it runs once per emission per epoch).
/// Anything past `FAR_EPOCH` (an infinite or huge arrival time) is
/// `FAR_EPOCH`, later than the end of any run, as its true epoch is.
#[inline(always)]
pub(super) fn epoch_index(x: f64) -> u64 {
    // `min` also maps a NaN to FAR_EPOCH (it returns the other operand).
    let x = x.min(FAR_EPOCH);
    debug_assert!(x >= 0.0, "negative time: {x}");
    // SAFETY: x is in [0, 2^62] (times are >= 0, and `min` caps the rest),
    // so its truncation is a valid i64.
    unsafe { x.max(0.0).to_int_unchecked::<i64>() as u64 }
}

/// The time slot of an event at `x` = t / epoch length, in an epoch of index
/// `base` cut into `slots`: (x - base) * slots, which is in [0, slots) for
/// an event of that epoch, rounded to the nearest integer by adding 1.5 *
/// 2^52 (the low bits of the sum are then the integer; cheaper than a
/// float-to-integer cast). Rounding and the clamp are monotone in x, which
/// is all the order needs.
#[inline(always)]
fn slot(x: f64, base: f64, slots: f64, last: u32) -> usize {
    let r = ((x - base) * slots + ROUND_MAGIC).to_bits() as u32;
    // r is in [0, slots] by the epoch invariant; `min` (a conditional move)
    // only keeps a broken invariant from indexing out of bounds.
    debug_assert!(r <= last, "event outside its epoch: slot {r} of {last}");
    r.min(last) as usize
}

impl EventQueue {
    /// Empties the queue for a run with a wheel of `ring_len` buckets.
    pub(super) fn reset(&mut self, ring_len: usize) {
        if self.ring.len() != ring_len {
            self.ring = (0..ring_len).map(|_| Vec::new()).collect();
        }
        for b in self.ring.iter_mut() {
            b.clear();
        }
        self.parked.clear();
        self.in_ring = 0;
        self.due.clear();
        self.written = 0;
        self.order.clear();
        self.cursor = 0;
        self.in_flight = 0;
        self.slots = MIN_SLOTS;
    }

    /// Queues the emission of an activation at `em.t`, during `epoch`: its
    /// first arrival (the out-edge table is in latency order) sets its bucket.
    #[inline(always)]
    pub(super) fn emit(
        &mut self,
        em: Emission,
        out: &[OutEdge],
        inv_epoch: f64,
        epoch: u64,
        mask: u64,
    ) {
        let b = epoch_index((em.t + out[em.next as usize].latency) * inv_epoch);
        debug_assert!(b > epoch, "emission fell in its own epoch");
        self.in_flight += (em.end - em.next) as u64;
        park(self, em, b, epoch, mask);
    }

    /// True when emissions are waiting in the wheel (so the next epoch may
    /// hold arrivals).
    pub(super) fn ring_busy(&self) -> bool {
        self.in_ring > 0
    }

    /// Emissions waiting in the wheel's bucket of `epoch` (a measure of
    /// the epoch's work, known before it is gathered).
    pub(super) fn due_in_ring(&self, epoch: u64, mask: u64) -> usize {
        self.ring.get((epoch & mask) as usize).map_or(0, Vec::len)
    }

    /// The epoch of the first parked emission, if any.
    pub(super) fn next_parked(&self) -> Option<u64> {
        self.parked.peek().map(|Reverse(p)| p.epoch)
    }

    /// Starts writing `epoch`: its slot count follows the last epoch's event
    /// count (any power of two gives the same order; about two slots per
    /// event keeps both the histogram and the shared slots small).
    fn begin_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.written = 0;
        self.slot_count.clear();
        self.slot_count.resize(self.slots + 2, 0);
    }

    /// Writes the arrivals of `epoch`: every due emission's arrivals of this
    /// epoch, each emission then parked at its next one. `weights` are the
    /// run's weights, `factors` the emissions' (see [`Ev`]). With
    /// `PREFETCH_STATE`, writing an arrival prefetches the state processing
    /// will read for it (see [`prefetch`]).
    pub(super) fn gather_arrivals<
        const TABLES: bool,
        const STDP: bool,
        const PREFETCH_STATE: bool,
    >(
        &mut self,
        edges: EdgeView,
        epoch: u64,
        mask: u64,
    ) {
        self.begin_epoch(epoch);
        let slot = (epoch & mask) as usize;
        std::mem::swap(&mut self.due, &mut self.ring[slot]);
        self.in_ring -= self.due.len();
        let mut due = std::mem::take(&mut self.due);
        for (i, em) in due.iter().enumerate() {
            // Each due emission reads its next few out-edges, a random
            // place in the table: ask for those of one a few ahead.
            if let Some(ahead) = due.get(i + PREFETCH_AHEAD) {
                prefetch(edges.out, ahead.next);
                if TABLES {
                    prefetch(edges.factors, ahead.id);
                }
                if STDP && ahead.plastic {
                    prefetch(edges.plastic, ahead.next);
                }
            }
            self.drain::<TABLES, STDP, PREFETCH_STATE>(*em, &edges, mask);
        }
        due.clear();
        self.due = due;
        while let Some(&Reverse(p)) = self.parked.peek() {
            if p.epoch > epoch {
                break;
            }
            self.parked.pop();
            self.drain::<TABLES, STDP, PREFETCH_STATE>(p.em, &edges, mask);
        }
    }

    /// `drain_emission` of `em`, reading the STDP array only when STDP is
    /// on and one of its out-edges is plastic.
    #[inline(always)]
    fn drain<const TABLES: bool, const STDP: bool, const PREFETCH_STATE: bool>(
        &mut self,
        em: Emission,
        view: &EdgeView,
        mask: u64,
    ) {
        if STDP && em.plastic {
            self.drain_emission::<TABLES, true, PREFETCH_STATE>(em, view, mask);
        } else {
            self.drain_emission::<TABLES, false, PREFETCH_STATE>(em, view, mask);
        }
    }

    /// Room for `extra` more events of this epoch.
    #[inline(always)]
    fn make_room(&mut self, extra: usize) {
        let need = self.written + extra;
        if self.current.len() < need {
            self.current.resize(need.next_power_of_two(), Ev::default());
            self.slot_of.resize(need.next_power_of_two(), 0);
        }
    }

    /// Writes the arrivals of `em` that fall in this epoch (in latency order,
    /// so they are a prefix of what is left, each with its time slot
    /// counted), then parks it at its next one.
    #[inline(always)]
    fn drain_emission<const TABLES: bool, const STDP: bool, const PREFETCH_STATE: bool>(
        &mut self,
        mut em: Emission,
        view: &EdgeView,
        mask: u64,
    ) {
        let (start, end) = (em.next as usize, em.end as usize);
        let edges = &view.out[start..end];
        // With STDP on, what STDP adds to each of these out-edges (the
        // part's parallel array: same positions); off, none is plastic.
        let plastic_of = if STDP { &view.plastic[start..end] } else { &[] };
        self.make_room(edges.len());
        let epoch = self.epoch;
        let inv_epoch = view.inv_epoch;
        let (base, slots, last) = (epoch as f64, self.slots as f64, self.slots as u32);
        // An arrival at ta belongs to epoch floor(ta * inv_epoch) (the
        // product of `Simulator::epoch_of`, so stimulus and arrivals agree);
        // for x >= 0, floor(x) <= epoch exactly when x < epoch + 1, which
        // costs a compare instead of a float-to-integer conversion.
        let later = (epoch + 1) as f64;
        let f = if TABLES {
            view.factors[em.id as usize]
        } else {
            [0.0; 3]
        };
        let w = self.written;
        let current = &mut self.current[w..w + edges.len()];
        let slot_of = &mut self.slot_of[w..w + edges.len()];
        let counts = &mut self.slot_count[..];
        let id = em.id as u64;
        let t = em.t;
        let (plastic_state, node_state) = (
            Prefetch::of(view.plastic_state),
            Prefetch::of(view.node_state),
        );
        let weights = view.weights;
        let mut due = edges.len();
        for (i, oe) in edges.iter().enumerate() {
            let ta = t + oe.latency;
            let x = ta * inv_epoch;
            if x >= later {
                due = i;
                break;
            }
            let op = if STDP {
                plastic_of[i]
            } else {
                OutPlastic::NONE
            };
            let pi = op.plastic;
            if PREFETCH_STATE {
                if STDP {
                    plastic_state.at(pi);
                }
                node_state.at(oe.target);
            }
            let (mut g, mut a, mut b) = (0.0, 0.0, 0.0);
            if TABLES {
                g = f[0] * oe.f_s;
                // Both computed, one kept: a select, not a branch.
                debug_assert!((oe.edge as usize) < weights.len());
                // SAFETY: the out-edge table holds edges of the network,
                // and `Simulator::run` checked that `weights` has one
                // entry per edge.
                let w = unsafe { *weights.get_unchecked(oe.edge as usize) };
                let weighted = w as f64 * g;
                let plastic = pi != NOT_PLASTIC;
                a = if plastic { f[1] * op.f_plus } else { weighted };
                b = f[2] * op.f_minus;
            }
            current[i] = Ev {
                time: ta.to_bits(),
                low: ((oe.edge as u64) << 32) | id,
                target: oe.target,
                plastic: pi,
                g,
                a,
                b,
            };
            let s = slot(x, base, slots, last);
            slot_of[i] = s as u32;
            debug_assert!(s < counts.len() - 1);
            // SAFETY: `slot` returns at most `last` = the slot count, and
            // `begin_epoch` sized the histogram to the slot count + 2.
            unsafe { *counts.get_unchecked_mut(s + 1) += 1 };
        }
        self.written = w + due;
        self.in_flight -= due as u64;
        if let Some(oe) = edges.get(due) {
            let b = epoch_index((t + oe.latency) * inv_epoch);
            em.next = (start + due) as u32;
            park(self, em, b, epoch, mask);
            let ahead = em.next + NEXT_CHUNK_AHEAD;
            prefetch(view.out, ahead);
            if STDP {
                prefetch(view.plastic, ahead);
            }
        }
    }

    /// Adds a stimulus activation of this epoch.
    #[inline]
    pub(super) fn push_stimulus(&mut self, k: u128, inv_epoch: f64) {
        self.make_room(1);
        let ev = Ev::new(k, k as u32, NOT_PLASTIC);
        let s = slot(
            ev.t() * inv_epoch,
            self.epoch as f64,
            self.slots as f64,
            self.slots as u32,
        );
        self.current[self.written] = ev;
        self.slot_of[self.written] = s as u32;
        self.slot_count[s + 1] += 1;
        self.written += 1;
    }

    /// An epoch with no events for this queue: nothing to process (its
    /// phases still run, for the snapshots due in it).
    pub(super) fn clear_epoch(&mut self) {
        self.order.clear();
        self.cursor = 0;
    }

    /// True when the epoch has no events.
    pub(super) fn epoch_is_empty(&self) -> bool {
        self.written == 0
    }

    /// Orders the epoch's events by (time, edge, emission) into `order`: the
    /// counting sort on the time slots counted while writing (events in
    /// different slots are in order), then an insertion pass that orders each
    /// slot's few events.
    pub(super) fn sort_epoch(&mut self) {
        let len = self.written;
        self.cursor = 0;
        // The next epoch's slot count: about two per event of this one.
        self.slots = (len * SLOTS_PER_EVENT)
            .next_power_of_two()
            .clamp(MIN_SLOTS, MAX_SLOTS);
        let current = &self.current[..len];
        self.order.clear();
        if len <= SHORT_EPOCH {
            self.order.extend(0..len as u32);
            insertion_sort(&mut self.order, current);
            return;
        }
        let mut sum = 0u32;
        for c in self.slot_count.iter_mut() {
            sum += *c;
            *c = sum;
        }
        self.order.resize(len, 0);
        let counts = &mut self.slot_count[..];
        let order = &mut self.order[..len];
        for (i, &s) in self.slot_of[..len].iter().enumerate() {
            debug_assert!((s as usize) < counts.len());
            // SAFETY: `slot` returns at most the slot count, and
            // `begin_epoch` sized the histogram to the slot count + 2.
            let next = unsafe { counts.get_unchecked_mut(s as usize) };
            let p = *next;
            *next = p + 1;
            debug_assert!((p as usize) < len);
            // SAFETY: every event counted its slot once when written (in
            // `drain_emission` or `push_stimulus`, with its `slot_of`), so
            // after the prefix sums slot s owns positions counts[s] ..
            // counts[s + 1], all below len, and hands each out once.
            unsafe { *order.get_unchecked_mut(p as usize) = i as u32 };
        }
        insertion_sort(order, current);
    }
}

/// Asks the cache for entry `i` of a run-state array (the last entry when
/// `i` is past the end: an arrival that is not plastic has no plastic
/// index). Writing an arrival knows which state processing will read, the
/// target's and, for a plastic edge, the edge's, an epoch's sort ahead of
/// time: in a large network each is a random access, a miss beyond the
/// last-level cache, while an epoch's prefetched lines (two per event, a
/// few thousand) fit in the second-level one. A hint only: no result
/// depends on it. Measured (`bench engine`, one thread, alternating with
/// the binary before it on a loaded machine): N = 1000 57-87 -> 43-53 ns
/// per arrival, N = 400 51 -> 33-38, N = 200 unchanged.
#[inline(always)]
fn prefetch<T>(state: &[T], i: u32) {
    Prefetch::of(state).at(i)
}

/// [`prefetch`] into one array, its bounds taken once (the hot loop then
/// pays a `min` and the hint per event).
#[derive(Clone, Copy)]
pub(super) struct Prefetch<T> {
    base: *const T,
    /// The last valid index (0 for an empty array, whose base pointer is
    /// dangling: a prefetch of it is still only a hint).
    last: usize,
}

impl<T> Prefetch<T> {
    #[inline(always)]
    pub(super) fn of(state: &[T]) -> Prefetch<T> {
        Prefetch {
            base: state.as_ptr(),
            last: state.len().saturating_sub(1),
        }
    }

    #[inline(always)]
    pub(super) fn at(self, i: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            // Clamped to the last entry: not for safety (a prefetch never
            // faults) but so that an index past the end (NOT_PLASTIC) does
            // not send the hint to an unmapped page.
            let p = self.base.wrapping_add((i as usize).min(self.last));
            // SAFETY: a prefetch never faults and reads nothing the
            // program sees; `p` is computed with wrapping arithmetic and
            // never dereferenced.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }
}

/// What writing arrivals reads besides the queue: the out-edge table, the
/// run's weights, the emissions' factors and the epoch length's inverse.
pub(super) struct EdgeView<'v> {
    /// The part's plastic run state and node state (see [`prefetch`]).
    pub(super) plastic_state: &'v [PlasticHot],
    pub(super) node_state: &'v [NodeHot],
    pub(super) out: &'v [OutEdge],
    /// What STDP adds to each entry of `out` (STDP on; else empty).
    pub(super) plastic: &'v [OutPlastic],
    pub(super) weights: &'v [f32],
    pub(super) factors: &'v [[f64; 3]],
    pub(super) inv_epoch: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_index_is_the_truncation_of_every_time_a_run_can_reach() {
        // Where the saturating cast and the one-instruction truncation must
        // agree: every index below FAR_EPOCH, at and around integers and
        // powers of two, and values the epoch product gives in practice.
        let mut xs = vec![
            0.0,
            -0.0,
            0.25,
            0.5,
            0.999_999_999,
            1.0,
            1.5,
            1e9,
            1e9 + 0.5,
        ];
        for p in [1u32, 10, 31, 32, 52, 53, 61] {
            let v = (1u64 << p) as f64;
            xs.extend([v, v.next_down(), v.next_up(), v + 0.5]);
        }
        let inv_epoch = 1.0 / (0.2 * (1.0 - 1e-6));
        xs.extend((0..1000).map(|i| (i as f64 * 0.6137 + 12.0) * inv_epoch));
        for x in xs {
            assert_eq!(epoch_index(x), x as u64, "x = {x:e}");
        }
        // Beyond every run: capped, never wrapped to a small index.
        for x in [FAR_EPOCH, FAR_EPOCH * 2.0, 1e300, f64::INFINITY, f64::NAN] {
            assert_eq!(epoch_index(x), 1u64 << 62, "x = {x:e}");
        }
    }
}

//! The run loop: checks a run's inputs, then walks the epochs in order. Each
//! epoch, every part (see `Simulator`) gathers its events, sorts them and
//! hands them to the dynamics in phases split at snapshot times; then the
//! epoch's activations of all parts are put in (time, node) order, checked
//! against the in-flight limit, and queued by every part on its own
//! out-edges. Parts run in parallel on the current rayon pool when there
//! are several; they share nothing mutable during an epoch.

use rayon::prelude::*;

use super::dynamics::{Ctx, Fired, NodeState};
use super::events::{key, key_time, EdgeView, EventQueue, EXTERNAL};
use super::params::{RunParams, SimError, StdpParams};
use super::prepare::Simulator;
use crate::network::{Network, NodeId};
use crate::record::{
    Activation, ExternalActivation, RecordSpec, Recording, RunTotals, WeightSnapshot,
};

/// Largest exponent a stored factor may reach before the origin moves.
const REBASE_EXPONENT: f64 = 200.0;

/// Per-thread scratch of the engine: each part's event queue and dynamic
/// state, and the epoch's activations. Reused across runs (each run resets
/// it), so a thread allocates once.
#[derive(Debug, Default)]
pub struct Workspace {
    pub(super) parts: Vec<PartSpace>,
    fired: Vec<Fired>,
}

/// The scratch of one part: its event queue and its dynamic state.
#[derive(Debug, Default)]
pub(super) struct PartSpace {
    pub(super) queue: EventQueue,
    pub(super) state: NodeState,
}

/// One part of a run in progress: its context, its scratch, and its cursors
/// into the stimulus and the snapshot times.
struct PartRun<'s, 'a> {
    ctx: Ctx<'s, 'a>,
    space: &'s mut PartSpace,
    stim_cursor: usize,
    next_snapshot: usize,
}

/// The values of the snapshot edges into `part`'s targets at the state now:
/// a plastic edge's from the run's state (where they live during a run),
/// any other's from `weights`.
fn part_snapshot(ctx: &Ctx, space: &PartSpace) -> Vec<f32> {
    let plastic = &space.state.plastic;
    let net = ctx.sim.net;
    ctx.spec
        .snapshot_edges
        .iter()
        .filter(|&&e| ctx.part.owns(net.edge_target[e as usize]))
        .map(|&e| {
            // No plastic index table (no plastic edge): every weight is the run's.
            let pi = ctx.sim.plastic_index.get(e as usize);
            match pi.and_then(|&pi| plastic.get(pi as usize)) {
                Some(x) => x.weight,
                None => ctx.weights[e as usize],
            }
        })
        .collect()
}

/// The snapshot times of one run, sorted.
fn snapshot_times(spec: &RecordSpec, duration: f64) -> Vec<f64> {
    let mut times: Vec<f64> = spec.weight_snapshots_ms.clone();
    times.sort_by(f64::total_cmp);
    times.retain(|&t| t <= duration);
    times
}

/// Below this much work in an epoch (emissions to drain, or signals to
/// queue), the parts run one after the other on the calling thread: handing
/// them to the pool costs microseconds, more than a quiet epoch's work.
/// Which thread runs a part changes nothing in its result.
const PARALLEL_WORK: usize = 512;

/// Runs `f` on every part (all of them: no short cut) and says whether any
/// returned true; in parallel when there are several and `work` is worth it.
fn any_part<'s, 'a>(
    runs: &mut [PartRun<'s, 'a>],
    work: usize,
    f: impl Fn(&mut PartRun<'s, 'a>) -> bool + Sync + Send,
) -> bool {
    if runs.len() == 1 || work < PARALLEL_WORK {
        runs.iter_mut().fold(false, |any, r| f(r) | any)
    } else {
        runs.par_iter_mut().map(f).reduce(|| false, |a, b| a | b)
    }
}

impl PartRun<'_, '_> {
    /// Gathers, sorts and processes this part's events of `epoch`; false
    /// when it had none (snapshots due are taken either way).
    fn epoch(&mut self, epoch: u64, mask: u64, times: &[f64]) -> bool {
        let sim = self.ctx.sim;
        let busy = sim.gather(self, epoch, mask);
        if busy {
            self.space.queue.sort_epoch();
        } else {
            self.space.queue.clear_epoch();
        }
        self.run_phases(epoch, times);
        busy
    }

    /// Processes the sorted epoch in phases split at snapshot times (and at
    /// the end of the run). The match picks one of four monomorphised loops.
    fn run_phases(&mut self, epoch: u64, times: &[f64]) {
        let sim = self.ctx.sim;
        let duration = sim.params.duration_ms();
        let epoch_end = (epoch + 1) as f64 * sim.epoch_ms;
        loop {
            let snap = times
                .get(self.next_snapshot)
                .copied()
                .filter(|&t| t < epoch_end);
            let limit = snap.unwrap_or(f64::INFINITY).min(duration);
            let (ctx, ws) = (&mut self.ctx, &mut *self.space);
            match (sim.params.stdp().is_some(), sim.tables) {
                (true, true) => ctx.phase::<true, true>(ws, limit),
                (true, false) => ctx.phase::<true, false>(ws, limit),
                (false, true) => ctx.phase::<false, true>(ws, limit),
                (false, false) => ctx.phase::<false, false>(ws, limit),
            }
            match snap {
                Some(t) if t <= duration => {
                    let values = part_snapshot(&self.ctx, self.space);
                    self.ctx.snapshots.push(values);
                    self.next_snapshot += 1;
                }
                _ => break,
            }
        }
    }

    /// Queues the signals of the epoch's activations on this part's edges.
    fn emit(&mut self, fired: &[Fired], epoch: u64, mask: u64) {
        if self.ctx.sim.tables {
            self.ctx.emit_fired::<true>(self.space, fired, epoch, mask);
        } else {
            self.ctx.emit_fired::<false>(self.space, fired, epoch, mask);
        }
    }
}

impl Simulator<'_> {
    /// Runs one stimulus, starting from `weights` (one per edge, updated in
    /// place when STDP is on) and from rest (potentials 0, no node refractory,
    /// traces empty).
    pub fn run(
        &self,
        ws: &mut Workspace,
        weights: &mut [f32],
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<Recording, SimError> {
        self.check_inputs(weights, stimulus, spec)?;
        let template = self.empty_recording(spec)?;
        self.reset(ws, weights, stimulus);
        let times = snapshot_times(spec, self.params.duration_ms());
        let stdp = self.params.stdp().copied().unwrap_or(StdpParams::OFF);
        let lost_count_stdp = self.params.stdp().is_some_and(|p| p.lost_arrivals_count());
        let weights_now: &[f32] = weights;
        // Every part counts into a recording of its own (the first gets the
        // template itself, so one part allocates nothing more).
        let mut recs: Vec<Recording> = (1..self.parts.len()).map(|_| template.clone()).collect();
        recs.insert(0, template);
        let mut runs: Vec<PartRun> = self
            .parts
            .iter()
            .zip(ws.parts.iter_mut())
            .zip(recs)
            .map(|((part, space), rec)| PartRun {
                ctx: Ctx {
                    sim: self,
                    part,
                    weights: weights_now,
                    spec,
                    rec,
                    snapshots: Vec::new(),
                    totals: RunTotals::default(),
                    origin: 0.0,
                    stdp,
                    lost_count_stdp,
                    node_counts: spec.node_counts,
                },
                space,
                stim_cursor: 0,
                next_snapshot: 0,
            })
            .collect();
        let mut activations = Vec::new();
        self.run_epochs(&mut runs, &mut ws.fired, &times, &mut activations)?;
        // Snapshots after the last processed epoch see the final weights.
        for r in runs.iter_mut() {
            for _ in r.next_snapshot..times.len() {
                let values = part_snapshot(&r.ctx, r.space);
                r.ctx.snapshots.push(values);
            }
        }
        let rec = self.merge_parts(&mut runs, activations, &times);
        let plastic: Vec<(usize, f32)> = runs
            .iter()
            .flat_map(|r| {
                r.space
                    .state
                    .plastic
                    .iter()
                    .zip(&r.ctx.part.plastic_edge)
                    .map(|(x, &e)| (e as usize, x.weight))
            })
            .collect();
        drop(runs);
        for (e, w) in plastic {
            weights[e] = w;
        }
        self.check_weights(weights)?;
        Ok(rec)
    }

    /// One recording from the parts': totals summed, per-node counts and
    /// activity added (each part counted only its own nodes), the activation
    /// list the run loop kept, and each snapshot put together edge by edge
    /// from the part that owns the edge's target.
    fn merge_parts(
        &self,
        runs: &mut [PartRun],
        activations: Vec<Activation>,
        times: &[f64],
    ) -> Recording {
        let spec = runs[0].ctx.spec;
        let mut rec = std::mem::take(&mut runs[0].ctx.rec);
        rec.totals = runs[0].ctx.totals;
        for r in runs[1..].iter_mut() {
            let part = std::mem::take(&mut r.ctx.rec);
            rec.totals += r.ctx.totals;
            add_into(&mut rec.activation_counts, &part.activation_counts);
            add_into(&mut rec.lost_counts, &part.lost_counts);
            add_into(&mut rec.activity, &part.activity);
        }
        rec.activations = activations;
        let net = self.net;
        for (k, &time_ms) in times.iter().enumerate() {
            let weights = if runs.len() == 1 {
                std::mem::take(&mut runs[0].ctx.snapshots[k])
            } else {
                let mut cursors = vec![0usize; runs.len()];
                spec.snapshot_edges
                    .iter()
                    .map(|&e| {
                        let p = self.part_of(net.edge_target[e as usize]);
                        let v = runs[p].ctx.snapshots[k][cursors[p]];
                        cursors[p] += 1;
                        v
                    })
                    .collect()
            };
            rec.snapshots.push(WeightSnapshot { time_ms, weights });
        }
        rec
    }

    /// Refuses a run that left a plastic weight NaN or infinite, so no such
    /// weight is ever written. A weight that is not finite stays so (clamp
    /// keeps NaN), so checking at the end also covers every snapshot. The
    /// arithmetic is meant to make this impossible (see `epoch_geometry`);
    /// this is the guard in case it does not.
    fn check_weights(&self, weights: &[f32]) -> Result<(), SimError> {
        if self.params.stdp().is_none() {
            return Ok(());
        }
        // The first such edge in edge order, whatever the parts.
        let bad = self
            .parts
            .iter()
            .flat_map(|p| p.plastic_edge.iter().copied())
            .filter(|&e| !weights[e as usize].is_finite())
            .min();
        match bad {
            None => Ok(()),
            Some(e) => Err(SimError::NonFiniteWeight {
                edge: e,
                source_node: self.net.edge_source[e as usize],
                target: self.net.edge_target[e as usize],
                value: weights[e as usize],
                duration_ms: self.params.duration_ms(),
            }),
        }
    }

    /// The error of a run that passed a limit at `time_ms`: which limit
    /// (`in_flight_exceeded`: the count of the first emission refused), and
    /// the node with the most activations so far.
    fn runaway(
        &self,
        runs: &[PartRun],
        totals: &RunTotals,
        in_flight_exceeded: Option<u64>,
        time_ms: f64,
    ) -> Option<SimError> {
        let lim = self.params.limits();
        let (what, key, count, limit) = if let Some(c) = in_flight_exceeded {
            (
                "events in flight",
                "max_events_in_flight",
                c,
                lim.max_events_in_flight,
            )
        } else if totals.activations > lim.max_activations {
            (
                "activations",
                "max_activations",
                totals.activations,
                lim.max_activations,
            )
        } else if totals.arrivals > lim.max_arrivals {
            (
                "arrivals",
                "max_arrivals",
                totals.arrivals,
                lim.max_arrivals,
            )
        } else {
            return None;
        };
        // Each part counts its own nodes' activations.
        let count_of = |j: usize| {
            let r = &runs[self.part_of(j as u32)];
            r.space.state.activation_count.get(j).copied().unwrap_or(0)
        };
        // The first of the busiest nodes, so the message is deterministic.
        let node = (0..self.net.n_nodes())
            .max_by_key(|&j| (count_of(j), std::cmp::Reverse(j)))
            .unwrap_or(0);
        let node_activations = if self.net.n_nodes() > 0 {
            count_of(node)
        } else {
            0
        };
        let r = self
            .net
            .refractory_period_ms
            .get(node)
            .copied()
            .unwrap_or(0.0);
        Some(SimError::Runaway {
            what,
            key,
            count,
            limit,
            time_ms,
            node: node as NodeId,
            node_activations,
            rate_hz: node_activations as f64 / time_ms.max(f64::MIN_POSITIVE) * 1000.0,
            node_refractory_ms: r,
            max_rate_hz: if r > 0.0 {
                format!("{:.0} Hz", 1000.0 / r)
            } else {
                "any rate, even at one instant".to_string()
            },
        })
    }

    /// Checks the weights, the record spec and the stimulus against the
    /// network.
    fn check_inputs(
        &self,
        weights: &[f32],
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<(), SimError> {
        let n = self.net.n_nodes();
        let m = self.net.n_edges();
        if weights.len() != m {
            return Err(SimError::WeightCount {
                got: weights.len(),
                expected: m,
            });
        }
        if let Some(&e) = spec.snapshot_edges.iter().find(|&&e| e as usize >= m) {
            return Err(SimError::SnapshotEdge(e));
        }
        if let Some(b) = spec.activity_bin_ms {
            if !(b.is_finite() && b > 0.0) {
                return Err(SimError::ActivityBin(b));
            }
        }
        for (index, s) in stimulus.iter().enumerate() {
            if s.node as usize >= n {
                return Err(SimError::StimulusNode {
                    index,
                    node: s.node,
                    n_nodes: n,
                });
            }
            if !(s.time_ms.is_finite() && s.time_ms >= 0.0) {
                return Err(SimError::StimulusTime {
                    index,
                    time: s.time_ms,
                });
            }
        }
        crate::memory::check(
            || format!("queueing {} stimulus activations", stimulus.len()),
            crate::memory::bytes_of::<u128>(stimulus.len() as u64),
        )?;
        Ok(())
    }

    /// A recording with the arrays the spec asks for, zeroed. The activity
    /// table is nodes x bins, and bins = duration / bin width comes from the
    /// config, so its size is checked before it is allocated (once per part).
    fn empty_recording(&self, spec: &RecordSpec) -> Result<Recording, SimError> {
        let n = self.net.n_nodes();
        let mut rec = Recording::default();
        if spec.node_counts {
            rec.activation_counts = vec![0; n];
            rec.lost_counts = vec![0; n];
        }
        if let Some(bw) = spec.activity_bin_ms {
            // Saturating float-to-int casts: a huge bin count stays huge.
            let bins = ((self.params.duration_ms() / bw).ceil() as u64).max(1);
            let cells = bins.saturating_mul(n as u64);
            let what = || {
                format!(
                    "activity of {n} nodes in {bins} bins of {bw} ms (duration {} ms)",
                    self.params.duration_ms()
                )
            };
            let parts = self.parts.len() as u64;
            crate::memory::check(
                what,
                crate::memory::bytes_of::<u32>(cells.saturating_mul(parts)),
            )?;
            // Fits in memory, so in usize.
            let cells = cells as usize;
            crate::memory::try_reserve(&mut rec.activity, cells, what)?;
            rec.activity.resize(cells, 0);
            rec.activity_bins = bins as usize;
        }
        Ok(rec)
    }

    /// Every part's scratch at rest, with its own nodes' stimulus queued in
    /// event order.
    fn reset(&self, ws: &mut Workspace, weights: &[f32], stimulus: &[ExternalActivation]) {
        ws.parts.resize_with(self.parts.len(), PartSpace::default);
        ws.fired.clear();
        for (part, space) in self.parts.iter().zip(ws.parts.iter_mut()) {
            space.queue.reset(self.ring_len);
            space.state.reset(self.net, part, weights, &self.threshold);
            let queued = &mut space.queue.stimulus;
            queued.clear();
            // `+ 0.0` turns -0.0 into 0.0 so the bit order holds.
            queued.extend(
                stimulus
                    .iter()
                    .filter(|s| part.owns(s.node))
                    .map(|s| key(s.time_ms + 0.0, EXTERNAL, s.node)),
            );
            queued.sort_unstable();
        }
    }

    /// The epoch of time `t`: the same product the queue uses when it
    /// writes arrivals (`self.inv_epoch`), so both agree on every boundary.
    #[inline(always)]
    fn epoch_of(&self, t: f64) -> u64 {
        super::events::epoch_index(t * self.inv_epoch)
    }

    /// Every epoch up to the end of the run, in order; empty stretches with
    /// nothing in flight are skipped. The limits are checked after each epoch
    /// (events in flight at each emission): an epoch's arrivals come from the
    /// queue, so the counts pass a limit by at most one queue's worth.
    fn run_epochs(
        &self,
        runs: &mut [PartRun],
        fired: &mut Vec<Fired>,
        times: &[f64],
        activations: &mut Vec<Activation>,
    ) -> Result<(), SimError> {
        let mask = (self.ring_len - 1) as u64;
        let last_epoch = self.epoch_of(self.params.duration_ms());
        let mut origin = 0.0;
        let mut epoch: u64 = 0;
        while epoch <= last_epoch {
            // Before the arrivals are written: they carry factors relative
            // to the origin (see `Ev`).
            let epoch_start = epoch as f64 * self.epoch_ms;
            if (epoch_start - origin) * self.max_inv_tau > REBASE_EXPONENT {
                origin = epoch_start;
                for r in runs.iter_mut() {
                    r.ctx.rebase(r.space, epoch_start);
                }
            }
            let due: usize = runs
                .iter()
                .map(|r| r.space.queue.due_in_ring(epoch, mask))
                .sum();
            if !any_part(runs, due, |r| r.epoch(epoch, mask, times)) {
                match self.next_epoch(runs, epoch) {
                    Some(b) => epoch = b,
                    None => break,
                }
                continue;
            }
            let (exceeded, signals) = self.collect_fired(runs, fired, origin, activations);
            if !fired.is_empty() {
                let fired = &fired[..];
                any_part(runs, signals, |r| {
                    r.emit(fired, epoch, mask);
                    false
                });
            }
            epoch += 1;
            let mut totals = RunTotals::default();
            for r in runs.iter() {
                totals += r.ctx.totals;
            }
            if let Some(e) = self.runaway(runs, &totals, exceeded, epoch as f64 * self.epoch_ms) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The epoch's activations of every part into `fired`, in (time, node)
    /// order (a stable sort: a node's activations at one instant keep their
    /// order), each with its emission factors, and whether its signals fit
    /// under the in-flight limit (checked in that order, so the same
    /// activations are refused whatever the parts). Appends them to
    /// `activations` when the spec records them. Returns the count of the
    /// first refused emission, if any (the run then stops with an error),
    /// and the number of signals queued.
    fn collect_fired(
        &self,
        runs: &mut [PartRun],
        fired: &mut Vec<Fired>,
        origin: f64,
        activations: &mut Vec<Activation>,
    ) -> (Option<u64>, usize) {
        fired.clear();
        for r in runs.iter_mut() {
            fired.extend(r.space.state.fired.drain(..).map(|a| Fired {
                node: a.node,
                t: a.time_ms,
                cause: a.causal_edge,
                emit: false,
                factor: [0.0; 3],
            }));
        }
        if fired.len() > 1 {
            fired.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.node.cmp(&b.node)));
        }
        let limit = self.params.limits().max_events_in_flight;
        let before: u64 = runs.iter().map(|r| r.space.queue.in_flight).sum();
        let mut in_flight = before;
        let mut exceeded = None;
        let stdp = self.params.stdp().is_some();
        let out = &self.net.out_offsets;
        for f in fired.iter_mut() {
            let i = f.node as usize;
            let fan_out = (out[i + 1] - out[i]) as u64;
            if fan_out == 0 {
                continue;
            }
            // The limit is checked once per activation rather than per
            // epoch: one epoch can multiply the signals in flight by the
            // fan-out, so a check between epochs would bound the work only
            // loosely. Refused signals are dropped; the run ends with an
            // error after this epoch.
            if in_flight + fan_out > limit {
                exceeded.get_or_insert(in_flight + fan_out);
                continue;
            }
            in_flight += fan_out;
            f.emit = true;
            if self.tables {
                let rel = f.t - origin;
                f.factor = [
                    (rel * self.inv_tau_s_uniform).exp(),
                    if stdp {
                        (rel * self.inv_tau_plus).exp()
                    } else {
                        0.0
                    },
                    if stdp {
                        (rel * self.inv_tau_minus).exp()
                    } else {
                        0.0
                    },
                ];
            }
        }
        if runs[0].ctx.spec.activations {
            activations.extend(fired.iter().map(|f| Activation {
                node: f.node,
                time_ms: f.t,
                causal_edge: f.cause,
            }));
        }
        (exceeded, (in_flight - before) as usize)
    }

    /// Writes the events of `epoch` into the part's queue: the due
    /// emissions' arrivals and its stimulus up to it. False when there are
    /// none.
    fn gather(&self, r: &mut PartRun, epoch: u64, mask: u64) -> bool {
        let q = &mut r.space.queue;
        let view = EdgeView {
            out: &r.ctx.part.out_edges,
            plastic: &r.ctx.part.out_plastic,
            weights: r.ctx.weights,
            factors: &r.space.state.emission_factor,
            plastic_state: &r.space.state.plastic,
            node_state: &r.space.state.node,
            inv_epoch: self.inv_epoch,
        };
        // Prefetching the state an arrival will read pays only where that
        // state does not stay cached anyway (see `Part::prefetch_state`).
        // Without the tables (a rare network) it is always on.
        let plastic = !r.ctx.part.out_plastic.is_empty();
        match (self.tables, plastic, r.ctx.part.prefetch_state) {
            (true, true, true) => q.gather_arrivals::<true, true, true>(view, epoch, mask),
            (true, true, false) => q.gather_arrivals::<true, true, false>(view, epoch, mask),
            (true, false, true) => q.gather_arrivals::<true, false, true>(view, epoch, mask),
            (true, false, false) => q.gather_arrivals::<true, false, false>(view, epoch, mask),
            (false, true, _) => q.gather_arrivals::<false, true, true>(view, epoch, mask),
            (false, false, _) => q.gather_arrivals::<false, false, true>(view, epoch, mask),
        }
        while r.stim_cursor < q.stimulus.len()
            && self.epoch_of(key_time(q.stimulus[r.stim_cursor])) <= epoch
        {
            let k = q.stimulus[r.stim_cursor];
            q.push_stimulus(k, self.inv_epoch);
            r.stim_cursor += 1;
        }
        !q.epoch_is_empty()
    }

    /// The epoch to look at after the empty `epoch`: the next one while
    /// emissions wait in any part's wheel, else that of the next stimulus or
    /// parked emission of any part; `None` when nothing is left.
    fn next_epoch(&self, runs: &[PartRun], epoch: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        for r in runs {
            let q = &r.space.queue;
            if q.ring_busy() {
                return Some(epoch + 1);
            }
            let next_stim = q
                .stimulus
                .get(r.stim_cursor)
                .map(|&k| self.epoch_of(key_time(k)));
            for b in next_stim.into_iter().chain(q.next_parked()) {
                next = Some(next.map_or(b, |x| x.min(b)));
            }
        }
        next.map(|b| b.max(epoch + 1))
    }
}

/// Adds `b` into `a` element-wise (both empty when not recorded).
fn add_into(a: &mut [u32], b: &[u32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Runs one stimulus from the network's initial weights; returns the recording
/// and the final weights.
pub fn simulate(
    net: &Network,
    params: &RunParams,
    stimulus: &[ExternalActivation],
    spec: &RecordSpec,
) -> Result<(Recording, Vec<f32>), SimError> {
    let mut weights = net.edge_weight.clone();
    let sim = Simulator::new(net, params)?;
    let rec = sim.run(&mut Workspace::default(), &mut weights, stimulus, spec)?;
    Ok((rec, weights))
}

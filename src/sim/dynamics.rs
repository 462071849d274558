//! The dynamics: what one event does at its target (arrival, integration,
//! activation, emission) and the STDP updates it triggers. This is the hot
//! path; the run loop in `run.rs` only feeds it epoch by epoch.
//!
//! Everything here is generic over `STDP` (plasticity on) and `TABLES` (the
//! per-edge factor tables are used instead of `exp` per arrival), so each of
//! the four combinations compiles to its own loop with no runtime test of
//! either. The helpers are `#[inline(always)]`; `phase` and `activate` are the
//! only `#[inline(never)]` boundaries (one per epoch phase, one per activation).

use super::events::{Emission, Ev, Prefetch, EXTERNAL, NOT_PLASTIC};
use super::params::StdpParams;
use super::prepare::{Part, Simulator};
use super::run::PartSpace;
use crate::network::{EdgeId, Network, NodeId};
use crate::record::{Activation, RecordSpec, Recording, RunTotals};

/// In an epoch of more than `LONG_EPOCH` events (more state lines than the
/// second-level cache holds, two per event), processing prefetches the
/// target's (and plastic edge's) state `PROCESS_AHEAD` events ahead, and the
/// event record twice as far. The tests' small networks have short epochs,
/// so there the threshold is low enough for both loops to run (and be held
/// to the reference implementation), including a snapshot that stops a
/// phase inside the prefetching loop.
#[cfg(not(test))]
const LONG_EPOCH: usize = 2048;
#[cfg(test)]
const LONG_EPOCH: usize = 16;
const PROCESS_AHEAD: usize = 8;

/// Event `i` of the epoch, an index from its sorted order.
#[inline(always)]
fn event_at(events: &[Ev], i: u32) -> Ev {
    debug_assert!((i as usize) < events.len());
    // SAFETY: `sort_epoch` fills the order with indices of the epoch's
    // written events, a prefix of `events`.
    unsafe { *events.get_unchecked(i as usize) }
}

/// The dynamic state of the nodes and plastic edges during one run. Decaying
/// quantities are stored scaled by exp((t - origin)/tau) (see the `sim` doc).
#[derive(Debug, Default)]
pub(super) struct NodeState {
    /// The activations of the epoch being processed, in processing order
    /// (the run loop collects every part's at the end of the epoch and
    /// queues their signals).
    pub(super) fired: Vec<Activation>,
    /// Per node, what every arrival at it reads, in one record (one bounds
    /// check and one cache line per arrival instead of one per array).
    pub(super) node: Vec<NodeHot>,
    /// Per plastic index (target-major: a node's incoming plastic edges are
    /// contiguous, so potentiation walks memory in order): the edge's scaled
    /// pre trace and its weight during the run. The run's weights live here
    /// and are written back to the caller's array at the end (snapshots read
    /// them here), so an arrival touches one record, not two arrays.
    pub(super) plastic: Vec<PlasticHot>,
    /// Per emission (activation of this run): exp((t - origin)/tau) for tau_s,
    /// tau_plus, tau_minus.
    pub(super) emission_factor: Vec<[f64; 3]>,
    /// Emissions so far in this run (the next emission's id).
    emissions: u32,
    /// Activations per node in this run: names the busiest node when a run
    /// passes a limit (one increment per activation, which already costs a
    /// walk over the out-edges).
    pub(super) activation_count: Vec<u64>,
}

impl NodeState {
    /// The state at rest: potentials 0, no node refractory, traces empty;
    /// each node's threshold is `threshold[j]` (the simulator's copy).
    pub(super) fn reset(&mut self, net: &Network, part: &Part, weights: &[f32], threshold: &[f64]) {
        fn fill<T: Clone>(v: &mut Vec<T>, len: usize, x: T) {
            v.clear();
            v.resize(len, x);
        }
        let n = net.n_nodes();
        self.node.clear();
        self.node.extend((0..n).map(|j| NodeHot {
            potential: 0.0,
            last_activation: f64::NEG_INFINITY,
            post_trace: 0.0,
            refractory_period_ms: net.refractory_period_ms[j],
            threshold: threshold[j],
        }));
        self.plastic.clear();
        self.plastic
            .extend(part.plastic_edge.iter().map(|&e| PlasticHot {
                pre_trace: 0.0,
                weight: weights[e as usize],
            }));
        fill(&mut self.activation_count, n, 0);
        self.emission_factor.clear();
        self.emissions = 0;
        self.fired.clear();
    }
}

/// A plastic edge's state during a run.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PlasticHot {
    /// Scaled pre trace: x_e(t) = pre_trace * exp(-(t - origin)/tau_plus).
    pub(super) pre_trace: f64,
    /// The weight, rounded to f32 after every update as the caller's array.
    pub(super) weight: f32,
}

/// A node's state and the parameters an arrival needs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NodeHot {
    /// Scaled potential: u_j(t) = potential * exp(-(t - origin)/tau_s).
    potential: f64,
    last_activation: f64,
    /// Scaled post trace: y_j(t) = post_trace * exp(-(t - origin)/tau_minus).
    post_trace: f64,
    refractory_period_ms: f64,
    threshold: f64,
}

/// The mutable context of one part of one run. `rec` holds the part's
/// per-node counts and activity (its own nodes' entries) and no activation
/// list (the run loop keeps that); `snapshots` its values of the snapshot
/// edges into its targets.
pub(super) struct Ctx<'s, 'a> {
    pub(super) sim: &'s Simulator<'a>,
    pub(super) part: &'s Part,
    /// The run's starting weights: read only during the run (plastic
    /// weights live in `NodeState::plastic`).
    pub(super) weights: &'s [f32],
    pub(super) spec: &'s RecordSpec,
    pub(super) rec: Recording,
    pub(super) snapshots: Vec<Vec<f32>>,
    pub(super) totals: RunTotals,
    pub(super) origin: f64,
    /// The STDP parameters (zeros when off), and whether a lost arrival counts.
    pub(super) stdp: StdpParams,
    pub(super) lost_count_stdp: bool,
    /// `spec.node_counts`, kept here: the refractory path tests it.
    pub(super) node_counts: bool,
}

/// An activation of the epoch as every part sees it at the epoch's end:
/// whether its signals leave (`emit`: it has out-edges, and they fit under
/// the in-flight limit) and its emission factors exp((t - origin)/tau) for
/// tau_s, tau_plus, tau_minus (zeros without the tables), computed once for
/// all parts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fired {
    pub(super) node: NodeId,
    pub(super) t: f64,
    pub(super) cause: Option<EdgeId>,
    pub(super) emit: bool,
    pub(super) factor: [f64; 3],
}

impl Ctx<'_, '_> {
    /// Moves the origin of the scaled quantities to `new_origin`.
    pub(super) fn rebase(&mut self, ws: &mut PartSpace, new_origin: f64) {
        let s = self.sim;
        let st = &mut ws.state;
        let shift = new_origin - self.origin;
        let dp = (-shift * s.inv_tau_plus).exp();
        let dm = (-shift * s.inv_tau_minus).exp();
        let ds = (-shift * s.inv_tau_s_uniform).exp();
        for (j, h) in st.node.iter_mut().enumerate() {
            h.potential *= (-shift * s.inv_tau_s[j]).exp();
            h.post_trace *= dm;
        }
        for x in st.plastic.iter_mut() {
            x.pre_trace *= dp;
        }
        for f in st.emission_factor.iter_mut() {
            f[0] *= ds;
            f[1] *= dp;
            f[2] *= dm;
        }
        self.origin = new_origin;
    }

    /// Processes, in order, every sorted event of the epoch with time <= limit.
    #[inline(never)]
    pub(super) fn phase<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut PartSpace,
        limit: f64,
    ) {
        // Taken out of the queue for the loop, so that their lengths and
        // data stay in registers while `process` mutates the state.
        let order = std::mem::take(&mut ws.queue.order);
        let events = std::mem::take(&mut ws.queue.current);
        let mut c = ws.queue.cursor;
        'phase: {
            // A long epoch's events were written long before they are
            // processed: the state that writing prefetched has left the
            // cache since, so it is asked for again, a few events ahead.
            if order.len() - c > LONG_EPOCH {
                let (node_state, plastic_state, event) = (
                    Prefetch::of(&ws.state.node),
                    Prefetch::of(&ws.state.plastic),
                    Prefetch::of(&events),
                );
                while c + 2 * PROCESS_AHEAD < order.len() {
                    let ahead = &events[order[c + PROCESS_AHEAD] as usize];
                    node_state.at(ahead.target);
                    if STDP {
                        plastic_state.at(ahead.plastic);
                    }
                    event.at(order[c + 2 * PROCESS_AHEAD]);
                    let k = event_at(&events, order[c]);
                    if k.t() > limit {
                        break 'phase;
                    }
                    c += 1;
                    self.process::<STDP, TABLES>(ws, k.target as usize, k);
                }
            }
            for &i in &order[c..] {
                let k = event_at(&events, i);
                if k.t() > limit {
                    break;
                }
                c += 1;
                self.process::<STDP, TABLES>(ws, k.target as usize, k);
            }
        }
        ws.queue.cursor = c;
        ws.queue.order = order;
        ws.queue.current = events;
    }

    /// Processes one event at target j.
    #[inline(always)]
    fn process<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut PartSpace,
        j: usize,
        k: Ev,
    ) {
        let s = self.sim;
        let t = k.t();
        let edge = (k.low >> 32) as u32;
        debug_assert!(j < ws.state.node.len());
        // SAFETY: j is an event's target: an edge's target (the network
        // checked every edge's nodes when it was built) or a stimulus node
        // (`Simulator::run` checked them), so below the node count, the
        // length of `node` (`NodeState::reset`).
        let h = unsafe { *ws.state.node.get_unchecked(j) };
        let refractory = t - h.last_activation < h.refractory_period_ms;
        let cause;
        if edge == EXTERNAL {
            self.totals.external_activations += 1;
            if refractory {
                self.totals.lost_external += 1;
                return;
            }
            cause = None;
        } else {
            let e = edge as usize;
            self.totals.arrivals += 1;
            let pi = k.plastic;
            let plastic = STDP && pi != NOT_PLASTIC;
            if refractory {
                self.totals.lost_arrivals += 1;
                if self.node_counts {
                    self.rec.lost_counts[j] += 1;
                }
                if !plastic || !self.lost_count_stdp {
                    return;
                }
            }
            let g = if TABLES {
                k.g
            } else {
                ((t - self.origin) * s.inv_tau_s[j]).exp()
            };
            // w * g: written with the event for an edge whose weight cannot
            // change during the run (see `Ev`), else from the weight now.
            let weighted = if plastic {
                let w = ws.state.plastic[pi as usize].weight as f64;
                let (g_plus, g_minus) = if TABLES {
                    (k.a, k.b)
                } else {
                    (
                        ((t - self.origin) * s.inv_tau_plus).exp(),
                        ((t - self.origin) * s.inv_tau_minus).exp(),
                    )
                };
                self.depress(ws, j, pi as usize, w, g_plus, g_minus);
                if refractory {
                    return;
                }
                w * g
            } else if TABLES {
                k.a
            } else {
                self.weights[e] as f64 * g
            };
            // `h` is still current: depression changes weights and pre
            // traces, not the node.
            let u = h.potential + weighted;
            if u < h.threshold * g {
                ws.state.node[j].potential = u;
                return;
            }
            cause = Some(edge as EdgeId);
        }
        self.activate::<STDP, TABLES>(ws, j, t, cause);
    }

    /// STDP at a plastic arrival on plastic index `pi`, of weight
    /// `w`, with `g_plus`, `g_minus` = exp((t - origin)/tau_plus),
    /// exp((t - origin)/tau_minus): depression from earlier post activations,
    /// then the pre trace.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn depress(
        &mut self,
        ws: &mut PartSpace,
        j: usize,
        pi: usize,
        w: f64,
        g_plus: f64,
        g_minus: f64,
    ) {
        let p = self.stdp;
        let st = &mut ws.state;
        let y = st.node[j].post_trace / g_minus;
        let x = &mut st.plastic[pi];
        // Computed either way and selected (y is 0 until the target's first
        // activation, an unpredictable branch), so an unchanged weight is
        // the old one, not clamped.
        let depressed = (w - p.a_minus() * y).clamp(p.w_min(), p.w_max()) as f32;
        let on = y > 0.0;
        x.weight = if on { depressed } else { x.weight };
        self.totals.stdp_updates += on as u64;
        x.pre_trace += g_plus;
    }

    /// Node j activates at t (`cause`: the arrival that made it, `None` for
    /// the stimulus): reset, record, potentiate. Its signals leave at the end
    /// of the epoch (none arrives in it), when the run loop has every part's
    /// activations (see `emit_fired`).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn activate<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut PartSpace,
        j: usize,
        t: f64,
        cause: Option<EdgeId>,
    ) {
        ws.state.node[j].potential = 0.0;
        ws.state.node[j].last_activation = t;
        self.record_activation(ws, j, t, cause);
        let rel = t - self.origin;
        if STDP {
            self.potentiate(ws, j, rel);
        }
    }

    /// Counts and (if asked) records the activation of j at t.
    #[inline(always)]
    fn record_activation(&mut self, ws: &mut PartSpace, j: usize, t: f64, cause: Option<EdgeId>) {
        self.totals.activations += 1;
        ws.state.activation_count[j] += 1;
        if self.spec.node_counts {
            self.rec.activation_counts[j] += 1;
        }
        if let Some(bw) = self.spec.activity_bin_ms {
            let bins = self.rec.activity_bins;
            let bin = ((t / bw) as usize).min(bins - 1);
            self.rec.activity[j * bins + bin] += 1;
        }
        ws.state.fired.push(Activation {
            node: j as NodeId,
            time_ms: t,
            causal_edge: cause,
        });
    }

    /// STDP at an activation of j (`rel` = t - origin): every incoming plastic
    /// edge is potentiated by its pre trace, then the post trace steps by 1.
    #[inline(always)]
    fn potentiate(&mut self, ws: &mut PartSpace, j: usize, rel: f64) {
        let s = self.sim;
        let p = self.stdp;
        let st = &mut ws.state;
        // Potentiation: x_e(t) = pre_trace * exp(-(t - origin)/tau_plus).
        let h = (-rel * s.inv_tau_plus).exp();
        let local = j - self.part.lo as usize;
        let offsets = &self.part.in_offsets;
        let range = offsets[local] as usize..offsets[local + 1] as usize;
        let mut updates = 0u64;
        // As in `depress`: computed and selected, no branch per edge.
        for x in &mut st.plastic[range] {
            let potentiated =
                (x.weight as f64 + p.a_plus() * x.pre_trace * h).clamp(p.w_min(), p.w_max()) as f32;
            let on = x.pre_trace > 0.0;
            x.weight = if on { potentiated } else { x.weight };
            updates += on as u64;
        }
        self.totals.stdp_updates += updates;
        st.node[j].post_trace += (rel * s.inv_tau_minus).exp();
    }

    /// Queues, on this part's out-edges, the signals of the epoch's
    /// activations (every part's, in (time, node) order): one emission per
    /// activation with edges into this part, drained epoch by epoch. Its id
    /// is this part's count of emissions: ids order only the arrivals of one
    /// edge at one instant, which come from one node, whose activations keep
    /// their order, so the result does not depend on the parts.
    pub(super) fn emit_fired<const TABLES: bool>(
        &mut self,
        ws: &mut PartSpace,
        fired: &[Fired],
        epoch: u64,
        mask: u64,
    ) {
        let s = self.sim;
        let part = self.part;
        for f in fired.iter().filter(|f| f.emit) {
            let i = f.node as usize;
            let (lo, hi) = (part.out_offsets[i], part.out_offsets[i + 1]);
            if lo == hi {
                continue;
            }
            let id = ws.state.emissions;
            ws.state.emissions += 1;
            if TABLES {
                ws.state.emission_factor.push(f.factor);
            }
            let em = Emission {
                t: f.t,
                next: lo,
                end: hi,
                id,
                plastic: part.plastic_source[i],
            };
            ws.queue.emit(em, &part.out_edges, s.inv_epoch, epoch, mask);
        }
    }
}

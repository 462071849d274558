//! Exact k-nearest-neighbour classification.
//!
//! Distances come from inner products: `|a - b|^2 = |a|^2 + |b|^2 - 2 a.b` (or
//! `1 - a.b / (|a||b|)` for cosine) with `a.b` from one f32 sgemm Gram matrix
//! shared by every split. f32 cancellation can misorder near-ties, so each
//! query keeps a few more candidates than `k` and re-ranks them with distances
//! recomputed exactly in f64 from the rows; ties and "distance exactly 0" are
//! therefore decided on exact values.

use std::borrow::Cow;
use std::time::Instant;

use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::gram::{cross2, gram_sym, Kernel};
use super::linear::ViewGram;
use super::{
    random_splits, summarize, validate_fit, validate_inputs, EvalError, Evaluation, KnnParams,
    Metric, Split, Weighting,
};

/// Largest number of distinct rows whose full Gram matrix is cached
/// (20,000^2 f32 = 1.6 GB); beyond it each split streams its own products.
const MAX_CACHED_ROWS: usize = 20_000;
/// Queries per streamed block when the Gram matrix is not cached.
const QUERY_BLOCK: usize = 1024;

/// Candidates kept from the f32 ranking for exact f64 re-ranking.
fn n_candidates(k: usize, n_ref: usize) -> usize {
    (2 * k + 10).min(n_ref)
}

fn sq_norm64(r: ArrayView1<f32>) -> f64 {
    r.iter().map(|&v| v as f64 * v as f64).sum()
}

/// Exact distance in f64.
fn exact_distance(a: ArrayView1<f32>, na: f64, b: ArrayView1<f32>, nb: f64, metric: Metric) -> f64 {
    match metric {
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(&u, &v)| {
                let t = u as f64 - v as f64;
                t * t
            })
            .sum::<f64>()
            .sqrt(),
        Metric::Cosine => {
            if na == 0.0 || nb == 0.0 {
                return 1.0;
            }
            let dot: f64 = a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum();
            // sqrt(na * nb) (not sqrt(na) * sqrt(nb)) so a row against itself gives exactly 1.
            let cos = (dot / (na * nb).sqrt()).clamp(-1.0, 1.0);
            1.0 - cos
        }
    }
}

/// f32 ranking score from an inner product (monotone in the true distance up to rounding).
fn approx_score(g: f32, nq: f64, nr: f64, metric: Metric) -> f32 {
    match metric {
        Metric::Euclidean => (nq + nr) as f32 - 2.0 * g,
        Metric::Cosine => {
            if nq == 0.0 || nr == 0.0 {
                1.0
            } else {
                1.0 - g / ((nq * nr).sqrt() as f32)
            }
        }
    }
}

/// Vote among neighbours sorted by (distance, reference position).
pub(crate) fn vote(neigh: &[(f64, usize)], labels: &[u8], n_classes: usize, w: Weighting) -> u8 {
    let mut score = vec![0f64; n_classes];
    let mut dist_sum = vec![0f64; n_classes];
    let any_zero = neigh.iter().any(|&(d, _)| d == 0.0);
    for &(d, pos) in neigh {
        let c = labels[pos] as usize;
        let v = match w {
            Weighting::Majority => 1.0,
            Weighting::InverseDistance if any_zero => (d == 0.0) as u8 as f64,
            Weighting::InverseDistance => 1.0 / d,
        };
        score[c] += v;
        dist_sum[c] += d;
    }
    let mut best = 0usize;
    for c in 1..n_classes {
        let better = match w {
            // Majority ties: smaller summed distance, then smaller class id.
            Weighting::Majority => {
                score[c] > score[best] || (score[c] == score[best] && dist_sum[c] < dist_sum[best])
            }
            Weighting::InverseDistance => score[c] > score[best],
        };
        if better {
            best = c;
        }
    }
    best as u8
}

/// The reference side of a classification: rows of `x` (by position) with labels.
struct RefSet<'a> {
    x: ArrayView2<'a, f32>,
    /// position in the reference -> row of `x`
    rows: &'a [usize],
    /// squared norms, indexed by row of `x`
    norms: &'a [f64],
    /// labels, indexed by reference position
    labels: Vec<u8>,
}

/// Classify one query from its f32 scores against every reference position.
fn classify_one(
    scores: &mut [(f32, u32)],
    q: ArrayView1<f32>,
    nq: f64,
    refs: &RefSet,
    params: &KnnParams,
    n_classes: usize,
) -> u8 {
    let n_ref = scores.len();
    let m = n_candidates(params.k, n_ref);
    let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if m < n_ref {
        scores.select_nth_unstable_by(m - 1, cmp);
    }
    let exact = |p: usize| {
        let r = refs.rows[p];
        (
            exact_distance(q, nq, refs.x.row(r), refs.norms[r], params.metric),
            p,
        )
    };
    let mut cand: Vec<(f64, usize)> = scores[..m]
        .iter()
        .map(|&(_, p)| exact(p as usize))
        .collect();
    // Equal distances: the smaller reference position wins.
    let order = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    cand.sort_by(order);
    if m < n_ref {
        // Safety net for f32 rounding: any row left out whose f32 score is within a
        // generous rounding bound of the exact k-th distance is re-ranked too.
        let kth = cand[params.k - 1].0;
        let u = f32::EPSILON as f64 * 4.0 * (q.len() as f64).sqrt();
        let extra: Vec<(f64, usize)> = scores[m..]
            .iter()
            .filter(|&&(sc, p)| {
                let nr = refs.norms[refs.rows[p as usize]];
                let (kth_score, tol) = match params.metric {
                    Metric::Euclidean => (kth * kth, u * (nq + nr + 2.0 * (nq * nr).sqrt())),
                    Metric::Cosine => (kth, 2.0 * u),
                };
                (sc as f64) <= kth_score + tol
            })
            .map(|&(_, p)| exact(p as usize))
            .collect();
        if !extra.is_empty() {
            cand.extend(extra);
            cand.sort_by(order);
        }
    }
    vote(&cand[..params.k], &refs.labels, n_classes, params.weighting)
}

fn check_k(params: &KnnParams, splits: &[Split]) -> Result<(), EvalError> {
    if params.k == 0 {
        return Err(EvalError::ZeroK);
    }
    for (s, sp) in splits.iter().enumerate() {
        if params.k > sp.reference.len() {
            return Err(EvalError::KTooLarge {
                k: params.k,
                n_reference: sp.reference.len(),
                split: s,
            });
        }
    }
    Ok(())
}

/// kNN over every split (see the module doc for the exact semantics).
pub fn evaluate_knn(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &KnnParams,
) -> Result<Evaluation, EvalError> {
    Ok(evaluate_knn_detailed(x, labels, n_classes, splits, params)?.0)
}

/// [`evaluate_knn`] plus the predictions: `preds[s][i]` for `splits[s].query[i]`.
pub fn evaluate_knn_detailed(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &KnnParams,
) -> Result<(Evaluation, Vec<Vec<u8>>), EvalError> {
    validate_inputs(x, labels, n_classes, splits)?;
    check_k(params, splits)?;
    let preds = knn_predict_splits(x, labels, n_classes, splits, params, Kernel::Auto, true);
    Ok((summarize(labels, n_classes, splits, &preds), preds))
}

pub(crate) fn knn_predict_splits(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &KnnParams,
    kernel: Kernel,
    allow_cache: bool,
) -> Vec<Vec<u8>> {
    knn_predict_shared(
        x,
        labels,
        n_classes,
        splits,
        params,
        kernel,
        allow_cache,
        None,
    )
}

/// [`evaluate_knn_detailed`] ranking with `gram`, the centred Gram matrix of
/// every row of `x` that the linear readouts use too (so a view's products are
/// computed once). Distances do not change under centring; the f32 ranking
/// uses the centred norms, and the candidates are re-ranked exactly in f64
/// from the rows of `x` as always, with the rounding margin taken from the
/// uncentred norms (the larger, so no near neighbour is missed).
pub fn evaluate_knn_gram(
    x: ArrayView2<f32>,
    gram: &ViewGram,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &KnnParams,
) -> Result<(Evaluation, Vec<Vec<u8>>), EvalError> {
    validate_inputs(x, labels, n_classes, splits)?;
    check_k(params, splits)?;
    if gram.n() != x.nrows() {
        return Err(EvalError::GramShape {
            rows: gram.n(),
            cols: x.nrows(),
        });
    }
    // Centring changes angles: the cosine metric needs the rows' own products.
    let shared = (params.metric == Metric::Euclidean).then_some(gram);
    let preds = knn_predict_shared(
        x,
        labels,
        n_classes,
        splits,
        params,
        Kernel::Auto,
        true,
        shared,
    );
    Ok((summarize(labels, n_classes, splits, &preds), preds))
}

#[allow(clippy::too_many_arguments)]
fn knn_predict_shared(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &KnnParams,
    kernel: Kernel,
    allow_cache: bool,
    shared: Option<&ViewGram>,
) -> Vec<Vec<u8>> {
    let n = x.nrows();
    let mut used = vec![false; n];
    for sp in splits {
        sp.reference
            .iter()
            .chain(&sp.query)
            .for_each(|&i| used[i] = true);
    }
    let union: Vec<usize> = (0..n).filter(|&i| used[i]).collect();
    let mut norms = vec![0f64; n];
    let computed: Vec<(usize, f64)> = union
        .par_iter()
        .map(|&r| (r, sq_norm64(x.row(r))))
        .collect();
    for (r, v) in computed {
        norms[r] = v;
    }

    // One Gram matrix for all splits when it fits; otherwise stream per split.
    // A shared (centred) one covers every row; its diagonal ranks.
    let (cache, m, rank_norms) = match shared {
        Some(g) => (
            Some(((0..n).collect::<Vec<usize>>(), Cow::Borrowed(g.entries()))),
            n,
            Cow::Owned((0..n).map(|i| g.entries()[i * n + i] as f64).collect()),
        ),
        None => (
            (allow_cache && union.len() <= MAX_CACHED_ROWS).then(|| {
                let mut pos = vec![usize::MAX; n];
                union.iter().enumerate().for_each(|(p, &r)| pos[r] = p);
                (pos, Cow::Owned(gram_sym(x, &union, kernel)))
            }),
            union.len(),
            Cow::Borrowed(&norms[..]),
        ),
    };

    splits
        .iter()
        .map(|sp| {
            let refs = RefSet {
                x: x.view(),
                rows: &sp.reference,
                norms: &norms,
                labels: sp.reference.iter().map(|&r| labels[r]).collect(),
            };
            let n_ref = sp.reference.len();
            match &cache {
                Some((pos, g)) => sp
                    .query
                    .par_iter()
                    .map_init(
                        || Vec::with_capacity(n_ref),
                        |scores, &q| {
                            let grow = &g[pos[q] * m..pos[q] * m + m];
                            scores.clear();
                            scores.extend(sp.reference.iter().enumerate().map(|(p, &r)| {
                                (
                                    approx_score(
                                        grow[pos[r]],
                                        rank_norms[q],
                                        rank_norms[r],
                                        params.metric,
                                    ),
                                    p as u32,
                                )
                            }));
                            classify_one(scores, x.row(q), norms[q], &refs, params, n_classes)
                        },
                    )
                    .collect(),
                None => {
                    let mut out = Vec::with_capacity(sp.query.len());
                    for qb in sp.query.chunks(QUERY_BLOCK) {
                        let prod = cross2(x, qb, x, &sp.reference, kernel);
                        out.par_extend(qb.par_iter().enumerate().map_init(
                            || Vec::with_capacity(n_ref),
                            |scores, (t, &q)| {
                                let grow = &prod[t * n_ref..(t + 1) * n_ref];
                                scores.clear();
                                scores.extend(sp.reference.iter().enumerate().map(|(p, &r)| {
                                    (
                                        approx_score(grow[p], norms[q], norms[r], params.metric),
                                        p as u32,
                                    )
                                }));
                                classify_one(scores, x.row(q), norms[q], &refs, params, n_classes)
                            },
                        ));
                    }
                    out
                }
            }
        })
        .collect()
}

/// linfa-style kNN: `KnnClassifier::new(params).fit(x, y)?.predict(q)?`.
#[derive(Clone, Debug)]
pub struct KnnClassifier {
    pub params: KnnParams,
    pub n_classes: usize,
}

/// A fitted kNN (a copy of the reference set).
#[derive(Clone, Debug)]
pub struct KnnModel {
    params: KnnParams,
    n_classes: usize,
    x: Array2<f32>,
    labels: Vec<u8>,
    norms: Vec<f64>,
}

impl KnnClassifier {
    pub fn new(params: KnnParams, n_classes: usize) -> Self {
        KnnClassifier { params, n_classes }
    }
    pub fn fit(&self, x: ArrayView2<f32>, labels: &[u8]) -> Result<KnnModel, EvalError> {
        validate_fit(x, labels, self.n_classes)?;
        let split = Split {
            reference: (0..x.nrows()).collect(),
            query: vec![],
        };
        check_k(&self.params, std::slice::from_ref(&split))?;
        Ok(KnnModel {
            params: self.params.clone(),
            n_classes: self.n_classes,
            x: x.to_owned(),
            labels: labels.to_vec(),
            norms: x.rows().into_iter().map(sq_norm64).collect(),
        })
    }
}

impl KnnModel {
    pub fn predict(&self, q: ArrayView2<f32>) -> Result<Vec<u8>, EvalError> {
        if q.ncols() != self.x.ncols() {
            return Err(EvalError::ColumnMismatch {
                expected: self.x.ncols(),
                got: q.ncols(),
            });
        }
        for (row, r) in q.rows().into_iter().enumerate() {
            if let Some((col, &value)) = r.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(EvalError::NonFinite { row, col, value });
            }
        }
        let n_ref = self.x.nrows();
        let ref_rows: Vec<usize> = (0..n_ref).collect();
        let refs = RefSet {
            x: self.x.view(),
            rows: &ref_rows,
            norms: &self.norms,
            labels: self.labels.clone(),
        };
        let mut out = Vec::with_capacity(q.nrows());
        let q_rows: Vec<usize> = (0..q.nrows()).collect();
        for qb in q_rows.chunks(QUERY_BLOCK) {
            let prod = cross2(q, qb, self.x.view(), &ref_rows, Kernel::Auto);
            out.par_extend(qb.par_iter().enumerate().map(|(t, &qi)| {
                let nq = sq_norm64(q.row(qi));
                let mut scores: Vec<(f32, u32)> = (0..n_ref)
                    .map(|p| {
                        let s = approx_score(
                            prod[t * n_ref + p],
                            nq,
                            self.norms[p],
                            self.params.metric,
                        );
                        (s, p as u32)
                    })
                    .collect();
                classify_one(
                    &mut scores,
                    q.row(qi),
                    nq,
                    &refs,
                    &self.params,
                    self.n_classes,
                )
            }));
        }
        Ok(out)
    }
}

/// Seeded n x d data, half zeros (like weight-change embeddings), for timing.
pub(crate) fn demo_data(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut x = vec![0f32; n * d];
    x.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        row.iter_mut().for_each(|v| {
            let u: f32 = rng.gen();
            *v = if u < 0.5 { 0.0 } else { 2.0 * u - 1.0 };
        });
    });
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (
        Array2::from_shape_vec((n, d), x).expect("demo shape"),
        labels,
    )
}

/// Wall time (seconds) of the full kNN protocol (10 random 90%/10% splits,
/// distance-weighted Euclidean, k = 5) on seeded `n x d` data with 50% zeros.
/// Data generation is not timed. `n` is raised to at least 20 and `d` to 1.
pub fn knn_timing_demo(n: usize, d: usize) -> f64 {
    let (n, d) = (n.max(20), d.max(1));
    let (x, labels) = demo_data(n, d, 0x5eed);
    let n_query = n / 10;
    let splits = random_splits(n, n - n_query, n_query, 10, 1).expect("sizes valid");
    let params = KnnParams {
        k: 5,
        metric: Metric::Euclidean,
        weighting: Weighting::InverseDistance,
    };
    let t = Instant::now();
    let ev = evaluate_knn(x.view(), &labels, 10, &splits, &params).expect("valid demo input");
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(ev);
    secs
}

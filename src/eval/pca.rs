//! Seeded randomized PCA (subspace iteration): the projection behind the PCA
//! scatter figures. It lives in `eval` because it is a computation on embeddings;
//! `report` only draws its output.
//!
//! Embeddings can be 10,000 × 39,800: an exact eigendecomposition of the d×d covariance
//! or of the n×n Gram matrix costs ~10¹² flops, so we use randomized subspace iteration
//! (Halko, Martinsson & Tropp 2011, alg. 4.4): a Gaussian test matrix with a few
//! oversampled columns, a few power iterations to sharpen the leading subspace, then an
//! exact Rayleigh–Ritz step on that small subspace. The data are never copied: centring
//! is folded into each product (`Xc·B = X·B − 1·(μᵀB)`), so memory stays at the input plus
//! a few n×l and d×l blocks.

use super::rng::standard_normal;
use super::EvalError;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Extra columns beyond `n_components`: the classic choice that makes the randomized
/// range finder's error close to optimal.
const OVERSAMPLE: usize = 10;
/// Power iterations; each costs two passes over the data. Three, with re-orthonormalisation
/// and 10 oversampled columns, recover the top components of the planted-spectrum test
/// data to 1e-3 of an exact PCA, and keep 10,000 × 39,800 at ~8-9 s on 2 busy cores.
const POWER_ITERS: usize = 3;
/// Rows per parallel block of the big products (fixed, so results do not depend on the
/// number of threads).
const ROW_BLOCK: usize = 512;

/// PCA output: scores and the variance they explain.
#[derive(Clone, Debug)]
pub struct Pca {
    /// n × c projections of the centred data on the leading principal directions.
    pub scores: Array2<f32>,
    /// Variance (sample variance, divisor n − 1) along each component.
    pub explained_variance: Vec<f64>,
    /// Total variance of the data (sum of the column variances).
    pub total_variance: f64,
}

/// Principal-component scores of the rows of `x` (n × d): the centred data projected on
/// the `n_components` leading principal directions, n × c. Deterministic for a given
/// `seed`; each component's sign is fixed so that its largest-magnitude score is positive.
pub fn pca(x: ArrayView2<f32>, n_components: usize, seed: u64) -> Result<Array2<f32>, EvalError> {
    pca_with_variance(x, n_components, seed).map(|p| p.scores)
}

/// [`pca`], also returning the explained variance (for axis labels such as "PC1 (9.7%)").
pub fn pca_with_variance(
    x: ArrayView2<f32>,
    n_components: usize,
    seed: u64,
) -> Result<Pca, EvalError> {
    let (n, d) = x.dim();
    if n < 2 || d == 0 {
        return Err(EvalError::PcaTooSmall { rows: n, cols: d });
    }
    if n_components == 0 || n_components > n.min(d) {
        return Err(EvalError::PcaComponents {
            n_components,
            rows: n,
            cols: d,
        });
    }
    if let Some(((row, col), &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFinite { row, col, value });
    }

    let (mean, total_variance) = mean_and_total_variance(x);

    let l = (n_components + OVERSAMPLE).min(n).min(d);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let omega = Array2::from_shape_fn((d, l), |_| standard_normal(&mut rng) as f32);

    // Range finder with re-orthonormalisation after every product (keeps the power
    // iterations from collapsing onto the top direction in floating point).
    let mut q = orthonormalize(centred_times(x, &mean, omega.view()));
    for _ in 0..POWER_ITERS {
        let z = orthonormalize(centred_t_times(x, &mean, q.view()));
        q = orthonormalize(centred_times(x, &mean, z.view()));
    }

    // Rayleigh–Ritz: B = Qᵀ Xc (stored transposed, d × l); the eigenvectors of B Bᵀ give
    // the right singular vectors V = Bᵀ U / σ, i.e. the principal directions.
    let bt = centred_t_times(x, &mean, q.view());
    let bt64 = bt.mapv(|v| v as f64);
    let g = bt64.t().dot(&bt64);
    let (evals, evecs) = jacobi_eigen(g);
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| evals[b].total_cmp(&evals[a]));

    let mut dirs = Array2::<f32>::zeros((d, n_components));
    for (c, &j) in order.iter().take(n_components).enumerate() {
        let v = bt64.dot(&evecs.column(j));
        let norm = v.dot(&v).sqrt();
        if norm > 0.0 {
            dirs.column_mut(c).assign(&v.mapv(|e| (e / norm) as f32));
        }
        // norm == 0: rank below n_components; the component stays zero (zero variance).
    }
    // Project on the directions exactly (rather than Q·U·σ), so scores are the true
    // projections even where the subspace is slightly off.
    let mut scores = centred_times(x, &mean, dirs.view());
    let explained_variance = fix_signs(&mut scores);
    Ok(Pca {
        scores,
        explained_variance,
        total_variance,
    })
}

/// Column means (as f32, for the products) and the total variance (divisor n − 1),
/// accumulated in f64: sums of 10⁴ f32 values lose digits in f32.
fn mean_and_total_variance(x: ArrayView2<f32>) -> (Array1<f32>, f64) {
    let (n, d) = x.dim();
    let mut mean64 = vec![0f64; d];
    let mut sq64 = vec![0f64; d];
    for row in x.rows() {
        for ((m, q), &v) in mean64.iter_mut().zip(sq64.iter_mut()).zip(row.iter()) {
            *m += v as f64;
            *q += (v as f64) * (v as f64);
        }
    }
    let nf = n as f64;
    let total_variance: f64 = mean64
        .iter()
        .zip(&sq64)
        .map(|(&s, &q)| ((q - s * s / nf) / (nf - 1.0)).max(0.0))
        .sum();
    let mean: Array1<f32> = mean64.iter().map(|&s| (s / nf) as f32).collect();
    (mean, total_variance)
}

/// Flips each score column so that its largest-magnitude entry is positive (a sign
/// that does not depend on the seed), and returns each column's sample variance.
fn fix_signs(scores: &mut Array2<f32>) -> Vec<f64> {
    let nf = scores.nrows() as f64;
    let mut explained_variance = Vec::with_capacity(scores.ncols());
    for mut col in scores.columns_mut() {
        let (mut imax, mut vmax) = (0, 0f32);
        for (i, &v) in col.iter().enumerate() {
            if v.abs() > vmax {
                (imax, vmax) = (i, v.abs());
            }
        }
        if col[imax] < 0.0 {
            col.mapv_inplace(|v| -v);
        }
        let var = col.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / (nf - 1.0);
        explained_variance.push(var);
    }
    explained_variance
}

/// (X − 1μᵀ)·B, n × l, in fixed row blocks in parallel.
fn centred_times(x: ArrayView2<f32>, mean: &Array1<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let shift = mean.dot(&b); // μᵀB, length l
    let n = x.nrows();
    let blocks: Vec<usize> = (0..n.div_ceil(ROW_BLOCK)).collect();
    let parts: Vec<Array2<f32>> = blocks
        .par_iter()
        .map(|&k| {
            let r = k * ROW_BLOCK..((k + 1) * ROW_BLOCK).min(n);
            let mut blk = x.slice(s![r, ..]).dot(&b);
            blk -= &shift;
            blk
        })
        .collect();
    let mut out = Array2::<f32>::zeros((n, b.ncols()));
    for (k, part) in parts.iter().enumerate() {
        let r0 = k * ROW_BLOCK;
        out.slice_mut(s![r0..r0 + part.nrows(), ..]).assign(part);
    }
    out
}

/// (X − 1μᵀ)ᵀ·P, d × l. Partial sums per row block are added in block order, so the
/// result is bitwise reproducible whatever the thread count.
fn centred_t_times(x: ArrayView2<f32>, mean: &Array1<f32>, p: ArrayView2<f32>) -> Array2<f32> {
    let n = x.nrows();
    let blocks: Vec<usize> = (0..n.div_ceil(ROW_BLOCK)).collect();
    let partials: Vec<Array2<f32>> = blocks
        .par_iter()
        .map(|&k| {
            let r = k * ROW_BLOCK..((k + 1) * ROW_BLOCK).min(n);
            x.slice(s![r.clone(), ..]).t().dot(&p.slice(s![r, ..]))
        })
        .collect();
    let mut out = Array2::<f32>::zeros((x.ncols(), p.ncols()));
    for part in &partials {
        out += part;
    }
    let colsum = p.sum_axis(Axis(0)); // 1ᵀP, length l
    for (mut row, &m) in out.rows_mut().into_iter().zip(mean.iter()) {
        row.scaled_add(-m, &colsum);
    }
    out
}

/// Orthonormal basis of the columns of `a` (modified Gram–Schmidt, twice, in f64).
/// Columns that are (numerically) dependent on earlier ones become zero.
fn orthonormalize(a: Array2<f32>) -> Array2<f32> {
    let mut q = a.mapv(|v| v as f64);
    let scale: Vec<f64> = q.columns().into_iter().map(|c| c.dot(&c).sqrt()).collect();
    for (j, &col_scale) in scale.iter().enumerate() {
        for _pass in 0..2 {
            for i in 0..j {
                let proj = q.column(i).dot(&q.column(j));
                let qi = q.column(i).to_owned();
                q.column_mut(j).scaled_add(-proj, &qi);
            }
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        let mut col = q.column_mut(j);
        if norm > 1e-10 * col_scale.max(f64::MIN_POSITIVE) {
            col /= norm;
        } else {
            col.fill(0.0);
        }
    }
    q.mapv(|v| v as f32)
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations.
/// Returns (eigenvalues, eigenvectors as columns), unsorted.
fn jacobi_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let m = a.nrows();
    let mut v = Array2::<f64>::eye(m);
    for _sweep in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        let diag: f64 = (0..m).map(|i| a[[i, i]].powi(2)).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..m {
            for r in p + 1..m {
                let apr = a[[p, r]];
                if apr == 0.0 {
                    continue;
                }
                let theta = (a[[r, r]] - a[[p, p]]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..m {
                    let (akp, akr) = (a[[k, p]], a[[k, r]]);
                    a[[k, p]] = c * akp - sn * akr;
                    a[[k, r]] = sn * akp + c * akr;
                }
                for k in 0..m {
                    let (apk, ark) = (a[[p, k]], a[[r, k]]);
                    a[[p, k]] = c * apk - sn * ark;
                    a[[r, k]] = sn * apk + c * ark;
                }
                for k in 0..m {
                    let (vkp, vkr) = (v[[k, p]], v[[k, r]]);
                    v[[k, p]] = c * vkp - sn * vkr;
                    v[[k, r]] = sn * vkp + c * vkr;
                }
            }
        }
    }
    ((0..m).map(|i| a[[i, i]]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Independent reference: exact PCA by a plain Jacobi eigensolver on the covariance
    /// written out here (classical Jacobi: always rotate the largest off-diagonal).
    fn exact_pca(x: &Array2<f64>, c: usize) -> (Array2<f64>, Vec<f64>) {
        let (n, d) = x.dim();
        let mean = x.mean_axis(Axis(0)).unwrap();
        let xc = x - &mean;
        let mut cov = vec![vec![0f64; d]; d];
        for i in 0..d {
            for j in 0..d {
                cov[i][j] = (0..n).map(|k| xc[[k, i]] * xc[[k, j]]).sum::<f64>() / (n - 1) as f64;
            }
        }
        let mut v = vec![vec![0f64; d]; d];
        for (i, row) in v.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        for _ in 0..20_000 {
            let (mut p, mut q, mut big) = (0, 1, 0f64);
            for (i, row) in cov.iter().enumerate() {
                for (j, &e) in row.iter().enumerate().skip(i + 1) {
                    if e.abs() > big {
                        (p, q, big) = (i, j, e.abs());
                    }
                }
            }
            if big < 1e-14 {
                break;
            }
            let phi = 0.5 * (2.0 * cov[p][q]).atan2(cov[q][q] - cov[p][p]);
            let (sn, cs) = phi.sin_cos();
            for row in cov.iter_mut() {
                let (a, b) = (row[p], row[q]);
                row[p] = cs * a - sn * b;
                row[q] = sn * a + cs * b;
            }
            let (head, tail) = cov.split_at_mut(q); // p < q
            for (a, b) in head[p].iter_mut().zip(tail[0].iter_mut()) {
                (*a, *b) = (cs * *a - sn * *b, sn * *a + cs * *b);
            }
            for row in v.iter_mut() {
                let (a, b) = (row[p], row[q]);
                row[p] = cs * a - sn * b;
                row[q] = sn * a + cs * b;
            }
        }
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| cov[b][b].total_cmp(&cov[a][a]));
        let dirs = Array2::from_shape_fn((d, c), |(i, j)| v[i][order[j]]);
        (
            xc.dot(&dirs),
            order.iter().take(c).map(|&j| cov[j][j]).collect(),
        )
    }

    /// Data with a clear spectrum: planted directions of decreasing scale plus noise.
    fn planted(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scales = [10.0, 6.0, 3.5, 2.0, 1.2];
        let dirs: Vec<Vec<f64>> = scales
            .iter()
            .map(|_| (0..d).map(|_| standard_normal(&mut rng)).collect())
            .collect();
        let mut x = Array2::<f32>::zeros((n, d));
        for mut row in x.rows_mut() {
            let coef: Vec<f64> = scales
                .iter()
                .map(|s| s * standard_normal(&mut rng))
                .collect();
            for (j, e) in row.iter_mut().enumerate() {
                let signal: f64 = coef.iter().zip(&dirs).map(|(c, v)| c * v[j]).sum();
                *e = (signal / (d as f64).sqrt() + 0.3 * standard_normal(&mut rng) + 5.0) as f32;
            }
        }
        x
    }

    fn assert_match_up_to_sign(got: &Array2<f32>, want: &Array2<f64>, tol: f64) {
        for c in 0..want.ncols() {
            let g = got.column(c).mapv(|v| v as f64);
            let w = want.column(c);
            let scale = w.iter().fold(0f64, |m, v| m.max(v.abs()));
            let same = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f64, f64::max);
            let flip = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a + b).abs())
                .fold(0f64, f64::max);
            assert!(
                same.min(flip) <= tol * scale,
                "component {c}: max error {} vs scale {scale}",
                same.min(flip)
            );
        }
    }

    #[test]
    fn matches_exact_pca_full_subspace() {
        // l = min(c + 10, d) = d: the subspace is the whole space, so PCA is exact.
        let x = planted(60, 8, 1);
        let (want, _) = exact_pca(&x.mapv(|v| v as f64), 3);
        let got = pca(x.view(), 3, 9).unwrap();
        assert_match_up_to_sign(&got, &want, 1e-4);
    }

    #[test]
    fn matches_exact_pca_randomized_regime() {
        // d = 60 > l = 13: the randomized range finder is really at work.
        let x = planted(300, 60, 2);
        let (want, var) = exact_pca(&x.mapv(|v| v as f64), 3);
        let p = pca_with_variance(x.view(), 3, 5).unwrap();
        assert_match_up_to_sign(&p.scores, &want, 1e-3);
        for (g, w) in p.explained_variance.iter().zip(&var) {
            assert!((g - w).abs() <= 1e-3 * w, "{g} vs {w}");
        }
    }

    #[test]
    fn deterministic_from_seed() {
        let x = planted(700, 40, 3); // > ROW_BLOCK rows: exercises the parallel blocks
        let a = pca(x.view(), 3, 11).unwrap();
        let b = pca(x.view(), 3, 11).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.dim(), (700, 3));
    }

    #[test]
    fn bad_input_is_an_error() {
        let empty = Array2::<f32>::zeros((0, 5));
        assert!(matches!(
            pca(empty.view(), 3, 0),
            Err(EvalError::PcaTooSmall { rows: 0, cols: 5 })
        ));
        let x = Array2::<f32>::ones((10, 2));
        let err = pca(x.view(), 3, 0).unwrap_err();
        assert!(err.to_string().contains("3 components (1..=2)"), "{err}");
        assert!(pca(x.view(), 0, 0).is_err());
        let mut y = Array2::<f32>::ones((10, 4));
        y[[3, 1]] = f32::NAN;
        assert!(matches!(
            pca(y.view(), 2, 0),
            Err(EvalError::NonFinite { row: 3, col: 1, .. })
        ));
    }

    #[test]
    fn rank_deficient_input_does_not_panic() {
        let x = Array2::<f32>::ones((20, 6)); // zero variance everywhere
        let s = pca(x.view(), 3, 0).unwrap();
        assert!(s.iter().all(|v| v.abs() < 1e-5));
    }

    /// Timing at the size of experiment 3 (N = 200: 10,000 × 39,800). Run with
    /// `cargo test --release --lib eval::pca::tests::timing_large -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_large() {
        let (n, d) = (10_000, 39_800);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = Array2::from_shape_fn((n, d), |_| rng.gen::<f32>());
        let t = std::time::Instant::now();
        let s = pca(x.view(), 3, 1).unwrap();
        eprintln!("pca {n} x {d} -> 3: {:.2} s", t.elapsed().as_secs_f64());
        assert_eq!(s.dim(), (n, 3));
    }
}

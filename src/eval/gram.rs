//! Inner products between embedding rows: the one expensive step of kNN and of
//! the dual ridge. Dense rows go through matrixmultiply's sgemm in row panels
//! (parallel over panels, upper triangle only for a Gram matrix); rows that are
//! mostly zeros go through a CSR x dense-panel product instead.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, CowArray, Ix2};
use rayon::prelude::*;

/// Fraction of zeros above which the sparse kernel is used: below it sgemm's
/// vectorised blocking beats skipping zeros.
pub(crate) const SPARSE_ZERO_FRACTION: f64 = 0.9;
/// Row panel height of the dense kernel (big enough that packing is negligible).
const DENSE_PANEL: usize = 256;
/// Row panel height of the sparse kernel (the transposed panel must stay cache-friendly).
const SPARSE_PANEL: usize = 64;

/// Which kernel computes the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Auto,
    #[cfg_attr(not(test), allow(dead_code))]
    Dense,
    Sparse,
}

/// Rows of `x` selected by `rows`, without a copy when they are consecutive.
fn gather<'a>(x: ArrayView2<'a, f32>, rows: &[usize]) -> CowArray<'a, f32, Ix2> {
    let consecutive = rows.windows(2).all(|w| w[1] == w[0] + 1);
    if consecutive && !rows.is_empty() {
        CowArray::from(x.slice_move(s![rows[0]..rows[0] + rows.len(), ..]))
    } else {
        let d = x.ncols();
        let mut out = vec![0f32; rows.len() * d];
        out.par_chunks_mut(d.max(1))
            .zip(rows.par_iter())
            .for_each(|(o, &r)| o.iter_mut().zip(x.row(r)).for_each(|(a, &b)| *a = b));
        CowArray::from(Array2::from_shape_vec((rows.len(), d), out).expect("gather shape"))
    }
}

/// Compressed sparse rows of the selected rows.
struct Csr {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    fn new(x: ArrayView2<f32>, rows: &[usize]) -> Csr {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for &r in rows {
            for (c, &v) in x.row(r).iter().enumerate() {
                if v != 0.0 {
                    indices.push(c as u32);
                    values.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            indptr,
            indices,
            values,
        }
    }
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }
}

fn zero_fraction(x: ArrayView2<f32>, rows: &[usize]) -> f64 {
    let zeros: usize = rows
        .par_iter()
        .map(|&r| x.row(r).iter().filter(|&&v| v == 0.0).count())
        .sum();
    zeros as f64 / (rows.len() * x.ncols()).max(1) as f64
}

fn use_sparse(x: ArrayView2<f32>, rows: &[usize], kernel: Kernel) -> bool {
    match kernel {
        Kernel::Dense => false,
        Kernel::Sparse => true,
        Kernel::Auto => zero_fraction(x, rows) > SPARSE_ZERO_FRACTION,
    }
}

/// For the sparse kernel: rows `a0..a1` of `a` as a dense d x h panel
/// (column `t` = row `a0 + t`), so one nonzero of another row updates h outputs
/// with one contiguous axpy.
fn transposed_panel(a: &Csr, a0: usize, a1: usize, d: usize) -> Vec<f32> {
    let h = a1 - a0;
    let mut p = vec![0f32; d * h];
    for t in 0..h {
        let (idx, val) = a.row(a0 + t);
        for (&c, &v) in idx.iter().zip(val) {
            p[c as usize * h + t] = v;
        }
    }
    p
}

/// `out[t][j - j0] = <a_row(a0 + t), b_row(j)>` for `j` in `j0..j1`.
fn sparse_panel_products(
    p: &[f32],
    h: usize,
    b: &Csr,
    j0: usize,
    j1: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let mut acc = vec![0f32; h];
    for j in j0..j1 {
        acc.iter_mut().for_each(|v| *v = 0.0);
        let (idx, val) = b.row(j);
        for (&c, &v) in idx.iter().zip(val) {
            let prow = &p[c as usize * h..c as usize * h + h];
            for (a, &pv) in acc.iter_mut().zip(prow) {
                *a += v * pv;
            }
        }
        for (t, &a) in acc.iter().enumerate() {
            out[t * out_stride + (j - j0)] = a;
        }
    }
}

/// Symmetric Gram matrix `G[i][j] = <x_rows[i], x_rows[j]>`, m x m row-major.
/// Only panels on and above the diagonal are computed; the rest is mirrored.
pub(crate) fn gram_sym(x: ArrayView2<f32>, rows: &[usize], kernel: Kernel) -> Vec<f32> {
    let m = rows.len();
    let mut g = vec![0f32; m * m];
    if m == 0 {
        return g;
    }
    if use_sparse(x, rows, kernel) {
        let csr = Csr::new(x, rows);
        let d = x.ncols();
        g.par_chunks_mut(SPARSE_PANEL * m)
            .enumerate()
            .for_each(|(bi, chunk)| {
                let i0 = bi * SPARSE_PANEL;
                let h = chunk.len() / m;
                let p = transposed_panel(&csr, i0, i0 + h, d);
                sparse_panel_products(&p, h, &csr, i0, m, &mut chunk[i0..], m);
            });
    } else {
        let xs = gather(x, rows);
        let xs = xs.view();
        g.par_chunks_mut(DENSE_PANEL * m)
            .enumerate()
            .for_each(|(bi, chunk)| {
                let i0 = bi * DENSE_PANEL;
                let h = chunk.len() / m;
                let a = xs.slice(s![i0..i0 + h, ..]);
                let b = xs.slice(s![i0.., ..]);
                let mut out = ArrayViewMut2::from_shape((h, m), chunk).expect("panel shape");
                general_mat_mul(1.0, &a, &b.t(), 0.0, &mut out.slice_mut(s![.., i0..]));
            });
    }
    mirror_upper(&mut g, m);
    g
}

/// Copy the upper triangle onto the lower one, in tiles (a plain transpose
/// would miss the cache on every write).
fn mirror_upper(g: &mut [f32], m: usize) {
    const T: usize = 64;
    for bi in (0..m).step_by(T) {
        for bj in (0..=bi).step_by(T) {
            for i in bi..(bi + T).min(m) {
                for j in bj..(bj + T).min(i) {
                    g[i * m + j] = g[j * m + i];
                }
            }
        }
    }
}

#[cfg(test)]
/// Rectangular products `P[i][j] = <x_a[i], x_b[j]>`, |a| x |b| row-major.
pub(crate) fn cross(
    x: ArrayView2<f32>,
    a_rows: &[usize],
    b_rows: &[usize],
    kernel: Kernel,
) -> Vec<f32> {
    cross2(x, a_rows, x, b_rows, kernel)
}

/// Like [`cross`] but the two row sets may come from different matrices (same width).
pub(crate) fn cross2(
    xa: ArrayView2<f32>,
    a_rows: &[usize],
    xb: ArrayView2<f32>,
    b_rows: &[usize],
    kernel: Kernel,
) -> Vec<f32> {
    let (ma, mb) = (a_rows.len(), b_rows.len());
    let mut g = vec![0f32; ma * mb];
    if ma == 0 || mb == 0 {
        return g;
    }
    let sparse = match kernel {
        Kernel::Auto => {
            zero_fraction(xa, a_rows) > SPARSE_ZERO_FRACTION
                && zero_fraction(xb, b_rows) > SPARSE_ZERO_FRACTION
        }
        k => k == Kernel::Sparse,
    };
    if sparse {
        let ca = Csr::new(xa, a_rows);
        let cb = Csr::new(xb, b_rows);
        let d = xa.ncols();
        g.par_chunks_mut(SPARSE_PANEL * mb)
            .enumerate()
            .for_each(|(bi, chunk)| {
                let i0 = bi * SPARSE_PANEL;
                let h = chunk.len() / mb;
                let p = transposed_panel(&ca, i0, i0 + h, d);
                sparse_panel_products(&p, h, &cb, 0, mb, chunk, mb);
            });
    } else {
        let xa = gather(xa, a_rows);
        let xb = gather(xb, b_rows);
        let (xa, xb) = (xa.view(), xb.view());
        g.par_chunks_mut(DENSE_PANEL * mb)
            .enumerate()
            .for_each(|(bi, chunk)| {
                let i0 = bi * DENSE_PANEL;
                let h = chunk.len() / mb;
                let a = xa.slice(s![i0..i0 + h, ..]);
                let mut out = ArrayViewMut2::from_shape((h, mb), chunk).expect("panel shape");
                general_mat_mul(1.0, &a, &xb.t(), 0.0, &mut out);
            });
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, d: usize, zero_p: f64, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| {
            if rng.gen_bool(zero_p) {
                0.0
            } else {
                rng.gen_range(-1.0f32..1.0)
            }
        })
    }

    #[test]
    fn gram_kernels_agree_with_f64_loop() {
        let x = data(300, 37, 0.6, 1);
        let rows: Vec<usize> = (0..300).rev().step_by(2).chain(1..5).collect();
        for kernel in [Kernel::Dense, Kernel::Sparse] {
            let g = gram_sym(x.view(), &rows, kernel);
            let c = cross(x.view(), &rows[..40], &rows, kernel);
            let m = rows.len();
            for i in 0..m {
                for j in 0..m {
                    let want: f64 = x
                        .row(rows[i])
                        .iter()
                        .zip(x.row(rows[j]))
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum();
                    assert!(
                        (g[i * m + j] as f64 - want).abs() < 1e-4,
                        "{kernel:?} {i} {j}"
                    );
                    if i < 40 {
                        assert!((c[i * m + j] as f64 - want).abs() < 1e-4);
                    }
                }
            }
        }
    }
}

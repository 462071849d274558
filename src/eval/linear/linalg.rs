//! Dense linear algebra of the linear readouts: a blocked Cholesky factorisation
//! and its triangular solves (the ridge's closed forms), and an f32 dot product
//! (the SVM's inner loop). Row-major `&[f64]` buffers.
//!
//! Every product of blocks goes through dgemm (ndarray's `general_mat_mul`,
//! i.e. matrixmultiply), which does almost all the work. The parallel parts are
//! cut into tasks of a fixed number of rows ([`ROW_TASK`]), never into one task
//! per thread, and dgemm computes each output element by one fixed sequence of
//! operations whatever the shape of the call it sits in: so each result has the
//! same bits at any thread count (a test checks 1, 2 and 3 threads).

use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use crate::eval::EvalError;

/// Columns per step of the factorisation, and rows per block of the solves.
/// Wide enough that the trailing update (dgemm with this inner dimension)
/// runs near dgemm's speed; narrow enough that the panel solve stays a small
/// share (it is n^2 / 2 times this many flops against n^3 / 3 in all).
const CHOL_BLOCK: usize = 256;

/// The block size of the diagonal block's own factorisation, and of the
/// triangular solve of the panel (the same blocked algorithm one level down).
const INNER_BLOCK: usize = 32;

/// Rows per parallel task of the panel solve and the trailing update. Fixed,
/// so that the work is cut the same way at any thread count.
const ROW_TASK: usize = 128;

/// In-place blocked Cholesky of a symmetric positive definite n x n row-major
/// matrix: the lower triangle is read and overwritten with L; the strict upper
/// triangle is scratch (left holding whatever the updates wrote there).
pub(crate) fn cholesky(a: &mut [f64], n: usize) -> Result<(), EvalError> {
    assert_eq!(a.len(), n * n, "cholesky: buffer is not n x n");
    factor(a, n, n, &[CHOL_BLOCK, INNER_BLOCK]).map_err(EvalError::NotPositiveDefinite)
}

/// Right-looking blocked Cholesky of the n x n matrix at the start of `a`
/// (row stride `ld`), in steps of `levels[0]` columns; each diagonal block is
/// factored the same way with `levels[1..]`, and unblocked at the last level.
/// Err(j): the pivot of row j (counted from the start of `a`) was not positive.
fn factor(a: &mut [f64], ld: usize, n: usize, levels: &[usize]) -> Result<(), usize> {
    let nb = match levels.split_first() {
        Some((&nb, _)) if n > nb => nb,
        _ => return factor_unblocked(a, ld, n),
    };
    let inner = &levels[1..];
    // The panel of the first step is the largest; one buffer serves them all.
    let mut panel = vec![0f64; (n - nb) * nb];
    for k0 in (0..n).step_by(nb) {
        let k1 = (k0 + nb).min(n);
        let b = k1 - k0;
        factor(&mut a[k0 * ld + k0..], ld, b, inner).map_err(|j| j + k0)?;
        if k1 == n {
            break;
        }
        // The panel (rows k1.., columns k0..k1) is solved in a contiguous copy:
        // the trailing update reads it while writing the rest of those rows.
        let rows = n - k1;
        let p = &mut panel[..rows * b];
        for (i, pr) in p.chunks_exact_mut(b).enumerate() {
            pr.copy_from_slice(&a[(k1 + i) * ld + k0..][..b]);
        }
        solve_panel(&a[k0 * ld + k0..], ld, b, p);
        for (i, pr) in p.chunks_exact(b).enumerate() {
            a[(k1 + i) * ld + k0..][..b].copy_from_slice(pr);
        }
        trailing_update(&mut a[k1 * ld..], ld, k1, rows, p, b);
    }
    Ok(())
}

/// Unblocked (left-looking, dot-product) Cholesky of the n x n matrix at the
/// start of `a`, row stride `ld`.
fn factor_unblocked(a: &mut [f64], ld: usize, n: usize) -> Result<(), usize> {
    for j in 0..n {
        let mut d = a[j * ld + j];
        for t in 0..j {
            d -= a[j * ld + t] * a[j * ld + t];
        }
        // Written so that NaN fails too.
        if !(d > 0.0 && d.is_finite()) {
            return Err(j);
        }
        let d = d.sqrt();
        a[j * ld + j] = d;
        for i in j + 1..n {
            let mut v = a[i * ld + j];
            for t in 0..j {
                v -= a[i * ld + t] * a[j * ld + t];
            }
            a[i * ld + j] = v / d;
        }
    }
    Ok(())
}

/// The panel `p` (rows x b, contiguous) becomes `p L11^-T`, L11 the b x b
/// factor at the start of `l11` (row stride `ld`). In tasks of ROW_TASK rows,
/// each solved transposed (`L11 Y = P^T`: forward substitution with the rows
/// as right-hand sides, so the inner loops run along contiguous rows).
fn solve_panel(l11: &[f64], ld: usize, b: usize, p: &mut [f64]) {
    p.par_chunks_mut(ROW_TASK * b).for_each(|task| {
        let h = task.len() / b;
        let mut y = vec![0f64; b * h];
        for (i, row) in task.chunks_exact(b).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                y[t * h + i] = v;
            }
        }
        forward(l11, ld, b, &mut y, h, h, INNER_BLOCK);
        for (i, row) in task.chunks_exact_mut(b).enumerate() {
            for (t, v) in row.iter_mut().enumerate() {
                *v = y[t * h + i];
            }
        }
    });
}

/// `A22 -= P P^T` on the lower triangle, A22 the `rows` x `rows` block at
/// column `k1` of `below` (row stride `ld`), `p` the solved panel (rows x b).
/// One dgemm per task of ROW_TASK rows, up to the end of the task's diagonal
/// square (whose upper half is scratch).
fn trailing_update(below: &mut [f64], ld: usize, k1: usize, rows: usize, p: &[f64], b: usize) {
    let pv = ArrayView2::from_shape((rows, b), p).expect("panel shape");
    // Only the rows of A22, so that the tasks end with them.
    let below = &mut below[..(rows - 1) * ld + k1 + rows];
    below
        .par_chunks_mut(ROW_TASK * ld)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let r0 = ci * ROW_TASK;
            let h = ROW_TASK.min(rows - r0);
            let mut out = ArrayViewMut2::from_shape((h, r0 + h).strides((ld, 1)), &mut chunk[k1..])
                .expect("trailing block shape");
            let lhs = pv.slice(s![r0..r0 + h, ..]);
            let rhs = pv.slice(s![..r0 + h, ..]);
            general_mat_mul(-1.0, &lhs, &rhs.t(), 1.0, &mut out);
        });
}

/// Forward substitution `L Y = Y` in place, for `ncols` right-hand sides:
/// L the n x n lower factor at the start of `l` (row stride `ldl`), Y n x
/// ncols at the start of `y` (row stride `ldy`). In row blocks of `fb`: the
/// solved rows enter a block through one dgemm, then the block is solved
/// row by row.
fn forward(l: &[f64], ldl: usize, n: usize, y: &mut [f64], ldy: usize, ncols: usize, fb: usize) {
    if ncols == 0 {
        return;
    }
    for i0 in (0..n).step_by(fb) {
        let i1 = (i0 + fb).min(n);
        let (done, rest) = y.split_at_mut(i0 * ldy);
        if i0 > 0 {
            let lb = ArrayView2::from_shape((i1 - i0, i0).strides((ldl, 1)), &l[i0 * ldl..])
                .expect("L block shape");
            let yd = ArrayView2::from_shape((i0, ncols).strides((ldy, 1)), done)
                .expect("solved rows shape");
            let mut yb = ArrayViewMut2::from_shape((i1 - i0, ncols).strides((ldy, 1)), &mut *rest)
                .expect("block rows shape");
            general_mat_mul(-1.0, &lb, &yd, 1.0, &mut yb);
        }
        for i in i0..i1 {
            let (above, row) = rest.split_at_mut((i - i0) * ldy);
            let row = &mut row[..ncols];
            for t in i0..i {
                let f = l[i * ldl + t];
                if f != 0.0 {
                    let src = &above[(t - i0) * ldy..][..ncols];
                    row.iter_mut().zip(src).for_each(|(v, &s)| *v -= f * s);
                }
            }
            let d = l[i * ldl + i];
            row.iter_mut().for_each(|v| *v /= d);
        }
    }
}

/// Back substitution `L^T X = Y` in place (arguments as [`forward`]), in row
/// blocks of `fb` from the last: the solved rows below enter a block through
/// one dgemm with the transposed column block of L, then the block is solved
/// row by row from its last row.
fn backward(l: &[f64], ldl: usize, n: usize, y: &mut [f64], ldy: usize, ncols: usize, fb: usize) {
    if ncols == 0 {
        return;
    }
    for i0 in (0..n).step_by(fb).rev() {
        let i1 = (i0 + fb).min(n);
        let (head, tail) = y.split_at_mut(i1 * ldy);
        let block = &mut head[i0 * ldy..];
        if i1 < n {
            let lb =
                ArrayView2::from_shape((n - i1, i1 - i0).strides((ldl, 1)), &l[i1 * ldl + i0..])
                    .expect("L block shape");
            let ys = ArrayView2::from_shape((n - i1, ncols).strides((ldy, 1)), &*tail)
                .expect("solved rows shape");
            let mut yb = ArrayViewMut2::from_shape((i1 - i0, ncols).strides((ldy, 1)), &mut *block)
                .expect("block rows shape");
            general_mat_mul(-1.0, &lb.t(), &ys, 1.0, &mut yb);
        }
        for i in (i0..i1).rev() {
            let (before, row) = block.split_at_mut((i - i0) * ldy);
            let row = &mut row[..ncols];
            let d = l[i * ldl + i];
            row.iter_mut().for_each(|v| *v /= d);
            for t in i0..i {
                let f = l[i * ldl + t];
                if f != 0.0 {
                    let dst = &mut before[(t - i0) * ldy..][..ncols];
                    dst.iter_mut().zip(&*row).for_each(|(v, &s)| *v -= f * s);
                }
            }
        }
    }
}

/// Solve `L L^T X = B` in place (`b` is n x m row-major, `l` from [`cholesky`]).
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    assert_eq!(
        b.len(),
        n * m,
        "cholesky_solve: right-hand sides are not n x m"
    );
    forward(l, n, n, b, m, m, CHOL_BLOCK);
    backward(l, n, n, b, m, m, CHOL_BLOCK);
}

/// f32 dot product with 8 independent accumulators (lets the compiler vectorise;
/// the summation order is fixed, so results do not depend on the target).
pub(crate) fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += u[l] * v[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (u, v) in ra.iter().zip(rb) {
        s += u * v;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_time::process_cpu_s;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random well-conditioned SPD n x n matrix, row-major, both triangles
    /// filled: `G G^T / n + I/2` with G uniform in [-1, 1).
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Array2::from_shape_fn((n, n), |_| rng.gen_range(-1.0..1.0));
        let mut a = g.dot(&g.t()) / n as f64;
        for i in 0..n {
            a[[i, i]] += 0.5;
        }
        a.into_raw_vec_and_offset().0
    }

    /// Textbook Cholesky–Banachiewicz, unblocked, lower triangle of a fresh matrix.
    fn naive_cholesky(a: &[f64], n: usize) -> Vec<f64> {
        let mut l = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[i * n + j];
                for t in 0..j {
                    s -= l[i * n + t] * l[j * n + t];
                }
                l[i * n + j] = if i == j { s.sqrt() } else { s / l[j * n + j] };
            }
        }
        l
    }

    /// Textbook forward then back substitution, one right-hand side at a time.
    fn naive_solve(l: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
        let mut x = b.to_vec();
        for c in 0..m {
            for i in 0..n {
                let mut s = x[i * m + c];
                for t in 0..i {
                    s -= l[i * n + t] * x[t * m + c];
                }
                x[i * m + c] = s / l[i * n + i];
            }
            for i in (0..n).rev() {
                let mut s = x[i * m + c];
                for t in i + 1..n {
                    s -= l[t * n + i] * x[t * m + c];
                }
                x[i * m + c] = s / l[i * n + i];
            }
        }
        x
    }

    /// Largest |a - b| over the lower triangle, relative to the largest |b| there.
    fn lower_rel_diff(a: &[f64], b: &[f64], n: usize) -> f64 {
        let (mut d, mut s) = (0f64, 0f64);
        for i in 0..n {
            for j in 0..=i {
                d = d.max((a[i * n + j] - b[i * n + j]).abs());
                s = s.max(b[i * n + j].abs());
            }
        }
        d / s
    }

    fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        d / b.iter().map(|y| y.abs()).fold(0.0, f64::max)
    }

    fn rhs(n: usize, m: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * m).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Sizes on both sides of the block edges of the factorisation and the solves.
    const SIZES: [usize; 14] = [1, 2, 3, 31, 32, 33, 127, 128, 129, 255, 256, 257, 600, 1000];

    #[test]
    fn cholesky_matches_textbook_factor() {
        for (s, &n) in SIZES.iter().enumerate() {
            let a = spd(n, s as u64);
            let mut l = a.clone();
            cholesky(&mut l, n).unwrap();
            let d = lower_rel_diff(&l, &naive_cholesky(&a, n), n);
            assert!(d < 1e-13, "n = {n}: relative difference {d:e}");
        }
    }

    #[test]
    fn cholesky_reads_the_lower_triangle_only() {
        let n = 300;
        let a = spd(n, 7);
        let mut lower = a.clone();
        for i in 0..n {
            for j in i + 1..n {
                lower[i * n + j] = f64::NAN;
            }
        }
        let (mut l1, mut l2) = (a.clone(), lower);
        cholesky(&mut l1, n).unwrap();
        cholesky(&mut l2, n).unwrap();
        for i in 0..n {
            for j in 0..=i {
                assert_eq!(
                    l1[i * n + j].to_bits(),
                    l2[i * n + j].to_bits(),
                    "({i}, {j})"
                );
            }
        }
    }

    #[test]
    fn cholesky_solve_matches_textbook_substitution() {
        for (s, &n) in SIZES.iter().enumerate() {
            for m in [1, 10, 33] {
                let mut l = spd(n, s as u64 + 100);
                cholesky(&mut l, n).unwrap();
                let b = rhs(n, m, s as u64 + 200);
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, m);
                let d = rel_diff(&x, &naive_solve(&l, n, &b, m));
                assert!(d < 1e-12, "n = {n}, m = {m}: relative difference {d:e}");
            }
        }
    }

    #[test]
    fn cholesky_names_the_first_bad_pivot() {
        // Across a block edge, and a NaN.
        for (p, v) in [(0, -1.0), (300, -1.0), (300, 0.0), (513, f64::NAN)] {
            let n = 600;
            let mut a = vec![0f64; n * n];
            for i in 0..n {
                a[i * n + i] = 1.0;
            }
            a[p * n + p] = v;
            match cholesky(&mut a, n) {
                Err(EvalError::NotPositiveDefinite(j)) => assert_eq!(j, p),
                other => panic!("pivot {p}: {other:?}"),
            }
        }
    }

    fn with_threads<T: Send>(k: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .expect("thread pool")
            .install(f)
    }

    #[test]
    fn factor_and_solve_do_not_depend_on_the_thread_count() {
        for n in [257, 600, 1000] {
            let a = spd(n, n as u64);
            let b = rhs(n, 10, 1);
            let run = || {
                let mut l = a.clone();
                cholesky(&mut l, n).unwrap();
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, 10);
                let lower: Vec<u64> = (0..n)
                    .flat_map(|i| (0..=i).map(move |j| (i, j)))
                    .map(|(i, j)| l[i * n + j].to_bits())
                    .collect();
                (lower, x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            let one = with_threads(1, run);
            for k in [2, 3] {
                assert!(with_threads(k, run) == one, "n = {n}, {k} threads");
            }
        }
    }

    /// The speed of the factorisation and of the solve with 10 right-hand sides
    /// (the ridge's ten classes), per CPU second of the whole process (the
    /// machine is shared: wall time says little), by hand:
    /// `GEODYN_M=2000,6000 cargo test --release --lib -- --ignored --exact
    /// eval::linear::linalg::tests::timing_cholesky --nocapture`.
    #[test]
    #[ignore]
    fn timing_cholesky() {
        let sizes: Vec<usize> = std::env::var("GEODYN_M")
            .unwrap_or_else(|_| "2000,6000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("GEODYN_M: sizes separated by commas")
            })
            .collect();
        for n in sizes {
            let a = spd(n, 5);
            let b = rhs(n, 10, 6);
            for rep in 0..3 {
                let mut l = a.clone();
                let (c0, w0) = (process_cpu_s(), std::time::Instant::now());
                cholesky(&mut l, n).unwrap();
                let (c1, w1) = (process_cpu_s(), std::time::Instant::now());
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, 10);
                let c2 = process_cpu_s();
                let flop = (n as f64).powi(3) / 3.0;
                println!(
                    "m = {n} rep {rep}: cholesky {:.2} GFLOP/s per CPU s ({:.3} CPU s, {:.3} wall s); \
                     solve, 10 rhs: {:.3} CPU s",
                    flop / (c1 - c0) / 1e9,
                    c1 - c0,
                    (w1 - w0).as_secs_f64(),
                    c2 - c1,
                );
            }
        }
    }
}

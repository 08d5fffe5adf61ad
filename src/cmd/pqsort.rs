//! Redis's `pqsort`: Bentley and McIlroy's quicksort that sorts only the parts of the array
//! overlapping a window. GEOSEARCH with COUNT and SORT BY with LIMIT use it; ported swap for
//! swap, so that elements that compare equal end where Redis leaves them.

use std::cmp::Ordering;

/// Puts `v[lrange..=rrange]` in order by `cmp` as Redis's `pqsort` does: the same
/// comparisons and swaps, so equal elements end where Redis's do.
pub(crate) fn pqsort<T>(v: &mut [T], lrange: usize, rrange: usize, cmp: impl Fn(&T, &T) -> Ordering) {
    let n = v.len();
    partial(v, 0, n, lrange, rrange, &cmp);
}

/// One call of Redis's `_pqsort` over `v[a..a + n]`.
fn partial<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    lrange: usize,
    rrange: usize,
    order: &impl Fn(&T, &T) -> Ordering,
) {
    let cmp = |v: &[T], i: usize, j: usize| order(&v[i], &v[j]) as i32;
    let med3 = |v: &[T], x: usize, y: usize, z: usize| {
        if cmp(v, x, y) < 0 {
            if cmp(v, y, z) < 0 {
                y
            } else if cmp(v, x, z) < 0 {
                z
            } else {
                x
            }
        } else if cmp(v, y, z) > 0 {
            y
        } else if cmp(v, x, z) < 0 {
            x
        } else {
            z
        }
    };
    let vecswap = |v: &mut [T], x: usize, y: usize, k: usize| {
        for i in 0..k {
            v.swap(x + i, y + i);
        }
    };
    // Whether `[start, start + len)` overlaps the range to sort.
    let overlaps = |start: usize, len: usize| !(rrange < start || lrange > start + len - 1);
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(v, pl - 1, pl) > 0 {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d);
                pm = med3(v, pm - d, pm, pm + d);
                pn = med3(v, pn - 2 * d, pn - d, pn);
            }
            pm = med3(v, pl, pm, pn);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(v, pb, a);
                if c > 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(v, pc, a);
                if c < 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let left = pb - pa;
        if left > 1 && overlaps(a, left) {
            partial(v, a, left, lrange, rrange, order);
        }
        let right = pd - pc;
        if right > 1 && overlaps(pn - right, right) {
            a = pn - right;
            n = right;
            continue;
        }
        return;
    }
}

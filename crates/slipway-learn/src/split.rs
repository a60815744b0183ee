//! Deterministic, stratified train/validation/test splits and k folds.

use crate::rng::Rng;

/// Row indices of each split, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits `rows` into train, validation and test. With `strata` (one class code per entry of
/// `rows`), each class is split in the same proportions. The same inputs and seed always give
/// the same split.
pub fn split(
    rows: &[usize],
    strata: Option<&[u32]>,
    test: f64,
    validation: f64,
    seed: u64,
) -> Split {
    let mut rng = Rng::new(seed);
    let mut out = Split::default();
    for group in groups(rows, strata) {
        let mut group = group;
        rng.shuffle(&mut group);
        let n = group.len() as f64;
        let n_test = ((n * test).round() as usize).min(group.len());
        let n_val = ((n * validation).round() as usize).min(group.len() - n_test);
        out.test.extend_from_slice(&group[..n_test]);
        out.validation
            .extend_from_slice(&group[n_test..n_test + n_val]);
        out.train.extend_from_slice(&group[n_test + n_val..]);
    }
    out.train.sort_unstable();
    out.validation.sort_unstable();
    out.test.sort_unstable();
    out
}

/// `k` folds of `rows`, stratified when `strata` is given: returns each fold's held-out rows.
pub fn folds(rows: &[usize], strata: Option<&[u32]>, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut out = vec![Vec::new(); k];
    let mut next = 0;
    for mut group in groups(rows, strata) {
        rng.shuffle(&mut group);
        for row in group {
            out[next % k].push(row);
            next += 1;
        }
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    out
}

fn groups(rows: &[usize], strata: Option<&[u32]>) -> Vec<Vec<usize>> {
    match strata {
        None => vec![rows.to_vec()],
        Some(codes) => {
            let n_groups = codes.iter().map(|c| *c as usize + 1).max().unwrap_or(0);
            let mut groups = vec![Vec::new(); n_groups];
            for (row, code) in rows.iter().zip(codes) {
                groups[*code as usize].push(*row);
            }
            groups
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stratified_split_keeps_class_shares() {
        let rows: Vec<usize> = (0..1000).collect();
        let strata: Vec<u32> = rows.iter().map(|r| u32::from(r % 10 < 3)).collect();
        let s = split(&rows, Some(&strata), 0.2, 0.1, 42);
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (700, 100, 200)
        );
        let positives = s.test.iter().filter(|r| strata[**r] == 1).count();
        assert_eq!(positives, 60);
        assert_eq!(s, split(&rows, Some(&strata), 0.2, 0.1, 42));
        assert_ne!(s, split(&rows, Some(&strata), 0.2, 0.1, 43));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn splits_and_folds_partition_the_rows(n in 1usize..300, k in 2usize..7, seed: u64, test in 0.0f64..0.5, val in 0.0f64..0.4) {
            let rows: Vec<usize> = (0..n).map(|i| i * 3).collect();
            let strata: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
            let s = split(&rows, Some(&strata), test, val, seed);
            let mut all: Vec<usize> = s.train.iter().chain(&s.validation).chain(&s.test).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(&all, &rows);
            let f = folds(&rows, Some(&strata), k, seed);
            let mut all: Vec<usize> = f.concat();
            all.sort_unstable();
            prop_assert_eq!(&all, &rows);
            let sizes: Vec<usize> = f.iter().map(Vec::len).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }
}

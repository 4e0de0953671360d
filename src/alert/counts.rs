//! Tail probabilities of counts for the volume test: how surprising it is to see at least `n` negative messages
//! in a view when the baseline expects `mean` of them with variance `mean * dispersion`. Pure numerics.
//!
//! With `dispersion` 1 this is the Poisson upper tail. Above 1 it is the negative binomial with that mean and
//! variance, the usual model of an overdispersed count (Noufaily et al. 2013, "An improved algorithm for outbreak
//! detection in multiple surveillance systems", Statistics in Medicine 32(7), replaced Farrington's quasi-Poisson
//! threshold with exactly this negative-binomial tail for the same reason: real counts vary more than Poisson).

/// `ln Γ(x)` for `x > 0`, by the Lanczos approximation (g = 7, nine coefficients, as in Numerical Recipes 3rd ed.
/// §6.1 and Boost); relative error about 1e-15, far below what a p-value needs.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    debug_assert!(x > 0.0, "ln_gamma({x}) is only used on positive arguments");
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let shifted = x - 1.0;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (index, coefficient)| sum + coefficient / (shifted + index as f64 + 1.0));
    let t = shifted + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (shifted + 0.5) * t.ln() - t + series.ln()
}

/// `P(X >= at_least)` for a count `X` with the given `mean` (> 0) and variance `mean * dispersion`
/// (`dispersion >= 1`): Poisson at 1, negative binomial above. Summed upwards from `at_least` in log space, so tails
/// down to 1e-300 stay exact and large means do not underflow the first term.
pub fn upper_tail(at_least: u64, mean: f64, dispersion: f64) -> f64 {
    debug_assert!(mean > 0.0 && dispersion >= 1.0, "mean {mean}, dispersion {dispersion}");
    if at_least == 0 {
        return 1.0;
    }
    let first = at_least as f64;
    // Negative binomial as (size r, failure probability 1 - p): mean r (1 - p) / p, variance mean / p.
    let negative_binomial = (dispersion > 1.0 + 1e-9).then(|| (mean / (dispersion - 1.0), 1.0 - 1.0 / dispersion));
    let ln_first = match negative_binomial {
        None => first * mean.ln() - mean - ln_gamma(first + 1.0),
        Some((size, failure)) => {
            ln_gamma(first + size) - ln_gamma(size) - ln_gamma(first + 1.0)
                + size * (1.0 - failure).ln()
                + first * failure.ln()
        }
    };
    // P(X = x + 1) / P(X = x).
    let ratio = |x: f64| match negative_binomial {
        None => mean / (x + 1.0),
        Some((size, failure)) => (x + size) / (x + 1.0) * failure,
    };
    // Relative to the first term; terms fall geometrically once past the mode, and the sum is checked to have
    // converged rather than run a fixed number of steps.
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut x = first;
    for _ in 0..1_000_000 {
        term *= ratio(x);
        x += 1.0;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    (ln_first + sum.ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_relative(actual: f64, expected: f64) {
        assert!(((actual - expected) / expected).abs() < 1e-9, "{actual:e} is not about {expected:e}");
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        assert_relative(ln_gamma(1.0).exp() + 1.0, 2.0);
        assert_relative(ln_gamma(5.0), 24f64.ln());
        assert_relative(ln_gamma(21.0), 2_432_902_008_176_640_000f64.ln());
        assert_relative(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln());
        assert_relative(ln_gamma(0.1), 9.513_507_698_668_732f64.ln());
    }

    #[test]
    fn poisson_tail_matches_reference_values() {
        // Reference values computed independently in Python (math.lgamma, the pmf summed upwards).
        assert_relative(upper_tail(1, 2.0, 1.0), 1.0 - (-2.0f64).exp());
        assert_relative(upper_tail(15, 5.0, 1.0), 2.262_536_761_767_555e-4);
        assert_relative(upper_tail(46, 10.0, 1.0), 1.046_494_744_117_477e-16);
        assert_eq!(upper_tail(0, 3.0, 1.0), 1.0);
        // A large mean does not underflow: P(X >= mean) is a little under a half.
        let at_mean = upper_tail(100_000, 100_000.0, 1.0);
        assert!((0.5..0.51).contains(&at_mean), "{at_mean}");
    }

    #[test]
    fn negative_binomial_tail_matches_reference_values_and_is_wider_than_poisson() {
        // Computed the same way, with size r = mean / (dispersion - 1) and success probability p = 1 / dispersion.
        assert_relative(upper_tail(15, 5.0, 2.0), 9.605_407_714_843_792e-3);
        assert_relative(upper_tail(30, 10.0, 1.5), 5.870_963_395_340_042e-5);
        // Above the mean, which is where surges are scored, the wider distribution's tail is the heavier.
        for at_least in [12, 20, 40] {
            assert!(upper_tail(at_least, 8.0, 1.3) > upper_tail(at_least, 8.0, 1.0), "{at_least}");
        }
    }
}

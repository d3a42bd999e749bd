"""BD-rate on curves whose answer is computed by hand."""

import math

import numpy as np
import pytest

from onestep.errors import ConfigError
from onestep.eval.bdrate import bd_rate, bd_rate_result

RATES = [0.05, 0.1, 0.2, 0.4, 0.8]


def psnr_curve(rates, offset=0.0):
    # PSNR = 10 log10(R) + 40: the log-rate is linear in quality, so both fits are exact
    return [10 * math.log10(r) + 40 + offset for r in rates]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_same_quality_at_80_percent_of_the_rate_is_minus_20_percent(method):
    test_rates = [0.8 * r for r in RATES]
    value = bd_rate(RATES, psnr_curve(RATES), test_rates, psnr_curve(RATES), method=method)
    assert value == pytest.approx(-20.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_one_db_better_at_equal_rate(method):
    # 1 dB more at every rate; at equal quality the test codec needs 10^(-1/10) of the rate.
    value = bd_rate(RATES, psnr_curve(RATES), RATES, psnr_curve(RATES, offset=1.0), method=method)
    assert value == pytest.approx((10 ** (-0.1) - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_lower_is_better_metrics_are_negated(method):
    distortion = [-q for q in psnr_curve(RATES)]  # like LPIPS: lower is better
    test_rates = [0.5 * r for r in RATES]
    value = bd_rate(RATES, distortion, test_rates, distortion, higher_is_better=False, method=method)
    assert value == pytest.approx(-50.0, abs=1e-9)


def test_only_the_shared_quality_interval_counts():
    # anchor: ln R = D on D in [0, 1]; test: ln R = 2D on D in [0.5, 2]. Shared [0.5, 1], where the
    # log-rate difference is D, whose mean is 0.75: BD-rate = e^0.75 - 1.
    d_anchor = np.linspace(0, 1, 5)
    d_test = np.linspace(0.5, 2, 6)
    value = bd_rate(np.exp(d_anchor), d_anchor, np.exp(2 * d_test), d_test)
    assert value == pytest.approx((math.exp(0.75) - 1) * 100, abs=1e-9)


def test_disjoint_curves_and_too_few_points_give_nan():
    assert math.isnan(bd_rate(RATES, psnr_curve(RATES), RATES, psnr_curve(RATES, offset=50)))
    assert math.isnan(bd_rate(RATES[:3], psnr_curve(RATES[:3]), RATES[:3], psnr_curve(RATES[:3]), method="cubic"))


def test_pchip_follows_a_bent_curve_between_points():
    # A curve with a knee: pchip stays monotone between the knots, so the codec that is better
    # everywhere has a negative BD-rate, and its magnitude lies between the pointwise extremes.
    anchor_q = [25.0, 28.0, 30.0, 31.0, 31.5]
    better = [0.7, 0.75, 0.8, 0.85, 0.9]
    test_rates = [r * f for r, f in zip(RATES, better)]
    value = bd_rate(RATES, anchor_q, test_rates, anchor_q)
    assert -30.0 < value < -10.0


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError, match="BD-rate method"):
        bd_rate(RATES, psnr_curve(RATES), RATES, psnr_curve(RATES), method="linear")


def test_the_shared_interval_is_recorded_in_metric_units():
    result = bd_rate_result(RATES, psnr_curve(RATES), RATES, psnr_curve(RATES, offset=2.0))
    low, high = psnr_curve(RATES)[0] + 2.0, psnr_curve(RATES)[-1]
    assert result.reason is None and result.interval == pytest.approx((low, high))
    distortion = [-q for q in psnr_curve(RATES)]  # lower is better: the interval is still (low, high)
    result = bd_rate_result(RATES, distortion, RATES, distortion, higher_is_better=False)
    assert result.value == pytest.approx(0.0, abs=1e-9) and result.interval == pytest.approx(
        (min(distortion), max(distortion))
    )


def test_one_rate_point_has_no_bd_rate_and_says_why():
    result = bd_rate_result(RATES, psnr_curve(RATES), [0.1], psnr_curve([0.1]))
    assert result.value is None and math.isnan(result.percent)
    assert result.reason == "the codec has 1 rate point with a value; a pchip BD-rate needs 2 per curve"
    # points without a finite value do not count
    result = bd_rate_result(RATES, psnr_curve(RATES), [0.1, 0.2], [30.0, math.nan])
    assert result.reason.startswith("the codec has 1 rate point")
    result = bd_rate_result(RATES[:3], psnr_curve(RATES[:3]), RATES, psnr_curve(RATES), method="cubic")
    assert result.reason == "the anchor has 3 rate points with a value; a cubic BD-rate needs 4 per curve"


@pytest.mark.parametrize("offset, side", [(50.0, "better"), (-50.0, "worse")])
def test_disjoint_curves_say_which_side_and_both_ranges(offset, side):
    result = bd_rate_result(RATES, psnr_curve(RATES), RATES, psnr_curve(RATES, offset=offset))
    assert result.value is None and result.interval is None
    assert (
        result.reason.startswith("no overlap: the codec's values (")
        and f"are all {side} than the anchor's (26.99–39.03)" in result.reason
    )


def test_disjoint_lower_is_better_curves_are_worse_when_their_distances_are_higher():
    anchor = [0.5, 0.4, 0.3, 0.2, 0.1]
    result = bd_rate_result(RATES, anchor, RATES, [d + 1.0 for d in anchor], higher_is_better=False)
    assert result.reason == "no overlap: the codec's values (1.1–1.5) are all worse than the anchor's (0.1–0.5)"

"""Trial design: analytic sample sizes, simulated two-arm trials, adaptive platforms."""

from oncorwe.trials.adaptive import (
    AdaptiveDesign,
    AdaptiveResult,
    predictive_probability,
    probability_best,
    simulate_adaptive,
)
from oncorwe.trials.design import (
    hazard_from_median,
    minimum_detectable_hr,
    prob_event_exponential,
    prob_event_two_arms,
    sample_size_survival,
    schoenfeld_events,
    schoenfeld_power,
    two_proportion_power,
    two_proportion_sample_size,
)
from oncorwe.trials.simulate import (
    BinarySimulationResult,
    BinaryTrialDesign,
    LogrankResult,
    SampleSizeSearch,
    SurvivalSimulationResult,
    SurvivalTrialDesign,
    find_sample_size,
    logrank_test,
    simulate_binary_trial,
    simulate_survival_trial,
)

__all__ = [
    "AdaptiveDesign",
    "AdaptiveResult",
    "BinarySimulationResult",
    "BinaryTrialDesign",
    "LogrankResult",
    "SampleSizeSearch",
    "SurvivalSimulationResult",
    "SurvivalTrialDesign",
    "find_sample_size",
    "hazard_from_median",
    "logrank_test",
    "minimum_detectable_hr",
    "predictive_probability",
    "prob_event_exponential",
    "prob_event_two_arms",
    "probability_best",
    "sample_size_survival",
    "schoenfeld_events",
    "schoenfeld_power",
    "simulate_adaptive",
    "simulate_binary_trial",
    "simulate_survival_trial",
    "two_proportion_power",
    "two_proportion_sample_size",
]

"""The parts of Optuna's private API the sweeps lean on (service/sweeps/study.py: the
study's storage, a trial's storage id, a live ``Trial`` of a stored one), and the cap on
Optuna's version. If an Optuna release changes them, these fail first, naming what
changed, instead of sweeps failing in the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import optuna
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from service.sweeps.study import live_trial, stored_trial, trial_id

ROOT = Path(__file__).resolve().parents[3]
HINT = "Optuna's private API changed: service/sweeps/study.py ({}) must follow it"


@pytest.fixture
def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        direction="maximize",
    )


def test_optuna_is_capped_below_its_next_major() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (req,) = [Requirement(r) for r in project["dependencies"] if r.startswith("optuna")]
    installed = Version(optuna.__version__)
    assert installed in req.specifier, (installed, req)
    assert Version(f"{installed.major + 1}.0") not in req.specifier, (
        f"{req}: cap Optuna below its next major; study.py uses its private API"
    )


def test_a_trials_storage_id_finds_it_in_the_studys_storage(study: optuna.Study) -> None:
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1.0, log=True)
    assert hasattr(trial, "_trial_id"), HINT.format("trial_id: Trial._trial_id")
    frozen = stored_trial(study, trial_id(trial))
    assert hasattr(study, "_storage"), HINT.format("stored_trial: Study._storage")
    assert isinstance(frozen, optuna.trial.FrozenTrial), HINT.format("stored_trial")
    assert frozen.number == trial.number and set(frozen.params) == {"lr"}
    assert frozen.distributions["lr"] == optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    assert trial_id(frozen) == trial_id(trial), HINT.format("trial_id: FrozenTrial._trial_id")


def test_a_live_trial_of_a_stored_one_asks_the_pruner_and_records_its_notes(
    study: optuna.Study,
) -> None:
    # Four finished trials, then a running one that reports the worst value at step 1:
    # ASHA (successive halving) prunes it and notes the rung in its system attributes.
    for value in (0.9, 0.8, 0.7, 0.6):
        done = study.ask()
        done.report(value, 1)
        done.should_prune()  # records its rung, as each trial's epochs do
        study.tell(done, value)
    running = study.ask()
    running.report(0.1, 1)
    frozen = stored_trial(study, trial_id(running))
    live = live_trial(study, trial_id(frozen))
    assert isinstance(live, optuna.trial.Trial), HINT.format("live_trial: Trial(study, id)")
    assert live.number == running.number
    assert live.should_prune(), HINT.format("live_trial: Trial.should_prune")
    notes = stored_trial(study, trial_id(frozen)).system_attrs
    assert any(k.startswith("completed_rung_") for k in notes), (HINT.format("judge"), notes)

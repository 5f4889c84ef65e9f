"""Penalties, decoupled decay, gradient clipping and early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from service.spec import GradClip
from service.spec.regularization import EarlyStopping as EarlyStoppingSpec
from workers.engine.regularize import (
    EarlyStopping,
    clip_gradients_,
    decay_weights_,
    grad_norm,
    penalty,
    weight_parameters,
)


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def test_weights_are_the_matrices_only() -> None:
    net = small_net()
    assert weight_parameters(net) == [net[0].weight, net[3].weight]


@pytest.mark.parametrize(("l1", "l2"), [(0.1, 0.0), (0.0, 0.2), (0.05, 0.3)])
def test_penalty_gradient_is_l1_sign_plus_2_l2_theta(l1: float, l2: float) -> None:
    net = small_net()
    extra = penalty(weight_parameters(net), l1=l1, l2=l2)
    assert extra is not None
    extra.backward()
    for w in weight_parameters(net):
        torch.testing.assert_close(w.grad, l1 * w.sign() + 2 * l2 * w.detach())
    for p in (net[0].bias, net[1].weight, net[1].bias, net[3].bias):
        assert p.grad is None  # biases and batch norm are not penalised


def test_no_penalty_when_both_are_zero() -> None:
    assert penalty(weight_parameters(small_net()), l1=0.0, l2=0.0) is None


def test_decoupled_decay_shrinks_weights_by_exactly_one_minus_lr_lambda() -> None:
    net = small_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    decay_weights_(weight_parameters(net), lr=0.1, weight_decay=0.5)
    opt.step()
    for name, p in net.named_parameters():
        if p.dim() > 1:
            assert torch.equal(p.detach(), before[name] * (1 - 0.1 * 0.5)), name
        else:
            assert torch.equal(p.detach(), before[name]), name


def test_grad_norm_is_the_total_l2_norm() -> None:
    net = small_net()
    net(torch.randn(8, 4)).pow(2).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert grad_norm(list(net.parameters())).item() == pytest.approx(grads.norm().item(), rel=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_clip_by_norm(norm_type: float) -> None:
    net = small_net()
    params = list(net.parameters())
    (100 * net(torch.randn(8, 4)).pow(2).sum()).backward()
    before = torch.cat([p.grad.flatten() for p in params])
    clip_gradients_(params, GradClip(max_norm=0.5, norm_type=norm_type))
    after = torch.cat([p.grad.flatten() for p in params])
    assert torch.linalg.vector_norm(after, ord=norm_type).item() == pytest.approx(0.5, rel=1e-4)
    # Rescaled, not clamped: the direction is kept.
    torch.testing.assert_close(after / after.norm(), before / before.norm())


def test_clip_by_value() -> None:
    net = small_net()
    params = list(net.parameters())
    (100 * net(torch.randn(8, 4)).pow(2).sum()).backward()
    before = torch.cat([p.grad.flatten() for p in params])
    clip_gradients_(params, GradClip(max_value=0.01))
    after = torch.cat([p.grad.flatten() for p in params])
    torch.testing.assert_close(after, before.clamp(-0.01, 0.01))
    assert (before.abs() > 0.01).any()


def test_no_clip_leaves_gradients_alone() -> None:
    net = small_net()
    net(torch.randn(8, 4)).sum().backward()
    before = [p.grad.clone() for p in net.parameters()]
    clip_gradients_(list(net.parameters()), None)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, net.parameters(), strict=True))


def test_early_stopping_stops_after_patience_and_restores_the_best() -> None:
    net = small_net()
    spec = EarlyStoppingSpec(monitor="val_loss", patience=2, min_delta=0.05)
    tracker = EarlyStopping.from_spec(spec)
    best_state = None
    decisions = []
    for epoch, value in enumerate([1.0, 0.8, 0.78, 0.9], start=1):
        with torch.no_grad():
            net[0].weight.fill_(float(epoch))
        decisions.append(tracker.update(epoch, value, net))
        if epoch == 2:
            best_state = net[0].weight.detach().clone()
    # 0.78 is not better than 0.8 by min_delta; 0.9 is worse: two bad epochs.
    assert decisions == [False, False, False, True]
    assert (tracker.best_epoch, tracker.best_value) == (2, 0.8)
    assert tracker.restore(net)
    assert torch.equal(net[0].weight, best_state)


def test_early_stopping_maximises_accuracy_in_auto_mode() -> None:
    tracker = EarlyStopping("val_accuracy", patience=1)
    assert tracker.mode == "max"
    assert not tracker.update(1, 0.5, small_net())
    assert not tracker.update(2, 0.7, small_net())
    assert tracker.update(3, 0.6, small_net())
    assert tracker.best_epoch == 2


def test_keeping_score_never_stops_and_ignores_nan() -> None:
    tracker = EarlyStopping("val_loss")
    net = small_net()
    for epoch, value in enumerate([float("nan"), 3.0, 2.0, 5.0, 5.0, 5.0], start=1):
        assert not tracker.update(epoch, value, net)
    assert (tracker.best_epoch, tracker.best_value) == (3, 2.0)
    assert not tracker.restore(net)  # restore_best_weights is off: nothing kept


def test_early_stopping_ignores_epochs_up_to_start_from_epoch() -> None:
    spec = EarlyStoppingSpec(monitor="val_loss", patience=1, start_from_epoch=2)
    tracker = EarlyStopping.from_spec(spec)
    net = small_net()
    # Epochs 1-2 (say, 1cycle's rising phase) get worse but are not judged, nor remembered.
    decisions = [tracker.update(e, v, net) for e, v in enumerate([0.5, 0.9, 0.7, 0.8], 1)]
    assert decisions == [False, False, False, True]
    assert (tracker.best_epoch, tracker.best_value) == (3, 0.7)


def test_one_cycle_with_delayed_early_stopping_runs_past_its_rising_phase(tmp_path) -> None:
    from service.spec import JobSpec
    from workers.engine import ListReporter, train

    def run(start: int) -> int:
        spec = JobSpec.model_validate(
            {
                "dataset": {"name": "digits"},
                "model": {"kind": "mlp", "hidden": [128, 64]},
                "schedule": {"name": "one_cycle", "max_lr": 0.01},
                "regularization": {"early_stopping": {"patience": 3, "start_from_epoch": start}},
                "training": {"epochs": 12},
            }
        )
        reporter = ListReporter()
        train(spec, reporter=reporter, datasets_dir=tmp_path)
        return len(reporter.reports)

    assert run(0) < run(8)


def test_early_stopping_state_round_trips_mid_run() -> None:
    spec = EarlyStoppingSpec(monitor="val_loss", patience=4, restore_best_weights=True)
    values = [1.0, 0.8, 0.9, 0.85, 0.95, 0.99]
    first, net = EarlyStopping.from_spec(spec), small_net()
    for epoch, value in enumerate(values[:3], start=1):
        with torch.no_grad():
            net[0].weight.fill_(float(epoch))
        first.update(epoch, value, net, {"epoch": float(epoch), "val_loss": value})
    second = EarlyStopping.from_spec(spec)
    second.load_state_dict(first.state_dict())
    assert second.state_dict() == {
        "best_value": 0.8,
        "best_epoch": 2,
        "best_metrics": {"epoch": 2.0, "val_loss": 0.8},
        "bad_epochs": 1,
        "best_state": first.state_dict()["best_state"],
    }
    decisions = [
        (first.update(e, v, net), second.update(e, v, net)) for e, v in enumerate(values[3:], 4)
    ]
    assert decisions == [(False, False), (False, False), (True, True)]
    assert second.restore(net)
    assert torch.equal(net[0].weight, torch.full_like(net[0].weight, 2.0))

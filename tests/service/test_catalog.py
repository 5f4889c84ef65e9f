"""GET /v1/catalog lists everything the spec accepts, read off the spec itself."""

from __future__ import annotations

from service.spec import (
    ACTIVATIONS,
    DATASET_NAMES,
    INITS,
    MODEL_KINDS,
    OPTIMIZER_NAMES,
    SCALINGS,
    SCHEDULE_NAMES,
)


def test_catalog_names_equal_the_spec(api):
    c = api.get("/v1/catalog").json()
    assert [d["name"] for d in c["datasets"]] == list(DATASET_NAMES)
    assert [m["kind"] for m in c["models"]] == list(MODEL_KINDS)
    assert [o["name"] for o in c["optimizers"]] == list(OPTIMIZER_NAMES)
    assert [s["name"] for s in c["schedules"]] == list(SCHEDULE_NAMES)
    assert c["scalings"] == list(SCALINGS)
    assert c["activations"] == list(ACTIVATIONS)
    assert c["inits"] == list(INITS)


def test_optimizers_and_schedules_carry_update_rules_and_bounded_params(api):
    c = api.get("/v1/catalog").json()
    for entry in c["optimizers"] + c["schedules"]:
        assert "η" in entry["update_rule"] or "θ" in entry["update_rule"], entry["name"]
        assert entry["description"], entry["name"]
    sgd = next(o for o in c["optimizers"] if o["name"] == "sgd")
    lr = next(p for p in sgd["params"] if p["name"] == "lr")
    assert lr["default"] == 0.01 and lr["exclusive_minimum"] == 0 and lr["maximum"] == 1000
    adam = next(o for o in c["optimizers"] if o["name"] == "adam")
    assert next(p for p in adam["params"] if p["name"] == "betas")["default"] == [0.9, 0.999]
    one_cycle = next(s for s in c["schedules"] if s["name"] == "one_cycle")
    assert one_cycle["stepped"] == "batch"
    strategy = next(p for p in one_cycle["params"] if p["name"] == "anneal_strategy")
    assert strategy["choices"] == ["cos", "linear"]


def test_catalog_reports_dataset_shapes_metrics_and_caps(api):
    c = api.get("/v1/catalog").json()
    digits = next(d for d in c["datasets"] if d["name"] == "digits")
    assert (digits["n_samples"], digits["n_features"], digits["n_classes"]) == (1797, 64, 10)
    assert next(d for d in c["datasets"] if d["name"] == "moons")["kind"] == "synthetic"
    assert "val_accuracy" in c["metrics"]["classification"]
    assert "val_r2" in c["metrics"]["regression"]
    assert c["limits"]["max_epochs"] == 1000
    assert c["limits"]["max_memory_mb"] == 8192
    assert c["limits"]["max_time_limit_seconds"] == 24 * 3600
    mlp = next(m for m in c["models"] if m["kind"] == "mlp")
    assert next(p for p in mlp["params"] if p["name"] == "hidden")["default"] == [64]
    es = {p["name"] for p in c["regularization"]["early_stopping"]}
    assert {"monitor", "patience", "min_delta", "restore_best_weights", "mode"} <= es


def test_every_dataset_lists_target_scaling(api):
    c = api.get("/v1/catalog").json()
    for dataset in c["datasets"]:
        param = next(p for p in dataset["params"] if p["name"] == "target_scaling")
        assert param["choices"] == ["none", "standard"], dataset["name"]
        assert param["default"] == "standard"
        assert "regression only" in param["description"].lower()

"""The rule conformance suite (plasticity_kit.testing.RuleTestSuite) applied to the built-in rules."""

import pytest

from plasticity_kit.testing import RuleTestSuite


class TestBCM(RuleTestSuite):
    """BCM with its defaults (logistic activation, no interaction, SGD, normal initializer)."""

    rule = "bcm"
    plugin_name = "plasticity_kit.default_plugins"


class TestBCMOlivettiConfig(RuleTestSuite):
    """BCM with Adam, ReLU, the binocular interaction and a small init,
    as in specs/olivetti.yaml."""

    rule = "bcm"
    params = {"memory_factor": 0.5, "threshold": "moving_average"}
    components = {
        "activation": "relu",
        "interaction": "binocular",
        "optimizer": {"name": "adam", "params": {"lr": 0.01}},
        "initializer": {"name": "normal", "params": {"mu": 0.0, "std": 0.1}},
    }


# ---------------------------------------------------------------- the suite catches broken rules
#
# A small correct rule passes every test of the suite; each broken variant below must fail the
# test that guards the property it breaks.  This keeps the suite honest: a check that cannot fail
# would let a broken plugin through.

import numpy as np  # noqa: E402

from plasticity_kit.hookspecs import hookimpl  # noqa: E402
from plasticity_kit.options import Option, Schema  # noqa: E402
from plasticity_kit.rules import Rule  # noqa: E402


class Good(Rule):
    """Hebbian rule with decay, ΔW = η(⟨y xᵀ⟩ − W), y = Wx (a test fixture)."""

    name = "conformance_good"
    options = Schema(Option("lr", "number", 0.1, "learning rate", low=0, low_open=True))

    def step(self, state, batch):
        W = state["weights"]
        W += W.dtype.type(self.params["lr"]) * ((batch @ W.T).T @ batch / len(batch) - W)


def broken(name, **attrs):
    attrs.setdefault("__doc__", f"Broken on purpose: {name}.")
    return type(name, (Good,), {"name": f"broken_{name}", **attrs})


def _step_then(extra):
    def step(self, state, batch):
        Good.step(self, state, batch)
        extra(self, state, batch)
    return step


def _couples_replicas(self, state, batch):
    """Claims to step stacked replicas, but decays every replica toward their mean weights."""
    W = state["weights"]
    if W.ndim == 2:
        return Good.step(self, state, batch)
    lr = W.dtype.type(self.params["lr"])
    for r in range(W.shape[0]):
        W[r] += lr * ((batch @ W[r].T).T @ batch / len(batch) - W.mean(axis=0))


BROKEN = [
    ("test_step", broken("no_change", step=lambda self, state, batch: None)),
    ("test_step", broken("mutates_batch", step=_step_then(lambda s, st, b: b.__isub__(b.mean(axis=0))))),
    ("test_step", broken("adds_key", step=_step_then(lambda s, st, b: st.setdefault("extra", np.zeros(1, s.dtype))))),
    ("test_step", broken("changes_dtype", step=_step_then(lambda s, st, b: st.update(weights=st["weights"].astype(np.float16))))),
    ("test_init_state", broken("always_float64", init_state=lambda self, rng: {
        "weights": rng.normal(size=(self.model.n_neurons, self.model.n_inputs))})),
    ("test_init_state", broken("fortran_order", init_state=lambda self, rng: {
        "weights": np.asfortranarray(rng.normal(size=(self.model.n_neurons, self.model.n_inputs)).astype(self.dtype))})),
    ("test_init_state", broken("missing_field", fields={**Good.fields, "trace": "a trace never made"})),
    ("test_init_state_draws_from_rng", broken("ignores_rng", init_state=lambda self, rng: Good.init_state(
        self, np.random.default_rng(0)))),
    ("test_steps_are_deterministic", broken("unseeded_noise", step=_step_then(
        lambda s, st, b: st["weights"].__iadd__(np.random.default_rng().normal(size=st["weights"].shape).astype(s.dtype))))),
    ("test_transform", broken("transposed_transform", transform=lambda self, state, x: state["weights"] @ x.T)),
    ("test_transform", broken("transform_writes_state", transform=lambda self, state, x: x @ state["weights"].__imul__(2).T)),
    ("test_synthesize", broken("raw_weights_as_images", synthesize=lambda self, state: state["weights"])),
    ("test_divergence_flags_nan", broken("blind_guard", divergence=lambda self, state: None)),
    ("test_divergence_none_when_healthy", broken("alarmist_guard", divergence=lambda self, state: "diverged")),
    ("test_options_validate_own_defaults", broken("invalid_default", options=Schema(
        Option("lr", "number", -0.1, "learning rate", low=0, low_open=True)))),
    ("test_documented", broken("undocumented", __doc__=None)),
    ("test_documented", broken("undocumented_option", options=Schema(Option("lr", "number", 0.1, low=0)))),
    ("test_declarations", broken("unknown_default", defaults={"initializer": "no_such_initializer"})),
    ("test_declarations", broken("record_unknown_field", default_record=("weights", "nope"))),
    ("test_end_to_end_run", broken("goes_nan", step=_step_then(lambda s, st, b: st["weights"].fill(np.nan)))),
    ("test_replicas_equal_separate_networks", broken("couples_replicas", steps_replicas=True, step=_couples_replicas)),
]


def suite_for(rule_cls, **attrs):
    """A RuleTestSuite subclass testing ``rule_cls`` registered by an in-test plugin object."""
    class Plugin:
        @hookimpl
        def register_rules(self, register):
            register(rule_cls)

    return type(f"Suite_{rule_cls.__name__}", (RuleTestSuite,),
                {"__test__": False, "rule": rule_cls.name, "plugins": (Plugin(),), **attrs})


def call(suite, test_name, tmp_path):
    """Run one test method (every dtype if parametrized); the list of failure messages."""
    method = getattr(suite(), test_name)
    if test_name in ("test_init_state", "test_step", "test_transform"):
        calls = [lambda d=d: method(d) for d in ("float32", "float64")]
    elif test_name == "test_end_to_end_run":
        calls = [lambda: method(tmp_path)]
    else:
        calls = [method]
    failures = []
    for c in calls:
        try:
            c()
        except (AssertionError, pytest.fail.Exception) as exc:
            failures.append(str(exc))
    return failures


def test_the_suite_passes_a_correct_rule(tmp_path):
    suite = suite_for(Good)
    names = sorted(n for n in dir(RuleTestSuite) if n.startswith("test_"))
    assert len(names) >= 12
    failures = {n: f for n in names if (f := call(suite, n, tmp_path / n))}
    assert not failures


@pytest.mark.parametrize("test_name, rule_cls", BROKEN, ids=[cls.name for _, cls in BROKEN])
def test_the_suite_catches_a_broken_rule(test_name, rule_cls, tmp_path):
    assert call(suite_for(rule_cls), test_name, tmp_path), f"{test_name} passed a rule {rule_cls.__doc__}"


def test_the_suite_catches_an_unregistered_rule_and_a_wrong_owner(tmp_path):
    suite = suite_for(Good, rule="not_registered_anywhere")
    assert "not registered" in call(suite, "test_registered_through_plugin_manager", tmp_path)[0]
    assert call(suite_for(Good, plugin_name="someone-else"), "test_registered_through_plugin_manager", tmp_path)

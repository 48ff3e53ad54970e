"""Property-based fuzzing of specs: whatever a user types, ``validate`` answers in one line.

At least :data:`EXAMPLES` specs are generated per run (Hypothesis, derandomized, no example
database, so CI sees the same ones every time): the shipped specs under ``specs/`` mutated —
values replaced by wrong types, out-of-range, huge or negative numbers, NaN/inf, unicode, NUL and
long strings, deep nesting, mappings with non-text keys, other plugin names; keys deleted or added;
random ``--set`` overrides; and, at the text level, YAML with hostile lines inserted (aliases of
aliases, recursive anchors, Python tags, binary, 5,000-digit integers, deep brackets, tabs,
several documents).  Each goes through ``plasticity-kit validate`` in-process (the CLI's
``main`` with its output captured) and must end with exit 0, or exit 2 and exactly one
``error: …`` line — never a traceback, never exit 1 (diverged) or 70 (internal error).  A few
accepted specs are then taken through the start of ``run`` (data, rule, initial state): a spec
that validates must not crash there.

The shipped specs' data come from small stand-ins written here ((Fashion-)MNIST IDX files,
CIFAR-10 python batches in the real format); their sweeps are cut to two values per key and their MNIST
selections to the stand-in's size, so that an example costs milliseconds.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifar_format import write_batches
from plasticity_kit.cli import main
from plasticity_kit.datasets import cifar10
from plasticity_kit.plugins import registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = 1000
RUN_STARTS = 25  # accepted specs taken through the start of run
RUN_START_BYTES = 256 << 20  # … when their memory estimate is below this
FULL_RUNS = 5  # … and run for one epoch

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))


def _trim(spec: dict) -> dict:
    """A shipped spec made cheap to validate: sweeps of 2 values per key, MNIST selections that fit
    the stand-in's 1,000 test images."""
    spec = copy.deepcopy(spec)
    sweep = spec.get("sweep")
    if isinstance(sweep, dict):
        for section in ("grid", "zip"):
            for key, values in (sweep.get(section) or {}).items():
                sweep[section][key] = values[:2]
        sweep["repeats"] = min(sweep.get("repeats", 1), 2)
    params = (spec.get("data") or {}).get("params") or {}
    if spec.get("data", {}).get("name") == "mnist":
        params.update({"range": [0, 800], **({"per_class": 10} if "per_class" in params else {})})
    for metric in spec.get("metrics") or []:
        if isinstance(metric, dict) and metric.get("name") == "linear_probe":
            for part, rows in (("train", [0, 800]), ("test", [800, 1000])):
                if metric["params"].get(part, {}).get("name") == "mnist":
                    metric["params"][part]["params"]["range"] = rows
    return spec


def _bases() -> list[tuple[str, dict]]:
    specs = [(p.stem, _trim(yaml.safe_load(p.read_text()))) for p in sorted((REPO / "specs").glob("*.yaml"))]
    assert len(specs) >= 8, "the shipped specs are the fuzzer's seeds"
    return specs


BASES = _bases()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def stand_in_data(tmp_path_factory):
    """MNIST and Fashion-MNIST IDX files (1,000 images per split, 100 per class) and CIFAR-10
    batches (20 images each)."""
    root = tmp_path_factory.mktemp("fuzz-data")
    rng = np.random.default_rng(0)
    for name in ("mnist", "fashion-mnist"):
        (root / name).mkdir()
        for split in ("train", "t10k"):
            _write_idx(root / name / f"{split}-images-idx3-ubyte", rng.integers(0, 256, size=(1000, 28, 28)))
            _write_idx(root / name / f"{split}-labels-idx1-ubyte", np.arange(1000) % 10)
    write_batches(root / "cifar", cifar10.TRAIN + cifar10.TEST, n=20)
    return root


@pytest.fixture(scope="module")
def offline_env(stand_in_data):
    """Environment of the fuzz: stand-in data, caches in a temporary folder, no network."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PLASTICITY_KIT_MNIST", str(stand_in_data / "mnist"))
    mp.setenv("PLASTICITY_KIT_FASHION_MNIST", str(stand_in_data / "fashion-mnist"))
    mp.setenv(cifar10.ENV, str(stand_in_data / "cifar"))
    mp.setenv("PLASTICITY_KIT_CACHE", str(stand_in_data / "cache"))
    mp.setenv("XDG_CACHE_HOME", str(stand_in_data / "cache"))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in the spec fuzz")

    mp.setattr(urllib.request, "urlopen", refuse)
    mp.chdir(stand_in_data)
    yield stand_in_data
    mp.undo()


# -- values a user might type ---------------------------------------------------------------------

HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, 10**300, -1, -2**63]
PLUGIN_NAMES = sorted({name for kind in ("rules", "datasets", "optimizers", "activations", "initializers",
                                         "interactions", "exporters", "metrics")
                       for name in getattr(registry(), kind)})
scalars = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from(HUGE_INTS + [0, 1, 2, 3]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-300, 1e300, float("nan"), float("inf"), -float("inf")]),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from("a/\\.\0\t\n ~$*&!é😀\u202e"), max_size=12),
    st.sampled_from(["", ".", "..", "/", "a" * 300, "é" * 200, "x\0y", "1e-3", "inf", "nan", "-1", "0x10",
                     "null", "~", "yes", "[]", "{}", "*a", "&a"]),
    st.sampled_from(PLUGIN_NAMES),
)


def _nested(depth: int, leaf):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-3, 3), st.booleans(), st.none()), scalars,
                    max_size=3),
    st.builds(_nested, st.integers(min_value=10, max_value=120), scalars),
    st.lists(st.lists(st.floats(-2, 2), min_size=1, max_size=4), min_size=1, max_size=4),
    st.fixed_dictionaries({"name": st.sampled_from(PLUGIN_NAMES)},
                          optional={"params": st.dictionaries(st.text(max_size=10), scalars, max_size=2)}),
)


def _near(value):
    """Plausible replacements of a value of the same type: what a user edits, often accepted."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=0, max_value=2 * abs(value) + 2)
    if isinstance(value, float):
        return st.floats(min_value=0, max_value=2 * abs(value) + 1)
    if isinstance(value, str):
        return st.sampled_from([value, value.upper(), value[:-1]] + PLUGIN_NAMES)
    if isinstance(value, list):
        return st.lists(st.sampled_from(value), max_size=len(value) + 1) if value else st.just([])
    return st.just(value)


def _paths(node, prefix=()) -> list[tuple]:
    """Every key path in a spec: tuples of dict keys and list indices."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _parent(spec, path):
    node = spec
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def fuzzed_specs(draw):
    """(spec, --set arguments, what was done) — a shipped spec with 1–3 mutations."""
    name, base = draw(st.sampled_from(BASES))
    spec = copy.deepcopy(base)
    done = [name]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(spec)
        op = draw(st.sampled_from(["tweak", "tweak", "tweak", "set", "set", "delete", "add", "set_section"]))
        if op == "set_section" or not paths:
            key = draw(st.sampled_from(["name", "description", "data", "model", "schedule", "record", "output",
                                        "exporters", "metrics", "sweep", "extra"]))
            spec[key] = draw(values)
            done.append(f"{key}=…")
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(spec, path)
        if op == "tweak":
            parent[path[-1]] = draw(_near(parent[path[-1]]))
        elif op == "set":
            parent[path[-1]] = draw(values)
        elif op == "delete":
            del parent[path[-1]]
        else:
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[draw(st.one_of(st.text(max_size=12), st.integers(-5, 5), st.booleans()))] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
            else:
                parent[path[-1]] = [target, draw(values)]
        done.append(f"{op} {'.'.join(map(str, path))}")
    overrides = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        dotted = [".".join(map(str, p)) for p in _paths(base) if all(isinstance(x, str) for x in p)]
        key = draw(st.one_of(st.sampled_from(dotted), st.text(max_size=15)))
        text = draw(st.one_of(values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6)
                                         .removesuffix("\n...\n").strip()),
                              st.text(max_size=20)))
        overrides.append(f"{key}={text}" if draw(st.booleans()) or "=" in key else key)
    return spec, overrides, done


HOSTILE_LINES = [
    "x: &a [*a]", "x: !!python/object/apply:os.system [touch pwned]", "x: !!binary aGVsbG8=", "x: !!set {a, b}",
    "? [a, b]\n: 1", "x: 2001-12-14", "x: 1" + "0" * 5000, "\t- tab", "x: [" * 80 + "]" * 80, "%YAML 1.1\n---",
    "x: &b [x, x, x, x, x, x, x, x]\ny: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nz: [*c, *c, *c, *c, *c, *c, *c, *c]",
    "x: \"\\ud800\"", "x: \"a\\0b\"", "---\nname: second document", "!!map {1: 2}", "<<: {name: merged}",
    "<<: [*undefined]", "name: \"\\n\\r\\u2028\"", "}", "x: *", "...",
]


@st.composite
def hostile_texts(draw):
    """A shipped spec's YAML with hostile lines inserted at random line breaks (text-level fuzz)."""
    _, base = draw(st.sampled_from(BASES))
    lines = yaml.safe_dump(base, width=10**6).splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.integers(min_value=0, max_value=len(lines)))
        line = draw(st.one_of(st.sampled_from(HOSTILE_LINES), st.text(max_size=30)))
        indent = draw(st.sampled_from(["", "  ", "    "]))
        lines.insert(where, indent + line)
    return "\n".join(lines) + "\n"


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: a --set that looks like an option
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def _run_start(path: Path, overrides: list[str]) -> bool:
    """What ``run`` does before training — resolve, preflight (data, batch, memory, rule), initial
    state — for a spec that validated; False (nothing allocated) when the run is too big to try here."""
    from plasticity_kit.runner import seed_streams
    from plasticity_kit.spec import load_spec, preflight

    spec = load_spec(path, overrides)
    data, rule = preflight(spec)
    if spec.memory.total > RUN_START_BYTES:
        return False
    state = rule.init_state(seed_streams(spec.schedule["seed"])["init"])
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    return True


def test_fuzzed_specs_validate_in_one_line_or_pass(offline_env):
    path = offline_env / "fuzzed.yaml"
    seen = {"examples": 0, "valid": 0, "refused": 0, "run_starts": 0}

    @FUZZ
    @given(fuzzed_specs())
    def check(case):
        spec, overrides, done = case
        path.write_text(yaml.safe_dump(spec, allow_unicode=False, width=10**6))
        args = [f"--set={o}" for o in overrides]
        status, out, err = cli("validate", path, *args)
        seen["examples"] += 1
        assert "Traceback" not in err, f"{done}\n{err}"
        assert status in (0, 2), f"{done}: exit {status}\n{err}"
        if status == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{done}\n{err}"
            seen["refused"] += 1
            return
        seen["valid"] += 1
        if seen["run_starts"] < RUN_STARTS and "sweep" not in out and _run_start(path, overrides):
            seen["run_starts"] += 1
            if len(full_runs) < FULL_RUNS:
                full_runs.append((path.read_text(), overrides, done))

    full_runs: list = []
    check()
    print(f"fuzzed specs: {seen}")
    assert seen["examples"] >= EXAMPLES
    assert seen["valid"] >= 20 and seen["refused"] >= EXAMPLES // 2
    assert seen["run_starts"] >= 5 and len(full_runs) == FULL_RUNS

    # a few accepted specs run for real (one epoch, no metrics or exports): no traceback, no refusal
    for i, (text, overrides, done) in enumerate(full_runs):
        run_path = offline_env / f"accepted-{i}.yaml"
        run_path.write_text(text)
        short = [f"--set={o}" for o in overrides] + [f"--set=schedule.epochs={_one_epoch_each(text, overrides)}",
                                                     "--set=metrics=[]",
                                                     "--set=exporters=[]", f"--set=output.dir={offline_env / 'runs' / str(i)}"]
        status, out, err = cli("run", run_path, "-q", *short)
        assert status in (0, 1) and "Traceback" not in err, f"{done}: exit {status}\n{err}"


def _one_epoch_each(text: str, overrides) -> int:
    """Epochs for a short run: one, or one per learned layer of a greedy stack (its epochs must
    be a multiple of them)."""
    from plasticity_kit.spec import apply_overrides

    raw = apply_overrides(yaml.safe_load(text), overrides)
    layers = (raw.get("model") or {}).get("layers")
    return max(1, sum(isinstance(layer, dict) and "rule" in layer for layer in layers)) if isinstance(layers, list) else 1


def test_hostile_yaml_text_validates_in_one_line_or_passes(offline_env):
    path = offline_env / "hostile.yaml"
    seen = {"examples": 0, "valid": 0}

    @settings(FUZZ, max_examples=EXAMPLES // 10)
    @given(hostile_texts())
    def check(text):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        status, out, err = cli("validate", path)
        seen["examples"] += 1
        seen["valid"] += status == 0
        assert "Traceback" not in err and status in (0, 2), f"exit {status}\n{err}"
        assert status == 0 or (len(err.splitlines()) == 1 and err.startswith("error: ")), err
        assert not (offline_env / "pwned").exists()

    check()
    print(f"hostile YAML texts: {seen}")
    assert seen["examples"] >= EXAMPLES // 10


@pytest.mark.parametrize("name, base", BASES, ids=[b[0] for b in BASES])
def test_trimmed_shipped_specs_validate(offline_env, name, base):
    """The fuzzer's seeds are valid, so mutations start from specs that get all the way through."""
    path = offline_env / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    status, out, err = cli("validate", path)
    assert status == 0, err
    assert "valid" in out


def test_stand_in_batches_are_the_real_format(offline_env):
    from cifar_format import REAL_GLOBALS, globals_of

    raw = (offline_env / "cifar" / "data_batch_1").read_bytes()
    assert globals_of(raw) == REAL_GLOBALS and math.isclose(len(raw), 20 * 3072, rel_tol=0.1)

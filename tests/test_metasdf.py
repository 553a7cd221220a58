"""metasdf: the batched inner loop against a per-task float64 reference, every model trains and
evaluates, training helps, resume is exact, and bad input is refused cleanly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_cli import assert_user_error, sdfkit
from torch.nn import functional as F

from metasdf.config import SECTION_OF, SECTION_TYPES, SECTIONS, preset
from metasdf.data import load_shapes, make_batch
from metasdf.evaluate import evaluate
from metasdf.models import MODELS, MetaSDF
from metasdf.models3d import MODELS_3D
from metasdf.train import TrainConfig, build_model, config_from_json, keywords, learning_rate, load_run, train
from sdfkit.errors import FormatError, InputError, SdfkitError
from sdfkit.sources import mnist

TINY = TrainConfig.create(
    batch_size=4, hidden=32, context_points=64, inner_steps=2, steps=2, test_iters=5, latent=16, log_every=1, limit=24
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "mnist.zarr"
    config = mnist.MnistConfig(resolution=32, surface_points=256, limit=80, val_size=16)
    mnist.prepare_mnist(out, config, workers=1)
    return out


def _reference_inner_loop(weights, lrs, x, y, steps, inner):
    """One task at a time, float64, plain F.linear: the specification the batched code must meet."""
    fast = list(weights)
    for step in range(steps):
        h = x
        for i in range(0, len(fast), 2):
            h = F.linear(h, fast[i], fast[i + 1])
            if i < len(fast) - 2:
                h = F.relu(h)
        loss = (h - y).pow(2).mean() if inner == "l2" else (h - y).abs().mean()
        grads = torch.autograd.grad(loss, fast, create_graph=True)
        fast = [w - lr[step].clamp(min=0) * g for w, lr, g in zip(fast, lrs, grads, strict=True)]
    return fast


@pytest.mark.parametrize("inner", ["l2", "l1"])
def test_batched_inner_loop_matches_a_per_task_float64_reference(inner):
    torch.manual_seed(0)
    model = MetaSDF(hidden=24, depth=3, inner_steps=3, inner_lr=0.05, inner_loss=inner).double()
    with torch.no_grad():  # learned rates that differ per parameter and per step
        for lr in model.lrs:
            lr.uniform_(0.01, 0.2)
    tasks, points = 3, 40
    cx, cy = (
        torch.rand(tasks, points, 2, dtype=torch.float64) * 2 - 1,
        torch.rand(tasks, points, 1, dtype=torch.float64) - 0.5,
    )
    tx, ty = torch.rand(tasks, 50, 2, dtype=torch.float64) * 2 - 1, torch.rand(tasks, 50, 1, dtype=torch.float64) - 0.5
    batch = {"context_x": cx, "context_y": cy, "target_x": tx, "target_y": ty}

    fast = model.specialize(cx, cy)
    meta = list(model.parameters())
    outer = model.loss(batch)
    batched_grads = torch.autograd.grad(outer, meta)

    reference_total = 0.0
    for t in range(tasks):
        ref = _reference_inner_loop(list(model.weights), list(model.lrs), cx[t], cy[t], 3, inner)
        for got, want in zip(fast, ref, strict=True):
            torch.testing.assert_close(got[t], want, rtol=1e-6, atol=1e-12)
        h = tx[t]
        for i in range(0, len(ref), 2):
            h = F.linear(h, ref[i], ref[i + 1])
            h = F.relu(h) if i < len(ref) - 2 else h
        reference_total = reference_total + (h - ty[t]).abs().mean() / tasks
    reference_grads = torch.autograd.grad(reference_total, meta)
    for got, want in zip(batched_grads, reference_grads, strict=True):
        relative = (got - want).norm() / want.norm().clamp(min=1e-30)
        assert relative < 1e-6


def test_first_order_drops_second_order_terms_only():
    torch.manual_seed(1)
    second = MetaSDF(hidden=16, inner_steps=2).double()
    first = MetaSDF(hidden=16, inner_steps=2, first_order=True).double()
    first.load_state_dict(second.state_dict())
    batch = {
        k: torch.rand(2, 30, d, dtype=torch.float64)
        for k, d in (("context_x", 2), ("context_y", 1), ("target_x", 2), ("target_y", 1))
    }
    g2 = torch.autograd.grad(second.loss(batch), second.weights[0])[0]
    g1 = torch.autograd.grad(first.loss(batch), first.weights[0])[0]
    assert not torch.allclose(g1, g2) and torch.isfinite(g1).all()
    # at test time both specialize identically
    with torch.no_grad():
        torch.testing.assert_close(second.reconstruct(batch), first.reconstruct(batch))


def test_dense_and_levelset_batches(store):
    shapes = load_shapes(store, "train")
    g = torch.Generator().manual_seed(0)
    dense = make_batch(shapes, torch.tensor([0, 3]), context="dense", context_points=100, generator=g)
    assert dense["context_x"].shape == (2, 100, 2) and dense["target_x"].shape == (2, 32 * 32 - 100, 2)
    # a context value is the grid's value at that cell: cell (i, j) sits at (x_j, y_i)
    x, y = dense["context_x"][0, 0].tolist()
    j, i = int(round(((x + 1) * 32 - 1) / 2)), int(round(((y + 1) * 32 - 1) / 2))
    assert dense["context_y"][0, 0, 0] == shapes.grids[0].reshape(32, 32)[i, j]
    level = make_batch(shapes, torch.tensor([1]), context="levelset", context_points=50, generator=g)
    assert (level["context_y"] == 0).all() and level["target_x"].shape == (1, 1024, 2)


@pytest.mark.parametrize("model", ["metasdf", "autodecoder", "hypernet", "cnp"])
@pytest.mark.parametrize("context", ["dense", "levelset"])
def test_every_model_trains_two_steps_and_evaluates(store, tmp_path, model, context):
    config = TINY.replace(model=model, context=context)
    result = train(store, tmp_path / "run", config)
    assert result["step"] == 2 and result["stopped"] == "done" and torch.isfinite(torch.tensor(result["loss"]))
    (tmp_path / "run" / "data.json").write_text(json.dumps({"store": str(store)}))
    report = evaluate(tmp_path / "run", split="test", limit=8)
    assert report["shapes"] == 8 and report["l1_mean"] > 0 and report["trained_steps"] == 2
    assert all(
        (tmp_path / "run" / p).exists()
        for p in ("config.json", "checkpoint.pt", "metrics.csv", "eval-test-limit8.json")
    )


@pytest.mark.slow
def test_a_short_run_lowers_held_out_error(store, tmp_path):
    config = TINY.replace(hidden=64, batch_size=8, context_points=256, inner_steps=3, steps=1, lr=1e-3, limit=None)
    train(store, tmp_path / "r", config)
    before = evaluate(tmp_path / "r", store, split="val", figures=False)["l1_mean"]
    train(store, tmp_path / "r", config.replace(steps=150), resume=True)
    after = evaluate(tmp_path / "r", store, split="val", figures=False)
    assert after["l1_mean"] < 0.7 * before
    assert after["l1_mean"] < after["mean_shape_l1"]


def test_resume_equals_an_uninterrupted_run(store, tmp_path):
    config = TINY.replace(steps=6)
    straight = train(store, tmp_path / "a", config)
    train(store, tmp_path / "b", config.replace(steps=3))
    resumed = train(store, tmp_path / "b", config, resume=True)
    assert resumed["loss"] == straight["loss"]
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["model_state"] for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 6
    assert [r.split(",")[1] for r in rows[1:]] == [
        r.split(",")[1] for r in (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1:]
    ]


def test_test_time_steps_continue_the_inner_loop_with_the_last_learned_rates():
    from metasdf.models import batched_mlp

    torch.manual_seed(0)
    model = MetaSDF(hidden=16, depth=2, inner_steps=2, inner_lr=0.1, test_steps=5)
    with torch.no_grad():  # a different learned rate per step, so reusing the wrong one shows
        for lr in model.lrs:
            lr[0].uniform_(0.02, 0.05)
            lr[1].uniform_(0.2, 0.3)
    x, y = torch.rand(1, 64, 2) * 2 - 1, torch.rand(1, 64, 1) - 0.5

    def plain_descent(steps):  # gradient descent written out: step s uses rate min(s, last)
        fast = [w.detach().unsqueeze(0) for w in model.weights]
        for s in range(steps):
            fast = [w.requires_grad_(True) for w in fast]
            loss = ((batched_mlp(x, fast) - y) ** 2).mean()
            grads = torch.autograd.grad(loss, fast)
            fast = [(w - lr[min(s, 1)] * g).detach() for w, lr, g in zip(fast, model.lrs, grads, strict=True)]
        return fast

    with torch.no_grad():  # test time: five steps
        tested = model.specialize(x, y)
    trained = [w.detach() for w in model.specialize(x, y)]  # training (gradients on): two steps
    for got, want in zip(tested, plain_descent(5), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(trained, plain_descent(2), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(tested[0], trained[0])


def test_cosine_schedule_reaches_the_optimizer_and_resumes_exactly(store, tmp_path):
    config = TINY.replace(steps=4, lr=1e-3, lr_schedule="cosine")
    # half a cosine from lr at step 0 to 0 at `steps`, by hand: 1, (1 + cos(pi/4)) / 2, 1/2, ...
    expected = [1e-3, 1e-3 * (1 + 2**-0.5) / 2, 0.5e-3, 1e-3 * (1 - 2**-0.5) / 2, 0.0]
    assert [learning_rate(config, s) for s in range(5)] == pytest.approx(expected, abs=1e-15)
    train(store, tmp_path / "a", config)
    saved = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["optimizer_state"]
    assert saved["param_groups"][0]["lr"] == pytest.approx(expected[3])  # the last step's rate

    def stop_at_2(step, *_):
        if step == 2:
            raise KeyboardInterrupt

    assert train(store, tmp_path / "b", config, progress=stop_at_2)["stopped"] == "interrupted"
    train(store, tmp_path / "b", config, resume=True)  # continues on the same curve
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["model_state"] for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="lr_schedule is 'linear'; choose one of constant, cosine, step"):
        config.replace(lr_schedule="linear")  # refused where the config is made


@pytest.mark.slow
def test_inner_loss_choice_reaches_the_model_and_old_configs_mean_l1(store, tmp_path):
    sdfkit("train", store, "-o", tmp_path / "cli", "--steps", "1", "--inner-loss", "l1", "--device", "cpu")
    config = config_from_json(tmp_path / "cli" / "config.json")
    assert config.metasdf.inner_loss == "l1" and build_model(config, 1).inner == "l1"
    assert build_model(config.replace(inner_loss="l2"), 1).inner == "l2"
    # a config.json written before the choice existed: its run was trained with l1
    old = {k: v for k, v in TINY.settings().items() if k != "inner_loss"}  # flat, as written then
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert config_from_json(tmp_path / "old.json").metasdf.inner_loss == "l1"
    with pytest.raises(InputError, match="unknown inner loss"):
        MetaSDF(inner_loss="huber")


def test_config_json_nests_its_sections_and_reads_back_whole(tmp_path):
    config = preset("paper", model="hypernet", context="levelset").replace(seed=5, latent_in=[2])
    written = json.loads(json.dumps(dataclasses.asdict(config)))
    assert set(written) == set(SECTIONS["run"]) | set(SECTION_TYPES)
    assert written["codes"]["hyper_layers"] == 3 and written["optimizer"]["epochs"] == 150
    (tmp_path / "nested.json").write_text(json.dumps(written))
    assert config_from_json(tmp_path / "nested.json") == config
    # a flat config.json (before sections) reads to the same config; a section may leave settings out
    (tmp_path / "flat.json").write_text(json.dumps(config.settings()))
    assert config_from_json(tmp_path / "flat.json") == config
    (tmp_path / "part.json").write_text(json.dumps({"model": "cnp", "cnp": {"encoder_layers": 9}}))
    assert config_from_json(tmp_path / "part.json") == TrainConfig.create(model="cnp", encoder_layers=9)
    # the example in docs/training.md reads
    docs = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    (tmp_path / "docs.json").write_text(docs.split("```json\n")[1].split("```")[0])
    assert config_from_json(tmp_path / "docs.json").optimizer.lr == 5e-4
    # names are unique across sections, and an unknown one is refused by name
    assert len(SECTION_OF) == sum(len(names) for names in SECTIONS.values())
    (tmp_path / "bad.json").write_text(json.dumps({"network": {"width": 3}}))
    with pytest.raises(InputError, match="unknown config keys width"):
        config_from_json(tmp_path / "bad.json")
    with pytest.raises(InputError, match="unknown settings widht"):
        config.replace(widht=3)


# constructor keywords that are no setting: fixed by the model's kind, or set by the caller
NOT_SETTINGS = {"shapes", "dim", "outputs", "hyper_hidden", "encoder_hidden", "reg", "fit_lr"}


@pytest.mark.parametrize("kind", ["mnist", "shapenet"])
def test_models_are_built_from_the_settings_their_keywords_name(kind):
    """Every keyword of every model's constructor is a setting or one of the fixed few, so a
    setting cannot miss its model by a misspelt keyword; and the built model carries the values."""
    models = MODELS_3D if kind == "shapenet" else MODELS
    for name, cls in models.items():
        assert keywords(cls) - set(SECTION_OF) <= NOT_SETTINGS, name
    torch.manual_seed(0)
    odd = {"hidden": 24, "depth": 2, "latent": 12, "inner_steps": 2, "inner_lr": 0.03, "test_iters": 7}
    for name in models:
        config = preset("cpu", model=name, context="levelset" if name == "pointnet" else "dense", kind=kind)
        model = build_model(config.replace(**odd), 3)
        widths = {p.shape[0] for p in model.parameters() if p.dim() == 2}
        assert (
            24 in widths
            or name == "pointnet"
            and 24 in {m.out_features for m in model.decoder if hasattr(m, "out_features")}
        )
        if name == "metasdf":
            assert model.steps == 2 and float(model.lrs[0].flatten()[0]) == pytest.approx(0.03)
        if name in ("autodecoder", "hypernet", "deepsdf"):
            assert model.codes.weight.shape == (3, 12) and model.test_iters == 7


def test_time_limit_stops_and_saves(store, tmp_path):
    result = train(store, tmp_path / "t", TINY.replace(steps=10_000), time_limit=0.0)
    assert result["stopped"] == "time-limit" and result["step"] == 1
    assert torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_bad_input(store, tmp_path):
    train(store, tmp_path / "m", TINY)
    with pytest.raises(InputError, match="holds a run already"):
        train(store, tmp_path / "m", TINY)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model": "cnp"}))
    with pytest.raises(InputError, match="checkpoint of model 'metasdf'"):
        load_run(tmp_path / "m")
    with pytest.raises(InputError, match="model 'nerf' does not train on 'mnist' stores"):
        TINY.replace(model="nerf")
    shapes_store = tmp_path / "s.zarr"
    from sdfkit.store.format import ShapeMeta, StoreLayout, create_store, mark_complete

    group = create_store(
        shapes_store, StoreLayout("shapenet", [ShapeMeta("a", "x", -1, "train")], [], {}, {}, shard_size=1)
    )
    group["meta/status"][:] = 1
    mark_complete(group, {})
    with pytest.raises(FormatError, match="needs a 'mnist' store"):
        load_shapes(shapes_store, "train")
    if not torch.cuda.is_available():
        from metasdf.train import resolve_device

        with pytest.raises(SdfkitError, match="no usable CUDA"):
            resolve_device("cuda")


@pytest.mark.slow
def test_torchrun_distributed_data_parallel(store, tmp_path):
    """Two real processes (torchrun, gloo on CPU): rank 0 saves, every rank's batch stream is
    kept, resume needs the same number of processes."""
    import socket
    import subprocess
    import sys

    from conftest import ROOT

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(dataclasses.asdict(TINY.replace(steps=3))))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"

    def torchrun(*extra, processes=2):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(processes),
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(port),
                "-m",
                "cli.main",
                "train",
                str(store),
                "-o",
                str(run),
                "--config",
                str(config),
                "--device",
                "cpu",
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )

    first = torchrun()
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("train: metasdf/dense") == 1  # rank 0 alone reports
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and len(state["generator_states"]) == 2
    assert not torch.equal(state["generator_states"][0], state["generator_states"][1])
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 3
    more = torchrun("--resume", "--steps", "5")
    assert more.returncode == 0, more.stderr[-2000:]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 5
    single = sdfkit("train", store, "-o", run, "--resume", "--steps", 7, check=False)
    assert_user_error(single, "trained with 2 processes")


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes(store, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    config = tmp_path / "long.json"
    config.write_text(json.dumps(dataclasses.asdict(TINY.replace(steps=1_000_000))))
    run = tmp_path / "int"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "train",
            str(store),
            "-o",
            str(run),
            "--config",
            str(config),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ((run / "metrics.csv").exists() and len((run / "metrics.csv").read_text().splitlines()) > 3):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "--resume" in err
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 3
    more = sdfkit("train", store, "-o", run, "--resume", "--steps", step + 2)
    assert f"step {step + 2} of {step + 2}" in more.stdout


@pytest.mark.slow
def test_cli_train_eval_and_errors(store, tmp_path):
    run = tmp_path / "cli"
    out = sdfkit("train", store, "--model", "cnp", "--context", "levelset", "-o", run, "--steps", 3)
    assert "step 3 of" in out.stdout
    report = json.loads(sdfkit("eval", run, "--split", "val", "--json").stdout)
    assert report["model"] == "cnp" and report["split"] == "val" and (run / "eval-val-reconstructions.png").exists()
    assert_user_error(sdfkit("train", store, "-o", run, "--steps", 3, check=False), "pass --resume")
    if not torch.cuda.is_available():
        assert_user_error(
            sdfkit("train", store, "-o", tmp_path / "g", "--device", "cuda", check=False), "no usable CUDA"
        )
    assert_user_error(sdfkit("eval", tmp_path / "nothing", check=False), "no such run folder")
    # as many dense context points as the grid has cells leave nothing to score: refused up front
    dense = sdfkit("train", store, "--preset", "paper", "-o", tmp_path / "all-context", "--steps", "2", check=False)
    assert_user_error(dense, "1024 context points of a 1024-cell grid leave no target cells")
    assert not (tmp_path / "all-context").exists()
    (tmp_path / "empty").mkdir()
    assert_user_error(sdfkit("eval", tmp_path / "empty", check=False), "no config.json")
    # a replayed config with a bad value: one line naming the file and the key, before any training
    config = json.loads((run / "config.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**config, "context": "weird"}))
    bad = sdfkit("train", store, "--config", tmp_path / "bad.json", "-o", tmp_path / "b", check=False)
    assert_user_error(bad, "bad.json", "context is 'weird'", "dense, levelset")
    assert "train cnp" not in bad.stderr and not (tmp_path / "b").exists()  # no progress bar, no run folder
    # a preset beside a config would be dropped, a model or context other than the config's ignored: errors
    (tmp_path / "good.json").write_text(json.dumps(config))
    for extra, fragments in (
        (["--config", tmp_path / "good.json", "--preset", "paper"], ("--preset paper and --config", "give one")),
        (["--resume", "--preset", "cpu"], ("--preset cpu and --resume", "holds every setting")),
        (["--config", tmp_path / "good.json", "--model", "metasdf"], ("--model metasdf", f"model {config['model']}")),
    ):
        out = run if "--resume" in extra else tmp_path / "c"
        assert_user_error(sdfkit("train", store, "-o", out, *extra, check=False), *fragments)
    assert not (tmp_path / "c").exists()
    # metrics are written before figures: --no-figures writes them and no PNG
    report = json.loads(sdfkit("eval", run, "--split", "test", "--json", "--no-figures").stdout)
    assert (run / "eval-test.json").exists() and not (run / "eval-test-reconstructions.png").exists()
    for command in ("train", "eval"):
        assert "Example" in sdfkit(command, "--help").stdout

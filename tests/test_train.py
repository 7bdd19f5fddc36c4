"""Training smoke test: a few steps on tiny generated data lower the loss; resume continues exactly."""
import csv
import itertools
import shutil
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from cramatte.model.configs import get_config
from cramatte.model.matting import CramatteNet
from cramatte.train import trainer
from cramatte.train.trainer import TrainOptions, _lr_factor, train
from test_data import make_backgrounds, make_set


def _opts(tmp_path, out, **kw):
    return TrainOptions(data=(str(tmp_path / "set"),), backgrounds=(str(tmp_path / "bg"),), out=str(tmp_path / out),
                        steps=16, batch=2, size=64, lr=2e-3, warmup=2, workers=0, checkpoint_every=4,
                        **{"store": str(tmp_path / "store"), **kw})


def _losses(path):
    with open(path) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_loss_goes_down_and_resume_is_exact(tmp_path):
    make_set(tmp_path / "set", n=6, size=64)
    make_backgrounds(tmp_path / "bg")
    straight = train(_opts(tmp_path, "a", ema=0.9), log=lambda *_: None)
    losses = _losses(tmp_path / "a" / "log.csv")
    assert len(losses) == 16
    assert sum(losses[-4:]) < sum(losses[:4])

    train(_opts(tmp_path, "b", stop_at=6, ema=0.9), log=lambda *_: None)
    assert len(_losses(tmp_path / "b" / "log.csv")) == 6
    resumed = train(_opts(tmp_path, "b", ema=0.9), log=lambda *_: None)
    assert _losses(tmp_path / "b" / "log.csv") == losses
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    a_ema, b_ema = (load_file(str(tmp_path / d / "ema.safetensors")) for d in "ab")  # the average resumes too
    assert a_ema.keys() == a.keys() and all(torch.equal(a_ema[k], b_ema[k]) for k in a)
    assert not all(torch.equal(a_ema[k], a[k]) for k in a)

    # Stopped between checkpoints (step 7, the last checkpoint at 4): the rows of steps 5-7 come again.
    def stopped(path, model, optim, step, *rest):
        if step == 7:
            raise KeyboardInterrupt
        save(path, model, optim, step, *rest)

    save = trainer._save_checkpoint
    with pytest.raises(KeyboardInterrupt), mock.patch.object(trainer, "_save_checkpoint", stopped):
        train(_opts(tmp_path, "d", stop_at=7), log=lambda *_: None)
    assert len(_losses(tmp_path / "d" / "log.csv")) == 7
    train(_opts(tmp_path, "d"), log=lambda *_: None)
    assert _losses(tmp_path / "d" / "log.csv") == losses

    # A lost checkpoint: a new start picks the schedule up at the step of the weights it goes on from;
    # the committed curve's rows past that step (longer than the weights) give way to the new ones.
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "a" / "log.csv", tmp_path / "c" / "log.csv")
    train(_opts(tmp_path, "c", start_step=10), log=lambda *_: None)
    with open(tmp_path / "a" / "log.csv") as f, open(tmp_path / "c" / "log.csv") as g:
        straight_rows, late_rows = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert [r["step"] for r in late_rows] == [r["step"] for r in straight_rows]
    assert [r["lr"] for r in late_rows] == [r["lr"] for r in straight_rows]
    times = [float(r["seconds"]) for r in late_rows]
    assert times == sorted(times)  # the clock goes on from the curve's, as the time-based schedule needs


def test_time_schedule_spans_the_minutes_and_stops(tmp_path):
    opts = TrainOptions(steps=10, warmup=2, schedule_minutes=2.0)
    assert _lr_factor(5, 0.0, opts) == 1.0 and abs(_lr_factor(5, 60.0, opts) - 0.5) < 1e-9
    assert _lr_factor(9, 200.0, opts) == 0.0  # the step count no longer matters

    make_set(tmp_path / "set", n=6, size=64)
    make_backgrounds(tmp_path / "bg")
    opts = TrainOptions(data=(str(tmp_path / "set"),), backgrounds=(str(tmp_path / "bg"),), out=str(tmp_path / "t"),
                        steps=10 ** 6, batch=2, size=64, warmup=1, workers=0, schedule_minutes=0.1,
                        store=str(tmp_path / "store"))
    ticks = itertools.count()
    train(opts, log=lambda *_: None, clock=lambda: 0.25 * next(ticks))  # a clock as busy as the test wants
    with open(tmp_path / "t" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert 3 < len(rows) < 20  # 6 s of schedule at about 0.75 s a step, whatever the machine's load
    assert float(rows[-1]["seconds"]) <= 0.1 * 60 + 1
    lrs = [float(r["lr"]) for r in rows[1:]]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.5 * opts.lr


def test_lowres_stage_with_whole_frames_scores_as_it_goes(tmp_path):
    make_set(tmp_path / "set", n=6, size=64)
    make_backgrounds(tmp_path / "bg")
    make_set(tmp_path / "dev", n=6, size=48, seed=3)
    exclude = tmp_path / "bad.csv"
    exclude.write_text("name,kind\np1,face cut out\n")
    hard = tmp_path / "mad.csv"
    hard.write_text("name,mad\np0,300\np2,5\n")
    opts = _opts(tmp_path, "w", stage="lowres", whole_prob=0.5, far=2.0, exclude=str(exclude), hard=str(hard),
                 eval_data=str(tmp_path / "dev"), eval_every=8, eval_count=2, eval_full_every=16,
                 ema=0.5)
    final = train(opts, log=lambda *_: None)
    with open(tmp_path / "w" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and all(r["l1"] == "" for r in rows)  # coarse terms only
    with open(tmp_path / "w" / "eval.csv") as f:
        scores = list(csv.DictReader(f))
    assert [(int(r["step"]), int(r["images"])) for r in scores] == [(8, 2), (16, 2), (16, 6)]  # subset, whole set
    with open(tmp_path / "w" / "eval_ema.csv") as f:  # the weight average, scored beside them
        assert [(int(r["step"]), int(r["images"])) for r in csv.DictReader(f)] == [(8, 2), (16, 2), (16, 6)]
    assert all(0 <= float(r["mad"]) <= 1000 and 0 <= float(r["iou"]) <= 1 for r in scores)
    assert all(0 <= float(r["haze"]) <= 1000 or r["haze"] == "nan" for r in scores)
    weights = load_file(str(final))
    torch.manual_seed(opts.seed)
    start = CramatteNet(**get_config("realtime").arch).state_dict()
    refiner = [k for k in weights if k.startswith("refiner.")]
    assert any("running_mean" in k for k in refiner)  # the refiner never ran: not even its BatchNorm statistics moved
    assert all(torch.equal(weights[k], start[k]) for k in refiner)
    assert not all(torch.equal(weights[k], start[k]) for k in weights if k.startswith("lowres."))


def test_a_resumed_log_keeps_its_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "score", lambda *_: {"mad": 12.5, "iou": 0.9, "haze": 3.25})
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("step,seconds,mad,iou,images\n500,60.0,13.0,0.9,40\n")  # written before the haze column
    for path in (old, new):
        trainer._log_score(path, None, [None] * 4, 1000, 120.0, TrainOptions(), log=lambda *_: None)
    assert old.read_text().splitlines()[1:] == ["500,60.0,13.0,0.9,40", "1000,120.0,12.5,0.9,4"]
    assert new.read_text().splitlines() == ["step,seconds,mad,iou,images,haze", "1000,120.0,12.5,0.9,4,3.25"]


def test_bf16_only_where_the_hardware_computes_it():
    cpu = torch.device("cpu")
    assert trainer.autocast_dtype(cpu, "fp32") is None
    assert trainer.autocast_dtype(cpu, "bf16") is torch.bfloat16
    for native, dtype in ((False, None), (True, torch.bfloat16)):  # AVX2 only: emulated bf16, 15x slower
        with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=native):
            assert trainer.autocast_dtype(cpu) is dtype
    with pytest.raises(ValueError, match="fp16.*auto, bf16, fp32"):
        trainer.autocast_dtype(cpu, "fp16")

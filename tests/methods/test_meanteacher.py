"""Mean Teacher: the EMA update, the consistency term, the teacher's lack of gradient, the ramp."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from lsmseg.engines import SemiSupervisedTrainer
from lsmseg.keys import Mode
from lsmseg.methods import MeanTeacherStep, MeanTeacherUNet, make_step, method_stages
from lsmseg.methods.meanteacher import sigmoid_rampup
from lsmseg.methods.registry import network_for
from tests.helpers.methods import mixed_batch
from tests.methods.test_unet import DOMAINS, LSM_RECORD, step_losses_and_grads

CON, SUP = "con_label", "sup_image2label"


def tiny_teacher(**settings: float) -> MeanTeacherUNet:
    torch.manual_seed(0)
    return MeanTeacherUNet(DOMAINS, ngf=4, **settings)  # type: ignore[arg-type]


def _step(**settings: float) -> MeanTeacherStep:
    step = make_step("meanteacher", tiny_teacher(**settings))  # type: ignore[arg-type]
    assert isinstance(step, MeanTeacherStep)
    return step


def _perturb_student(net: MeanTeacherUNet) -> None:
    with torch.no_grad():
        for p in net.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))


def test_the_method_has_a_supervised_and_a_consistency_term() -> None:
    (stage,) = method_stages("meanteacher", ["image", "label"])
    assert {t.name: w for t, w in stage.weights.items()} == {SUP: 10.0, CON: 10.0}
    assert stage.step == "meanteacher" and not stage.adversarial


@pytest.mark.parametrize("step", [1, 9, 99, 1000])
def test_ema_update_is_decay_teacher_plus_one_minus_decay_student(step: int) -> None:
    net = tiny_teacher(ema_decay=0.99)
    _perturb_student(net)
    before_t = [p.clone() for p in net.teacher.parameters()]
    student = [p.clone() for p in net.unet.parameters()]
    a = net.update_teacher(step)
    assert a == pytest.approx(min(0.99, 1 - 1 / (step + 1)))  # 0.5, 0.9, 0.99, 0.99
    if step >= 99:
        assert a == 0.99
    for t, t0, s in zip(net.teacher.parameters(), before_t, student, strict=True):
        torch.testing.assert_close(t, a * t0 + (1 - a) * s)
    assert all(torch.equal(s, p) for s, p in zip(student, net.unet.parameters(), strict=True))


def test_teacher_starts_as_the_student_and_is_what_forward_runs() -> None:
    net = tiny_teacher()
    assert all(
        torch.equal(t, s) for t, s in zip(net.teacher.parameters(), net.unet.parameters(), strict=True)
    )
    _perturb_student(net)
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(net(x), net.teacher(x))
    assert not torch.allclose(net(x), net.unet(x))


def test_consistency_is_zero_for_equal_weights_without_noise_and_positive_otherwise() -> None:
    raw = mixed_batch()
    losses, _ = step_losses_and_grads(_step(noise_std=0.0, rampup_epochs=0.0), "meanteacher", raw)
    assert float(losses[CON]) == 0.0 and float(losses[SUP]) > 0
    losses, _ = step_losses_and_grads(_step(noise_std=0.1, rampup_epochs=0.0), "meanteacher", raw)
    assert float(losses[CON]) > 0
    step = _step(noise_std=0.0, rampup_epochs=0.0)
    _perturb_student(step.teacher_network)
    losses, _ = step_losses_and_grads(step, "meanteacher", raw)
    assert float(losses[CON]) > 0


def test_the_teacher_gets_no_gradient_and_the_student_does() -> None:
    step = _step()
    _perturb_student(step.teacher_network)
    _, grads = step_losses_and_grads(step, "meanteacher", mixed_batch())
    net = step.teacher_network
    assert all(p.grad is None and not p.requires_grad for p in net.teacher.parameters())
    assert {f"unet.{n}" for n, _ in net.unet.named_parameters()} == set(grads)


def test_consistency_reads_every_row_with_an_image_and_supervision_only_the_paired() -> None:
    step = _step(noise_std=0.0, rampup_epochs=0.0)
    _perturb_student(step.teacher_network)
    raw = mixed_batch()  # 2 paired, 2 x-only, 2 y-only
    losses, grads = step_losses_and_grads(step, "meanteacher", raw)
    hidden = {k: v.clone() for k, v in raw.items()}
    hidden["image"][4:] = torch.rand(2, 1, 32, 32) * 7  # the y-only rows' hidden images
    hidden["label"][2:] = torch.randint(0, 3, (4, 1, 32, 32))  # every label but the paired rows'
    losses2, grads2 = step_losses_and_grads(step, "meanteacher", hidden)
    assert all(torch.equal(losses[k], losses2[k]) for k in losses)
    assert all(torch.equal(grads[n], grads2[n]) for n in grads)
    x_only = {k: v.clone() for k, v in raw.items()}
    x_only["image"][2] = 1 - x_only["image"][2]
    losses3, _ = step_losses_and_grads(step, "meanteacher", x_only)
    assert torch.equal(losses[SUP], losses3[SUP]) and not torch.equal(losses[CON], losses3[CON])


def test_sigmoid_rampup_known_values() -> None:
    assert sigmoid_rampup(0.0, 5.0) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(2.5, 5.0) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(5.0, 5.0) == sigmoid_rampup(50.0, 5.0) == sigmoid_rampup(0.0, 0.0) == 1.0


def test_the_trainer_updates_the_teacher_after_each_step_and_ramps_the_consistency() -> None:
    """ema_decay 0 makes the teacher a copy of the student after every step: a known answer
    that shows the update runs after the optimiser step (MODEL_COMPLETED)."""
    net = tiny_teacher(ema_decay=0.0, rampup_epochs=4.0)
    modes = (Mode.PAIRED, Mode.X_ONLY) * 4
    rows = [{k: v[0] for k, v in mixed_batch([m], seed=i).items()} for i, m in enumerate(modes)]
    trainer = SemiSupervisedTrainer("cpu", 2, DataLoader(rows, batch_size=4), net, method="meanteacher")
    before = [p.clone() for p in net.unet.parameters()]
    trainer.run()
    assert trainer.state.iteration == 4
    assert not all(torch.equal(b, p) for b, p in zip(before, net.unet.parameters(), strict=True))
    assert all(
        torch.equal(t, s) for t, s in zip(net.teacher.parameters(), net.unet.parameters(), strict=True)
    )
    step = trainer.step
    assert isinstance(step, MeanTeacherStep) and step.ramp == pytest.approx(sigmoid_rampup(3 / 2, 4.0))
    assert set(trainer.state.metrics) >= {"train_sup_image2label", "train_con_label"}


def test_network_for_records_every_mean_teacher_setting() -> None:
    record = network_for("meanteacher", LSM_RECORD, ema_decay=0.999)
    assert record["name"] == "MeanTeacherUNet"
    assert record["args"] == {
        "domains": DOMAINS,
        "ngf": 4,
        "ema_decay": 0.999,
        "noise_std": 0.1,
        "rampup_epochs": 5.0,
    }

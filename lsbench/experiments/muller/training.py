"""Training the Müller runs: one job alone (:func:`lsbench.train.fit`) or all seeds of a job together.

Jobs that differ only in their seed are trained in one vmapped program
(:func:`lsbench.train.fit_seeds`), which agrees with each seed trained alone to
about 1e-7; ``exp`` is the running :class:`lsbench.experiments.muller.run.Experiment`.
"""

from __future__ import annotations

import time


def fit_inputs(exp, job) -> tuple:
    """``(untrained model, training data, loss, train config)`` of ``job``."""
    from lsbench.experiments.muller.models import build_model, make_distillation_loss
    from lsbench.train import make_loss

    ctx = exp.data[job.dataset]
    split = ctx.split(job.seed)
    data = {"image": ctx.x[split.train], "label": ctx.y[split.train]}
    if job.kind == "classifier":
        loss = make_loss(job.spec.recipe, dict(job.spec.params), ctx.num_classes)
        return build_model(job.arch, ctx.x.shape[1], ctx.num_classes, job.seed), data, loss, ctx.setup.train
    if job.teacher is None:
        loss = make_distillation_loss(1.0, 0.0)
    else:
        data["teacher_logits"] = exp.teacher_logits(job.dataset, job.teacher, job.seed)[split.train]
        loss = make_distillation_loss(float(job.temperature), exp.cfg.beta)
    return build_model(ctx.setup.student, ctx.x.shape[1], ctx.num_classes, job.seed), data, loss, ctx.setup.train


def fit_group(exp, group: list) -> list[tuple]:
    """``[(trained model, log, training seconds)]`` of jobs that differ only in their seed, trained
    in one vmapped program (the seconds are the program's time divided among its seeds)."""
    from lsbench.train import fit_seeds

    inputs = [fit_inputs(exp, job) for job in group]
    models = {job.seed: model for job, (model, _, _, _) in zip(group, inputs)}
    _, _, loss, config = inputs[0]
    t0 = time.perf_counter()
    runs = fit_seeds(lambda seed: models[seed], [data for _, data, _, _ in inputs], loss, config,
                     [job.seed for job in group], progress=exp.progress,
                     desc=f"{group[0].dataset} {group[0].name} seeds {group[0].seed}-{group[-1].seed}")
    seconds = (time.perf_counter() - t0) / len(group)
    return [(model, log, seconds) for model, log in runs]


def fit_one(exp, job, done: tuple | None) -> tuple:
    """``done`` (from :func:`fit_group`), or ``job`` trained alone by :func:`lsbench.train.fit`."""
    from lsbench.train import fit

    if done is not None:
        return done
    model, data, loss, config = fit_inputs(exp, job)
    t0 = time.perf_counter()
    trained, log = fit(model, data, loss, config, seed=job.seed, progress=exp.progress,
                       desc=f"{job.dataset} {job.name} seed {job.seed}")
    return trained, log, time.perf_counter() - t0

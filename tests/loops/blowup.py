"""A toy Algorithm that blows up on purpose, for the loops' divergence-guard tests (no networks, so
each loop compiles in seconds).

Its state is ``{"updates": int32, "w": float32 [2]}``; ``update`` adds 1 to ``w`` and reports
``loss/toy = 1``. At update ``at`` (1-based) it goes non-finite: ``where="param"`` makes ``w``
NaN from then on (no metric ever shows it: only a check of the state finds it),
``where="loss"`` makes that update's ``loss/toy`` inf (the state stays finite). Works for batches of any shape (online ``[B]``, on-policy ``[T, E]``,
offline ``[B]``) and for the self-sampling loop's ``update(state, None)``.
"""

from __future__ import annotations

import jax.numpy as jnp

from purerl.core.types import Algorithm


def blows_up(spec, at: int, where: str = "param") -> Algorithm:
    assert where in ("param", "loss")

    def init(key, *args):
        return {"updates": jnp.zeros((), jnp.int32), "w": jnp.zeros((2,), jnp.float32)}

    def act(state, obs, key, deterministic=False):
        lead = obs.shape[: obs.ndim - len(spec.obs_shape)]
        if spec.discrete:
            return jnp.zeros(lead, jnp.int32), {}
        return jnp.zeros((*lead, *spec.action_shape), jnp.float32), {}

    def update(state, batch):
        updates = state["updates"] + 1
        bad = updates == at
        w = state["w"] + 1.0
        loss = jnp.ones((), jnp.float32)
        if where == "param":
            w = jnp.where(bad, jnp.nan, w)
        else:
            loss = jnp.where(bad, jnp.inf, loss)
        return {"updates": updates, "w": w}, {"loss/toy": loss}

    return Algorithm(init=init, act=act, loss=None, update=update)

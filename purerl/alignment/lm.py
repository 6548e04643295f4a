"""A tiny decoder-only transformer language model: the policy and reward-model trunk of the toy RLHF
world (research notes ``alignment.md`` §6.1 Tier B: "haiku decoder, 2 layers, d = 64-128, 4 heads").

Architecture (GPT-2 style pre-LayerNorm decoder; Vaswani et al. 2017, Radford et al. 2019):

* ``x_0 = E[tok_t] + P[t]`` (learned token and position embeddings), embedding dropout;
* per block ``l``: ``x <- x + Drop(Attn(LN(x)))``, ``x <- x + Drop(MLP(LN(x)))`` with causal
  multi-head attention ``softmax(Q K^T / sqrt(d_head) + M) V`` (``M_ts = -inf`` for ``s > t``) and
  ``MLP(h) = W_2 gelu(W_1 h)``;
* ``h = LN(x_L)`` is the final hidden state ``[B, T, D]`` that reward heads read;
* ``logits = h E^T`` (tied unembedding) or ``h W_U + b`` (untied).

Functions (all pure; ``config`` is a hashable :class:`LMConfig`, static under ``jit``):

* :func:`make_lm` -> ``Network(init, apply)``; ``apply(params, tokens[B, T], key=None,
  dropout_rate=None) -> LMOutput(logits[B, T, V], hidden[B, T, D])``; dropout only with a ``key``.
* :func:`sample` -> ``Sample(tokens[B, P + N], mask[B, P + N])``: ancestral sampling (temperature,
  top-k, greedy at temperature 0) with a per-layer KV cache in one ``lax.scan`` over positions, or
  (``use_cache=False``) the reference path that reruns the whole sequence at every step.
* :func:`token_logprobs` -> ``log pi(y_{t+1} | y_{<=t})`` ``[B, T - 1]`` masked,
  :func:`sequence_logprob` -> ``log pi(y | x) = sum_t log pi(y_t | x, y_{<t})`` over the response
  only (the quantity WARP's KL-regularised reward and BOND's estimators use, notes §4.1
  ``seq_logprob``).
* :func:`next_token_loss` and :func:`make_train_step` for pre-training / SFT (mean NLL of the masked
  next tokens, Adam).

Masks: sequences are ``[prompt | response | pad]``, right-padded, so causal attention never lets a
pad token influence a real one and no attention mask beyond the causal one is needed. A response
``mask`` is 1 on response tokens (up to and including the first EOS) and 0 on the prompt and pad.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from purerl.core import optim, validation
from purerl.core.types import Metrics, Network

_NEG = -1e30  # finite "-inf" for masked attention scores: exp underflows to exactly 0, never NaN


@dataclasses.dataclass(frozen=True)
class LMConfig:
    vocab_size: int = 32  # notes §6.1 Tier B uses ~48 word tokens; the default task needs <= 32
    max_len: int = 32  # longest sequence (prompt + response) the position table covers
    d_model: int = 64  # notes §4.3 benchmark / §6.1: d = 64-128
    num_heads: int = 4  # notes §6.1: 4 heads
    num_layers: int = 2  # notes §6.1: 2 layers
    mlp_ratio: int = 4  # MLP width = mlp_ratio * d_model (GPT-2's 4x)
    dropout: float = 0.0  # default dropout rate when a dropout key is given (WARM §3.3 sweeps it)
    tie_embeddings: bool = True  # logits = h E^T (GPT-2); False adds a separate unembedding

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "num_heads", "num_layers", "mlp_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"LMConfig.{name} must be a positive int, got {v!r}")
        if self.vocab_size < 2:
            raise ValueError(f"LMConfig.vocab_size must be >= 2, got {self.vocab_size}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"LMConfig.d_model={self.d_model} must be divisible by num_heads={self.num_heads}"
            )
        validation.non_negative("LMConfig", dropout=self.dropout)
        if not self.dropout < 1.0:
            raise ValueError(f"LMConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"LMConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}")

    @property
    def head_size(self) -> int:
        return self.d_model // self.num_heads


class LMOutput(NamedTuple):
    logits: jax.Array  # [B, T, V] next-token logits
    hidden: jax.Array  # [B, T, D] final LayerNorm output (the trunk features)


class Sample(NamedTuple):
    tokens: jax.Array  # [B, P + N] int32: prompt, sampled response, pad after the first EOS
    mask: jax.Array  # [B, P + N] float32: 1 on response tokens up to and including EOS


# ----------------------------------------------------------------------------- input checks


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_tokens(tokens: ArrayLike, config: LMConfig, what: str = "tokens") -> None:
    """Raise ``ValueError`` unless ``tokens`` is an integer ``[B, T]`` array with ``1 <= T <=
    max_len``; token ids are range-checked too when the values are concrete (not under ``jit``)."""
    shape = tuple(np.shape(tokens))
    if len(shape) != 2:
        raise ValueError(f"{what} must be [B, T] token ids, got shape {shape}")
    if shape[1] < 1:
        raise ValueError(f"{what} must have at least one position, got shape {shape}")
    if shape[1] > config.max_len:
        raise ValueError(
            f"{what} has length {shape[1]} > LMConfig.max_len={config.max_len}; "
            "raise max_len or shorten the sequences"
        )
    dtype = tokens.dtype if hasattr(tokens, "dtype") else np.asarray(tokens).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{what} must be integer token ids, got dtype {dtype}")
    if not _is_tracer(tokens) and shape[0] > 0:
        values = np.asarray(tokens)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= config.vocab_size:
            raise ValueError(
                f"{what} has token ids in [{lo}, {hi}], outside [0, {config.vocab_size}) "
                f"(LMConfig.vocab_size={config.vocab_size})"
            )


def check_mask(mask: ArrayLike, tokens: ArrayLike, what: str = "mask") -> None:
    """``mask`` must have exactly the shape of ``tokens``."""
    if tuple(np.shape(mask)) != tuple(np.shape(tokens)):
        raise ValueError(
            f"{what} has shape {tuple(np.shape(mask))}, expected the tokens' shape "
            f"{tuple(np.shape(tokens))}"
        )


def check_rate(rate: Any) -> None:
    """Raise ``ValueError`` unless a concrete dropout rate is in ``[0, 1)`` (``None`` and traced
    rates pass)."""
    if rate is None or _is_tracer(rate):
        return
    r = float(np.asarray(rate))
    if not (0.0 <= r < 1.0):
        raise ValueError(f"dropout_rate must be in [0, 1), got {rate!r}")


# ----------------------------------------------------------------------------- the haiku model


def _dropout(x: jax.Array, rate: Any, u: jax.Array | None) -> jax.Array:
    """Inverted dropout from uniforms ``u`` (shape of ``x``) that accepts a traced ``rate`` (so a
    vmap can sweep it); rate 0 is exact."""
    if u is None:
        return x
    keep = 1.0 - jnp.asarray(rate, x.dtype)
    # u is in [0, 1), so keep = 1 keeps every unit and x / 1 == x exactly.
    return jnp.where(u < keep, x / keep, 0.0)


@functools.cache
def _transformer(config: LMConfig) -> hk.Transformed:
    """The haiku function ``fn(tokens, start, cache, key, rate) -> (logits, hidden, cache)``.

    ``cache`` is ``None`` (plain causal forward over ``tokens``) or one ``(K, V)`` pair per layer,
    each ``[B, S, H, d_head]``: the new keys/values are written at positions ``start .. start+T-1``
    and queries attend to every cached position ``<= `` their own. Prefill and one-token decoding are
    the same code path (``T = P`` or ``T = 1``).
    """
    d, h, dh = config.d_model, config.num_heads, config.head_size
    w_init = hk.initializers.TruncatedNormal(0.02)  # GPT-2 initialisation
    # GPT-2 scales the residual output projections by 1 / sqrt(2 L).
    out_init = hk.initializers.TruncatedNormal(0.02 / math.sqrt(2 * config.num_layers))

    def fn(tokens, start=0, cache=None, key=None, rate=None):
        b, t = tokens.shape
        rate = config.dropout if rate is None else rate
        # One uniform draw serves every dropout site (one PRNG call compiles much faster than 2L+1).
        drop_u = [None] * (2 * config.num_layers + 1)
        if key is not None:
            drop_u = list(jax.random.uniform(key, (len(drop_u), b, t, d)))
        embed = hk.Embed(config.vocab_size, d, w_init=w_init, name="token_embed")
        pos_table = hk.Embed(config.max_len, d, w_init=w_init, name="position_embed").embeddings
        pos = jax.lax.dynamic_slice_in_dim(pos_table, start, t, axis=0)
        x = _dropout(embed(tokens) + pos[None], rate, drop_u[0])
        q_pos = start + jnp.arange(t)
        new_cache = []
        for layer in range(config.num_layers):
            y = hk.LayerNorm(-1, True, True, name=f"layer{layer}_ln_attn")(x)
            qkv = hk.Linear(3 * d, w_init=w_init, name=f"layer{layer}_attn_qkv")(y)
            q, k, v = (a.reshape(b, t, h, dh) for a in jnp.split(qkv, 3, axis=-1))
            if cache is None:
                k_all, v_all, k_pos = k, v, jnp.arange(t)
            else:
                k_all = jax.lax.dynamic_update_slice(cache[layer][0], k, (0, start, 0, 0))
                v_all = jax.lax.dynamic_update_slice(cache[layer][1], v, (0, start, 0, 0))
                k_pos = jnp.arange(k_all.shape[1])
                new_cache.append((k_all, v_all))
            scores = jnp.einsum("bthd,bshd->bhts", q, k_all) / math.sqrt(dh)
            scores = jnp.where(k_pos[None, :] <= q_pos[:, None], scores, _NEG)
            att = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1), v_all)
            att = hk.Linear(d, w_init=out_init, name=f"layer{layer}_attn_out")(att.reshape(b, t, d))
            x = x + _dropout(att, rate, drop_u[2 * layer + 1])
            y = hk.LayerNorm(-1, True, True, name=f"layer{layer}_ln_mlp")(x)
            y = hk.Linear(config.mlp_ratio * d, w_init=w_init, name=f"layer{layer}_mlp_in")(y)
            y = hk.Linear(d, w_init=out_init, name=f"layer{layer}_mlp_out")(jax.nn.gelu(y))
            x = x + _dropout(y, rate, drop_u[2 * layer + 2])
        hidden = hk.LayerNorm(-1, True, True, name="final_ln")(x)
        if config.tie_embeddings:
            logits = hidden @ embed.embeddings.T
        else:
            logits = hk.Linear(config.vocab_size, w_init=w_init, name="unembed")(hidden)
        return logits, hidden, (new_cache if cache is not None else None)

    return hk.without_apply_rng(hk.transform(fn))


def _init_params(config: LMConfig, key: jax.Array) -> Any:
    """The haiku initialisation drawn with one random call instead of one per parameter (compiles
    in a fraction of the time): weights and embeddings ``0.02 * TruncNormal(-2, 2)``, the residual
    output projections scaled by ``1 / sqrt(2 L)``, biases and LayerNorm offsets 0, scales 1."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    shapes = jax.eval_shape(_transformer(config).init, jax.random.key(0), tokens)
    paths, tree = jax.tree_util.tree_flatten_with_path(shapes)
    sizes = [math.prod(leaf.shape) for _, leaf in paths]
    noise = jax.random.truncated_normal(key, -2.0, 2.0, (sum(sizes),))
    chunks = jnp.split(noise, np.cumsum(sizes)[:-1])
    out_std = 0.02 / math.sqrt(2 * config.num_layers)
    leaves = []
    for (path, leaf), chunk in zip(paths, chunks, strict=True):
        module, name = (getattr(p, "key", str(p)) for p in path[-2:])
        if name in ("b", "offset"):
            leaves.append(jnp.zeros(leaf.shape, leaf.dtype))
        elif name == "scale":
            leaves.append(jnp.ones(leaf.shape, leaf.dtype))
        else:
            std = out_std if module.endswith(("attn_out", "mlp_out")) else 0.02
            leaves.append((std * chunk).reshape(leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(tree, leaves)


@functools.cache
def _compiled(config: LMConfig) -> hk.Transformed:
    """``init`` / ``apply`` jitted once per config (eager haiku dispatches op by op)."""
    model = _transformer(config)
    return hk.Transformed(
        init=jax.jit(functools.partial(_init_params, config)), apply=jax.jit(model.apply)
    )


def make_lm(config: LMConfig) -> Network:
    """The LM as a pure ``Network(init, apply)``.

    ``init(key, tokens[B, T]) -> params`` (the shapes depend on the config only; ``tokens`` is
    checked, not used);
    ``apply(params, tokens[B, T], key=None, dropout_rate=None) -> LMOutput(logits, hidden)``.
    Dropout (embedding and both residual branches) is on only when ``key`` is given; its rate is
    ``dropout_rate`` (may be traced) or ``config.dropout``.
    """
    model = _compiled(config)

    def init(key: jax.Array, tokens: ArrayLike) -> Any:
        check_tokens(tokens, config)  # the parameters' shapes depend on the config only
        return model.init(key)

    def apply(
        params: Any, tokens: ArrayLike, key: jax.Array | None = None, dropout_rate: Any = None
    ) -> LMOutput:
        check_tokens(tokens, config)
        check_rate(dropout_rate)
        logits, hidden, _ = model.apply(params, jnp.asarray(tokens), 0, None, key, dropout_rate)
        return LMOutput(logits, hidden)

    return Network(init=init, apply=apply)


# ----------------------------------------------------------------------------- sampling


def _choose(logits: jax.Array, key: jax.Array, temperature: jax.Array, top_k: jax.Array):
    """One token per row: argmax at ``temperature <= 0``, else ``Categorical(softmax(l / T))``
    restricted to the ``top_k`` largest logits (ties at the k-th value are all kept). ``top_k`` is
    a traced int in ``[1, V]`` (``V``: no truncation)."""
    logits = logits.astype(jnp.float32)
    descending = -jnp.sort(-logits, axis=-1)
    kth = jax.lax.dynamic_index_in_dim(descending, top_k - 1, axis=-1, keepdims=True)
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
    greedy = jnp.argmax(logits, axis=-1)
    scaled = logits / jnp.where(temperature > 0, temperature, 1.0)
    sampled = jax.random.categorical(key, scaled, axis=-1)
    return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "use_cache"))
def _sample(
    config, params, prompt, key, temperature, max_new_tokens, top_k, eos_id, pad_id, use_cache
):
    model = _transformer(config)
    b, p = prompt.shape
    total = p + max_new_tokens
    temperature = jnp.asarray(temperature, jnp.float32)

    def emit(logits, done, i):
        token = _choose(logits, jax.random.fold_in(key, i), temperature, top_k)
        token = jnp.where(done, pad_id, token)
        valid = ~done
        done = done | (token == eos_id)  # eos_id = -1 (no EOS) never matches
        return token, valid, done

    done0 = jnp.zeros((b,), bool)
    if use_cache:
        shape = (b, total, config.num_heads, config.head_size)
        cache = [(jnp.zeros(shape), jnp.zeros(shape)) for _ in range(config.num_layers)]
        logits, _, cache = model.apply(params, prompt, 0, cache, None, None)

        def step(carry, i):
            cache, last_logits, done = carry
            token, valid, done = emit(last_logits, done, i)
            logits, _, cache = model.apply(params, token[:, None], p + i, cache, None, None)
            return (cache, logits[:, -1], done), (token, valid)

        _, (new, valid) = jax.lax.scan(
            step, (cache, logits[:, -1], done0), jnp.arange(max_new_tokens)
        )
        tokens = jnp.concatenate([prompt, new.T], axis=1)
    else:
        buffer = jnp.concatenate([prompt, jnp.full((b, max_new_tokens), pad_id, prompt.dtype)], 1)

        def step(carry, i):
            buffer, done = carry
            logits, _, _ = model.apply(params, buffer, 0, None, None, None)
            last = jax.lax.dynamic_index_in_dim(logits, p + i - 1, axis=1, keepdims=False)
            token, valid, done = emit(last, done, i)
            buffer = jax.lax.dynamic_update_slice(buffer, token[:, None], (0, p + i))
            return (buffer, done), valid

        (tokens, _), valid = jax.lax.scan(step, (buffer, done0), jnp.arange(max_new_tokens))
    mask = jnp.concatenate([jnp.zeros((b, p)), valid.T.astype(jnp.float32)], axis=1)
    return Sample(tokens.astype(jnp.int32), mask)


def sample(
    config: LMConfig,
    params: Any,
    prompt_tokens: ArrayLike,
    key: jax.Array,
    max_new_tokens: int,
    temperature: ArrayLike = 1.0,
    top_k: int | ArrayLike | None = None,
    eos_id: int | ArrayLike | None = None,
    pad_id: int | ArrayLike = 0,
    use_cache: bool = True,
) -> Sample:
    """Ancestral sampling ``y_t ~ softmax(logits(x, y_{<t}) / temperature)`` for ``N`` new tokens.

    Step ``i`` uses ``fold_in(key, i)``, so the KV-cache path and the reference path
    (``use_cache=False``, a full forward pass over the padded sequence per step) draw identical
    tokens. ``temperature`` may be traced; ``temperature <= 0`` is greedy decoding. After the first
    ``eos_id`` every later token is ``pad_id`` with mask 0. Jitted inside; only ``config``,
    ``max_new_tokens`` and ``use_cache`` are static (``temperature``, ``top_k``, ``eos_id``,
    ``pad_id`` may be traced, one compile serves them all).

    Args:
      prompt_tokens: ``[B, P]`` int prompt, every row the same length ``P >= 1``.
      max_new_tokens: ``N``; ``P + N`` must be ``<= config.max_len``.
    Returns:
      ``Sample(tokens[B, P + N], mask[B, P + N])``; ``mask`` is 0 on the prompt and on pad.
    """
    check_tokens(prompt_tokens, config, "prompt_tokens")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
        raise ValueError(f"max_new_tokens must be a static int, got {max_new_tokens!r}")
    p = np.shape(prompt_tokens)[1]
    if max_new_tokens < 1 or p + max_new_tokens > config.max_len:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} with a prompt of length {p} needs "
            f"1 <= max_new_tokens and P + N <= LMConfig.max_len={config.max_len}"
        )
    if top_k is not None and not _is_tracer(top_k):
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise ValueError(f"top_k must be None or an int in [1, vocab_size], got {top_k!r}")
        if not 1 <= top_k <= config.vocab_size:
            raise ValueError(f"top_k must be in [1, vocab_size={config.vocab_size}], got {top_k}")
    for name, tok in (("eos_id", eos_id), ("pad_id", pad_id)):
        if tok is not None and not _is_tracer(tok) and not (0 <= int(tok) < config.vocab_size):
            raise ValueError(f"{name}={tok} is outside [0, {config.vocab_size})")
    if not _is_tracer(temperature) and not float(np.asarray(temperature)) >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    return _sample(
        config,
        params,
        jnp.asarray(prompt_tokens, jnp.int32),
        key,
        jnp.asarray(temperature, jnp.float32),
        int(max_new_tokens),
        jnp.asarray(config.vocab_size if top_k is None else top_k, jnp.int32),
        jnp.asarray(-1 if eos_id is None else eos_id, jnp.int32),
        jnp.asarray(pad_id, jnp.int32),
        bool(use_cache),
    )


# ----------------------------------------------------------------------------- log-probabilities


def token_logprobs(
    config: LMConfig,
    params: Any,
    tokens: ArrayLike,
    mask: ArrayLike,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
    temperature: ArrayLike = 1.0,
) -> jax.Array:
    """Per-token ``log pi(y_{t+1} | y_{<=t}) * mask_{t+1}``, shape ``[B, T - 1]``, with
    ``pi = softmax(logits / temperature)`` (the distribution :func:`sample` draws from at that
    temperature).

    Entry ``t`` scores token ``t + 1`` from the logits at position ``t``; it is 0 where
    ``mask[:, t + 1]`` is 0 (prompt, pad). For ``[prompt (P) | response (R)]`` sequences the
    response's own per-token log-probs ``[B, R]`` are ``token_logprobs(...)[:, P - 1:]``.
    Dropout only with a ``key`` (see :func:`make_lm`). ``temperature > 0`` (may be traced).
    """
    check_tokens(tokens, config)
    check_mask(mask, tokens)
    validation.positive("lm.token_logprobs", temperature=temperature)
    tokens = jnp.asarray(tokens)
    logits = make_lm(config).apply(params, tokens, key, dropout_rate).logits
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32) / temperature, axis=-1)
    picked = jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    return picked * jnp.asarray(mask, jnp.float32)[:, 1:]


def sequence_logprob(
    config: LMConfig,
    params: Any,
    tokens: ArrayLike,
    mask: ArrayLike,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
) -> jax.Array:
    """``log pi(y | x) = sum_t mask_t log pi(y_t | x, y_{<t})``, shape ``[B]``: the sequence
    log-likelihood of the masked (response) tokens, prompt and pad excluded (notes §4.1)."""
    return jnp.sum(token_logprobs(config, params, tokens, mask, key, dropout_rate), axis=-1)


def next_token_loss(
    config: LMConfig,
    params: Any,
    tokens: ArrayLike,
    mask: ArrayLike,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
) -> jax.Array:
    """Pre-training / SFT loss: mean NLL per masked token, ``-sum_t m_t log pi(y_t | y_{<t}) /
    sum_t m_t`` (``mask[:, 0]`` is ignored: the first token has no context)."""
    lp = token_logprobs(config, params, tokens, mask, key, dropout_rate)
    count = jnp.sum(jnp.asarray(mask, jnp.float32)[:, 1:])
    return -jnp.sum(lp) / jnp.maximum(count, 1.0)


class TrainState(NamedTuple):
    params: Any
    opt_state: optax.OptState  # of the raveled parameter vector
    key: jax.Array  # dropout key stream
    step: jax.Array  # int32 updates done


class TrainStep(NamedTuple):
    """``init(key) -> TrainState``; ``loss(params, tokens, mask, key) -> (scalar, metrics)``;
    ``update(state, (tokens, mask)) -> (state, metrics)``, a ``lax.scan`` body."""

    init: Callable[..., TrainState]
    loss: Callable[..., tuple[jax.Array, Metrics]]
    update: Callable[..., tuple[TrainState, Metrics]]


def make_train_step(
    config: LMConfig, learning_rate: float = 3e-3, max_grad_norm: float = 1.0
) -> TrainStep:
    """Next-token NLL training (pre-training on a corpus, or SFT with a response mask) with Adam and
    global-norm clipping. Batches are ``(tokens[B, T], mask[B, T])``; dropout uses
    ``config.dropout``."""
    validation.positive("lm.make_train_step", learning_rate=learning_rate)
    validation.positive("lm.make_train_step", max_grad_norm=max_grad_norm)
    network = make_lm(config)
    optimizer = optim.adam(learning_rate, max_grad_norm=max_grad_norm)

    def init(key: jax.Array) -> TrainState:
        key, init_key = jax.random.split(key)
        params = network.init(init_key, jnp.zeros((1, config.max_len), jnp.int32))
        opt_state = optimizer.init(ravel_pytree(params)[0])
        return TrainState(params, opt_state, key, jnp.zeros((), jnp.int32))

    def loss(params: Any, tokens: ArrayLike, mask: ArrayLike, key: jax.Array | None = None):
        nll = next_token_loss(config, params, tokens, mask, key if config.dropout > 0 else None)
        return nll, {"loss/nll": nll}

    def update(state: TrainState, batch: tuple[jax.Array, jax.Array]):
        tokens, mask = batch
        key, dropout_key = jax.random.split(state.key)
        # Adam on one flat vector: the same arithmetic as leaf by leaf, a much smaller program.
        flat, unravel = ravel_pytree(state.params)
        grads, metrics = jax.grad(
            lambda f: loss(unravel(f), tokens, mask, dropout_key), has_aux=True
        )(flat)
        updates, opt_state = optimizer.update(grads, state.opt_state, flat)
        params = unravel(optax.apply_updates(flat, updates))
        return TrainState(params, opt_state, key, state.step + 1), metrics

    return TrainStep(init=init, loss=loss, update=update)

"""Generation's decoding step as direct torch code (eager torch only).

A decoding step of a small model does little arithmetic: on the eager torch
backend its time goes to Keras' per-call work. `Layer.__call__` binds
arguments, flattens structures and opens name and autocast scopes (0.1-0.3
ms a call), and every `keras.ops` function converts and checks its
arguments (about 5-30 us, against 1-8 us for the torch function it ends up
calling). JAX and TensorFlow compile generation, so they pay this once per
trace; eager torch pays it at every step.

`decoding_step(task, context)` is therefore the one backend-specific piece
of generation. `UniLMv2Seq2SeqLM.generate_step` asks for it once per
generation: on torch, for a float32 model whose sublayers are plain Keras
`Dense`, `LayerNormalization`, `Embedding` and tied `ReversibleEmbedding`
layers (no mixed precision, quantization or LoRA), it returns
`step(token_ids, cache, index)`, the torch functions that
`task.call_with_cache(token_ids, cache, index, context)` reaches, applied
to weight tensors read once. Elsewhere it returns None and generation calls
`call_with_cache` (plain `layer(...)` calls).

The step computes what `call_with_cache` computes (tested to 1e-5 in
`tests/models/test_torch_decoding.py`) with two differences that only
generation can afford:

- outside autograd (generation runs under `torch.inference_mode()`) the new
  keys and values are written into the given cache's buffers, not into a
  copy: a decoding loop never reuses an old cache, and this saves a copy of
  the whole cache per layer and step;
- on a CPU the tied output projection multiplies by a contiguous copy of
  the transposed token table, made once per generation: MKL multiplies a
  few rows against it about 1.7x faster than against the transposed view.

The weights are those of the moment the step is made: generation makes a
new one per call.
"""

import math

import keras
from keras_hub.layers import ReversibleEmbedding


def decoding_step(task, context):
    """`task.call_with_cache` with `context` bound, as direct torch code.

    Args:
        task: a `UniLMv2Seq2SeqLM`.
        context: the encoded source, from `task._build_cache`.

    Returns:
        `step(token_ids, cache, index) -> (logits, hidden, cache)` on eager
        torch for a float32 model of plain sublayers, else None (the
        caller then uses `task.call_with_cache`).

    Example:
    ```python
    context, cache = task._build_cache(source_ids, source_mask, 16)
    step = decoding_step(task, context) or functools.partial(
        task.call_with_cache, context=context
    )
    logits, hidden, cache = step(prompt, cache, 1)
    ```
    """
    if keras.config.backend() != "torch" or not _covered(task.backbone):
        return None
    return _Step(task, context)


def _plain(layer):
    policy = layer.dtype_policy
    return (
        layer.built
        and policy.compute_dtype == "float32"
        and policy.variable_dtype == "float32"
        and getattr(layer, "quantization_mode", None) is None
        and not getattr(layer, "lora_enabled", False)
    )


def _covered(backbone):
    """Whether every sublayer the step reads has a direct torch form."""
    dense, norms = [], [backbone.embeddings_layer_norm]
    for layer in backbone.transformer_layers:
        attention = layer.self_attention
        dense += [
            attention.query_dense,
            attention.key_dense,
            attention.value_dense,
            attention.output_dense,
            layer.feedforward_intermediate_dense,
            layer.feedforward_output_dense,
        ]
        norms += [layer.self_attention_layer_norm, layer.feedforward_layer_norm]
    head = backbone.lm_head
    dense.append(head.transform_dense)
    norms.append(head.transform_layer_norm)
    tables = [
        backbone.token_embedding,
        backbone.position_embedding,
        backbone.segment_embedding,
    ]
    token = backbone.token_embedding
    linear, gelu = keras.activations.linear, keras.activations.gelu
    return (
        all(_plain(x) for x in dense + norms + tables + [head])
        and all(type(x) is keras.layers.Dense for x in dense)
        and all(x.activation in (linear, gelu) for x in dense)
        and all(type(x) is keras.layers.LayerNormalization for x in norms)
        and all(not x.rms_scaling and x.axis in (-1, [-1]) for x in norms)
        and all(not x.mask_zero for x in tables)
        and type(token) is ReversibleEmbedding
        and token.tie_weights
        and token.reverse_dtype is None
        and token.logit_soft_cap is None
    )


def _dense(layer):
    import torch

    kernel = layer.kernel.value
    bias = layer.bias.value if layer.bias is not None else None
    # Keras' gelu is the exact (erf) form, as torch's default.
    gelu = layer.activation is keras.activations.gelu

    def dense(x):
        outputs = x @ kernel
        if bias is not None:
            outputs = outputs + bias
        return torch.nn.functional.gelu(outputs) if gelu else outputs

    return dense


def _norm(layer):
    import torch

    gamma = layer.gamma.value if layer.gamma is not None else None
    beta = layer.beta.value if layer.beta is not None else None
    epsilon = layer.epsilon

    def norm(x):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, epsilon)

    return norm


def _host_index(index):
    """`index` as a Python int where reading it costs no device sync."""
    import torch

    if isinstance(index, torch.Tensor) and index.device.type == "cpu":
        return int(index)
    return index


def _slots(start, size, device):
    import torch

    return start + torch.arange(size, device=device)


def _rows(x, axis, start, size):
    """`size` entries of `x` along `axis` from `start` (int or tensor)."""
    if isinstance(start, int):
        return x.narrow(axis, start, size)
    return x.index_select(axis, _slots(start, size, x.device))


def _write(x, axis, start, update):
    """`x` with `update` written from `start` along `axis`: `x` itself
    outside autograd, else a copy."""
    import torch

    if torch.is_grad_enabled():
        x = x.clone()
    if isinstance(start, int):
        x.narrow(axis, start, update.shape[axis]).copy_(update)
    else:
        x.index_copy_(axis, _slots(start, update.shape[axis], x.device), update)
    return x


def _repeat_to_batch(x, batch):
    group = batch // x.shape[0]
    return x if group == 1 else x.repeat_interleave(group, dim=0)


class _Layer:
    """One transformer layer's cached step (see `UniLMv2Attention`)."""

    def __init__(self, layer):
        attention = layer.self_attention
        self.heads, self.dim = attention.num_heads, attention.key_dim
        self.query = _dense(attention.query_dense)
        self.key = _dense(attention.key_dense)
        self.value = _dense(attention.value_dense)
        self.attention_output = _dense(attention.output_dense)
        self.attention_norm = _norm(layer.self_attention_layer_norm)
        self.intermediate = _dense(layer.feedforward_intermediate_dense)
        self.output = _dense(layer.feedforward_output_dense)
        self.output_norm = _norm(layer.feedforward_layer_norm)

    def __call__(self, x, bias, cache, start, context):
        import torch

        batch, length = x.shape[:2]
        heads, dim = self.heads, self.dim

        def project(dense, axes):
            return dense(x).reshape(batch, length, heads, dim).permute(axes)

        query = project(self.query, (0, 2, 1, 3))  # [batch, heads, new, dim]
        keys = _write(cache[0], 3, start, project(self.key, (0, 2, 3, 1)))
        values = _write(cache[1], 2, start, project(self.value, (0, 2, 1, 3)))
        query = query * (1.0 / math.sqrt(dim))
        context_keys, context_values = context
        context_batch, context_length = context_keys.shape[0], context_keys.shape[3]
        grouped = batch != context_batch

        def join(t):  # [b * g, h, new, n] -> [b, h, g * new, n]
            if not grouped:
                return t
            t = t.reshape(context_batch, -1, heads, length, t.shape[-1])
            return t.permute(0, 2, 1, 3, 4).reshape(context_batch, heads, -1, t.shape[-1])

        def split(t):  # [b, h, g * new, n] -> [b * g, h, new, n]
            if not grouped:
                return t
            t = t.reshape(context_batch, heads, -1, length, t.shape[-1])
            return t.permute(0, 2, 1, 3, 4).reshape(batch, heads, length, t.shape[-1])

        scores = torch.cat([split(join(query) @ context_keys), query @ keys], dim=-1)
        probs = torch.softmax(scores + bias, dim=-1)
        attended = split(join(probs[..., :context_length]) @ context_values)
        attended = attended + probs[..., context_length:] @ values
        attended = attended.permute(0, 2, 1, 3).reshape(batch, length, heads * dim)
        x = self.attention_norm(x + self.attention_output(attended))
        x = self.output_norm(x + self.output(self.intermediate(x)))
        return x, (keys, values)


class _Step:
    """`call_with_cache(token_ids, cache, index, context)` in torch."""

    def __init__(self, task, context):
        backbone = task.backbone
        self.mask_id, _, self.target_type = task._special_ids()
        self.token_table = backbone.token_embedding.embeddings.value
        self.position_table = backbone.position_embedding.embeddings.value
        self.segment_table = backbone.segment_embedding.embeddings.value
        self.embeddings_norm = _norm(backbone.embeddings_layer_norm)
        self.layers = [_Layer(layer) for layer in backbone.transformer_layers]
        head = backbone.lm_head
        self.transform = _dense(head.transform_dense)
        self.transform_norm = _norm(head.transform_layer_norm)
        projection = self.token_table.T
        if projection.device.type == "cpu":
            projection = projection.contiguous()
        self.projection = projection
        self.output_bias = head.output_bias.value
        self.source = context["source"]
        self.target_positions = context["target_positions"]
        self.bias = context["bias"]

    def __call__(self, token_ids, cache, index):
        import torch

        batch = token_ids.shape[0]
        start = _host_index(index) - 1
        previous = _rows(token_ids, 1, start, 1).to(torch.int32)
        step_ids = torch.cat([previous, torch.full_like(previous, self.mask_id)], dim=1)
        positions = _repeat_to_batch(_rows(self.target_positions, 1, start, 2), batch)
        bias = _repeat_to_batch(_rows(self.bias, 2, start, 2), batch)
        x = (
            self.token_table[step_ids]
            + self.position_table[positions]
            + self.segment_table[torch.full_like(step_ids, self.target_type)]
        )
        x = self.embeddings_norm(x)
        caches = []
        for layer, layer_cache, layer_context in zip(self.layers, cache, self.source):
            x, layer_cache = layer(x, bias, layer_cache, start, layer_context)
            caches.append(layer_cache)
        hidden = x[:, 1, :]
        logits = self.transform_norm(self.transform(hidden)) @ self.projection
        return logits + self.output_bias, hidden, tuple(caches)

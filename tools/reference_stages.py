"""PyTorch reference of the stage-2/3 networks (MODEL.md §4): the temporal generator G1 and the
face networks G2 / D2, for tools/make_stage_fixtures.py. Built on tools/reference_model.py
(same functional style: tensors read from `net.params` / `net.buffers` by the engine's names,
run in float64 by the caller).

Conventions mirrored from the engine (src/model/temporal.rs, src/model/face.rs):
  * G1 is G with conditioning concat(warped, label, previous l−1 frames oldest first); its
    tensors are `temporal_gen.*`, renamed to `gen.*` here so reference_model.generator runs it.
    `widen_from_stage1` is init_from_stage1: the conditioning convs (gen.fc and every SPADE's
    mlp_shared) get the stage-1 input channels first and zeros after.
  * G2: reflect-pad 3 7×7 conv (IN, ReLU); stride-2 zero-pad-1 3×3 convs (IN, ReLU); residual
    blocks [reflect 3×3, IN, ReLU, reflect 3×3, IN, + skip]; nearest ×2 + reflect 3×3 (IN, ReLU);
    reflect-pad 3 7×7 conv with bias, tanh; refined = crop + residual.
  * D2: 4×4 pad-1 convs: layer_0 s2 (bias, LReLU), SN s2 layers (IN, LReLU), one SN s1 layer
    (IN, LReLU), last s1 → 1 (bias).
"""
import torch
import torch.nn.functional as F

import reference_model as ref


def widen_from_stage1(gen, base, full):
    """`gen` (name -> tensor of the stage-1 `gen.*`) with the conditioning convs widened from
    `base` to `full` input channels (zeros after); returns (tensors, names widened)."""
    out, widened = {}, []
    for name, t in gen.items():
        if name.endswith((".fc.weight", ".mlp_shared.weight")):
            assert t.dim() == 4 and t.shape[1] == base, (name, t.shape)
            w = torch.zeros(t.shape[0], full, *t.shape[2:], dtype=t.dtype)
            w[:, :base] = t
            out[name] = w
            widened.append(name)
        else:
            out[name] = t
    return out, widened


def temporal_generator(net, cfg, warped, label, previous, training):
    """G1's output; `net` holds G1's tensors under `gen.*`; `previous`: the l−1 frames."""
    need = cfg["temporal_window"] - 1
    assert len(previous) == need, "the fixture gives every previous frame"
    cond = torch.cat([warped, label] + list(previous), 1)
    return ref.generator(net, cfg, cond, training)


def _in_relu(x):
    return F.relu(ref.instance_norm(x))


def face_generator(net, cfg, label_crop, crop, training):
    """The refined crop of G2 (`face_gen.*`)."""
    s = "face_gen"
    x = torch.cat([label_crop, crop], 1)
    x = _in_relu(ref.conv(net, s + ".head", x, pad=3, reflect=True))
    for i in range(cfg["face_down"]):
        x = _in_relu(ref.conv(net, f"{s}.down_{i}", x, stride=2, pad=1))
    for i in range(cfg["face_blocks"]):
        b = f"{s}.block_{i}"
        y = _in_relu(ref.conv(net, b + ".conv_0", x, pad=1, reflect=True))
        y = ref.instance_norm(ref.conv(net, b + ".conv_1", y, pad=1, reflect=True))
        x = x + y
    for i in range(cfg["face_down"]):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = _in_relu(ref.conv(net, f"{s}.up_{i}", x, pad=1, reflect=True))
    return crop + torch.tanh(ref.conv(net, s + ".tail", x, pad=3, reflect=True))


def face_discriminator(net, cfg, x, training):
    """D2's patch logits of x = concat(label crop, face crop)."""
    s = "face_disc"
    n = cfg["face_d_layers"]
    y = F.leaky_relu(ref.conv(net, s + ".layer_0", x, stride=2, pad=1), ref.LRELU)
    for i in range(1, n + 1):
        stride = 2 if i < n else 1
        y = ref.conv(net, f"{s}.layer_{i}", y, stride=stride, pad=1, sn=True, training=training)
        y = F.leaky_relu(ref.instance_norm(y), ref.LRELU)
    return ref.conv(net, f"{s}.layer_{n + 1}", y, stride=1, pad=1)

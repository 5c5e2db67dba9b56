"""PyTorch reference of the stage-2/3 networks (MODEL.md §4): the temporal generator G1 and the
face networks G2 / D2, for tools/make_stage_fixtures.py; and one training iteration of each
stage (src/train_step/{temporal,face}.rs), for tools/make_train_stage_fixtures.py. Built on
tools/reference_model.py
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
  * Stage 2 (MODEL.md §5 L_ts plus the stage-1 image terms the engine trains G1 with): the frozen
    correspondence warps the exemplar to every frame (evaluation mode); G1 generates the frames
    in order, each conditioned on the l−1 frames generated before it, detached (zeros before the
    clip); D1 = the stage-1 multiscale PatchGAN over every window of l frames, input
    concat(labels, images). G loss = temporal·hinge_G(D1) + reconstruction·L1 + vgg·VGG L1 +
    perceptual_mse·MSE(relu4_2), over all frames at once; D loss = temporal·hinge_D on
    [fake windows; real windows].
  * Stage 3 (L_face): the frozen correspondence + G make the frame (evaluation mode); G2 refines
    the face crop, which is pasted back and cut out again. G loss = face_gan·hinge_G(D2(label
    crop, face)) + face_vgg·VGG L1(face, real crop); D loss = face_gan·hinge_D on [refined; real].
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


# ---- one stage-2 / stage-3 training iteration (src/train_step/{temporal,face}.rs) ------------------


def renamed(tensors, old, new):
    """`tensors` restricted to the names under `old.`, renamed to `new.` (the same tensor objects,
    so an optimiser over the originals trains what the renamed net computes with)."""
    return {new + n[len(old):]: t for n, t in tensors.items() if n.startswith(old + ".")}


def temporal_discriminator(net, cfg, x, training):
    """D1's per-scale (logits, [4 features]); `net` holds `temporal_disc.*` renamed to `disc.*`
    (D1 is the multiscale PatchGAN of stage 1 over a window's channels)."""
    return ref.discriminator(net, cfg, x, training)


def frozen_warp(frozen, cfg, labels, exemplar):
    """The exemplar warped to every label by the frozen correspondence (evaluation mode: stored
    u/v, no power iteration), one batched pass as the engine does; one tensor per frame."""
    b, n = exemplar.shape[0], len(labels)
    with torch.no_grad():
        out = ref.correspondence(frozen, cfg, torch.cat(labels, 0),
                                 torch.cat([exemplar] * n, 0), False)["warped"]
    return [out[t * b:(t + 1) * b] for t in range(n)]


def generate_frames(g1, cfg, warped, labels):
    """G1 over the frames in order (training mode: one power iteration per frame), each
    conditioned on the up to l−1 frames generated before it, detached, zeros before the clip."""
    keep = cfg["temporal_window"] - 1
    fakes = []
    for w, label in zip(warped, labels):
        prev = [f.detach() for f in fakes[max(0, len(fakes) - keep):]]
        zeros = [torch.zeros_like(w)] * (keep - len(prev))
        fakes.append(temporal_generator(g1, cfg, w, label, zeros + prev, True))
    return fakes


def temporal_windows(cfg, labels, images):
    """Every window of l consecutive frames as concat(labels, images), stacked on the batch."""
    l = cfg["temporal_window"]
    wins = [torch.cat(labels[w:w + l] + images[w:w + l], 1) for w in range(len(labels) - l + 1)]
    return torch.cat(wins, 0)


def vgg_l1(fake, real, weights):
    return sum(lw * F.l1_loss(f, r) for f, r, lw in zip(fake, real, weights))


def temporal_g_step(nets, cfg, labels, frames, exemplar):
    """The G1 step's forward: (terms, g_total, fake windows, intermediates)."""
    w = cfg["loss"]
    assert w["gan_loss"] == "hinge"
    warped = frozen_warp(nets["frozen"], cfg, labels, exemplar)
    fakes = generate_frames(nets["g1"], cfg, warped, labels)
    fake_windows = temporal_windows(cfg, labels, fakes)
    g_out = temporal_discriminator(nets["d1"], cfg, fake_windows, True)
    fake_all, gt_all = torch.cat(fakes, 0), torch.cat(frames, 0)
    vgg_fake = ref.vgg19(nets["vgg"], fake_all)
    with torch.no_grad():
        vgg_gt = ref.vgg19(nets["vgg"], gt_all)
    terms = {
        "gan_ts": ref.hinge_g([lg for lg, _ in g_out]),
        "reconstruction": F.l1_loss(fake_all, gt_all),
        "vgg": vgg_l1(vgg_fake, vgg_gt, w["vgg_layer_weights"]),
        "perceptual_mse": F.mse_loss(vgg_fake[3], vgg_gt[3]),
    }
    weight = {"gan_ts": w["temporal"], "reconstruction": w["reconstruction"], "vgg": w["vgg"],
              "perceptual_mse": w["perceptual_mse"]}
    total = sum(weight[k] * v for k, v in terms.items())
    inter = {"warped": torch.cat(warped, 0), "fakes": fakes, "g_logits": [lg for lg, _ in g_out]}
    return terms, total, fake_windows, inter


def temporal_d_step(nets, cfg, labels, frames, fake_windows):
    """The D1 step on [fake windows (detached); real windows]: (gan_ts_d, d_total, logits)."""
    real_windows = temporal_windows(cfg, labels, frames)
    k = fake_windows.shape[0]
    out = temporal_discriminator(nets["d1"], cfg, torch.cat([fake_windows.detach(),
                                                             real_windows], 0), True)
    logits = [lg for lg, _ in out]
    d = ref.hinge_d([lg[:k] for lg in logits], [lg[k:] for lg in logits])
    return d, cfg["loss"]["temporal"] * d, logits


def crop_faces(x, boxes, f):
    """Per-sample f×f crops at `boxes` [(x, y), ...]."""
    return torch.cat([x[i:i + 1, :, y:y + f, bx:bx + f] for i, (bx, y) in enumerate(boxes)], 0)


def paste_faces(x, faces, boxes, f):
    """`x` with `faces` written over the boxes (out of place, differentiable in both)."""
    rows = []
    for i, (bx, y) in enumerate(boxes):
        img = x[i:i + 1]
        band = torch.cat([img[:, :, y:y + f, :bx], faces[i:i + 1], img[:, :, y:y + f, bx + f:]], 3)
        rows.append(torch.cat([img[:, :, :y], band, img[:, :, y + f:]], 2))
    return torch.cat(rows, 0)


def frozen_fake(frozen, cfg, label, exemplar):
    """The frozen stage-1 correspondence + G in evaluation mode, without gradient."""
    with torch.no_grad():
        warped = ref.correspondence(frozen, cfg, label, exemplar, False)["warped"]
        return ref.generator(frozen, cfg, torch.cat([warped, label], 1), False)


def face_g_step(nets, cfg, label, exemplar, gt, boxes):
    """The G2 step's forward: (terms incl. the monitor-only face_l1, g_total, face, inter)."""
    w, f = cfg["loss"], cfg["face_crop"]
    assert w["gan_loss"] == "hinge"
    fake = frozen_fake(nets["frozen"], cfg, label, exemplar)
    label_crop = crop_faces(label, boxes, f)
    refined = face_generator(nets["g2"], cfg, label_crop, crop_faces(fake, boxes, f), True)
    # The losses see the crop of the pasted frame, as in the engine.
    face = crop_faces(paste_faces(fake, refined, boxes, f), boxes, f)
    real_crop = crop_faces(gt, boxes, f)
    logits = face_discriminator(nets["d2"], cfg, torch.cat([label_crop, face], 1), True)
    vgg_face = ref.vgg19(nets["vgg"], face)
    with torch.no_grad():
        vgg_real = ref.vgg19(nets["vgg"], real_crop)
    terms = {"gan_face": ref.hinge_g([logits]),
             "face_vgg": vgg_l1(vgg_face, vgg_real, w["vgg_layer_weights"])}
    total = w["face_gan"] * terms["gan_face"] + w["face_vgg"] * terms["face_vgg"]
    with torch.no_grad():
        terms["face_l1"] = F.l1_loss(face, real_crop)
    inter = {"fake": fake, "face": face, "g_logits": logits, "label_crop": label_crop,
             "real_crop": real_crop}
    return terms, total, face, inter


def face_d_step(nets, cfg, label_crop, face, real_crop):
    """The D2 step on [refined (detached); ground truth]: (gan_face_d, d_total, logits)."""
    b = face.shape[0]
    x = torch.cat([torch.cat([label_crop, face.detach()], 1), torch.cat([label_crop, real_crop], 1)],
                  0)
    logits = face_discriminator(nets["d2"], cfg, x, True)
    d = ref.hinge_d([logits[:b]], [logits[b:]])
    return d, cfg["loss"]["face_gan"] * d, logits

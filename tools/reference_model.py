"""PyTorch reference of the stage-1 networks and losses (MODEL.md §2-§5), written from MODEL.md and
the engine's conventions (parameter names, spectral-norm buffers, eps values), for the parity
fixtures of tools/make_model_fixtures.py.

Functional style: every network reads its tensors from a dict `params` (trainable, keyed by the
engine's names, e.g. `corr.pose_adaptor.layer1.weight`) and `buffers` (spectral-norm
`<conv>.weight_u` / `.weight_v`, the frozen VGG19), so the engine's exported weights load as they
are. Run in float64 (the caller converts): the engine's float32 error is then what a test measures.

Conventions mirrored from the engine (src/model, src/loss, src/nn):
  * spectral norm: a training forward runs one power iteration without gradient
    (v = n(Wᵀu), u = n(Wv), n(x) = x / sqrt(|x|² + 1e-24)), stores u and v, and uses
    W / (uᵀ W v) with gradient through W only. Every call of a module iterates again: the image
    adaptor runs twice per G step (exemplar, then ground truth), D twice per iteration.
  * instance norm without affine, biased variance, eps 1e-5; PONO: per pixel over channels,
    unbiased variance, eps 1e-5; L2 normalisations x / sqrt(Σx² + eps²) (eps 1e-8);
    corr_warp descriptors centred over channels and divided by (|x| + 1e-8).
  * nearest resizing is PyTorch's `nearest` (src = floor(dst · in / out)).
"""
import torch
import torch.nn.functional as F

LRELU = 0.2
IN_EPS = 1e-5
SPADE_EPS = 1e-5
SN_EPS = 1e-12
FEATURE_EPS = 1e-8
CX_EPS = 1e-3
CX_NORM_EPS = 1e-8
PATCH = 4
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class Net:
    """The tensors of a model and the running state of its spectral norms."""

    def __init__(self, params, buffers):
        self.params = params
        self.buffers = buffers
        # Filled by the forward passes for the fixtures: name -> tensor.
        self.record = None

    def p(self, name):
        return self.params[name]

    def has(self, name):
        return name in self.params


# ---- layers ------------------------------------------------------------------------------------


def _unit(x):
    return x / torch.sqrt((x * x).sum() + SN_EPS * SN_EPS)


def sn_weight(net, name, training):
    """W / σ(W) for the conv `name` (weight `name.weight`, buffers `name.weight_u/_v`)."""
    w = net.p(name + ".weight")
    u = net.buffers[name + ".weight_u"]
    v = net.buffers[name + ".weight_v"]
    w_mat = w.reshape(w.shape[0], -1)
    if training:
        with torch.no_grad():
            v = _unit(w_mat.t() @ u)
            u = _unit(w_mat @ v)
        net.buffers[name + ".weight_u"] = u
        net.buffers[name + ".weight_v"] = v
    sigma = u @ (w_mat @ v)
    return w / sigma


def conv(net, name, x, stride=1, pad=0, reflect=False, sn=False, training=True):
    w = sn_weight(net, name, training) if sn else net.p(name + ".weight")
    b = net.params.get(name + ".bias")
    if reflect and pad > 0:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        pad = 0
    return F.conv2d(x, w, b, stride=stride, padding=pad)


def instance_norm(x):
    return F.instance_norm(x, eps=IN_EPS)


def pono(x):
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=True)
    return (x - mean) / torch.sqrt(var + SPADE_EPS)


def resize_nearest(x, hw):
    if tuple(x.shape[2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="nearest")


def spade(net, name, x, cond, training, norm="pono"):
    cond = resize_nearest(cond, x.shape[2:])
    actv = F.relu(conv(net, name + ".mlp_shared", cond, pad=1, reflect=True))
    gamma = conv(net, name + ".mlp_gamma", actv, pad=1, reflect=True)
    beta = conv(net, name + ".mlp_beta", actv, pad=1, reflect=True)
    normed = pono(x) if norm == "pono" else F.instance_norm(x, eps=SPADE_EPS)
    return normed * (1 + gamma) + beta


def spade_block(net, name, x, cond, training):
    """SPADE residual block; the learned shortcut exists when `name.conv_s.weight` does."""
    if net.has(name + ".conv_s.weight"):
        skip = conv(net, name + ".conv_s", spade(net, name + ".norm_s", x, cond, training),
                    sn=True, training=training)
    else:
        skip = x
    dx = spade(net, name + ".norm_0", x, cond, training)
    dx = conv(net, name + ".conv_0", F.leaky_relu(dx, LRELU), pad=1, reflect=True, sn=True,
              training=training)
    dx = spade(net, name + ".norm_1", dx, cond, training)
    dx = conv(net, name + ".conv_1", F.leaky_relu(dx, LRELU), pad=1, reflect=True, sn=True,
              training=training)
    return skip + dx


def self_attention(net, name, x, training):
    """SAGAN attention: softmax(θᵀφ) over the 2×2-max-pooled positions, times gᵀ, o, x + γ·o."""
    b, c, h, w = x.shape
    n, m = h * w, h * w // 4
    theta = conv(net, name + ".theta", x, sn=True, training=training).reshape(b, c // 8, n)
    phi = F.max_pool2d(conv(net, name + ".phi", x, sn=True, training=training), 2)
    phi = phi.reshape(b, c // 8, m)
    g = F.max_pool2d(conv(net, name + ".g", x, sn=True, training=training), 2)
    g = g.reshape(b, c // 2, m)
    attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=2)  # [B, N, M]
    out = (attn @ g.transpose(1, 2)).transpose(1, 2).reshape(b, c // 2, h, w)
    o = conv(net, name + ".o", out, sn=True, training=training)
    return x + net.p(name + ".gamma") * o


# ---- correspondence (MODEL.md §2) ---------------------------------------------------------------


def adaptor(net, name, x, training):
    """Layers 1-5 (SN conv, zero pad 1, strides 1 2 1 2 1, IN, LReLU after 1-4), 3 SPADE blocks
    conditioned on the input; the kernel follows the weight's shape."""
    y = x
    for i, stride in enumerate((1, 2, 1, 2, 1)):
        y = conv(net, f"{name}.layer{i + 1}", y, stride=stride, pad=1, sn=True, training=training)
        y = instance_norm(y)
        if i < 4:
            y = F.leaky_relu(y, LRELU)
    for block in ("head_0", "G_middle_0", "G_middle_1"):
        y = spade_block(net, f"{name}.{block}", y, x, training)
    return y


def l2_normalize_channels(x):
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + FEATURE_EPS * FEATURE_EPS)


def res_stack(net, x):
    i = 0
    while net.has(f"corr.shared.block_{i}.conv_0.weight"):
        s = f"corr.shared.block_{i}"
        a = net.p(s + ".prelu.weight")
        y = conv(net, s + ".conv_0", x, pad=1, reflect=True)
        y = F.prelu(instance_norm(y), a)
        y = instance_norm(conv(net, s + ".conv_1", y, pad=1, reflect=True))
        x = F.prelu(y + x, a)
        i += 1
    return x


def corr_warp(q, k, v, scale, normalize, eps):
    """softmax_M(scale · q̂ᵀk̂) · v for q [B, C, N], k [B, C, M], v [B, M, V]; returns (out, attn)."""
    if normalize:
        def hat(x):
            x = x - x.mean(dim=1, keepdim=True)
            return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)
        q, k = hat(q), hat(k)
    attn = torch.softmax(scale * (q.transpose(1, 2) @ k), dim=2)
    return attn @ v, attn


def correspondence(net, cfg, label, exemplar, training):
    """Returns dict: pose_features, image_features, warped, attn (the softmax rows [B, N, M])."""
    s = cfg["image_size"]
    pose_f = l2_normalize_channels(adaptor(net, "corr.pose_adaptor", label, training))
    image_f = l2_normalize_channels(adaptor(net, "corr.image_adaptor", exemplar, training))
    theta = conv(net, "corr.theta", res_stack(net, pose_f))
    phi = conv(net, "corr.phi", res_stack(net, image_f))
    mk = cfg["match_kernel"]
    if mk == 1:
        q, k = theta.flatten(2), phi.flatten(2)
    else:
        q = F.unfold(theta, mk, padding=mk // 2)
        k = F.unfold(phi, mk, padding=mk // 2)
    assert cfg["warp_mode"] == "patch", "the tiny fixture covers the patch warp"
    vals = F.unfold(exemplar, PATCH, stride=PATCH).transpose(1, 2)  # [B, M, 48]
    out, attn = corr_warp(q, k, vals, 1.0 / cfg["temperature"], True, FEATURE_EPS)
    warped = F.fold(out.transpose(1, 2), (s, s), PATCH, stride=PATCH)
    return {"pose_features": pose_f, "image_features": image_f, "warped": warped, "attn": attn}


def image_features(net, image, training):
    return l2_normalize_channels(adaptor(net, "corr.image_adaptor", image, training))


# ---- generator (MODEL.md §3) ---------------------------------------------------------------------


GEN_STAGES = ("head_0", "up", "G_middle_0", "G_middle_1", "up", "up_0", "up", "up_1", "up",
              "attn", "up_2", "up", "up_3")


def generator(net, cfg, cond, training):
    start = cfg["image_size"] >> 5
    x = conv(net, "gen.fc", resize_nearest(cond, (start, start)), pad=1)
    for st in GEN_STAGES:
        if st == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        elif st == "attn":
            x = self_attention(net, "gen.attn", x, training)
        else:
            x = spade_block(net, "gen." + st, x, cond, training)
    return torch.tanh(conv(net, "gen.conv_img", F.leaky_relu(x, LRELU), pad=1))


# ---- discriminator (MODEL.md §4) -----------------------------------------------------------------


def discriminator(net, cfg, x, training):
    """Per scale: (logits, [4 features])."""
    out = []
    for i in range(cfg["num_d"]):
        if i > 0:
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        s = f"disc.scale_{i}"
        feats = []
        y = F.leaky_relu(conv(net, s + ".layer_0", x, stride=2, pad=1), LRELU)
        feats.append(y)
        y = conv(net, s + ".layer_1", y, stride=2, pad=1, sn=True, training=training)
        y = F.leaky_relu(instance_norm(y), LRELU)
        feats.append(y)
        y = conv(net, s + ".layer_2", y, stride=2, pad=1, sn=True, training=training)
        y = self_attention(net, s + ".attn", F.leaky_relu(instance_norm(y), LRELU), training)
        feats.append(y)
        y = conv(net, s + ".layer_3", y, stride=1, pad=1, sn=True, training=training)
        y = F.leaky_relu(instance_norm(y), LRELU)
        feats.append(y)
        out.append((conv(net, s + ".layer_4", y, stride=1, pad=1), feats))
    return out


# ---- VGG19 loss network ---------------------------------------------------------------------------


def vgg19(net, x):
    """relu1_2, relu2_2, relu3_2, relu4_2, relu5_2 of RGB `x` in [-1, 1] (Caffe preprocessing)."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype).reshape(1, 3, 1, 1)
    y = x[:, [2, 1, 0]] * 127.5 + (127.5 - mean)
    feats = []
    for b, (n_convs, n_run) in enumerate(zip((2, 2, 4, 4, 4), (2, 2, 4, 4, 2))):
        if b > 0:
            y = F.max_pool2d(y, 2)
        for i in range(n_run):
            name = f"vgg.conv{b + 1}_{i + 1}"
            y = F.relu(F.conv2d(y, net.buffers[name + ".weight"], net.buffers[name + ".bias"],
                                padding=1))
            if i == 1:
                feats.append(y)
    return feats


# ---- losses (MODEL.md §5) -------------------------------------------------------------------------


def contextual_loss(x, y, h):
    """−log CX(x, y) per sample, averaged over the batch; x, y [B, C, H, W]."""
    b, c = x.shape[:2]
    x = x.reshape(b, c, -1)
    y = y.reshape(b, c, -1)
    mu = y.mean(dim=1, keepdim=True)

    def norm(t):
        return t / torch.sqrt((t * t).sum(dim=1, keepdim=True) + CX_NORM_EPS * CX_NORM_EPS)

    xn, yn = norm(x - mu), norm(y - mu)
    d = 1 - xn.transpose(1, 2) @ yn  # [B, Nx, Ny]
    rel = d / (d.min(dim=2, keepdim=True).values + CX_EPS)
    w = torch.exp((1 - rel) / h)
    w = w / w.sum(dim=2, keepdim=True)
    cx = w.max(dim=2).values.mean(dim=1)
    return (-torch.log(cx)).mean()


def contextual_vgg_loss(fake, target, weights, h):
    pairs = [(fake[4], target[4]), (fake[3], target[3]),
             (F.avg_pool2d(fake[2], 2), F.avg_pool2d(target[2], 2))]
    return sum(w * contextual_loss(f, t.detach(), h) for (f, t), w in zip(pairs, weights))


def hinge_g(fake_logits):
    return sum(-l.mean() for l in fake_logits) / len(fake_logits)


def hinge_d(fake_logits, real_logits):
    real = sum(F.relu(1 - l).mean() for l in real_logits) / len(real_logits)
    fake = sum(F.relu(1 + l).mean() for l in fake_logits) / len(fake_logits)
    return real + fake


def feature_matching(fake_feats, real_feats):
    total = 0
    for f, r in zip(fake_feats, real_feats):
        for a, b in zip(f, r):
            total = total + F.l1_loss(a, b.detach())
    return total / len(fake_feats)


# ---- one stage-1 iteration (src/train_step.rs) ----------------------------------------------------


def discriminate(net, cfg, label, fake, real):
    b = label.shape[0]
    x = torch.cat([torch.cat([label, fake], 1), torch.cat([label, real], 1)], 0)
    out = discriminator(net, cfg, x, True)
    return {
        "fake_logits": [l[:b] for l, _ in out],
        "real_logits": [l[b:] for l, _ in out],
        "fake_feats": [[f[:b] for f in fs] for _, fs in out],
        "real_feats": [[f[b:] for f in fs] for _, fs in out],
        "raw": out,
    }


def generator_loss_terms(net, cfg, label, exemplar, gt):
    """The G step's forward: (terms dict name -> scalar tensor, g_total, fake, intermediates)."""
    w = cfg["loss"]
    assert w["gan_loss"] == "hinge" and w["context_target"] == "exemplar"
    corr = correspondence(net, cfg, label, exemplar, True)
    fake = generator(net, cfg, torch.cat([corr["warped"], label], 1), True)
    d = discriminate(net, cfg, label, fake, gt)
    vgg_fake = vgg19(net, fake)
    with torch.no_grad():
        vgg_gt = vgg19(net, gt)
        vgg_ex = vgg19(net, exemplar)
    gt_features = image_features(net, gt, True)
    terms = {
        "gan_g": hinge_g(d["fake_logits"]),
        "feature_matching": feature_matching(d["fake_feats"], d["real_feats"]),
        "vgg": sum(lw * F.l1_loss(f, g) for f, g, lw in
                   zip(vgg_fake, vgg_gt, w["vgg_layer_weights"])),
        "perceptual_mse": F.mse_loss(vgg_fake[3], vgg_gt[3]),
        "context": contextual_vgg_loss(vgg_fake, vgg_ex, w["context_layer_weights"],
                                       w["context_bandwidth"]),
        "domain_alignment": F.l1_loss(corr["pose_features"], gt_features),
        "reconstruction": F.l1_loss(fake, gt),
        "warp_self": F.l1_loss(corr["warped"], gt),
    }
    weight = {"gan_g": w["gan"], "feature_matching": w["feature_matching"], "vgg": w["vgg"],
              "perceptual_mse": w["perceptual_mse"], "context": w["context"],
              "domain_alignment": w["domain_alignment"], "reconstruction": w["reconstruction"],
              "warp_self": w["warp_self"]}
    total = sum(weight[k] * v for k, v in terms.items())
    inter = {"corr": corr, "fake": fake, "d": d, "gt_features": gt_features}
    return terms, total, fake, inter


def discriminator_loss(net, cfg, label, fake, gt):
    d = discriminate(net, cfg, label, fake.detach(), gt)
    d_loss = hinge_d(d["fake_logits"], d["real_logits"])
    return d_loss, cfg["loss"]["gan"] * d_loss

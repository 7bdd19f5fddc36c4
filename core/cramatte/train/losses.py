"""Matting losses (paper recipe): coarse BCE + trimap focal per scale; Charbonnier, Laplacian and
composition losses at full resolution, weighted towards unknown pixels."""
import torch
import torch.nn.functional as F


TERMS = tuple(f"{t}_{s}" for s in ("s16", "s8", "s4") for t in ("bce", "focal")) + ("l1", "lap", "comp")


def focal(logits, target, gamma: float = 2.0, weight=None):
    logp = F.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
    return _mean(-(1 - logp.exp()) ** gamma * logp, weight)


def _mean(x, weight=None):
    return x.mean() if weight is None else (x * weight).sum() / weight.expand_as(x).sum()


def far_weight(a, weight: float):
    """1 near the subject, 1 + `weight` where the coarse alpha target is empty for a sixteenth of the
    map's long side around (people behind the subject, clutter): [N, 1, h, w]."""
    r = max(1, round(max(a.shape[-2:]) / 16))
    near = F.max_pool2d((a > 0.01).float(), 2 * r + 1, stride=1, padding=r)
    return 1 + weight * (1 - near)


def coarse_targets(alpha, trimap, size):
    """Alpha (area-averaged) and trimap (unknown wins, else majority) at a coarse size."""
    a = F.adaptive_avg_pool2d(alpha, size)
    unknown = F.adaptive_max_pool2d((trimap == 1).float()[:, None], size)[:, 0] > 0
    t = torch.where(unknown, 1, torch.where(a[:, 0] > 0.5, 2, 0))
    return a, t


def charbonnier(x, weight, eps: float = 1e-6):
    return (torch.sqrt(x * x + eps) * weight).sum() / weight.sum()


def laplacian_pyramid(x, levels: int = 5):
    out = []
    for _ in range(levels - 1):
        down = F.avg_pool2d(x, 2, ceil_mode=True)
        out.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    return out + [x]


def matting_loss(out: dict, batch: dict, coarse_only: bool = False, far: float = 0.0) -> dict:
    """Loss terms from the model's aux output and a batch of `cramatte.train.data.Batches`; `far`
    weights the coarse terms away from the subject (`far_weight`)."""
    alpha, trimap = batch["alpha"], batch["trimap"]
    terms = {}
    for name, logits in zip(("s16", "s8", "s4"), out["logits"]):
        logits = logits.float()
        a, t = coarse_targets(alpha, trimap, logits.shape[-2:])
        w = far_weight(a, far) if far else None
        terms[f"bce_{name}"] = _mean(F.binary_cross_entropy_with_logits(logits[:, :1], a, reduction="none"), w)
        terms[f"focal_{name}"] = focal(logits[:, 1:], t, weight=None if w is None else w[:, 0])
    if coarse_only:
        return terms
    pred = out["alpha"].float()
    weight = 1 + 4 * (trimap == 1).float()[:, None]
    terms["l1"] = charbonnier(pred - alpha, weight)
    terms["lap"] = sum(F.l1_loss(p, g) for p, g in zip(laplacian_pyramid(pred), laplacian_pyramid(alpha)))
    comp = pred * batch["fg"] + (1 - pred) * batch["bg"] - batch["image"]
    mask = batch["composite"][:, None, None, None] * weight
    if mask.sum() > 0:
        terms["comp"] = charbonnier(comp, mask.expand_as(comp))
    return terms

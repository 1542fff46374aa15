"""Strong training augmentation for real-world dermoscopy: the basic flips/rotations, then random
scale (down to small lesions), crops and aspect changes, pasted calibration discs, dense hair, dark
circular field-of-view borders, and strong colour/exposure jitter, on a whole (B,3,H,W) batch.

Only the artefact kinds in :data:`seglib.robustness.artefacts.TRAINED_KINDS` have a counterpart here; the
others (ruler marks, ink lines, vignetting, blur, JPEG) are never seen in training, so the
robustness suite (:mod:`seglib.robustness.suite`) measures generalisation on them honestly.

Hand-written on tensors rather than torchvision.transforms.v2 because every draw must come from
the run's CPU ``torch.Generator`` (reproducible, resumable) and be batched: torchvision's random
transforms draw from the global RNG one sample at a time. The geometry uses torch's own
``affine_grid``/``grid_sample`` for image and mask together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seglib.augment.basic import augment

SKIN = (0.80, 0.62, 0.52)  # fallback skin colour in [0,1] when an image has no background
# augment name: blotch amplitude (the strong augmentations; "basic" is seglib.augment.basic)
PATCHES = {"strong": 0.0, "mixed": 0.0, "mixed_patchy": 0.3, "mixed_patchy_mild": 0.15}
DISC_COLOURS = (
    (0.97, 0.85, 0.15),  # yellow
    (0.98, 0.55, 0.12),  # orange
    (0.85, 0.18, 0.18),  # red
    (0.25, 0.65, 0.30),  # green
    (0.20, 0.40, 0.85),  # blue
    (0.95, 0.95, 0.93),  # white
    (0.55, 0.55, 0.58),  # grey
)


def _u(gen: torch.Generator, *shape, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1] (align_corners=False convention), shapes (H,1), (1,W)."""
    yy = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    xx = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
    return yy.view(h, 1), xx.view(1, w)


def _smooth(gen: torch.Generator, b: int, c: int, h: int, w: int, cells: int = 4) -> torch.Tensor:
    """Low-frequency noise (B,C,H,W) in about [-1,1]: a coarse random grid upsampled bicubically."""
    coarse = torch.rand(b, c, cells + 1, cells + 1, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)


def background_colour(img: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean colour (B,3,1,1) of the skin next to the lesion (non-lesion pixels within
    1/8 of the frame side of it), else of the non-lesion pixels of the central half of the frame
    (away from dark vignetted corners), else :data:`SKIN`."""
    h, w = img.shape[-2:]
    k = 2 * (min(h, w) // 8) + 1
    bg = (y < 0.5).to(img.dtype)
    near = F.max_pool2d(y.to(img.dtype), k, stride=1, padding=k // 2) * bg
    centre = torch.zeros_like(bg)
    centre[..., h // 4 : h - h // 4, w // 4 : w - w // 4] = 1
    skin = torch.tensor(SKIN, dtype=img.dtype).view(1, 3, 1, 1).expand(img.shape[0], 3, 1, 1)
    out = skin
    for weight in (bg * centre, near):  # later choices win where they have pixels
        n = weight.sum(dim=(2, 3), keepdim=True)
        mean = (img * weight).sum(dim=(2, 3), keepdim=True) / n.clamp_min(1)
        out = torch.where(n > 0, mean, out)
    return out


def affine(
    img: torch.Tensor,
    y: torch.Tensor,
    scale_x: torch.Tensor,
    scale_y: torch.Tensor,
    shift: torch.Tensor,
    fill: torch.Tensor,
    feather: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each (image, mask) pair about the frame centre, then shift, with one sampling grid.

    Args:
        img: (B,3,H,W) in [0,1]. y: (B,1,H,W) 0/1. scale_x, scale_y: (B,) content scale factors
            (< 1 zooms out). shift: (B,2) output-space (x, y) shift of the content, in units of
            half the frame. fill: (B,3,H,W) or (B,3,1,1) colour where the output sees outside
            the input. feather: along an axis the content shrinks on, blend into ``fill`` over
            this fraction of the input's half-side (smoothstep), so no pasted edge shows.
    Returns:
        (img, y): bilinear image blended with ``fill``; mask bilinear, then 1 where > 0.5 and
        the content outweighs the fill.
    """
    b = img.shape[0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / scale_x, 1 / scale_y
    theta[:, 0, 2], theta[:, 1, 2] = -shift[:, 0] / scale_x, -shift[:, 1] / scale_y
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    ones = torch.ones_like(y)
    out = F.grid_sample(torch.cat([img, y, ones], 1), grid, align_corners=False)
    alpha = out[:, 4:5]
    for axis, sc in ((0, scale_x), (1, scale_y)):
        f = torch.where(sc < 1, torch.tensor(max(feather, 1e-6)), torch.tensor(1e-6))
        t = ((1 - grid[..., axis].abs()) / f.view(b, 1, 1)).clamp(0, 1)
        alpha = alpha * (t * t * (3 - 2 * t))[:, None]
    img = out[:, :3] * alpha + fill * (1 - alpha)
    return img, ((out[:, 3:4] > 0.5) & (alpha >= 0.5)).to(y.dtype)


@dataclass(frozen=True)
class GeometryParams:
    """The draws of :func:`random_geometry`: zoom, aspect and the fill of uncovered pixels.

    p_small: probability of the small-lesion zoom. small: the lesion's frame fraction then
    (log-uniform). scale: the content scale otherwise (log-uniform). aspect: the most x/y scale
    ratio. noise: the fill's low-frequency variation. feather: the blend into the fill
    (:func:`affine`). patches: the fill's blotch amplitude (0: none).
    """

    p_small: float = 0.3
    small: tuple[float, float] = (0.005, 0.04)
    scale: tuple[float, float] = (0.6, 1.3)
    aspect: float = 2.0
    noise: float = 0.04
    feather: float = 0.5
    patches: float = 0.0


def random_geometry(
    img: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    geometry: GeometryParams = GeometryParams(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random zoom, aspect change and position, the same for image and mask (``geometry``'s
    fields in backticks below).

    With probability ``p_small`` the content shrinks so the lesion covers a log-uniform fraction
    in ``small`` of the frame (the small lesions PH2 lacks; only lesions that do not touch the
    frame, as a cut lesion would become a small box); otherwise the scale is log-uniform in
    ``scale``. The x/y scale ratio is log-uniform in [1/aspect, aspect] (3:2, 1:1 or rotated
    images resized to a square); the shift keeps the frame covered when zooming in and the whole
    content in the frame when zooming out. Uncovered pixels get the image's skin colour with
    low-frequency variation of amplitude ``noise``, blended over ``feather`` (see :func:`affine`);
    with ``patches`` > 0 its brightness also varies in blotches (a grey gain ``1 + a * field``,
    ``a`` uniform in [0, ``patches``] per image, the field's cells 1/8, 1/16 or 1/32 of the frame),
    as on freckled or unevenly lit skin around a small lesion.
    """
    g = geometry
    small, scale = g.small, g.scale
    b, _, h, w = img.shape
    frac = y.float().mean(dim=(1, 2, 3)).clamp_min(1e-4)
    r = torch.rand(b, 5, generator=gen)
    log_target = math.log(small[0]) + r[:, 1] * math.log(small[1] / small[0])
    s_small = (log_target.exp() / frac).sqrt().clamp(0.15, 1.0)
    s_any = (math.log(scale[0]) + r[:, 2] * math.log(scale[1] / scale[0])).exp()
    edge = torch.cat([y[..., 0, :], y[..., -1, :], y[..., :, 0], y[..., :, -1]], -1)
    whole = edge.flatten(1).amax(1) < 0.5  # a lesion cut by the frame would shrink to a box
    s = torch.where((r[:, 0] < g.p_small) & (frac > small[1]) & whole, s_small, s_any)
    a = ((2 * r[:, 3] - 1) * math.log(g.aspect)).exp().sqrt()
    sx, sy = s * a, s / a
    room = torch.stack([(1 - sx).abs(), (1 - sy).abs()], 1)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * room
    fill = background_colour(img, y) + g.noise * _smooth(gen, b, 3, h, w)
    if g.patches > 0:
        cells = (8, 16, 32)[int(torch.randint(3, (), generator=gen))]
        gain = _u(gen, b, 1, 1, 1, hi=g.patches) * _smooth(gen, b, 1, h, w, cells=cells)
        fill = fill * (1 + gain)
    return affine(img, y, sx, sy, shift, fill, g.feather)


def paste_discs(
    img: torch.Tensor, y: torch.Tensor, gen: torch.Generator, p: float = 0.3, max_discs: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured coloured calibration discs/stickers, each partly in the field at a frame edge.

    Each image gets one or ``max_discs`` discs with probability ``p``; a disc's radius is 8-25%
    of the frame side, its colour one of :data:`DISC_COLOURS` with concentric print rings,
    grain and a darker rim. The mask is 0 under a disc (the lesion there is hidden)."""
    b, _, h, w = img.shape
    yy, xx = _grid(h, w)
    palette = torch.tensor(DISC_COLOURS)
    for i in range(max_discs):
        r = torch.rand(b, 8, generator=gen)
        active = (r[:, 0] < p) & ((i == 0) | (r[:, 1] < 0.5))
        radius = 2 * (0.08 + 0.17 * r[:, 2])  # in [-1,1] units (2 = frame side)
        along = 2 * r[:, 3] - 1
        out = 1 + radius * (0.6 * r[:, 4] - 0.3)  # centre 30% inside to 30% outside the edge
        side = (r[:, 5] * 4).long()
        cx = torch.where(side == 0, -out, torch.where(side == 1, out, along))
        cy = torch.where(side == 2, -out, torch.where(side == 3, out, along))
        d = torch.hypot(yy - cy.view(b, 1, 1, 1), xx - cx.view(b, 1, 1, 1))
        rad = radius.view(b, 1, 1, 1)
        px = 2 / min(h, w)
        alpha = ((rad - d) / px).clamp(0, 1) * active.view(b, 1, 1, 1)
        colour = palette[(r[:, 6] * len(palette)).long().clamp_max(len(palette) - 1)]
        rings = 0.5 + 0.5 * torch.cos(d / rad * (6 + 10 * r[:, 7]).view(b, 1, 1, 1) * math.pi)
        shade = 1 - 0.12 * rings - 0.25 * ((d / rad - 0.85) / 0.15).clamp(0, 1)
        grain = 1 + 0.06 * (torch.rand(b, 1, h, w, generator=gen) * 2 - 1)
        disc = (colour.view(b, 3, 1, 1) * shade * grain).clamp(0, 1)
        img = img * (1 - alpha) + disc * alpha
        y = y * (alpha < 0.5).to(y.dtype)
    return img, y


def draw_hair(
    img: torch.Tensor, gen: torch.Generator, p: float = 0.2, strands: tuple[int, int] = (10, 60)
) -> torch.Tensor:
    """Dense dark hair: with probability ``p`` an image gets ``strands`` quadratic Bezier curves,
    1-2 px wide, dark brown to black. Hair over a lesion stays lesion (the mask is unchanged)."""
    b, _, h, w = img.shape
    k = strands[1]
    active = torch.rand(b, generator=gen) < p
    count = torch.randint(strands[0], strands[1] + 1, (b,), generator=gen)
    keep = active.view(b, 1) & (torch.arange(k).view(1, k) < count.view(b, 1))  # (B,K)
    ends = torch.rand(b, k, 2, 2, generator=gen) * 1.4 - 0.2  # (B,K,end,yx) in frame units
    mid = torch.rand(b, k, 2, generator=gen)
    t = torch.linspace(0, 1, 2 * (h + w)).view(1, 1, -1, 1)
    pts = (
        (1 - t) ** 2 * ends[:, :, None, 0]
        + 2 * (1 - t) * t * mid[:, :, None]
        + t**2 * ends[:, :, None, 1]
    )
    wide = torch.rand(b, k, generator=gen) < 0.5
    hair = torch.zeros(b, h, w, dtype=torch.bool)
    for oy, ox in ((0, 0), (0, 1), (1, 0), (1, 1)):
        iy = (pts[..., 0] * h).long() + oy
        ix = (pts[..., 1] * w).long() + ox
        use = keep[..., None] & ((oy + ox == 0) | wide[..., None])
        use = use & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        bi = torch.arange(b).view(b, 1, 1).expand_as(iy)
        hair[bi[use], iy[use], ix[use]] = True
    tone = 0.05 + 0.2 * torch.rand(b, 1, 1, 1, generator=gen)
    colour = tone * torch.tensor([1.0, 0.8, 0.65]).view(1, 3, 1, 1)
    return torch.where(hair[:, None], colour, img)


def fov_border(
    img: torch.Tensor, y: torch.Tensor, gen: torch.Generator, p: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark circular field-of-view border: with probability ``p`` everything outside a circle
    (radius 0.6-1.2 half-sides, centre jittered, soft edge) turns almost black; the mask is 0
    where the border hides the skin."""
    b, _, h, w = img.shape
    yy, xx = _grid(h, w)
    r = torch.rand(b, 6, generator=gen)
    active = (r[:, 0] < p).view(b, 1, 1, 1)
    radius = (0.6 + 0.6 * r[:, 1]).view(b, 1, 1, 1)
    cy, cx = (0.2 * r[:, 2] - 0.1).view(b, 1, 1, 1), (0.2 * r[:, 3] - 0.1).view(b, 1, 1, 1)
    soft = (0.02 + 0.08 * r[:, 4]).view(b, 1, 1, 1)
    dark = ((torch.hypot(yy - cy, xx - cx) - radius) / soft).clamp(0, 1) * active
    black = (0.01 + 0.07 * r[:, 5]).view(b, 1, 1, 1)
    return img * (1 - dark) + black * dark, y * (dark < 0.5).to(y.dtype)


def colour_jitter(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """White balance (per-channel gain x0.75-1.33), exposure (x0.5-1.7), gamma (0.75-1.35),
    contrast (x0.7-1.3) and saturation (x0.6-1.4), each log-uniform per image; clamped to [0,1].
    The ranges cover the suite's colour_cast (0.75-1.25) and exposure (0.5-0.75, 1.3-1.6)."""
    b = img.shape[0]
    r = torch.rand(b, 7, generator=gen) * 2 - 1

    def lu(col, lo, hi):  # log-uniform in [lo, hi] from r in [-1, 1]
        mid, half = (math.log(lo) + math.log(hi)) / 2, (math.log(hi) - math.log(lo)) / 2
        return (mid + half * r[:, col]).exp().view(b, -1, 1, 1)

    gains = torch.cat([lu(0, 0.75, 1.33), lu(1, 0.75, 1.33), lu(2, 0.75, 1.33)], 1)
    x = (img * gains * lu(3, 0.5, 1.7)).clamp(0, 1) ** lu(4, 0.75, 1.35)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * lu(5, 0.7, 1.3) + mean
    grey = x.mean(dim=1, keepdim=True)
    return ((x - grey) * lu(6, 0.6, 1.4) + grey).clamp(0, 1)


def augment_strong(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, norm: torch.Tensor, patches: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The strong training augmentation of a normalised batch (``RunConfig.augment="strong"``).

    Args:
        x: images (B,3,H,W) float, normalised with ``norm``. y: masks (B,1,H,W) float 0/1.
        gen: CPU generator for every random draw. norm: (2,1,3,1,1) mean and std in [0,1] units.
        patches: blotchy brightness of the skin around zoomed-out photos (:func:`random_geometry`).
    Returns:
        the augmented (x, y), same shapes, dtypes and device; masks stay 0/1.
    """
    device, dtype = x.device, x.dtype
    x, y = augment(x, y, gen, jitter=0.0)  # the 8 flips/rotations of the basic augmentation
    mean, std = norm[0].cpu().float(), norm[1].cpu().float()
    img = (x.detach().cpu().float() * std + mean).clamp(0, 1)
    m = y.detach().cpu().float()
    img, m = random_geometry(img, m, gen, geometry=GeometryParams(patches=patches))
    img, m = paste_discs(img, m, gen)
    img = draw_hair(img, gen)
    img, m = fov_border(img, m, gen)
    img = colour_jitter(img, gen)
    x = ((img - mean) / std).to(device=device, dtype=dtype)
    return x, m.to(device=device, dtype=y.dtype)

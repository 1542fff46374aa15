"""The basic augmentation: image and mask get the same map, and every one of the square's 8
flips/rotations occurs."""

import torch

from seglib.augment.basic import augment


def _maps_of(mask: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rot90/flip images of a (H, W) square, written out with torch.rot90 and flip."""
    turns = [torch.rot90(mask, k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def test_every_dihedral_map_occurs_and_image_follows_mask():
    mask = torch.zeros(4, 4)
    mask[0, :3] = 1
    mask[1, 0] = 1  # no symmetry: its 8 maps are distinct
    maps = _maps_of(mask)
    assert len({tuple(m.flatten().tolist()) for m in maps}) == 8
    n = 256
    y = mask.expand(n, 1, 4, 4).clone()
    x = y.expand(n, 3, 4, 4).clone()  # the image carries the mask's pattern in every channel
    ax, ay = augment(x, y, torch.Generator().manual_seed(0), jitter=0.0)
    seen = set()
    for i in range(n):
        (k,) = [k for k, m in enumerate(maps) if torch.equal(ay[i, 0], m)]
        seen.add(k)
        assert torch.allclose(ax[i], ay[i].expand(3, 4, 4))  # the image got the same map
    assert seen == set(range(8))

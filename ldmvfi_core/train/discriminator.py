# SPDX-License-Identifier: MIT
"""PatchGAN discriminator of the stage-1 adversarial loss (Isola et al. 2017, as in taming/VQGAN).

``n_layers`` stride-2 4x4 convolutions (the first without normalisation), one stride-1 4x4 conv,
then a 4x4 conv to one logit per patch; BatchNorm and LeakyReLU(0.2) in between; widths
``ndf * min(2**i, 8)``. With 3 layers and 256x256 inputs the output is 30x30 logits, each seeing
a 70x70 patch. Weights start from N(0, 0.02) (convs) and N(1, 0.02) (BatchNorm scales).
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            out = ndf * min(2**i, 8)
            layers += [
                nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> patch logits (B, 1, h, w)."""
        return self.main(x)


class RealFakePair(nn.Module):
    """Runs the discriminator on the real and on the fake batch in one ``forward``.

    The two calls stay separate (BatchNorm sees each batch on its own, as in taming), but one
    ``forward`` means one DistributedDataParallel forward per backward.
    """

    def __init__(self, disc: PatchDiscriminator) -> None:
        super().__init__()
        self.disc = disc

    def forward(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.disc(real), self.disc(fake)

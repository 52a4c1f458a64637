# SPDX-License-Identifier: MIT
"""Custom ops: the deformable separable convolution (warp) used by the LDMVFI decoder."""

from ldmvfi_core.ops.dsepconv import dsepconv, dsepconv_blend

__all__ = ["dsepconv", "dsepconv_blend"]

"""Layouts: how a quantized tensor's codes are packed (names match the seed's)."""
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Layout:
    """Base class; `name` is the C++ layout name.

    Example:
        >>> PlainLayout().name
        'PlainLayout'
    """

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.name}()"


@dataclass(frozen=True, repr=False)
class PlainLayout(Layout):
    """One code per element in its own integer dtype.

    Example:
        >>> PlainLayout()
        PlainLayout()
    """


@dataclass(frozen=True, repr=False)
class TensorCoreTiledLayout(Layout):
    """tinygemm's int4 layout; on CPU this project stores two 4-bit codes per byte.

    Example:
        >>> TensorCoreTiledLayout(inner_k_tiles=8).inner_k_tiles
        8
    """

    inner_k_tiles: int = 8

    def __post_init__(self):
        if self.inner_k_tiles not in (2, 4, 8):
            raise ValueError(f"TensorCoreTiledLayout.inner_k_tiles must be 2, 4 or 8, got {self.inner_k_tiles}")


@dataclass(frozen=True, repr=False)
class Int4CPULayout(Layout):
    """int4 weight-only on CPU: two 4-bit codes per byte.

    Example:
        >>> Int4CPULayout().name
        'Int4CPULayout'
    """


@dataclass(frozen=True, repr=False)
class UintxLayout(Layout):
    """N-bit codes bit-packed along rows.

    Example:
        >>> from torchao_cpp.dtypes import uint3
        >>> UintxLayout(uint3).pack_dim
        -1
    """

    dtype: Any = None
    pack_dim: int = -1

    def __post_init__(self):
        if self.pack_dim != -1:
            raise NotImplementedError(f"UintxLayout.pack_dim={self.pack_dim}: only -1 (the last dim) is supported")


@dataclass(frozen=True, repr=False)
class QDQLayout(Layout):
    """One int8 code per element, dequantized on use.

    Example:
        >>> QDQLayout().name
        'QDQLayout'
    """


@dataclass(frozen=True, repr=False)
class Float8Layout(Layout):
    """Raw float8 bytes.

    Example:
        >>> Float8Layout().mm_config is None
        True
    """

    mm_config: Optional[Any] = None


@dataclass(frozen=True, repr=False)
class PackedLinearInt8DynamicActivationIntxWeightLayout(Layout):
    """Bit-packed int1..int8 codes for int8 dynamic activations; every `target` runs this project's CPU kernel.

    Example:
        >>> PackedLinearInt8DynamicActivationIntxWeightLayout(target="aten").target
        'aten'
    """

    target: str = "auto"

    def __post_init__(self):
        if self.target not in ("auto", "universal", "kleidiai", "aten"):
            raise ValueError(
                "PackedLinearInt8DynamicActivationIntxWeightLayout.target must be one of auto, universal, kleidiai, "
                f"aten, got {self.target!r}")


@dataclass(frozen=True, repr=False)
class CutlassInt4PackedLayout(Layout):
    """Signed int4 codes, two per byte (Int4DynamicActivationInt4WeightConfig's layout).

    The seed names it after its CUTLASS kernel; here the CPU kernel unpacks
    the codes once into the VNNI GEMM's tiles.

    Example:
        >>> CutlassInt4PackedLayout()
        CutlassInt4PackedLayout()
    """


@dataclass(frozen=True, repr=False)
class FloatxTensorCoreLayout(Layout):
    """Float-x codes (1 sign, `ebits` exponent, `mbits` mantissa bits) bit-packed along rows, N = 1 + ebits +
    mbits bits per weight (FPXWeightOnlyConfig's layout; the seed's name, after its CUDA kernel).

    Example:
        >>> FloatxTensorCoreLayout(3, 2)
        FloatxTensorCoreLayout(ebits=3, mbits=2)
    """

    ebits: int = 3
    mbits: int = 2

    def __post_init__(self):
        for f in ("ebits", "mbits"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"FloatxTensorCoreLayout.{f} must be int, got {type(v).__name__}")
        if self.ebits < 1 or self.mbits < 0 or 1 + self.ebits + self.mbits > 8:
            raise ValueError("FloatxTensorCoreLayout: ebits >= 1, mbits >= 0 and 1 + ebits + mbits <= 8, got "
                             f"ebits={self.ebits}, mbits={self.mbits}")

    def __repr__(self) -> str:
        return f"{self.name}(ebits={self.ebits}, mbits={self.mbits})"


@dataclass(frozen=True, repr=False)
class Int4XPULayout(Layout):
    """Int4WeightOnlyConfig's layout for Intel GPUs: the same codes and FLOAT-domain
    zero points as TensorCoreTiledLayout; here they run this project's int4 kernel
    on CPU and CUDA (there are no XPU kernels).

    Example:
        >>> Int4XPULayout()
        Int4XPULayout()
    """


@dataclass(frozen=True, repr=False)
class SemiSparseLayout(Layout):
    """The seed's 2:4 semi-structured sparse layout for Int8DynamicActivationInt8WeightConfig.

    quantize_ prunes each group of 4 weights along a row to its 2 largest magnitudes (the
    seed's pre_process, `torch.ops.torchao_cpp.prune_2to4`), quantizes as PlainLayout does,
    and stores each row compressed: the kept int8 codes plus 2-bit column indices, 5 bits per
    weight. The CPU GEMM multiplies only the kept codes; on CUDA they run on the sparse tensor
    cores through cuSPARSELt (dense int8 codes, expanded once, where the build has no cuSPARSELt
    or it refuses the shape). Layers whose in_features is not a multiple of 4 are skipped and
    logged.

    Example:
        >>> import torch
        >>> from torchao_cpp.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 32))
        >>> quantize_(m, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))
        >>> w = m[0].weight.dequantize()
        >>> int((w.view(32, 16, 4) != 0).sum(-1).max())
        2
    """


@dataclass(frozen=True, repr=False)
class MarlinSparseLayout(Layout):
    """The seed's 2:4 sparse int4 layout (Int4WeightOnlyConfig(layout=MarlinSparseLayout())).

    As the seed: each group of 4 weights along a row pruned to its 2 largest magnitudes,
    symmetric 4-bit codes in [0, 15] around an INT zero point of 8, group size 128 or
    per channel. Rows are stored compressed with 4-bit kept codes plus 2-bit column
    indices (3 bits per weight). The CPU kernel multiplies only the kept codes for up to
    8 activation rows; on CUDA they run on the sparse tensor cores (this project's mma.sp
    kernel, op sparse24_int4_linear) where in_features and the group are multiples of 128,
    else expanded once to int8 for the int8 weight-only kernel.

    Example:
        >>> import torch
        >>> from torchao_cpp.quantization import Int4WeightOnlyConfig, quantize_
        >>> m = torch.nn.Sequential(torch.nn.Linear(256, 8))
        >>> quantize_(m, Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()))
        >>> m[0].weight.impl.packed_data().shape  # 4 chunks of 64 columns: 16 code bytes + 8 index bytes
        torch.Size([8, 96])
    """


@dataclass(frozen=True, repr=False)
class GemlitePackedLayout(Layout):
    """The layout of GemliteUIntXWeightOnlyConfig's weights (the seed's gemlite Triton format).

    Here the codes are bit-packed along rows (4 or 8 bits per weight, as UintxLayout) and run
    this project's weight-only kernels on CPU and CUDA; `packing_bitwidth` and `contiguous`
    (how gemlite packs codes into 8/16/32-bit words) are accepted and have no effect.

    Example:
        >>> GemlitePackedLayout(group_size=128, bit_width=4).name
        'GemlitePackedLayout'
    """

    group_size: Optional[int] = 64
    bit_width: int = 4
    packing_bitwidth: Optional[int] = None
    contiguous: Optional[bool] = None

    def __post_init__(self):
        if self.bit_width not in (4, 8):
            raise ValueError(f"GemlitePackedLayout.bit_width must be 4 or 8, got {self.bit_width}")


@dataclass(frozen=True, repr=False)
class MarlinQQQLayout(Layout):
    """The seed's QQQ layout: int8 activations x int4 weights with two-level scales, for
    Int8DynamicActivationInt4WeightConfig.

    Weights are quantized as the seed's `choose_qparams_and_quantize_affine_qqq`: per group of 128,
    symmetric codes q in [0, 15] (scale max|w| * 2 / 15), then a per-channel int8 scale of the
    dequantized weight and float16 group scales divided by it; per channel, codes in [-7, 7] and one
    scale per row. Here the codes are stored signed (q - 8 for groups) two per byte, with the scale
    `dequantize_affine_qqq` multiplies them by (the float16 product of both scales for groups), so
    `dequantize()` is the seed's for float16 weights. They run this project's int8 x int4 kernels:
    on the CPU the VNNI int8 GEMM; on CUDA, per channel, the int8 tensor cores, and per group the
    activations quantized and dequantized on the device, then the int4 weight-only kernel (no Marlin
    kernel). As the seed, group sizes other than 128 or in_features and shapes the Marlin kernel's
    tiles do not divide raise ValueError.

    Example:
        >>> MarlinQQQLayout().name
        'MarlinQQQLayout'
    """


@dataclass(frozen=True, repr=False)
class CutlassSemiSparseLayout(Layout):
    """The seed's 2:4 sparse float8 layout (Float8DynamicActivationFloat8SemiSparseWeightConfig).

    Float8 codes with one scale per row; each row is stored compressed as SemiSparseLayout's
    (the kept codes plus 2-bit column indices, 5 bits per weight). The CPU kernel multiplies
    only the kept codes; on CUDA they run on the sparse tensor cores (this project's mma.sp
    kernel, op sparse24_float8_linear; compute capability 8.9 and newer, else and above 16
    activation rows the codes are expanded per call for the dense float8 GEMM).

    Example:
        >>> CutlassSemiSparseLayout().name
        'CutlassSemiSparseLayout'
    """

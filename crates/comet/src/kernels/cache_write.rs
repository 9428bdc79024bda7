//! The KV cache's append on flex: positions written into the preallocated buffer in place
//! (flex's own `slice_assign` copies the whole buffer first, so every decoding step copied
//! the whole cache).

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use comet_kernels::f16;

use super::flex::{float, strided};
use super::generic_write_positions;

/// Writes `values` (`f32`) into positions `start..` of `buffer` (`[batch, heads, capacity,
/// dim]`, `f32` or `f16`), in place when the buffer is contiguous and held by no one else
/// (flex's own `slice_assign` always copies the whole buffer first).
pub(super) fn write_in_place(buffer: FlexTensor, start: usize, values: &FlexTensor) -> FlexTensor {
    match buffer.dtype() {
        DType::F16 => write_in_place_as(buffer, start, values, f16::from_f32),
        _ => write_in_place_as(buffer, start, values, |x| x),
    }
}

/// [`write_in_place`] for a buffer of `E`, converting each value by `convert`.
fn write_in_place_as<E: burn::tensor::Element + bytemuck::Pod>(
    mut buffer: FlexTensor,
    start: usize,
    values: &FlexTensor,
    convert: impl Fn(f32) -> E,
) -> FlexTensor {
    let shape = buffer.layout().shape().clone();
    let (cap, dim) = (shape[2], shape[3]);
    let whole = buffer.is_contiguous() && buffer.layout().start_offset() == 0;
    let (Some(src), true) = (strided::<f32>(values), whole) else {
        return copy_write(buffer, start, values);
    };
    let [batch, heads, new, _] = src.shape;
    let Some(dst) = buffer.try_storage_mut::<E>() else {
        return copy_write(buffer, start, values);
    };
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..new {
                let to = ((b * heads + h) * cap + start + i) * dim;
                let from =
                    src.offset + b * src.strides[0] + h * src.strides[1] + i * src.strides[2];
                for d in 0..dim {
                    dst[to + d] = convert(src.data[from + d * src.strides[3]]);
                }
            }
        }
    }
    buffer
}

/// Flex's `slice_assign` (a copy of the buffer), for layouts the in-place write does not take.
fn copy_write(buffer: FlexTensor, start: usize, values: &FlexTensor) -> FlexTensor {
    float(generic_write_positions::<Flex>(
        Tensor::from_primitive(TensorPrimitive::Float(buffer)),
        start,
        Tensor::from_primitive(TensorPrimitive::Float(values.clone())),
    ))
}

//! The flex backend's fast kernels: tensors are handed to `comet-kernels` as strided
//! slices, without copies.

use std::any::TypeId;

use burn::backend::Flex;
use burn::nn::RmsNorm;
use burn::optim::AdamWState;
use burn::prelude::*;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use comet_kernels::{f16, Mask, Matrix, Strided};

use super::cache_write::write_in_place;
use super::{
    generic_attention, generic_write_positions, known_same, loss, optim, same_type, AdamWSettings,
    Kernels, LinearParams,
};
use crate::model::{AttentionMask, RopeTables};

/// Whether `B` is the flex backend.
pub fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Flex>()
}

/// Fast CPU kernels; used only where `B` is [`Flex`].
pub struct FlexKernels;

impl<B: Backend> Kernels<B> for FlexKernels {
    fn attention(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 4> {
        let kv_dtype = k.dtype();
        if q.dtype() != DType::F32
            || v.dtype() != kv_dtype
            || !matches!(kv_dtype, DType::F32 | DType::F16)
        {
            return generic_attention(q, k, v, mask);
        }
        match same_type::<_, [Tensor<Flex, 4>; 3]>([q, k, v]) {
            Ok([q, k, v]) => {
                let mask = same_type::<_, AttentionMask<Flex>>(mask.clone()).ok();
                let out = flex_attention(q, k, v, mask.as_ref().expect("same backend"));
                known_same(out)
            }
            Err([q, k, v]) => generic_attention(q, k, v, mask),
        }
    }

    fn write_positions(
        &self,
        buffer: Tensor<B, 4>,
        start: usize,
        values: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        if !matches!(buffer.dtype(), DType::F32 | DType::F16) || values.dtype() != DType::F32 {
            return generic_write_positions(buffer, start, values);
        }
        match same_type::<_, [Tensor<Flex, 4>; 2]>([buffer, values]) {
            Ok([buffer, values]) => {
                let out = write_in_place(float(buffer), start, &float(values));
                let out = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(out));
                known_same(out)
            }
            Err([buffer, values]) => generic_write_positions(buffer, start, values),
        }
    }

    fn rope(&self, x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
        let (cos, sin) = tables.halves();
        if x.dtype() != DType::F32 || cos.dtype() != DType::F32 {
            return tables.apply(x);
        }
        let (cos, sin) = (cos.clone(), sin.clone());
        match same_type::<_, [Tensor<Flex, 4>; 3]>([x, cos, sin]) {
            Ok([x, cos, sin]) => match flex_rope(x.clone(), cos, sin) {
                Some(out) => known_same(out),
                None => tables.apply(known_same(x)),
            },
            Err([x, _, _]) => tables.apply(x),
        }
    }

    fn rms_norm(&self, x: Tensor<B, 3>, norm: &RmsNorm<B>) -> Tensor<B, 3> {
        let gamma = norm.gamma.val();
        if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 {
            return norm.forward(x);
        }
        match same_type::<_, (Tensor<Flex, 3>, Tensor<Flex, 1>)>((x, gamma)) {
            Ok((x, gamma)) => {
                let out = contiguous_f32(&[float(x.clone()), float(gamma)], |[x, gamma]| {
                    comet_kernels::rms_norm(x, gamma, norm.epsilon as f32)
                });
                known_same(Tensor::<Flex, 3>::from_data(
                    TensorData::new(out, x.dims()),
                    &x.device(),
                ))
            }
            Err((x, _)) => norm.forward(x),
        }
    }

    fn swiglu(&self, gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
        let generic = |gate, up| burn::tensor::activation::silu(gate) * up;
        if gate.dtype() != DType::F32 || up.dtype() != DType::F32 || gate.dims() != up.dims() {
            return generic(gate, up);
        }
        match same_type::<_, [Tensor<Flex, 3>; 2]>([gate, up]) {
            Ok([gate, up]) => {
                let (dims, device) = (gate.dims(), gate.device());
                let out = contiguous_f32(&[float(gate), float(up)], |[g, u]| {
                    comet_kernels::swiglu(g, u)
                });
                known_same(Tensor::<Flex, 3>::from_data(
                    TensorData::new(out, dims),
                    &device,
                ))
            }
            Err([gate, up]) => generic(gate, up),
        }
    }

    fn linears(&self, x: Tensor<B, 3>, layers: Vec<LinearParams<B>>) -> Vec<Tensor<B, 3>> {
        let f32s = x.dtype() == DType::F32 && layers.iter().all(|(w, _)| w.dtype() == DType::F32);
        let one_by_one = |x: Tensor<B, 3>, layers: Vec<LinearParams<B>>| {
            layers
                .into_iter()
                .map(|(w, b)| self.linear(x.clone(), w, b))
                .collect()
        };
        if !f32s {
            return one_by_one(x, layers);
        }
        match same_type::<_, (Tensor<Flex, 3>, Vec<LinearParams<Flex>>)>((x, layers)) {
            Ok((x, layers)) => match flex_linears(&x, &layers) {
                Some(outs) => outs.into_iter().map(known_same).collect(),
                None => one_by_one(known_same(x), known_same(layers)),
            },
            Err((x, layers)) => one_by_one(x, layers),
        }
    }

    fn linear(
        &self,
        x: Tensor<B, 3>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 3> {
        let generic = |(x, weight, bias)| burn::tensor::module::linear(x, weight, bias);
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return generic((x, weight, bias));
        }
        match same_type::<_, (Tensor<Flex, 3>, Tensor<Flex, 2>, Option<Tensor<Flex, 1>>)>((
            x, weight, bias,
        )) {
            Ok((x, w, b)) => {
                let layers = [(w, b)];
                match flex_linears(&x, &layers) {
                    Some(outs) => known_same(outs.into_iter().next().expect("one layer")),
                    None => {
                        let [(w, b)] = layers;
                        generic(known_same((x, w, b)))
                    }
                }
            }
            Err(args) => generic(args),
        }
    }

    fn nll(&self, logits: Tensor<B, 2>, targets: &[usize]) -> Tensor<B, 1> {
        loss::flex_nll(logits, targets)
    }

    fn adamw(
        &self,
        settings: &AdamWSettings,
        lr: f64,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        state: Option<AdamWState<B, 1>>,
    ) -> (Tensor<B, 1>, AdamWState<B, 1>) {
        optim::flex_adamw(settings, lr, param, grad, state)
    }

    fn sum_squares(&self, x: Tensor<B, 1>) -> f64 {
        optim::flex_sum_squares(x)
    }

    fn scale(&self, x: Tensor<B, 1>, factor: f32) -> Tensor<B, 1> {
        optim::flex_scale(x, factor)
    }
}

/// `x w_t + b_t` for each layer `t` by `comet_kernels::matmul_many` (one layer: its
/// `matmul`), or `None` for layouts the kernels do not take.
fn flex_linears(
    x: &Tensor<Flex, 3>,
    layers: &[LinearParams<Flex>],
) -> Option<Vec<Tensor<Flex, 3>>> {
    let [batch, seq, d_in] = x.dims();
    let fx = float(x.clone());
    let [sb, ss, sd] = usize_strides::<3>(&fx)?;
    // `[batch, seq]` must flatten to one row index.
    if batch > 1 && sb != ss * seq {
        return None;
    }
    let params: Vec<(FlexTensor, Option<FlexTensor>)> = layers
        .iter()
        .map(|(w, b)| (float(w.clone()), b.clone().map(float)))
        .collect();
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for (w, b) in &params {
        let d_out = w.layout().shape()[1];
        weights.push(matrix(w)?);
        biases.push(match b {
            Some(b) if b.is_contiguous() => {
                Some(&b.storage::<f32>()[b.layout().start_offset()..][..d_out])
            }
            Some(_) => return None,
            None => None,
        });
    }
    let input = Matrix {
        data: fx.storage::<f32>(),
        offset: fx.layout().start_offset(),
        shape: [batch * seq, d_in],
        strides: [ss, sd],
    };
    let outs = comet_kernels::matmul_many(input, &weights, &biases);
    let device = x.device();
    let shaped = outs
        .into_iter()
        .zip(&weights)
        .map(|(out, w)| Tensor::from_data(TensorData::new(out, [batch, seq, w.shape[1]]), &device));
    Some(shaped.collect())
}

/// `f` over the contiguous `f32` data of `tensors` (copied first where strided).
fn contiguous_f32<const N: usize, R>(
    tensors: &[FlexTensor; N],
    f: impl FnOnce([&[f32]; N]) -> R,
) -> R {
    let owned: Vec<FlexTensor> = tensors.iter().map(FlexTensor::to_contiguous).collect();
    let slices: [&[f32]; N] = std::array::from_fn(|i| {
        let t = &owned[i];
        let n = t.layout().num_elements();
        &t.storage::<f32>()[t.layout().start_offset()..][..n]
    });
    f(slices)
}

/// RoPE by `comet_kernels::rope` over the tables' halves (contiguous as built).
fn flex_rope(
    x: Tensor<Flex, 4>,
    cos: Tensor<Flex, 4>,
    sin: Tensor<Flex, 4>,
) -> Option<Tensor<Flex, 4>> {
    let fx = float(x);
    let sx = strided(&fx)?;
    let out = contiguous_f32(&[float(cos), float(sin)], |[c, s]| {
        comet_kernels::rope(sx, c, s)
    });
    Some(Tensor::from_primitive(TensorPrimitive::Float(head_view(
        out, sx.shape,
    ))))
}

/// A flex tensor `[batch, heads, seq, dim]` over `data` laid out token-major, `[batch, seq,
/// heads, dim]`: what the attention and RoPE kernels return, so that the model's head split
/// and merge (`swap_dims` + `reshape`) stay views.
pub(super) fn head_view(data: Vec<f32>, [batch, heads, seq, dim]: [usize; 4]) -> FlexTensor {
    let t = Flex::float_from_data(
        TensorData::new(data, [batch, seq, heads, dim]),
        &Default::default(),
    );
    Flex::float_swap_dims(t, 1, 2)
}

pub(super) fn float<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    match t.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("f32 checked"),
    }
}

/// A 2-D `f32` tensor as a matrix read through its strides; `None` for a negative stride.
pub(super) fn matrix(t: &FlexTensor) -> Option<Matrix<'_>> {
    let shape = t.layout().shape();
    Some(Matrix {
        data: t.storage::<f32>(),
        offset: t.layout().start_offset(),
        shape: [shape[0], shape[1]],
        strides: usize_strides::<2>(t)?,
    })
}

/// Element strides as `usize`, if none is negative.
pub(super) fn usize_strides<const D: usize>(t: &FlexTensor) -> Option<[usize; D]> {
    let s = t.layout().strides();
    let mut out = [0; D];
    for (o, &s) in out.iter_mut().zip(s) {
        *o = usize::try_from(s).ok()?;
    }
    Some(out)
}

pub(super) fn strided<E: burn::tensor::Element + bytemuck::Pod>(
    t: &FlexTensor,
) -> Option<Strided<'_, E>> {
    let shape = t.layout().shape();
    Some(Strided {
        data: t.storage::<E>(),
        offset: t.layout().start_offset(),
        shape: [shape[0], shape[1], shape[2], shape[3]],
        strides: usize_strides(t)?,
    })
}

fn flex_attention(
    q: Tensor<Flex, 4>,
    k: Tensor<Flex, 4>,
    v: Tensor<Flex, 4>,
    mask: &AttentionMask<Flex>,
) -> Tensor<Flex, 4> {
    let [batch, heads, queries, dim] = q.dims();
    let (fq, fk, fv) = (float(q.clone()), float(k.clone()), float(v.clone()));
    let mask_tensor = match mask {
        AttentionMask::Explicit(m) => Some(m.clone().into_primitive()),
        AttentionMask::Causal => None,
    };
    let (Some(sq), Some(kernel_mask)) = (strided::<f32>(&fq), kernel_mask(&mask_tensor)) else {
        return generic_attention(q, k, v, mask);
    };
    let scale = 1.0 / (dim as f32).sqrt();
    let out = match fk.dtype() {
        DType::F16 => strided::<f16>(&fk)
            .zip(strided::<f16>(&fv))
            .map(|(k, v)| comet_kernels::attention(sq, k, v, kernel_mask, scale)),
        _ => strided::<f32>(&fk)
            .zip(strided::<f32>(&fv))
            .map(|(k, v)| comet_kernels::attention(sq, k, v, kernel_mask, scale)),
    };
    match out {
        Some(out) => Tensor::from_primitive(TensorPrimitive::Float(head_view(
            out,
            [batch, heads, queries, dim],
        ))),
        None => generic_attention(q, k, v, mask),
    }
}

/// The kernel's mask: causal without a tensor, else the boolean tensor read through its
/// strides (a dimension of size 1 broadcasts); `None` for a layout it cannot read.
pub(super) fn kernel_mask(mask: &Option<FlexTensor>) -> Option<Mask<'_>> {
    let Some(m) = mask else {
        return Some(Mask::Causal);
    };
    let mut strides = usize_strides::<4>(m)?;
    for (s, &n) in strides.iter_mut().zip(m.layout().shape().iter()) {
        if n == 1 {
            *s = 0;
        }
    }
    Some(Mask::Explicit {
        data: m.storage::<u8>(),
        offset: m.layout().start_offset(),
        strides,
    })
}

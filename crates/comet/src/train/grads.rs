//! Operations on a step's gradients that Burn leaves to the caller: the global norm (for
//! clipping), scaling, and splitting into parameter groups with their own learning rates.

use std::collections::HashSet;
use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::kernels::kernels;

enum Op<'a> {
    SumSquares(f64),
    Scale(f32),
    Take(&'a HashSet<ParamId>, GradientsParams),
    Compare(&'a GradientsParams, f32),
}

struct Visitor<'a, B> {
    grads: &'a mut GradientsParams,
    op: Op<'a>,
    _backend: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Visitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let id = param.id;
        match &mut self.op {
            Op::SumSquares(sum) => {
                if let Some(g) = self.grads.get::<B::InnerBackend, D>(id) {
                    *sum += kernels::<B::InnerBackend>().sum_squares(g.flatten(0, D - 1));
                }
            }
            Op::Scale(factor) => {
                if let Some(g) = self.grads.remove::<B::InnerBackend, D>(id) {
                    let shape = g.shape();
                    let flat = kernels::<B::InnerBackend>().scale(g.flatten(0, D - 1), *factor);
                    self.grads.register(id, flat.reshape::<D, _>(shape));
                }
            }
            Op::Take(ids, taken) => {
                if ids.contains(&id) {
                    if let Some(g) = self.grads.remove::<B::InnerBackend, D>(id) {
                        taken.register(id, g);
                    }
                }
            }
            Op::Compare(other, worst) => {
                let (a, b) = (
                    self.grads.get::<B::InnerBackend, D>(id),
                    other.get::<B::InnerBackend, D>(id),
                );
                let diff = match (a, b) {
                    (Some(a), Some(b)) => {
                        let scale = b.clone().abs().max().into_scalar().elem::<f32>().max(1e-6);
                        (a - b).abs().max().into_scalar().elem::<f32>() / scale
                    }
                    (None, None) => 0.0,
                    _ => f32::INFINITY,
                };
                *worst = worst.max(diff);
            }
        }
    }
}

fn visit<'a, B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &'a mut GradientsParams,
    op: Op<'a>,
) -> Op<'a> {
    let mut visitor = Visitor::<B> {
        grads,
        op,
        _backend: PhantomData,
    };
    model.visit(&mut visitor);
    visitor.op
}

/// The L2 norm of all gradients together.
pub fn global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
) -> f64 {
    match visit(model, grads, Op::SumSquares(0.0)) {
        Op::SumSquares(sum) => sum.sqrt(),
        _ => unreachable!(),
    }
}

/// Multiplies every gradient by `factor`.
pub fn scale<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    factor: f32,
) {
    visit(model, grads, Op::Scale(factor));
}

/// Moves the gradients of `ids` out of `grads` into a group of their own.
pub fn take<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    ids: &HashSet<ParamId>,
) -> GradientsParams {
    match visit(model, grads, Op::Take(ids, GradientsParams::new())) {
        Op::Take(_, taken) => taken,
        _ => unreachable!(),
    }
}

/// Largest relative difference between two sets of gradients of `model` (per parameter:
/// max |a - b| / max |b|); infinite when a parameter has a gradient in only one set.
pub fn max_relative_difference<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    a: &mut GradientsParams,
    b: &GradientsParams,
) -> f32 {
    match visit(model, a, Op::Compare(b, 0.0)) {
        Op::Compare(_, worst) => worst,
        _ => unreachable!(),
    }
}
